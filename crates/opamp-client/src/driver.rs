//! The client task: a `select!` loop that drives one [`AgentSession`] with sockets, the
//! tokio clock and the command channel.
//!
//! After every input (socket event, timer, command) the loop drains the session:
//! `poll_transmit` (send), `poll_action` (connect / disconnect), `poll_event` (persist,
//! then forward to the application), then sleeps until `poll_timeout` or the next input.
//! Protocol decisions (what to send, when to retry, what an offer means) are the
//! session's; this module only moves bytes and persists state. It must never block on
//! anything but the sockets, the timer and the channels.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use opamp_agent_fsm::{
    Action, AgentSession, ConnectionTarget, Event, PendingCandidate, Settings, Transport,
    TransportError,
};
use opamp_proto::prost::Message as _;
use opamp_proto::{InstanceUid, Limits, v1};
use tokio::sync::mpsc;

use crate::client::{ClientConfig, Command};
use crate::event::ClientEvent;
use crate::store::{StateStore, StoreError};
use crate::transport::http::{HttpOptions, HttpTransport};
use crate::transport::ws::{self, WsConnection, WsIncoming};
use crate::transport::{Endpoint, header_map};
use crate::{Error, tls};

/// Transport options fixed at build time.
#[derive(Clone, Debug)]
pub(crate) struct DriverOptions {
    pub(crate) limits: Limits,
    pub(crate) gzip_requests: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) close_timeout: Duration,
}

/// The session's clock: tokio's, so that tests with a paused clock control it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The connection, as far as the driver is concerned.
enum Conn {
    /// Nothing open (before the first Connect, after a failure, while backing off).
    Idle,
    /// A WebSocket being opened.
    WsConnecting(BoxFuture<Result<Box<WsConnection>, TransportError>>),
    /// An open WebSocket.
    Ws(Box<WsConnection>),
    /// Plain HTTP.
    Http(Box<HttpConn>),
}

/// Plain HTTP: the transport, or the one request in flight that holds it (HTTP-6).
struct HttpConn {
    transport: Option<HttpTransport>,
    in_flight: Option<BoxFuture<(HttpTransport, Result<v1::ServerToAgent, TransportError>)>>,
    queue: VecDeque<v1::AgentToServer>,
}

/// What the connection produced.
enum ConnEvent {
    WsOpened(Result<Box<WsConnection>, TransportError>),
    Ws(WsIncoming),
    HttpDone(Box<(HttpTransport, Result<v1::ServerToAgent, TransportError>)>),
}

