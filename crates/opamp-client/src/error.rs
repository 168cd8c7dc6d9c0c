//! The error type of the client.

/// What can go wrong when building or running an [`OpampClient`](crate::OpampClient).
///
/// Transport failures while running are not errors of the API: the client retries them
/// with backoff and reports them as [`ClientEvent`](crate::ClientEvent)s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- local misuse / configuration
    /// The endpoint URL is not a `ws`, `wss`, `http` or `https` URL with a host.
    #[error("invalid OpAMP endpoint {0}")]
    InvalidEndpoint(String),
    /// A configured header name or value is not valid HTTP.
    #[error("invalid header {0}")]
    InvalidHeader(String),
    /// The TLS settings or certificates are unusable (bad PEM, bad version range, ...).
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The session refused the call (for example a capability that was not declared).
    #[error(transparent)]
    Session(#[from] opamp_agent_fsm::Error),
    /// The client task has stopped; the handle can no longer be used.
    #[error("the client has stopped")]
    Stopped,
    // ---- IO
    /// Reading or writing persistent state failed.
    #[error("state store: {0}")]
    Store(#[from] crate::store::StoreError),
}
