//! The async server: shared state, the axum route, the push registry and the timer task.
//!
//! Architecture invariant: every protocol decision is made by [`ServerSession`]; this
//! module only moves bytes, calls the [`Handler`] and enforces transport limits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use opamp_proto::v1::{AgentToServer, ServerToAgent};
use opamp_proto::{InstanceUid, Limits, framing};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission as AdmissionControl;
use crate::handler::{AgentContext, ConnectionRequest, Disconnected, Handler};
use crate::metrics::{self, Metrics, MetricsSnapshot};
use crate::session::{
    AgentInfo, ConnectionId, PushOutcome, Received, ServerSession, SessionEvent, Via,
};
use crate::{Error, ServerConfig};

/// How a push was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Queued on the agent's WebSocket connection (sent as soon as the connection task
    /// gets to it).
    Sent,
    /// Stored for the HTTP agent's next poll, merged with anything already pending
    /// (HTTP-13, ERR-7).
    Pending,
    /// Nothing was left to send after capability gating and the remote-config rules
    /// (for example the agent already runs the offered config, RCFG-5).
    Nothing,
}

/// The result of [`Server::broadcast`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastReport {
    /// Agents whose WebSocket queue took the message.
    pub sent: usize,
    /// HTTP agents that will get it on their next poll.
    pub pending: usize,
    /// Agents for which nothing was left to send.
    pub nothing: usize,
    /// Agents that could not be reached (closed connection, full queue, too large).
    pub failed: usize,
}

/// Why the server closes a WebSocket connection on its own.
pub(crate) mod close_code {
    /// Normal closure (idle timeout).
    pub(crate) const NORMAL: u16 = 1000;
    /// Going away: server shutdown (DISC-3).
    pub(crate) const GOING_AWAY: u16 = 1001;
    /// Policy violation: closed by the application.
    pub(crate) const POLICY: u16 = 1008;
    /// Message too big (WSL-3).
    pub(crate) const TOO_BIG: u16 = 1009;
    /// Try again later: slow reader, no pong.
    pub(crate) const TRY_AGAIN_LATER: u16 = 1013;
}

/// The shared side of one WebSocket connection: its push queue and its kill switch. Small
/// on purpose (one per connection): the queue allocates only while pushes wait, and one
/// `Notify` wakes the connection task for both pushes and kills.
#[derive(Debug, Default)]
pub(crate) struct ConnShared {
    state: Mutex<ConnState>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct ConnState {
    queue: VecDeque<Bytes>,
    /// The close code requested by a kill; 0 while alive.
    close_code: u16,
    /// The connection task ended: no more pushes.
    closed: bool,
}

/// Why a push was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushRefused {
    /// The queue holds its capacity already: a slow reader.
    Full,
    /// The connection is closed or being closed.
    Closed,
}

/// What woke the connection task.
#[derive(Debug)]
pub(crate) enum Wake {
    /// The connection must close with this code.
    Killed(u16),
    /// A pushed message to send.
    Push(Bytes),
}

impl ConnShared {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the connection task to close with `code` (the first code asked wins).
    pub(crate) fn kill(&self, code: u16) {
        {
            let mut state = self.lock();
            if state.close_code == 0 {
                state.close_code = code;
            }
        }
        self.wake.notify_one();
    }

    /// The close code asked for, once killed.
    pub(crate) fn killed(&self) -> Option<u16> {
        match self.lock().close_code {
            0 => None,
            code => Some(code),
        }
    }

