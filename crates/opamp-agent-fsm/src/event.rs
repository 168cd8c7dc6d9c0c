//! What the session tells its driver ([`Action`]) and the application ([`Event`]), and
//! what the driver tells the session about transport failures ([`TransportError`]).

use std::fmt;
use std::time::Duration;

use opamp_proto::{InstanceUid, ServerCapabilities, v1};

use crate::ConnectionTarget;

/// Why the transport failed or closed. The driver maps HTTP statuses / WS close codes here.
#[derive(Clone, Debug)]
pub enum TransportError {
    /// Could not connect / request failed (DNS, TCP, TLS, 5xx other than 503, timeouts).
    Failed {
        /// Human-readable cause.
        reason: String,
    },
    /// 429 / 503 (with Retry-After already converted to a Duration by the driver; HTTP-date
    /// converted with [`parse_retry_after`](crate::parse_retry_after)), or WS close after
    /// UNAVAILABLE.
    Throttled {
        /// The server's retry hint, if any.
        retry_after: Option<Duration>,
    },
    /// 401 (CONN-6): surfaced as [`Event::AuthenticationFailed`], then retried with backoff.
    Unauthorized,
    /// 413 for the last request: that message is dropped, never retried (HSL-4).
    RequestTooLarge,
    /// The established connection broke (WS) (CONN-4: reconnect immediately once).
    ConnectionLost {
        /// Human-readable cause.
        reason: String,
    },
    /// The peer sent something malformed / over the limit (WSL-4, HSL-5).
    MalformedResponse {
        /// Human-readable cause.
        reason: String,
    },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed { reason } => write!(f, "transport failed: {reason}"),
            Self::Throttled {
                retry_after: Some(d),
            } => write!(f, "throttled by the server, retry after {d:?}"),
            Self::Throttled { retry_after: None } => write!(f, "throttled by the server"),
            Self::Unauthorized => write!(f, "the server rejected our credentials (401)"),
            Self::RequestTooLarge => {
                write!(f, "the server rejected the message as too large (413)")
            }
            Self::ConnectionLost { reason } => write!(f, "connection lost: {reason}"),
            Self::MalformedResponse { reason } => write!(f, "malformed response: {reason}"),
        }
    }
}

/// Instructions for the driver's transport.
// Rare, short-lived values: boxing would only complicate the driver's matches.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Action {
    /// Open a connection (WS) / start sending requests (HTTP) to this target.
    Connect(ConnectionTarget),
    /// Close the current connection (after the queued agent_disconnect was transmitted).
    Disconnect,
}

/// What the application is told.
// Rare, short-lived values: boxing would only complicate the application's matches.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Event {
    /// The transport is up (after [`AgentSession::handle_connected`](crate::AgentSession::handle_connected)).
    Connected,
    /// The transport went down; `error` is `None` for an orderly close we asked for.
    Disconnected {
        /// Why, if it was not our choice.
        error: Option<TransportError>,
    },
    /// Connecting (or an HTTP request) failed; the next attempt comes in `retry_in`.
    ConnectFailed {
        /// What went wrong.
        error: TransportError,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// The server answered 401 (CONN-6).
    AuthenticationFailed,
    /// A remote configuration offer (gated on `AcceptsRemoteConfig`, CAP-12).
    RemoteConfig(v1::AgentRemoteConfig),
    /// `own_*` / `other_connections` offers for the application (gated per capability,
    /// CAP-15, CSS-5). The `opamp` part is handled by the session and removed.
    ConnectionSettingsOffer(v1::ConnectionSettingsOffers),
    /// New OpAMP connection settings to persist as a candidate (OPC-5 step 3). Persist
    /// [`AgentSession::pending_candidate`](crate::AgentSession::pending_candidate) (this
    /// target with its offer hash), and pass it back in
    /// [`Settings::candidate`](crate::Settings::candidate) after a restart.
    OpampSettingsCandidate(ConnectionTarget),
    /// The candidate worked: persist it as the valid settings (OPC-5 step 8).
    OpampSettingsAccepted(ConnectionTarget),
    /// The candidate failed; the session reverted to the previous target (OPC-5 step 9).
    OpampSettingsRejected {
        /// The rejected candidate.
        target: ConnectionTarget,
        /// Why it was rejected.
        reason: String,
    },
    /// A package offer (gated on `AcceptsPackages`, CAP-14).
    PackagesAvailable(v1::PackagesAvailable),
    /// A command (gated on `AcceptsRestartCommand`, CAP-16, CMD-3).
    Command(v1::ServerToAgentCommand),
    /// The server assigned a new instance uid: persist it (UID-6).
    NewInstanceUid(InstanceUid),
    /// A custom message for one of our custom capabilities (CUS-3).
    CustomMessage(v1::CustomMessage),
    /// The server answered with an `error_response` (§1.8).
    ServerError(v1::ServerErrorResponse),
    /// The server's capabilities became known or changed (CAP-8).
    ServerCapabilitiesChanged(ServerCapabilities),
    /// The server's custom capabilities became known or changed (CUS-1: the list replaces
    /// the previous one). Added to the contract: informational.
    ServerCustomCapabilities(Vec<String>),
    /// An outgoing message was not sent (over the size limit, or rejected with 413)
    /// (WSL-6, HSL-4, HSL-7).
    MessageDiscarded {
        /// Why.
        reason: String,
    },
    /// [`AgentSession::stop`](crate::AgentSession::stop) completed: nothing more will come.
    Stopped,
}