/// Waits for the connection's next event; never completes while there is nothing to wait
/// for. Every branch is cancel-safe.
async fn next_conn_event(conn: &mut Conn) -> ConnEvent {
    match conn {
        Conn::Idle => std::future::pending().await,
        Conn::WsConnecting(f) => ConnEvent::WsOpened(f.await),
        Conn::Ws(ws) => ConnEvent::Ws(ws.recv().await),
        Conn::Http(h) => match h.in_flight.as_mut() {
            Some(f) => ConnEvent::HttpDone(Box::new(f.await)),
            None => std::future::pending().await,
        },
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The client task.
pub(crate) struct Driver {
    session: AgentSession,
    store: Box<dyn StateStore>,
    events: mpsc::Sender<ClientEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    opts: DriverOptions,
    conn: Conn,
    tls_cache: Option<(TlsKey, Arc<rustls::ClientConfig>)>,
    stop_deadline: Option<tokio::time::Instant>,
    stopped: bool,
}

type TlsKey = (
    Option<v1::TlsConnectionSettings>,
    Option<v1::TlsCertificate>,
);

fn transport_for(endpoint: &str) -> Transport {
    match Endpoint::parse(endpoint) {
        Ok(e) if !e.scheme.is_websocket() => Transport::Http,
        _ => Transport::WebSocket,
    }
}

impl Driver {
    /// Loads the persisted state and builds the session. Returns the instance uid in use.
    ///
    /// Stored valid OpAMP settings replace the configured target; a stored candidate is
    /// handed to the session, which tries it first and accepts or reverts it (OPC-5 step 3,
    /// [`Settings::candidate`]).
    pub(crate) fn new(
        config: ClientConfig,
        store: Box<dyn StateStore>,
        events: mpsc::Sender<ClientEvent>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(Self, InstanceUid), Error> {
        let state = store.load()?;
        let uid = match (config.instance_uid, state.instance_uid) {
            (Some(configured), stored) => {
                if stored != Some(configured) {
                    store.save_instance_uid(configured)?;
                }
                configured
            }
            (None, Some(stored)) => stored,
            (None, None) => {
                let uid = InstanceUid::new_v7();
                store.save_instance_uid(uid)?;
                uid
            }
        };
        let usable = |t: &ConnectionTarget| Endpoint::parse(&t.endpoint).is_ok();
        let target = state
            .valid_settings
            .filter(usable)
            .unwrap_or_else(|| config.target.clone());

        let mut settings = Settings::new(uid, transport_for(&target.endpoint), target);
        // An unusable stored candidate is the session's to reject (FAILED, then cleared).
        settings.candidate = state.candidate_settings;
        settings.capabilities = config.capabilities;
        if let Some(hb) = config.heartbeat_interval {
            settings.heartbeat_interval = hb;
        }
        if let Some(p) = config.polling_interval {
            settings.polling_interval = p;
        }
        if let Some(b) = config.backoff.clone() {
            settings.backoff = b;
        }
        if let Some(f) = config.throttle_floor {
            settings.throttle_floor = f;
        }
        settings.request_instance_uid = config.request_instance_uid;
        settings.custom_capabilities = config.custom_capabilities.clone();
        // The WebSocket limit covers the 1-byte header too (WSL-1).
        settings.max_message_size = config.driver.limits.max_message_size.saturating_sub(1);

        let mut session = AgentSession::new(settings, now(), rand::random());
        session.set_agent_description(config.description);
        if let Some(h) = config.health {
            session.set_health(h);
        }
        if let Some(c) = config.effective_config {
            session.set_effective_config(c);
        }
        if let Some(s) = state.remote_config_status {
            session.set_remote_config_status(s);
        }
        Ok((
            Self {
                session,
                store,
                events,
                commands,
                commands_open: true,
                opts: config.driver,
                conn: Conn::Idle,
                tls_cache: None,
                stop_deadline: None,
                stopped: false,
            },
            uid,
        ))
    }

    /// Runs until stopped.
    pub(crate) async fn run(mut self) {
        loop {
            self.drain().await;
            if self.stopped {
                break;
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let commands_open = self.commands_open;
            let stop_deadline = self.stop_deadline;
            tokio::select! {
                cmd = self.commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    // Every handle was dropped: stop as if asked to.
                    None => {
                        self.commands_open = false;
                        self.request_stop();
                    }
                },
                ev = next_conn_event(&mut self.conn) => self.on_conn_event(ev).await,
                () = sleep_until(deadline) => self.session.handle_timeout(now()),
                () = sleep_until(stop_deadline) => {
                    tracing::warn!("graceful stop did not complete in time; closing");
                    break;
                }
            }
        }
        self.close_connection().await;
        if !self.stopped {
            self.emit(ClientEvent::Stopped).await;
        }
    }

    fn request_stop(&mut self) {
        if self.stop_deadline.is_none() {
            self.stop_deadline = Some(
                tokio::time::Instant::now()
                    + self.opts.request_timeout
                    + self.opts.close_timeout
                    + Duration::from_secs(1),
            );
            self.session.stop(now());
        }
    }

    async fn emit(&mut self, event: ClientEvent) {
        // A dropped receiver only means nobody listens any more.
        let _ = self.events.send(event).await;
    }

    async fn persist(&mut self, result: Result<(), StoreError>) {
        if let Err(e) = result {
            tracing::warn!("state store: {e}");
            self.emit(ClientEvent::StateStoreFailed {
                reason: e.to_string(),
            })
            .await;
        }
    }

    /// Drains the session's outputs until it has nothing more to say.
    async fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(msg) = self.session.poll_transmit(now()) {
                progressed = true;
                self.transmit(msg).await;
            }
            if let Some(action) = self.session.poll_action() {
                // One action at a time: it may change what the session transmits next.
                match action {
                    Action::Connect(target) => self.connect(target).await,
                    Action::Disconnect => self.disconnect().await,
                }
                continue;
            }
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                self.on_event(event).await;
            }
            if !progressed {
                break;
            }
        }
    }

    // ---- outgoing

    async fn transmit(&mut self, msg: v1::AgentToServer) {
        let limit = self.opts.limits;
        match &mut self.conn {
            Conn::Ws(ws) => {
                // The limit covers header plus data (WSL-1, WSL-6).
                if limit.check_outgoing(1 + msg.encoded_len()).is_err() {
                    self.emit(ClientEvent::MessageDiscarded {
                        reason: format!(
                            "AgentToServer of {} bytes is over the limit; not sent (WSL-6)",
                            1 + msg.encoded_len()
                        ),
                    })
                    .await;
                    return;
                }
                if let Err(e) = ws.send(&msg).await {
                    tracing::debug!("{e}");
                    self.conn = Conn::Idle;
                    self.session.handle_transport_error(now(), e);
                }
            }
            Conn::Http(h) => {
                let HttpConn {
                    transport,
                    in_flight,
                    queue,
                } = &mut **h;
                if limit.check_outgoing(msg.encoded_len()).is_err() {
                    let reason = format!(
                        "AgentToServer of {} bytes is over the limit; not sent (HSL-7)",
                        msg.encoded_len()
                    );
                    self.emit(ClientEvent::MessageDiscarded { reason }).await;
                    // Answer the session so that its one-request-in-flight slot frees up.
                    self.session
                        .handle_transport_error(now(), TransportError::RequestTooLarge);
                    return;
                }
                match (in_flight.is_some(), transport.take()) {
                    (false, Some(t)) => {
                        *in_flight = Some(start_exchange(t, msg, self.session.instance_uid()));
                    }
                    (_, t) => {
                        // Only one request at a time (HTTP-6): the session should not
                        // produce a second one, but if it does, it waits its turn.
                        if let Some(t) = t {
                            *transport = Some(t);
                        }
                        queue.push_back(msg);
                    }
                }
            }
            Conn::Idle | Conn::WsConnecting(_) => {
                tracing::debug!("no connection; dropping an outgoing message");
            }
        }
    }

    // ---- actions

    fn tls_config(
        &mut self,
        target: &ConnectionTarget,
    ) -> Result<Arc<rustls::ClientConfig>, Error> {
        let key: TlsKey = (target.tls.clone(), target.certificate.clone());
        if let Some((k, config)) = &self.tls_cache {
            if *k == key {
                return Ok(config.clone());
            }
        }
        let config = tls::client_config(target.tls.as_ref(), target.certificate.as_ref())?;
        self.tls_cache = Some((key, config.clone()));
        Ok(config)
    }

    async fn connect(&mut self, target: ConnectionTarget) {
        // One connection at a time (CONN-5).
        self.close_connection().await;
        let prepared = (|| {
            let endpoint = Endpoint::parse(&target.endpoint)?;
            let headers = header_map(&target.headers)?;
            let tls = if endpoint.scheme.is_tls() {
                Some(self.tls_config(&target)?)
            } else {
                None
            };
            Ok::<_, Error>((endpoint, headers, tls))
        })();
        let (endpoint, headers, tls) = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.session.handle_transport_error(
                    now(),
                    TransportError::Failed {
                        reason: e.to_string(),
                    },
                );
                return;
            }
        };
        if endpoint.scheme.is_websocket() {
            let limits = self.opts.limits;
            let timeout = self.opts.connect_timeout;
            self.conn = Conn::WsConnecting(Box::pin(async move {
                ws::connect(&endpoint, &headers, tls, limits, timeout)
                    .await
                    .map(Box::new)
            }));
        } else {
            let options = HttpOptions {
                gzip_requests: self.opts.gzip_requests,
                limits: self.opts.limits,
                request_timeout: self.opts.request_timeout,
            };
            self.conn = Conn::Http(Box::new(HttpConn {
                transport: Some(HttpTransport::new(endpoint, headers, tls, options)),
                in_flight: None,
                queue: VecDeque::new(),
            }));
            // HTTP has no connection: ready right away (driver protocol, step 2).
            self.session.handle_connected(now());
        }
    }

    async fn disconnect(&mut self) {
        if let Conn::Http(h) = &mut self.conn {
            // The last request handed out (the goodbye, DISC-4) still goes out and is
            // allowed to finish; per the driver protocol its reply is not reported.
            if let Some(f) = h.in_flight.take() {
                let _ = tokio::time::timeout(self.opts.request_timeout, f).await;
            }
        }
        self.close_connection().await;
    }

    /// Closes whatever is open: the WebSocket closing handshake (DISC-2), or dropping the
    /// HTTP connection.
    async fn close_connection(&mut self) {
        match std::mem::replace(&mut self.conn, Conn::Idle) {
            Conn::Ws(ws) => ws.close(self.opts.close_timeout).await,
            Conn::Idle | Conn::WsConnecting(_) | Conn::Http(_) => {}
        }
    }

    // ---- inputs

    async fn on_conn_event(&mut self, event: ConnEvent) {
        match event {
            ConnEvent::WsOpened(Ok(ws)) => {
                self.conn = Conn::Ws(ws);
                self.session.handle_connected(now());
            }
            ConnEvent::WsOpened(Err(e)) => {
                self.conn = Conn::Idle;
                self.session.handle_transport_error(now(), e);
            }
            ConnEvent::Ws(WsIncoming::Message(msg)) => self.on_message(*msg).await,
            ConnEvent::Ws(WsIncoming::Malformed(reason)) => {
                tracing::warn!("dropped a malformed message from the server: {reason}");
                self.emit(ClientEvent::MalformedMessage { reason }).await;
            }
            ConnEvent::Ws(WsIncoming::TooLarge(reason)) => {
                tracing::warn!("closing with 1009: {reason}");
                if let Conn::Ws(ws) = std::mem::replace(&mut self.conn, Conn::Idle) {
                    ws.close_too_big().await;
                }
                self.emit(ClientEvent::MalformedMessage {
                    reason: reason.clone(),
                })
                .await;
                self.session
                    .handle_transport_error(now(), TransportError::MalformedResponse { reason });
            }
            ConnEvent::Ws(WsIncoming::Closed(e)) => {
                self.conn = Conn::Idle;
                self.session.handle_transport_error(now(), e);
            }
            ConnEvent::HttpDone(done) => {
                let (t, result) = *done;
                let next = match &mut self.conn {
                    Conn::Http(h) => {
                        let HttpConn {
                            transport,
                            in_flight,
                            queue,
                        } = &mut **h;
                        *in_flight = None;
                        match queue.pop_front() {
                            Some(msg) => {
                                *in_flight =
                                    Some(start_exchange(t, msg, self.session.instance_uid()));
                            }
                            None => *transport = Some(t),
                        }
                        true
                    }
                    _ => false,
                };
                if !next {
                    return;
                }
                match result {
                    Ok(msg) => self.on_message(msg).await,
                    Err(e) => {
                        if let TransportError::MalformedResponse { reason } = &e {
                            self.emit(ClientEvent::MalformedMessage {
                                reason: reason.clone(),
                            })
                            .await;
                        }
                        self.session.handle_transport_error(now(), e);
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, msg: v1::ServerToAgent) {
        self.session.handle_message(now(), msg);
    }

    fn on_command(&mut self, cmd: Command) {
        let s = &mut self.session;
        match cmd {
            Command::AgentDescription(v) => s.set_agent_description(v),
            Command::Capabilities(v) => s.set_capabilities(v),
            Command::Health(v) => s.set_health(v),
            Command::EffectiveConfig(v) => s.set_effective_config(v),
            Command::RemoteConfigStatus(v) => {
                if let Err(e) = self.store.save_remote_config_status(&v) {
                    tracing::warn!("state store: {e}");
                    let _ = self.events.try_send(ClientEvent::StateStoreFailed {
                        reason: e.to_string(),
                    });
                }
                s.set_remote_config_status(v);
            }
            Command::PackageStatuses(v) => s.set_package_statuses(v),
            Command::ConnectionSettingsStatus(v) => s.set_connection_settings_status(v),
            Command::CustomCapabilities(v) => s.set_custom_capabilities(v),
            Command::AvailableComponents(v) => s.set_available_components(v),
            Command::CustomMessage(m, reply) => {
                let _ = reply.send(s.send_custom_message(m).map_err(Error::from));
            }
            Command::RequestCertificate(csr, reply) => {
                let _ = reply.send(s.request_certificate(csr).map_err(Error::from));
            }
            Command::InstanceUid(reply) => {
                let _ = reply.send(s.instance_uid());
            }
            Command::Stop => self.request_stop(),
        }
    }

    async fn on_event(&mut self, event: Event) {
        // Persist first, so that what the application is told has survived (UID-6, OPC-5).
        let stored = match &event {
            Event::NewInstanceUid(uid) => Some(self.store.save_instance_uid(*uid)),
            Event::RemoteConfig(c) => Some(self.store.save_remote_config(c)),
            Event::OpampSettingsCandidate(t) => {
                // Target and offer hash together, so that a restart resumes the flow and
                // reports APPLIED / FAILED for that offer (OPC-5 step 3, CSS-4). If the
                // session already dropped the candidate, its Accepted / Rejected event
                // follows and clears what is stored here.
                let candidate = match self.session.pending_candidate() {
                    Some(c) if c.target == *t => c.clone(),
                    _ => PendingCandidate::new(t.clone(), Vec::new()),
                };
                Some(self.store.save_candidate_settings(Some(&candidate)))
            }
            Event::OpampSettingsAccepted(t) => Some(
                self.store
                    .save_valid_settings(t)
                    .and_then(|()| self.store.save_candidate_settings(None)),
            ),
            Event::OpampSettingsRejected { .. } => Some(self.store.save_candidate_settings(None)),
            _ => None,
        };
        if let Some(result) = stored {
            self.persist(result).await;
        }
        if matches!(event, Event::Stopped) {
            self.stopped = true;
        }
        if let Some(forward) = ClientEvent::from_session(event) {
            self.emit(forward).await;
        }
    }
}

fn start_exchange(
    mut transport: HttpTransport,
    msg: v1::AgentToServer,
    uid: InstanceUid,
) -> BoxFuture<(HttpTransport, Result<v1::ServerToAgent, TransportError>)> {
    Box::pin(async move {
        let result = transport.exchange(&msg, uid).await;
        (transport, result)
    })
}
