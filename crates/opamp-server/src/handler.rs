//! The application's side of the server: the [`Handler`] trait and what it is told.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Uri};
use opamp_proto::v1::{AgentToServer, ServerToAgent};
use opamp_proto::{AgentCapabilities, InstanceUid};
use rustls_pki_types::CertificateDer;

use crate::session::{ConnectionId, DisconnectReason, Inbound, UidAssignment};

/// The transport an agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// WebSocket (full duplex; pushes go out immediately).
    WebSocket,
    /// Plain HTTP (polling; pushes wait for the next request).
    Http,
}

impl Transport {
    /// `"ws"` or `"http"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Http => "http",
        }
    }
}

/// An incoming connection (a WebSocket upgrade request) or plain-HTTP request, before any
/// OpAMP message is read. Authentication happens here (CONN-6).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionRequest {
    /// The request headers (e.g. `Authorization`).
    pub headers: HeaderMap,
    /// The request URI.
    pub uri: Uri,
    /// The peer's address, when known (always with [`crate::Server::serve`]; with
    /// [`crate::Server::router`] when the app serves with axum's `ConnectInfo`).
    pub peer_addr: Option<SocketAddr>,
    /// The transport.
    pub transport: Transport,
    /// The connection id of a WebSocket connection (`None` for plain HTTP).
    pub connection_id: Option<ConnectionId>,
    /// The client certificate chain presented over mutual TLS, leaf first.
    pub peer_certificates: Option<Arc<[CertificateDer<'static>]>>,
}

/// The answer of [`Handler::on_connecting`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Serve the request.
    Accept,
    /// `401 Unauthorized`: authentication failed (CONN-6), on HTTP POST and on the
    /// WebSocket upgrade alike.
    Unauthorized,
    /// `429 Too Many Requests`, optionally with `Retry-After` (THR-3).
    TooManyRequests {
        /// The `Retry-After` delay.
        retry_after: Option<Duration>,
    },
    /// `503 Service Unavailable`, optionally with `Retry-After` (THR-3).
    Unavailable {
        /// The `Retry-After` delay.
        retry_after: Option<Duration>,
    },
}

/// What the application knows about the agent behind a message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentContext {
    /// The uid the server tracks the agent under: the one it sent, or the one assigned in
    /// this reply (see [`AgentContext::assignment`]).
    pub instance_uid: InstanceUid,
    /// The uid in the message (echoed in the reply, MSG-5).
    pub received_uid: InstanceUid,
    /// Set when this reply assigns a new uid, and why.
    pub assignment: Option<UidAssignment>,
    /// The agent was unknown to this server before this message.
    pub first_contact: bool,
    /// The agent just (re)attached to this connection or to HTTP polling.
    pub attached: bool,
    /// The reply will ask the agent for its full state (SEQ-11).
    pub report_full_state: bool,
    /// The message carries `agent_disconnect`.
    pub disconnect: bool,
    /// The agent's capabilities in this message.
    pub capabilities: AgentCapabilities,
    /// The connection (WebSocket) or request (HTTP) the message came on.
    pub connection: Arc<ConnectionRequest>,
}

impl AgentContext {
    pub(crate) fn new(inbound: &Inbound, connection: Arc<ConnectionRequest>) -> Self {
        Self {
            instance_uid: inbound.instance_uid,
            received_uid: inbound.received_uid,
            assignment: inbound.assignment,
            first_contact: inbound.first_contact,
            attached: inbound.attached,
            report_full_state: inbound.report_full_state,
            disconnect: inbound.disconnect,
            capabilities: inbound.capabilities,
            connection,
        }
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.connection.transport
    }

    /// The WebSocket connection id (`None` over HTTP).
    pub fn connection_id(&self) -> Option<ConnectionId> {
        self.connection.connection_id
    }

    /// The peer address, when known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.connection.peer_addr
    }
}

/// An agent is no longer reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Disconnected {
    /// The agent.
    pub instance_uid: InstanceUid,
    /// Its WebSocket connection, if it used one.
    pub connection_id: Option<ConnectionId>,
    /// Why.
    pub reason: DisconnectReason,
}

/// The application behind the server.
///
/// The trait is generic (methods return `impl Future`), not object-safe: the server is
/// `Server<H: Handler>`, so every call is statically dispatched and no future is boxed on
/// the hot path (one `on_message` per heartbeat, up to 10^5 per second). An application
/// that needs dynamic dispatch can implement `Handler` for a struct holding its own
/// `Arc<dyn ...>`.
///
/// The reply returned by [`Handler::on_message`] is post-processed by the session before
/// it is sent (capability gating, uid echo, first-reply capabilities, remote-config
/// resend rules, ReportFullState, command isolation: see [`crate::session`]), so an
/// application may return the same offers every time and let the server decide what the
/// agent needs.
pub trait Handler: Send + Sync + 'static {
    /// Decides whether to serve a WebSocket upgrade or a plain-HTTP request, before any
    /// message is read (authentication, CONN-6; throttling, THR-3). Called for every
    /// HTTP request and once per WebSocket connection. The default accepts everything.
    fn on_connecting(&self, request: &ConnectionRequest) -> impl Future<Output = Admission> + Send {
        let _ = request;
        std::future::ready(Admission::Accept)
    }

    /// Handles one AgentToServer and returns the reply to it. Return
    /// `ServerToAgent::default()` when there is nothing to say; return
    /// [`ServerToAgent::unavailable`] to throttle a WebSocket agent (THR-1).
    fn on_message(
        &self,
        ctx: &AgentContext,
        msg: &AgentToServer,
    ) -> impl Future<Output = ServerToAgent> + Send;

    /// An agent disconnected (DISC-6), its connection closed, or it missed its HTTP polls
    /// (DISC-5). The default does nothing.
    fn on_disconnect(&self, event: &Disconnected) -> impl Future<Output = ()> + Send {
        let _ = event;
        std::future::ready(())
    }
}

/// A shared handler: lets the application keep its own `Arc` to the state the handler
/// uses (for example to push from other tasks).
impl<H: Handler> Handler for Arc<H> {
    fn on_connecting(&self, request: &ConnectionRequest) -> impl Future<Output = Admission> + Send {
        H::on_connecting(self, request)
    }

    fn on_message(
        &self,
        ctx: &AgentContext,
        msg: &AgentToServer,
    ) -> impl Future<Output = ServerToAgent> + Send {
        H::on_message(self, ctx, msg)
    }

    fn on_disconnect(&self, event: &Disconnected) -> impl Future<Output = ()> + Send {
        H::on_disconnect(self, event)
    }
}
