//! What the client tells the application: a stream of [`ClientEvent`]s.

use std::time::Duration;

use opamp_agent_fsm::{ConnectionTarget, Event, TransportError};
use opamp_proto::{InstanceUid, ServerCapabilities, v1};

/// One thing that happened, delivered on the receiver returned by
/// [`OpampClient::start`](crate::OpampClient::start).
///
/// Offers (remote config, packages, connection settings, commands) are already gated on
/// the capabilities the agent declared (CAP-5). Items that must survive a restart
/// (instance uid, remote config, OpAMP connection settings) have already been written to
/// the [`StateStore`](crate::StateStore) when the event arrives.
// Events are produced rarely and moved once; boxing the offers would only make matching
// on them clumsier for the application.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Connected (WebSocket open; HTTP: ready to send).
    Connected,
    /// The connection went down; `error` is `None` when we closed it on purpose.
    Disconnected {
        /// Why, when it was not our choice.
        error: Option<TransportError>,
    },
    /// Connecting (or an HTTP request) failed; the next attempt comes after `retry_in`.
    ConnectFailed {
        /// What went wrong.
        error: TransportError,
        /// The wait before the next attempt (backoff, Retry-After).
        retry_in: Duration,
    },
    /// The server refused our credentials with 401 (CONN-6).
    AuthenticationFailed,
    /// A remote configuration to apply. Report the outcome with
    /// [`ClientHandle::set_remote_config_status`](crate::ClientHandle::set_remote_config_status)
    /// and the new effective config with
    /// [`ClientHandle::set_effective_config`](crate::ClientHandle::set_effective_config).
    RemoteConfig(v1::AgentRemoteConfig),
    /// Own-telemetry / other connection settings offered by the server (the `opamp` part
    /// is handled by the client itself).
    ConnectionSettingsOffer(v1::ConnectionSettingsOffers),
    /// The server offered new OpAMP connection settings; the client stored them as the
    /// candidate and is trying them (OPC-5 steps 3-5).
    OpampSettingsCandidate(ConnectionTarget),
    /// The candidate settings worked and are now the valid ones (OPC-5 step 8). Also sent
    /// for a candidate resumed after a restart.
    OpampSettingsAccepted(ConnectionTarget),
    /// The candidate settings failed; the client went back to the previous ones (step 9).
    /// Also sent for a candidate resumed after a restart.
    OpampSettingsRejected {
        /// The rejected settings.
        target: ConnectionTarget,
        /// Why.
        reason: String,
    },
    /// Packages offered by the server.
    PackagesAvailable(v1::PackagesAvailable),
    /// A command (restart) from the server.
    Command(v1::ServerToAgentCommand),
    /// The server assigned a new instance uid; the client already uses it (UID-6).
    NewInstanceUid(InstanceUid),
    /// A custom message for one of our custom capabilities.
    CustomMessage(v1::CustomMessage),
    /// The server answered with an `error_response`.
    ServerError(v1::ServerErrorResponse),
    /// The server's capabilities became known or changed.
    ServerCapabilitiesChanged(ServerCapabilities),
    /// An outgoing message was not sent: over the size limit, or refused with 413
    /// (WSL-6, HSL-4, HSL-7).
    MessageDiscarded {
        /// Why.
        reason: String,
    },
    /// A message from the server was malformed (garbage protobuf, non-zero WebSocket
    /// header, text frame, over the size limit) and was dropped unprocessed (WS-1, WS-4,
    /// WSL-4, HSL-5).
    MalformedMessage {
        /// What was wrong.
        reason: String,
    },
    /// Writing to the state store failed; the client keeps running.
    StateStoreFailed {
        /// The store's error.
        reason: String,
    },
    /// The client stopped; no more events follow.
    Stopped,
}

impl ClientEvent {
    /// Converts a session event; `None` for events this version does not know.
    pub(crate) fn from_session(event: Event) -> Option<Self> {
        Some(match event {
            Event::Connected => Self::Connected,
            Event::Disconnected { error } => Self::Disconnected { error },
            Event::ConnectFailed { error, retry_in } => Self::ConnectFailed { error, retry_in },
            Event::AuthenticationFailed => Self::AuthenticationFailed,
            Event::RemoteConfig(c) => Self::RemoteConfig(c),
            Event::ConnectionSettingsOffer(o) => Self::ConnectionSettingsOffer(o),
            Event::OpampSettingsCandidate(t) => Self::OpampSettingsCandidate(t),
            Event::OpampSettingsAccepted(t) => Self::OpampSettingsAccepted(t),
            Event::OpampSettingsRejected { target, reason } => {
                Self::OpampSettingsRejected { target, reason }
            }
            Event::PackagesAvailable(p) => Self::PackagesAvailable(p),
            Event::Command(c) => Self::Command(c),
            Event::NewInstanceUid(u) => Self::NewInstanceUid(u),
            Event::CustomMessage(m) => Self::CustomMessage(m),
            Event::ServerError(e) => Self::ServerError(e),
            Event::ServerCapabilitiesChanged(c) => Self::ServerCapabilitiesChanged(c),
            Event::MessageDiscarded { reason } => Self::MessageDiscarded { reason },
            Event::Stopped => Self::Stopped,
            #[allow(unreachable_patterns)]
            other => {
                tracing::debug!("session event not forwarded: {other:?}");
                return None;
            }
        })
    }
}