    /// Queues a pushed message unless the queue already holds `capacity` of them.
    pub(crate) fn push(&self, frame: Bytes, capacity: usize) -> Result<(), PushRefused> {
        {
            let mut state = self.lock();
            if state.closed || state.close_code != 0 {
                return Err(PushRefused::Closed);
            }
            if state.queue.len() >= capacity.max(1) {
                return Err(PushRefused::Full);
            }
            state.queue.push_back(frame);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// The connection task ended: refuse pushes from now on and free the queue.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.queue = VecDeque::new();
    }

    fn poll_state(&self) -> Option<Wake> {
        let mut state = self.lock();
        if state.close_code != 0 {
            return Some(Wake::Killed(state.close_code));
        }
        let frame = state.queue.pop_front()?;
        if state.queue.is_empty() {
            // An idle connection keeps no queue memory.
            state.queue = VecDeque::new();
        }
        Some(Wake::Push(frame))
    }

    /// Waits for a kill or a push. Cancel-safe: nothing is taken unless it is returned.
    pub(crate) async fn next(&self) -> Wake {
        loop {
            let notified = self.wake.notified();
            if let Some(wake) = self.poll_state() {
                return wake;
            }
            notified.await;
        }
    }

    /// Completes once the connection is killed.
    pub(crate) async fn until_killed(&self) -> u16 {
        loop {
            let notified = self.wake.notified();
            if let Some(code) = self.killed() {
                return code;
            }
            notified.await;
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    pub(crate) shared: Arc<ConnShared>,
}

pub(crate) struct Inner<H> {
    pub(crate) config: ServerConfig,
    pub(crate) handler: H,
    session: Mutex<ServerSession>,
    conns: Mutex<HashMap<ConnectionId, ConnHandle>>,
    pub(crate) metrics: Metrics,
    pub(crate) admission: AdmissionControl,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    next_conn: AtomicU64,
    ticker_started: AtomicBool,
}

/// An OpAMP server: one route that serves WebSocket and plain HTTP, a registry of agents
/// to push to, metrics, and graceful shutdown.
///
/// `Server` is a cheap handle (an `Arc`); clone it freely, e.g. into the tasks of a fleet
/// server that push configurations.
pub struct Server<H> {
    pub(crate) inner: Arc<Inner<H>>,
}

impl<H> Clone for Server<H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<H> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.inner.config.path)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// A server with this configuration and application handler.
    pub fn new(config: ServerConfig, handler: H) -> Self {
        let session = ServerSession::new(config.session.clone(), Box::new(InstanceUid::new_v7));
        let admission = AdmissionControl::new(config.admission.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                handler,
                session: Mutex::new(session),
                conns: Mutex::new(HashMap::new()),
                metrics: Metrics::default(),
                admission,
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                next_conn: AtomicU64::new(1),
                ticker_started: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The application handler.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// The axum router serving the OpAMP endpoint at the configured path, for both
    /// transports (GEN-1). Mount it in an application's router, or use
    /// [`Server::serve`].
    ///
    /// When serving it yourself, use
    /// `into_make_service_with_connect_info::<SocketAddr>()` so the handler sees peer
    /// addresses, and call [`Server::shutdown`] to close WebSockets gracefully.
    pub fn router(&self) -> Router {
        Router::new()
            .route(&self.inner.config.path, any(entry::<H>))
            .with_state(self.clone())
    }

    /// A cheap snapshot of the counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Starts a graceful shutdown: every WebSocket is closed with code 1001 and a close
    /// frame (DISC-3); [`Server::serve`] stops accepting and drains in-flight requests.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// The token cancelled by [`Server::shutdown`].
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Waits until every WebSocket connection task has finished (after a shutdown).
    pub async fn wait_connections_closed(&self) {
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// Sends `msg` to one agent (RCFG-10): immediately over WebSocket through its bounded
    /// queue, or on the next poll over HTTP (HTTP-13). The session rules apply (MSG-5,
    /// capability gating, remote-config resend rules, CMD-2).
    pub fn push(&self, uid: InstanceUid, msg: ServerToAgent) -> Result<Delivery, Error> {
        let outcome = self.inner.lock_session().push(Instant::now(), uid, msg)?;
        self.deliver(uid, outcome)
    }

    /// Pushes `msg` to every attached agent `filter` selects.
    pub fn broadcast(
        &self,
        msg: &ServerToAgent,
        filter: impl FnMut(&InstanceUid, &AgentInfo) -> bool,
    ) -> BroadcastReport {
        let outcomes = self
            .inner
            .lock_session()
            .broadcast(Instant::now(), msg, filter);
        let mut report = BroadcastReport::default();
        for (uid, outcome) in outcomes {
            match self.deliver(uid, outcome) {
                Ok(Delivery::Sent) => report.sent += 1,
                Ok(Delivery::Pending) => report.pending += 1,
                Ok(Delivery::Nothing) => report.nothing += 1,
                Err(_) => report.failed += 1,
            }
        }
        report
    }

    /// Sets the remote config `uid` should run without sending it now; it goes out with
    /// the next reply when the agent does not report that hash (RCFG-4, RCFG-5).
    pub fn set_remote_config(
        &self,
        uid: InstanceUid,
        config: Option<opamp_proto::v1::AgentRemoteConfig>,
    ) -> Result<(), Error> {
        self.inner.lock_session().set_desired_config(uid, config)
    }

    /// A view of one agent.
    pub fn agent(&self, uid: &InstanceUid) -> Option<AgentInfo> {
        self.inner.lock_session().agent(uid)
    }

    /// The number of agents known (attached, or detached and retained).
    pub fn agent_count(&self) -> usize {
        self.inner.lock_session().agent_count()
    }

    /// Every agent known (attached, or detached and retained).
    pub fn agents(&self) -> Vec<(InstanceUid, AgentInfo)> {
        self.inner.lock_session().agents().collect()
    }

    /// Closes the WebSocket connection `uid` is attached to (close code 1008), e.g. after
    /// revoking its credentials (OPC-16). Returns false when it is not on a WebSocket.
    pub fn disconnect(&self, uid: &InstanceUid) -> bool {
        let attachment = self.inner.lock_session().agent(uid).map(|a| a.attachment);
        let Some(crate::session::Attachment::Ws(conn)) = attachment else {
            return false;
        };
        match self.inner.lock_conns().get(&conn) {
            Some(handle) => {
                handle.shared.kill(close_code::POLICY);
                true
            }
            None => false,
        }
    }

    fn deliver(&self, uid: InstanceUid, outcome: PushOutcome) -> Result<Delivery, Error> {
        let metrics = &self.inner.metrics;
        match outcome {
            PushOutcome::Pending => {
                metrics::inc(&metrics.pushes_pending);
                Ok(Delivery::Pending)
            }
            PushOutcome::Nothing => Ok(Delivery::Nothing),
            PushOutcome::Send { connection, reply } => {
                let Some(handle) = self.inner.lock_conns().get(&connection).cloned() else {
                    return Err(Error::AgentNotConnected(uid));
                };
                let capacity = self.inner.config.ws.send_queue;
                for msg in reply.into_messages() {
                    let frame = self.inner.encode_ws(&msg)?;
                    match handle.shared.push(frame, capacity) {
                        Ok(()) => metrics::inc(&metrics.pushes_sent),
                        Err(PushRefused::Full) => {
                            if handle.shared.killed().is_none() {
                                metrics::inc(&metrics.dropped_slow_reader);
                                tracing::warn!(%uid, %connection, "send queue full: closing slow reader");
                            }
                            handle.shared.kill(close_code::TRY_AGAIN_LATER);
                            return Err(Error::QueueFull(uid));
                        }
                        Err(PushRefused::Closed) => {
                            return Err(Error::AgentNotConnected(uid));
                        }
                    }
                }
                Ok(Delivery::Sent)
            }
        }
    }
}

impl<H: Handler> Inner<H> {
    pub(crate) fn lock_session(&self) -> MutexGuard<'_, ServerSession> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_conns(&self) -> MutexGuard<'_, HashMap<ConnectionId, ConnHandle>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn incoming_limits(&self) -> Limits {
        Limits::new(self.config.max_incoming_message_size)
    }

    pub(crate) fn outgoing_limits(&self) -> Limits {
        Limits::new(self.config.max_outgoing_message_size)
    }

    pub(crate) fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Encodes a WebSocket message, refusing one over the outgoing limit (WSL-5).
    pub(crate) fn encode_ws(&self, msg: &ServerToAgent) -> Result<Bytes, Error> {
        match framing::encode_checked(msg, self.outgoing_limits()) {
            Ok(frame) => Ok(Bytes::from(frame)),
            Err(opamp_proto::Error::OutgoingTooLarge { size, limit }) => {
                metrics::inc(&self.metrics.oversized_out);
                tracing::warn!(
                    size,
                    limit,
                    "outgoing message over the limit: not sent (WSL-5)"
                );
                Err(Error::OutgoingTooLarge { size, limit })
            }
            Err(e) => Err(Error::Protocol(e)),
        }
    }

    pub(crate) fn register_connection(&self, id: ConnectionId, handle: ConnHandle) {
        self.lock_conns().insert(id, handle);
        self.lock_session().open_connection(id);
    }

    /// Forgets a closed WebSocket connection and every agent on it (DISC-6).
    pub(crate) async fn unregister_connection(&self, id: ConnectionId) {
        self.lock_conns().remove(&id);
        let events = {
            let mut session = self.lock_session();
            session.close_connection(Instant::now(), id);
            drain_events(&mut session)
        };
        self.dispatch(events).await;
    }

    /// Runs one AgentToServer through the session and the handler; returns the messages
    /// to send (exactly one reply, SEQ-4, plus a possible follow-up, CMD-2).
    pub(crate) async fn process(
        &self,
        via: Via,
        msg: &AgentToServer,
        connection: &Arc<ConnectionRequest>,
    ) -> Vec<ServerToAgent> {
        let received = self.lock_session().receive(Instant::now(), via, msg);
        let inbound = match received {
            Received::Accepted(inbound) => inbound,
            Received::Rejected(reply) => {
                tracing::debug!(
                    len = msg.instance_uid.len(),
                    "rejected message with invalid instance_uid (UID-10)"
                );
                return vec![*reply];
            }
        };
        let ctx = AgentContext::new(&inbound, connection.clone());
        let app_reply = self.handler.on_message(&ctx, msg).await;
        let (reply, events) = {
            let mut session = self.lock_session();
            let reply = session.reply(Instant::now(), &inbound, app_reply);
            (reply, drain_events(&mut session))
        };
        self.dispatch(events).await;
        reply.into_messages().collect()
    }

    pub(crate) async fn dispatch(&self, events: Vec<SessionEvent>) {
        for event in events {
            let SessionEvent::AgentDisconnected {
                instance_uid,
                connection,
                reason,
            } = event;
            let event = Disconnected {
                instance_uid,
                connection_id: connection,
                reason,
            };
            self.handler.on_disconnect(&event).await;
        }
    }
}

fn drain_events(session: &mut ServerSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

impl<H: Handler> Server<H> {
    /// Starts the session timer task once (HTTP liveness, DISC-5; retention).
    pub(crate) fn ensure_ticker(&self) {
        if self.inner.ticker_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = interval.tick() => {}
                }
                let Some(inner) = inner.upgrade() else { return };
                let events = {
                    let mut session = inner.lock_session();
                    let now = Instant::now();
                    if session.poll_timeout().is_some_and(|t| t <= now) {
                        session.handle_timeout(now);
                    }
                    drain_events(&mut session)
                };
                inner.dispatch(events).await;
            }
        });
    }
}

/// The single route: `Content-Type: application/x-protobuf` is plain HTTP, anything else
/// a WebSocket upgrade (HTTP-8).
async fn entry<H: Handler>(State(server): State<Server<H>>, request: Request) -> Response {
    server.ensure_ticker();
    if crate::http::is_protobuf(request.headers()) {
        crate::http::serve(server, request).await
    } else {
        crate::ws::upgrade(server, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn push_queue_is_bounded_and_freed_when_drained() {
        let shared = ConnShared::default();
        for n in 0..3u8 {
            shared.push(Bytes::from(vec![n]), 3).unwrap();
        }
        assert_eq!(
            shared.push(Bytes::from_static(b"x"), 3),
            Err(PushRefused::Full)
        );
        for n in 0..3u8 {
            let Wake::Push(frame) = shared.next().await else {
                panic!("push expected");
            };
            assert_eq!(frame[..], [n]);
        }
        assert_eq!(
            shared.lock().queue.capacity(),
            0,
            "an idle queue holds no memory"
        );
    }

    #[tokio::test]
    async fn kill_comes_before_queued_pushes_and_refuses_new_ones() {
        let shared = ConnShared::default();
        shared.push(Bytes::from_static(b"a"), 8).unwrap();
        shared.kill(close_code::POLICY);
        shared.kill(close_code::TRY_AGAIN_LATER);
        assert!(matches!(
            shared.next().await,
            Wake::Killed(close_code::POLICY)
        ));
        assert_eq!(shared.until_killed().await, close_code::POLICY);
        assert_eq!(
            shared.push(Bytes::from_static(b"b"), 8),
            Err(PushRefused::Closed)
        );
    }

    #[tokio::test]
    async fn a_waiting_task_is_woken_by_a_push_and_closed_queue_refuses() {
        let shared = Arc::new(ConnShared::default());
        {
            // A wait that is given up takes nothing.
            let mut waiting = std::pin::pin!(shared.next());
            assert!(futures_util::poll!(waiting.as_mut()).is_pending());
        }
        shared.push(Bytes::from_static(b"p"), 1).unwrap();
        assert!(matches!(shared.next().await, Wake::Push(frame) if frame[..] == *b"p"));
        let waiter = tokio::spawn({
            let shared = shared.clone();
            async move { shared.next().await }
        });
        tokio::task::yield_now().await;
        shared.push(Bytes::from_static(b"w"), 1).unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(20), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(woke, Wake::Push(frame) if frame[..] == *b"w"));
        shared.close();
        assert_eq!(
            shared.push(Bytes::from_static(b"q"), 1),
            Err(PushRefused::Closed)
        );
    }
}
