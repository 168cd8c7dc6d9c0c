//! The error type of the server library.

use opamp_proto::InstanceUid;

/// Everything that can go wrong in the server library.
///
/// The variants fall in three groups, so callers can tell whose fault it is:
/// - **the peer** sent something unusable: [`Error::Protocol`];
/// - **local misuse or a local decision**: [`Error::UnknownAgent`],
///   [`Error::AgentNotConnected`], [`Error::QueueFull`], [`Error::OutgoingTooLarge`],
///   [`Error::Config`], [`Error::Tls`];
/// - **IO**: [`Error::Io`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent bytes that are not a valid OpAMP message (malformed protobuf, a
    /// non-zero WebSocket header (WS-4), a message over the size limit (WSL-3, HSL-3)).
    #[error("peer sent a malformed message: {0}")]
    Protocol(#[from] opamp_proto::Error),
    /// No agent with this instance uid is known to the server.
    #[error("unknown agent {0}")]
    UnknownAgent(InstanceUid),
    /// The agent is known but not reachable right now (it disconnected, its connection
    /// closed, or it missed its HTTP polls).
    #[error("agent {0} is not connected")]
    AgentNotConnected(InstanceUid),
    /// The agent's connection did not drain its bounded send queue: it was disconnected
    /// as a slow reader and the message was dropped.
    #[error("send queue of agent {0} is full; the connection was closed as a slow reader")]
    QueueFull(InstanceUid),
    /// The message is over the outgoing size limit and was not sent (WSL-5, HSL-6).
    #[error("outgoing message of {size} bytes is over the limit of {limit} bytes; not sent")]
    OutgoingTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The server configuration is invalid (for example a TLS certificate or key that
    /// does not parse).
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// Building the TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
