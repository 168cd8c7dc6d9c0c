//! The agent session: one deterministic state machine per agent instance.
//!
//! It owns sequence numbers, status compression, capability gating, heartbeat and poll
//! timing, reconnect backoff and the connection-settings offer flow. It must never read the
//! clock, touch a socket, spawn, or draw OS randomness: every input carries `now`, every
//! output is polled.
//!
//! Connection states (private), as the driver sees them through [`Action`]s:
//!
//! ```text
//!   new() ──Connect──> Connecting ──handle_connected──> Connected ──(send/receive)──┐
//!                        │   ^                            │   │  ^                  │
//!             error      │   │ timer: Connect              │   │  └──────────────────┘
//!                        v   │                            │   │ new opamp settings,
//!                      Waiting <─────── error / UNAVAILABLE┘   │ UNAVAILABLE (WS), stop()
//!                        ^                                    v
//!                        └──────────(then wait)─────────── Closing ──goodbye sent──> Disconnect
//!                                                             │      then Connect(new) / wait / Stopped
//!                                                             v
//!                                                          Stopped
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use opamp_proto::prost::Message;
use opamp_proto::{
    AgentCapabilities, AgentToServerFlags, InstanceUid, ServerCapabilities, ServerToAgentFlags, v1,
};

use crate::backoff::{self, Rng};
use crate::status::{Fields, Status, replace};
use crate::{
    Action, Backoff, ConnectionTarget, DEFAULT_POLLING_INTERVAL, Error, Event, PendingCandidate,
    Settings, Transport, TransportError,
};

/// How many custom messages may wait to be sent (ERR-7: no growing queues).
pub const MAX_PENDING_CUSTOM_MESSAGES: usize = 16;

/// The connection, as the session sees it.
#[derive(Clone, Debug)]
enum Conn {
    /// `Action::Connect` was issued; waiting for `handle_connected` or an error.
    Connecting,
    /// The transport is up.
    Connected,
    /// The goodbye (`agent_disconnect`) is due; after it, `Action::Disconnect` and `then`.
    Closing(AfterClose),
    /// Not connected; `Action::Connect` comes out at `at`.
    Waiting { at: Instant },
    /// [`AgentSession::stop`] finished.
    Stopped,
}

/// What follows a deliberate close.
#[derive(Clone, Debug)]
enum AfterClose {
    /// Stop for good.
    Stop,
    /// Connect right away to this target (OPC-5 step 5).
    Reconnect(Box<ConnectionTarget>),
    /// Wait this long, then reconnect to the current target (THR-2).
    Wait(Duration),
}

/// OpAMP settings being tried (OPC-5 steps 3..9): offered live, or resumed after a restart
/// ([`Settings::candidate`]).
#[derive(Clone, Debug)]
struct Candidate {
    pending: PendingCandidate,
    /// What to go back to if the candidate fails (step 9).
    previous: ConnectionTarget,
}

/// Why a message is being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Status changed, or a report is otherwise due.
    Report,
    /// Nothing changed; the heartbeat or poll timer fired.
    Heartbeat,
    /// The last message before a deliberate close (DISC-1).
    Goodbye,
}

/// The sans-IO agent side of one OpAMP session.
///
/// See the [crate documentation](crate) for the driver protocol and the behaviour.
#[derive(Debug)]
pub struct AgentSession {
    // ---- configuration
    transport: Transport,
    capabilities: AgentCapabilities,
    instance_uid: InstanceUid,
    previous_uid: Option<InstanceUid>,
    request_instance_uid: bool,
    local_heartbeat: Option<Duration>,
    polling_interval: Duration,
    backoff: Backoff,
    reply_timeout: Option<Duration>,
    max_message_size: usize,
    throttle_floor: Duration,
    full_state_on_reconnect: bool,

    // ---- status compression
    status: Status,
    /// Changed since last sent.
    dirty: Fields,
    /// Dropped (413, over the size limit): resent with the next report, never on their own.
    lost: Fields,
    /// Sent, but no successful reply since (retried after a failed request / lost link).
    unacked: Fields,
    full_state: bool,
    full_components: bool,
    report_requested: bool,
    heartbeat_due: bool,

    // ---- one-shot payloads (not subject to compression)
    custom_out: VecDeque<v1::CustomMessage>,
    csr_out: Option<Vec<u8>>,
    unacked_custom: Vec<v1::CustomMessage>,
    unacked_csr: Option<Vec<u8>>,

    // ---- connection
    next_seq: u64,
    conn: Conn,
    target: ConnectionTarget,
    candidate: Option<Candidate>,
    /// HTTP: the candidate is confirmed by the first response, not by `handle_connected`.
    candidate_needs_response: bool,
    last_offer_hash: Option<Vec<u8>>,
    server_caps: Option<ServerCapabilities>,
    server_custom_caps: Option<Vec<String>>,
    last_remote_config: Option<v1::AgentRemoteConfig>,
    last_packages: Option<v1::PackagesAvailable>,
    ever_connected: bool,

    // ---- timing
    connected_at: Option<Instant>,
    last_send: Option<Instant>,
    /// HTTP: when the outstanding request was handed out (HTTP-6).
    in_flight: Option<Instant>,
    /// HTTP: no request before this (backoff / throttling after a failed request).
    http_retry_at: Option<Instant>,
    failures: u32,
    immediate_reconnect_used: bool,
    rng: Rng,

    // ---- outputs
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

/// Forces `ReportsStatus` on and clears undefined bits (CAP-2, CAP-3).
fn normalize(c: AgentCapabilities) -> AgentCapabilities {
    AgentCapabilities::from_bits_truncate(c.bits()) | AgentCapabilities::REPORTS_STATUS
}

/// Whether `endpoint` is a URL of the family `transport` speaks (OPC-2).
fn endpoint_fits(endpoint: &str, transport: Transport) -> bool {
    let lower = endpoint.trim().to_ascii_lowercase();
    let schemes: &[&str] = match transport {
        Transport::WebSocket => &["ws://", "wss://"],
        Transport::Http => &["http://", "https://"],
    };
    schemes
        .iter()
        .any(|s| lower.starts_with(s) && lower.len() > s.len())
}

/// The target that results from applying an `opamp` offer to `current`.
///
/// - Empty `destination_endpoint`: keep the current endpoint (OPC-17); absent `certificate`
///   then also means "keep".
/// - Non-empty endpoint: absent `certificate` means "no client certificate" (OPC-8).
/// - Absent `headers` / `tls`: unchanged (OPC-10); present ones replace the old ones whole.
/// - `heartbeat_interval_seconds`: applied when non-zero, or when the offer is a full one
///   (non-empty endpoint) or carries nothing else; 0 then disables WS heartbeats (HB-3). A
///   bare certificate (CSR reply) with 0 leaves the interval unchanged.
/// - `proxy` is not part of [`ConnectionTarget`] and is ignored.
fn merge_offer(current: &ConnectionTarget, op: &v1::OpAmpConnectionSettings) -> ConnectionTarget {
    let full = !op.destination_endpoint.is_empty();
    let only_heartbeat =
        op.headers.is_none() && op.certificate.is_none() && op.tls.is_none() && op.proxy.is_none();
    ConnectionTarget {
        endpoint: if full {
            op.destination_endpoint.clone()
        } else {
            current.endpoint.clone()
        },
        headers: match &op.headers {
            Some(h) => h
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            None => current.headers.clone(),
        },
        tls: op.tls.clone().or_else(|| current.tls.clone()),
        certificate: if full {
            op.certificate.clone()
        } else {
            op.certificate
                .clone()
                .or_else(|| current.certificate.clone())
        },
        heartbeat_interval: if op.heartbeat_interval_seconds != 0 || full || only_heartbeat {
            Some(Duration::from_secs(op.heartbeat_interval_seconds))
        } else {
            current.heartbeat_interval
        },
    }
}

impl AgentSession {
    /// A new session. The first [`poll_action`](Self::poll_action) returns
    /// `Action::Connect(settings.target)`, or `Action::Connect` with the candidate's target
    /// when [`Settings::candidate`] resumes the offer flow after a restart (OPC-5 step 3).
    /// `rng_seed` seeds the backoff jitter; give each agent a different seed (for example
    /// from the OS random source in the driver) so a fleet does not reconnect in lockstep.
    pub fn new(settings: Settings, now: Instant, rng_seed: u64) -> Self {
        let _ = now;
        let status = Status {
            custom_capabilities: (!settings.custom_capabilities.is_empty()).then(|| {
                v1::CustomCapabilities {
                    capabilities: settings.custom_capabilities.clone(),
                }
            }),
            ..Status::default()
        };
        let mut session = Self {
            transport: settings.transport,
            capabilities: normalize(settings.capabilities),
            instance_uid: settings.instance_uid,
            previous_uid: None,
            request_instance_uid: settings.request_instance_uid,
            local_heartbeat: settings.heartbeat_interval,
            polling_interval: settings.polling_interval,
            backoff: settings.backoff,
            reply_timeout: settings.reply_timeout,
            max_message_size: settings.max_message_size,
            throttle_floor: settings.throttle_floor,
            full_state_on_reconnect: settings.full_state_on_reconnect,
            status,
            dirty: Fields::EMPTY,
            lost: Fields::EMPTY,
            unacked: Fields::EMPTY,
            full_state: true,
            full_components: false,
            report_requested: false,
            heartbeat_due: false,
            custom_out: VecDeque::new(),
            csr_out: None,
            unacked_custom: Vec::new(),
            unacked_csr: None,
            next_seq: 0,
            conn: Conn::Connecting,
            target: settings.target,
            candidate: None,
            candidate_needs_response: false,
            last_offer_hash: None,
            server_caps: None,
            server_custom_caps: None,
            last_remote_config: None,
            last_packages: None,
            ever_connected: false,
            connected_at: None,
            last_send: None,
            in_flight: None,
            http_retry_at: None,
            failures: 0,
            immediate_reconnect_used: false,
            rng: Rng::new(rng_seed),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        if let Some(pending) = settings.candidate {
            session.resume_candidate(pending);
        }
        session
            .actions
            .push_back(Action::Connect(session.target.clone()));
        session
    }

    // ------------------------------------------------------------------ driver inputs

    /// The transport is up (WS: socket open; HTTP: right after `Action::Connect`).
    ///
    /// The first message on the new connection is a status report (SEQ-1, CONN-1): the full
    /// state on the first connection and, unless [`Settings::full_state_on_reconnect`] is
    /// `false`, on every later one. Over WebSocket, a pending candidate target is accepted
    /// here (OPC-5 step 8); over HTTP, by the first response.
    pub fn handle_connected(&mut self, now: Instant) {
        if !matches!(self.conn, Conn::Connecting) {
            return;
        }
        self.conn = Conn::Connected;
        self.connected_at = Some(now);
        self.last_send = None;
        self.in_flight = None;
        self.http_retry_at = None;
        self.heartbeat_due = false;
        if !self.ever_connected || self.full_state_on_reconnect {
            self.full_state = true;
        }
        self.ever_connected = true;
        self.report_requested = true;
        self.events.push_back(Event::Connected);
        if self.candidate.is_some() {
            match self.transport {
                Transport::WebSocket => self.accept_candidate(),
                Transport::Http => self.candidate_needs_response = true,
            }
        }
    }

    /// The transport failed or closed, or the last HTTP request failed.
    ///
    /// - While connecting (or on the first request with candidate settings): retry with
    ///   backoff (CONN-2), or revert a candidate (OPC-5 step 9).
    /// - An established WebSocket that breaks: one immediate reconnect, then backoff (CONN-4).
    /// - HTTP request failures: the next request waits for the backoff, and no polls go out
    ///   meanwhile (HB-9); its content is retried (ERR-5).
    /// - [`TransportError::Throttled`]: wait `max(backoff, retry_after, throttle_floor)`
    ///   (THR-3..5). [`TransportError::Unauthorized`]: [`Event::AuthenticationFailed`], then
    ///   backoff (CONN-6). [`TransportError::RequestTooLarge`]: the message is dropped,
    ///   never retried (HSL-4), [`Event::MessageDiscarded`].
    pub fn handle_transport_error(&mut self, now: Instant, error: TransportError) {
        match self.conn {
            Conn::Stopped | Conn::Waiting { .. } => {}
            Conn::Connecting => {
                if self.candidate.is_some() {
                    self.revert_candidate(error);
                } else {
                    self.schedule_reconnect(now, error);
                }
            }
            Conn::Connected => match self.transport {
                Transport::Http => self.http_request_failed(now, error),
                Transport::WebSocket => self.ws_connection_lost(now, error),
            },
            Conn::Closing(ref then) => {
                let then = then.clone();
                match self.transport {
                    // A failed request; the goodbye can still go out as its own request.
                    Transport::Http => {
                        self.in_flight = None;
                        self.requeue_unacked();
                    }
                    // The link is gone: nothing more can be sent on it.
                    Transport::WebSocket => {
                        self.requeue_unacked();
                        self.events
                            .push_back(Event::Disconnected { error: Some(error) });
                        self.after_close(now, then);
                    }
                }
            }
        }
    }

    /// A message from the server arrived.
    ///
    /// Processing order: instance uid check (a message for another uid is ignored, MSG-5),
    /// then `error_response` (if present the error wins and every other field is ignored),
    /// server capabilities (0 = unchanged, CAP-8), `command` (with `AcceptsRestartCommand`
    /// it is the only thing processed, MSG-9, CMD-3), flags, `agent_identification`,
    /// `remote_config`, `connection_settings`, `packages_available`,
    /// `custom_capabilities`, `custom_message`. Offers for capabilities the agent did not
    /// declare are ignored (CAP-5). Processing is idempotent (MSG-3), and produces a message
    /// only if the agent's status changed or the server asked for one (MSG-4, SEQ-14).
    pub fn handle_message(&mut self, now: Instant, msg: v1::ServerToAgent) {
        if self.transport == Transport::Http {
            self.in_flight = None;
        }
        if !matches!(self.conn, Conn::Connected) {
            // Late replies while closing or reconnecting are not acted upon.
            return;
        }
        if self.candidate_needs_response {
            // Any HTTP response proves the candidate endpoint, TLS and credentials work.
            self.candidate_needs_response = false;
            self.accept_candidate();
        }
        if !msg.instance_uid.is_empty()
            && msg.instance_uid.as_slice() != self.instance_uid.as_bytes()
            && self
                .previous_uid
                .is_none_or(|p| msg.instance_uid.as_slice() != p.as_bytes())
        {
            return;
        }
        if let Some(err) = msg.error_response {
            self.handle_server_error(now, err);
            return;
        }
        // A successful reply: what was sent has arrived.
        self.unacked = Fields::EMPTY;
        self.unacked_custom.clear();
        self.unacked_csr = None;
        self.failures = 0;
        self.immediate_reconnect_used = false;

        if msg.capabilities != 0 {
            self.update_server_capabilities(ServerCapabilities::from_wire(msg.capabilities));
        }

        if let Some(cmd) = msg.command {
            if self
                .capabilities
                .contains(AgentCapabilities::ACCEPTS_RESTART_COMMAND)
            {
                if cmd.r#type == v1::CommandType::Restart as i32 {
                    self.events.push_back(Event::Command(cmd));
                }
                // MSG-9 / CMD-3: with a command, everything else is ignored. Unknown command
                // types are ignored too (CMD-5).
                return;
            }
            // CAP-5 / CMD-1: a command we did not declare is as if absent.
        }

        let flags = ServerToAgentFlags::from_wire(msg.flags);
        if flags.contains(ServerToAgentFlags::REPORT_FULL_STATE) {
            self.full_state = true;
        }
        if flags.contains(ServerToAgentFlags::REPORT_AVAILABLE_COMPONENTS)
            && self
                .capabilities
                .contains(AgentCapabilities::REPORTS_AVAILABLE_COMPONENTS)
            && self.status.available_components.is_some()
        {
            self.full_components = true;
            self.dirty |= Fields::AVAILABLE_COMPONENTS;
        }

        if let Some(id) = &msg.agent_identification {
            // UID-6 / UID-7: only an exactly-16-byte uid is accepted.
            if let Ok(new) = InstanceUid::from_bytes(&id.new_instance_uid) {
                self.request_instance_uid = false;
                if new != self.instance_uid {
                    self.previous_uid = Some(self.instance_uid);
                    self.instance_uid = new;
                    self.events.push_back(Event::NewInstanceUid(new));
                }
            }
        }

        if let Some(rc) = msg.remote_config {
            if self
                .capabilities
                .contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG)
                && self.last_remote_config.as_ref() != Some(&rc)
            {
                self.last_remote_config = Some(rc.clone());
                self.events.push_back(Event::RemoteConfig(rc));
            }
        }

        if let Some(offers) = msg.connection_settings {
            self.process_offers(offers);
        }

        if let Some(p) = msg.packages_available {
            if self
                .capabilities
                .contains(AgentCapabilities::ACCEPTS_PACKAGES)
                && self.last_packages.as_ref() != Some(&p)
            {
                self.last_packages = Some(p.clone());
                self.events.push_back(Event::PackagesAvailable(p));
            }
        }

        if let Some(cc) = msg.custom_capabilities {
            if self.server_custom_caps.as_ref() != Some(&cc.capabilities) {
                self.server_custom_caps = Some(cc.capabilities.clone());
                self.events
                    .push_back(Event::ServerCustomCapabilities(cc.capabilities));
            }
        }

        if let Some(m) = msg.custom_message {
            // CUS-3: drop messages for capabilities we do not have.
            if self
                .status
                .custom_capability_names()
                .contains(&m.capability)
            {
                self.events.push_back(Event::CustomMessage(m));
            }
        }
    }

    /// The time returned by [`poll_timeout`](Self::poll_timeout) has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.conn {
            Conn::Waiting { at } if now >= at => {
                self.conn = Conn::Connecting;
                self.actions.push_back(Action::Connect(self.target.clone()));
            }
            Conn::Connected => {
                if let (Some(sent), Some(limit)) = (self.in_flight, self.reply_timeout) {
                    if now >= backoff::deadline(sent, limit) {
                        self.reply_timed_out(now, limit);
                    }
                    return;
                }
                if let Some(at) = self.http_retry_at {
                    if now >= at {
                        self.http_retry_at = None;
                        self.report_requested = true;
                    }
                    return;
                }
                if let Some(due) = self.heartbeat_deadline() {
                    if now >= due {
                        self.heartbeat_due = true;
                    }
                }
            }
            Conn::Closing(ref then) => {
                if let (Some(sent), Some(limit)) = (self.in_flight, self.reply_timeout) {
                    if now >= backoff::deadline(sent, limit) {
                        // The server does not answer: give up on the reply and on the
                        // goodbye; the driver abandons the request on Disconnect.
                        let then = then.clone();
                        self.in_flight = None;
                        self.requeue_unacked();
                        self.actions.push_back(Action::Disconnect);
                        self.events.push_back(Event::Disconnected {
                            error: Some(TransportError::Failed {
                                reason: format!("no reply within {limit:?} (ERR-5)"),
                            }),
                        });
                        self.after_close(now, then);
                    }
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ application inputs

    /// Sets the agent description (DESC-1); reported if it changed (DESC-7).
    pub fn set_agent_description(&mut self, d: v1::AgentDescription) {
        if replace(&mut self.status.description, d) {
            self.dirty |= Fields::DESCRIPTION;
        }
    }

    /// Sets the capabilities, normalized: `ReportsStatus` forced on, undefined bits cleared
    /// (CAP-2, CAP-3). A change is reported promptly (CAP-4); sub-messages whose capability
    /// was just gained are reported whole.
    pub fn set_capabilities(&mut self, c: AgentCapabilities) {
        let c = normalize(c);
        if c == self.capabilities {
            return;
        }
        let before = self.applicable();
        self.capabilities = c;
        let gained = self.applicable().without(before);
        self.dirty |= gained;
        self.report_requested = true;
    }

    /// Sets the health (reported with `ReportsHealth`, HLTH-1, HLTH-2).
    pub fn set_health(&mut self, h: v1::ComponentHealth) {
        if replace(&mut self.status.health, h) {
            self.dirty |= Fields::HEALTH;
        }
    }

    /// Sets the effective configuration (EFF-1, EFF-3). Reported with
    /// `ReportsEffectiveConfig`, and only to a server with `AcceptsEffectiveConfig` once its
    /// capabilities are known (CAP-7).
    pub fn set_effective_config(&mut self, c: v1::EffectiveConfig) {
        if replace(&mut self.status.effective_config, c) {
            self.dirty |= Fields::EFFECTIVE_CONFIG;
        }
    }

    /// Sets the remote config status (RCFG-7, RCFG-8).
    pub fn set_remote_config_status(&mut self, s: v1::RemoteConfigStatus) {
        if replace(&mut self.status.remote_config_status, s) {
            self.dirty |= Fields::REMOTE_CONFIG_STATUS;
        }
    }

    /// Sets the package statuses. Reported with `ReportsPackageStatuses`, and only to a
    /// server with `AcceptsPackagesStatus` once its capabilities are known (CAP-7, PKG-21).
    pub fn set_package_statuses(&mut self, s: v1::PackageStatuses) {
        if replace(&mut self.status.package_statuses, s) {
            self.dirty |= Fields::PACKAGE_STATUSES;
        }
    }

    /// Sets the connection settings status (CSS-1, CSS-6). The session itself sets it during
    /// the OpAMP settings flow (APPLYING, APPLIED, FAILED); the application sets it for
    /// `own_*` / `other_connections` offers (CSS-5).
    pub fn set_connection_settings_status(&mut self, s: v1::ConnectionSettingsStatus) {
        if replace(&mut self.status.connection_settings_status, s) {
            self.dirty |= Fields::CONNECTION_SETTINGS_STATUS;
        }
    }

    /// Sets the custom capabilities (CUS-1: the list replaces the previous one).
    pub fn set_custom_capabilities(&mut self, c: Vec<String>) {
        if self.status.custom_capabilities.is_none() && c.is_empty() {
            return;
        }
        if replace(
            &mut self.status.custom_capabilities,
            v1::CustomCapabilities { capabilities: c },
        ) {
            self.dirty |= Fields::CUSTOM_CAPABILITIES;
        }
    }

    /// Sets the available components (AVC-1). Messages carry the hash; the full map only
    /// after the server set `ReportAvailableComponents` (AVC-3..5).
    pub fn set_available_components(&mut self, c: v1::AvailableComponents) {
        if replace(&mut self.status.available_components, c) {
            self.dirty |= Fields::AVAILABLE_COMPONENTS;
        }
    }

    /// Queues a custom message; each `AgentToServer` carries at most one. Its capability must
    /// be one of ours (CUS-2). At most [`MAX_PENDING_CUSTOM_MESSAGES`] wait.
    pub fn send_custom_message(&mut self, m: v1::CustomMessage) -> Result<(), Error> {
        self.check_not_stopped()?;
        if !self
            .status
            .custom_capability_names()
            .contains(&m.capability)
        {
            return Err(Error::CustomCapabilityNotDeclared {
                capability: m.capability,
            });
        }
        if self.custom_out.len() >= MAX_PENDING_CUSTOM_MESSAGES {
            return Err(Error::CustomMessageQueueFull {
                pending: self.custom_out.len(),
            });
        }
        self.custom_out.push_back(m);
        Ok(())
    }

    /// Queues a certificate signing request: the next message carries
    /// `connection_settings_request.opamp.certificate_request.csr`, once (CSR-1, CSR-9).
    ///
    /// Refused unless the server's capabilities are known and include
    /// `AcceptsConnectionSettingsRequest` (CAP-7, CSR-9), and unless the agent declared
    /// `AcceptsOpAMPConnectionSettings` (the certificate comes back as an `opamp` offer).
    pub fn request_certificate(&mut self, csr_pem: Vec<u8>) -> Result<(), Error> {
        self.check_not_stopped()?;
        if !self
            .capabilities
            .contains(AgentCapabilities::ACCEPTS_OPAMP_CONNECTION_SETTINGS)
        {
            return Err(Error::CapabilityNotDeclared {
                capability: "AcceptsOpAMPConnectionSettings",
            });
        }
        match self.server_caps {
            None => return Err(Error::ServerCapabilitiesUnknown),
            Some(s) if !s.contains(ServerCapabilities::ACCEPTS_CONNECTION_SETTINGS_REQUEST) => {
                return Err(Error::ServerLacksCapability {
                    capability: "AcceptsConnectionSettingsRequest",
                });
            }
            Some(_) => {}
        }
        self.csr_out = Some(csr_pem);
        Ok(())
    }

    /// Ends the session: the next message carries `agent_disconnect` (DISC-1, DISC-4), then
    /// come `Action::Disconnect`, `Event::Disconnected` and `Event::Stopped`; nothing after.
    /// When no connection is up, `Action::Disconnect` and `Event::Stopped` come at once.
    pub fn stop(&mut self, now: Instant) {
        let _ = now;
        match self.conn {
            Conn::Stopped => {}
            Conn::Connected | Conn::Closing(_) => {
                self.candidate = None;
                self.candidate_needs_response = false;
                self.conn = Conn::Closing(AfterClose::Stop);
            }
            Conn::Connecting | Conn::Waiting { .. } => {
                self.conn = Conn::Stopped;
                self.actions.push_back(Action::Disconnect);
                self.events.push_back(Event::Stopped);
            }
        }
    }

    // ------------------------------------------------------------------ outputs

    /// The next message to send, if any.
    ///
    /// Over HTTP at most one request is outstanding (HTTP-6): after a message is returned,
    /// `None` until [`handle_message`](Self::handle_message) or
    /// [`handle_transport_error`](Self::handle_transport_error) answered it (or the
    /// [`Settings::reply_timeout`] expired). Every message carries the instance uid, the
    /// capabilities and the next sequence number (GEN-5, CAP-1, SEQ-6). A message over
    /// [`Settings::max_message_size`] is not sent (WSL-6, HSL-7).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<v1::AgentToServer> {
        match self.conn {
            Conn::Closing(ref then) => {
                if self.in_flight.is_some() {
                    return None;
                }
                let then = then.clone();
                let msg = self.emit(now, Kind::Goodbye);
                self.in_flight = None;
                self.actions.push_back(Action::Disconnect);
                self.events.push_back(Event::Disconnected { error: None });
                self.after_close(now, then);
                msg
            }
            Conn::Connected => {
                if self.in_flight.is_some() {
                    return None;
                }
                if let Some(at) = self.http_retry_at {
                    if now < at {
                        return None;
                    }
                    self.http_retry_at = None;
                    self.report_requested = true;
                }
                if let Some(due) = self.heartbeat_deadline() {
                    if now >= due {
                        self.heartbeat_due = true;
                    }
                }
                let kind = if self.needs_report() {
                    Kind::Report
                } else if self.heartbeat_due {
                    Kind::Heartbeat
                } else {
                    return None;
                };
                self.emit(now, kind)
            }
            Conn::Connecting | Conn::Waiting { .. } | Conn::Stopped => None,
        }
    }

    /// The next transport instruction, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next application event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next: the reconnect
    /// time, the HTTP retry or poll time, the reply timeout, or the heartbeat (timed from the
    /// last message sent, HB-6). `None`: nothing timed is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.conn {
            Conn::Waiting { at } => Some(at),
            Conn::Connected => {
                if let Some(sent) = self.in_flight {
                    return self.reply_timeout.map(|t| backoff::deadline(sent, t));
                }
                if let Some(at) = self.http_retry_at {
                    return Some(at);
                }
                self.heartbeat_deadline()
            }
            Conn::Closing(_) => match (self.in_flight, self.reply_timeout) {
                (Some(sent), Some(t)) => Some(backoff::deadline(sent, t)),
                _ => None,
            },
            Conn::Connecting | Conn::Stopped => None,
        }
    }

    // ------------------------------------------------------------------ queries

    /// The current instance uid (changes on a valid `new_instance_uid`, UID-6).
    pub fn instance_uid(&self) -> InstanceUid {
        self.instance_uid
    }

    /// Whether the transport is up.
    pub fn is_connected(&self) -> bool {
        matches!(self.conn, Conn::Connected | Conn::Closing(_))
    }

    /// The server's capabilities, once a reply carrying them has been received.
    pub fn server_capabilities(&self) -> Option<ServerCapabilities> {
        self.server_caps
    }

    /// The connection target in use (or being tried).
    pub fn current_target(&self) -> &ConnectionTarget {
        &self.target
    }

    /// The OpAMP connection settings being tried, with the hash of their offer (OPC-5
    /// steps 3 to 8), until they are accepted or rejected.
    ///
    /// This is what a driver persists on [`Event::OpampSettingsCandidate`] and gives back in
    /// [`Settings::candidate`] after a restart. Check that its target is the event's: if
    /// the candidate already failed by the time the event is read, this is `None` and an
    /// [`Event::OpampSettingsRejected`] follows in the queue.
    pub fn pending_candidate(&self) -> Option<&PendingCandidate> {
        self.candidate.as_ref().map(|c| &c.pending)
    }

    /// The agent capabilities in use (normalized).
    pub fn capabilities(&self) -> AgentCapabilities {
        self.capabilities
    }

    /// The sequence number the next message will carry (SEQ-6; the first message has 0).
    pub fn next_sequence_num(&self) -> u64 {
        self.next_seq
    }

    /// The server's custom capabilities, once received (CUS-1).
    pub fn server_custom_capabilities(&self) -> Option<&[String]> {
        self.server_custom_caps.as_deref()
    }

    /// Whether [`stop`](Self::stop) has completed.
    pub fn is_stopped(&self) -> bool {
        matches!(self.conn, Conn::Stopped)
    }

    // ------------------------------------------------------------------ internals

    fn check_not_stopped(&self) -> Result<(), Error> {
        match self.conn {
            Conn::Stopped | Conn::Closing(AfterClose::Stop) => Err(Error::Stopped),
            _ => Ok(()),
        }
    }

    /// The sub-messages that may be sent now: agent capability present (SEQ-12) and, once
    /// the server's capabilities are known, the server accepts them (CAP-7).
    fn applicable(&self) -> Fields {
        let c = self.capabilities;
        let server_accepts =
            |cap: ServerCapabilities| self.server_caps.is_none_or(|s| s.contains(cap));
        let mut f = Fields::DESCRIPTION | Fields::CUSTOM_CAPABILITIES;
        if c.contains(AgentCapabilities::REPORTS_HEALTH) {
            f |= Fields::HEALTH;
        }
        if c.contains(AgentCapabilities::REPORTS_EFFECTIVE_CONFIG)
            && server_accepts(ServerCapabilities::ACCEPTS_EFFECTIVE_CONFIG)
        {
            f |= Fields::EFFECTIVE_CONFIG;
        }
        if c.contains(AgentCapabilities::REPORTS_REMOTE_CONFIG) {
            f |= Fields::REMOTE_CONFIG_STATUS;
        }
        if c.contains(AgentCapabilities::REPORTS_PACKAGE_STATUSES)
            && server_accepts(ServerCapabilities::ACCEPTS_PACKAGES_STATUS)
        {
            f |= Fields::PACKAGE_STATUSES;
        }
        if c.contains(AgentCapabilities::REPORTS_CONNECTION_SETTINGS_STATUS) {
            f |= Fields::CONNECTION_SETTINGS_STATUS;
        }
        if c.contains(AgentCapabilities::REPORTS_AVAILABLE_COMPONENTS) {
            f |= Fields::AVAILABLE_COMPONENTS;
        }
        f
    }

    fn needs_report(&self) -> bool {
        self.full_state
            || self.report_requested
            || !self
                .dirty
                .intersect(self.applicable())
                .intersect(self.status.present())
                .is_empty()
            || !self.custom_out.is_empty()
            || self.csr_out.is_some()
    }

    /// WS: the heartbeat interval in force, if heartbeats are on (HB-2, HB-3, HB-7).
    /// HTTP: the polling interval (HTTP-4, HTTP-5, HB-5); never off.
    fn heartbeat_interval(&self) -> Option<Duration> {
        let offered = self.target.heartbeat_interval;
        match self.transport {
            Transport::WebSocket => {
                if !self
                    .capabilities
                    .contains(AgentCapabilities::REPORTS_HEARTBEAT)
                {
                    return None;
                }
                offered.or(self.local_heartbeat).filter(|d| !d.is_zero())
            }
            Transport::Http => Some(
                offered
                    .filter(|d| !d.is_zero())
                    .or(Some(self.polling_interval).filter(|d| !d.is_zero()))
                    .unwrap_or(DEFAULT_POLLING_INTERVAL),
            ),
        }
    }

    fn heartbeat_deadline(&self) -> Option<Instant> {
        let interval = self.heartbeat_interval()?;
        let base = self.last_send.or(self.connected_at)?;
        Some(backoff::deadline(base, interval))
    }

    /// Builds, size-checks and records the next message.
    fn emit(&mut self, now: Instant, kind: Kind) -> Option<v1::AgentToServer> {
        if kind != Kind::Heartbeat {
            // Dropped sub-messages ride along with the next real report.
            self.dirty |= self.lost;
            self.lost = Fields::EMPTY;
        }
        let applicable = self.applicable();
        let wanted = if self.full_state {
            Fields::ALL
        } else {
            self.dirty
        };
        let fields = wanted
            .intersect(applicable)
            .intersect(self.status.present());
        let full_components = self.full_components && fields.contains(Fields::AVAILABLE_COMPONENTS);
        let mut msg = self.skeleton(kind == Kind::Goodbye);
        self.status.fill(&mut msg, fields, full_components);
        let custom = self.custom_out.pop_front();
        msg.custom_message = custom.clone();
        let csr = self.csr_out.take();
        if let Some(csr) = &csr {
            msg.connection_settings_request = Some(v1::ConnectionSettingsRequest {
                opamp: Some(v1::OpAmpConnectionSettingsRequest {
                    certificate_request: Some(v1::CertificateRequest { csr: csr.clone() }),
                }),
            });
        }

        // The status state has been consumed either way.
        self.dirty = Fields::EMPTY;
        self.full_state = false;
        self.report_requested = false;
        self.heartbeat_due = false;
        if full_components {
            self.full_components = false;
        }

        let msg = if self.fits(&msg) {
            self.unacked |= fields;
            self.unacked_custom.extend(custom);
            if csr.is_some() {
                self.unacked_csr = csr;
            }
            msg
        } else {
            let size = self.wire_size(&msg);
            self.events.push_back(Event::MessageDiscarded {
                reason: format!(
                    "AgentToServer of {size} bytes exceeds the {}-byte limit (WSL-6, HSL-7)",
                    self.max_message_size
                ),
            });
            self.lost |= fields;
            // The connection still needs its report / heartbeat / goodbye: send the bare
            // message (uid, sequence number, capabilities, flags).
            let bare = self.skeleton(kind == Kind::Goodbye);
            if !self.fits(&bare) {
                return None;
            }
            bare
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.last_send = Some(now);
        if self.transport == Transport::Http {
            self.in_flight = Some(now);
        }
        Some(msg)
    }

    /// uid, sequence number, capabilities and flags: what every message carries.
    fn skeleton(&self, goodbye: bool) -> v1::AgentToServer {
        let mut flags = AgentToServerFlags::empty();
        if self.request_instance_uid {
            flags |= AgentToServerFlags::REQUEST_INSTANCE_UID;
        }
        v1::AgentToServer {
            instance_uid: self.instance_uid.to_vec(),
            sequence_num: self.next_seq,
            capabilities: self.capabilities.bits(),
            flags: flags.bits(),
            agent_disconnect: goodbye.then(v1::AgentDisconnect::default),
            ..Default::default()
        }
    }

    /// Encoded size as the limit counts it: WS header plus data (WSL-1), or the HTTP body
    /// (HSL-1), before compression.
    fn wire_size(&self, msg: &v1::AgentToServer) -> usize {
        let header = match self.transport {
            Transport::WebSocket => 1,
            Transport::Http => 0,
        };
        msg.encoded_len() + header
    }

    fn fits(&self, msg: &v1::AgentToServer) -> bool {
        self.wire_size(msg) <= self.max_message_size
    }

    /// Marks what was sent without a successful reply for sending again (ERR-5).
    fn requeue_unacked(&mut self) {
        self.dirty |= self.unacked;
        self.unacked = Fields::EMPTY;
        for m in self.unacked_custom.drain(..).rev() {
            self.custom_out.push_front(m);
        }
        while self.custom_out.len() > MAX_PENDING_CUSTOM_MESSAGES {
            self.custom_out.pop_back();
        }
        if self.csr_out.is_none() {
            self.csr_out = self.unacked_csr.take();
        }
        self.unacked_csr = None;
    }

    /// Forgets what was sent without a reply: it is not retried (ERR-2, ERR-4, HSL-4).
    fn drop_unacked(&mut self, into_lost: bool) {
        if into_lost {
            self.lost |= self.unacked;
        }
        self.unacked = Fields::EMPTY;
        self.unacked_custom.clear();
        self.unacked_csr = None;
    }

    /// The next backoff wait; throttling raises it to the hint and the floor (THR-3..5).
    fn next_wait(&mut self, error: &TransportError) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = backoff::delay(&self.backoff, self.failures, &mut self.rng);
        match error {
            TransportError::Throttled { retry_after } => wait
                .max(retry_after.unwrap_or(Duration::ZERO))
                .max(self.throttle_floor)
                .min(backoff::MAX_TIMER),
            _ => wait,
        }
    }

    /// Connecting failed (or the link broke and the immediate retry is used up).
    fn schedule_reconnect(&mut self, now: Instant, error: TransportError) {
        if matches!(error, TransportError::Unauthorized) {
            self.events.push_back(Event::AuthenticationFailed);
        }
        let wait = self.next_wait(&error);
        self.connected_at = None;
        self.conn = Conn::Waiting {
            at: backoff::deadline(now, wait),
        };
        self.events.push_back(Event::ConnectFailed {
            error,
            retry_in: wait,
        });
    }

    fn http_request_failed(&mut self, now: Instant, error: TransportError) {
        self.in_flight = None;
        if self.candidate_needs_response {
            self.candidate_needs_response = false;
            self.requeue_unacked();
            self.revert_candidate(error);
            return;
        }
        if matches!(error, TransportError::RequestTooLarge) {
            // HSL-4: never retry that request. Its sub-messages go out again with the next
            // report, so the state is not lost for good.
            self.drop_unacked(true);
            self.events.push_back(Event::MessageDiscarded {
                reason: "the server rejected the request as too large (413, HSL-4)".into(),
            });
            return;
        }
        self.requeue_unacked();
        if matches!(error, TransportError::Unauthorized) {
            self.events.push_back(Event::AuthenticationFailed);
        }
        let wait = self.next_wait(&error);
        self.http_retry_at = Some(backoff::deadline(now, wait));
        self.heartbeat_due = false;
        self.events.push_back(Event::ConnectFailed {
            error,
            retry_in: wait,
        });
    }

    fn ws_connection_lost(&mut self, now: Instant, error: TransportError) {
        if matches!(error, TransportError::RequestTooLarge) {
            self.drop_unacked(true);
            self.events.push_back(Event::MessageDiscarded {
                reason: "the server rejected a message as too large".into(),
            });
        } else {
            self.requeue_unacked();
        }
        self.connected_at = None;
        self.events.push_back(Event::Disconnected {
            error: Some(error.clone()),
        });
        let immediate = !self.immediate_reconnect_used
            && !matches!(
                error,
                TransportError::Throttled { .. } | TransportError::Unauthorized
            );
        if immediate {
            // CONN-4: reconnect at once, once; then back off.
            self.immediate_reconnect_used = true;
            self.conn = Conn::Connecting;
            self.actions.push_back(Action::Connect(self.target.clone()));
        } else {
            self.schedule_reconnect(now, error);
        }
    }

    fn reply_timed_out(&mut self, now: Instant, limit: Duration) {
        // ERR-5: no reply in time. Tell the driver to abandon the request, retry later.
        self.in_flight = None;
        self.requeue_unacked();
        let error = TransportError::Failed {
            reason: format!("no reply within {limit:?} (ERR-5)"),
        };
        if self.candidate_needs_response {
            // Reverting disconnects (HTTP) and connects to the previous target.
            self.candidate_needs_response = false;
            self.revert_candidate(error);
            return;
        }
        self.actions.push_back(Action::Disconnect);
        self.schedule_reconnect(now, error);
    }

    fn handle_server_error(&mut self, now: Instant, err: v1::ServerErrorResponse) {
        let unavailable = err.r#type == v1::ServerErrorResponseType::Unavailable as i32;
        let retry_after = err.retry_after();
        self.events.push_back(Event::ServerError(err));
        if !unavailable {
            // BAD_REQUEST (ERR-2), UNKNOWN (ERR-4) and unknown types: do not retry.
            self.drop_unacked(false);
            return;
        }
        // UNAVAILABLE (THR-1, THR-2): retry what was sent after waiting.
        self.requeue_unacked();
        let error = TransportError::Throttled { retry_after };
        let wait = self.next_wait(&error);
        self.heartbeat_due = false;
        self.events.push_back(Event::ConnectFailed {
            error,
            retry_in: wait,
        });
        match self.transport {
            Transport::WebSocket => {
                // Disconnect (with a goodbye, CONN-5), wait, reconnect, resume.
                self.conn = Conn::Closing(AfterClose::Wait(wait));
            }
            Transport::Http => {
                self.http_retry_at = Some(backoff::deadline(now, wait));
            }
        }
    }

    /// Moves on after the goodbye was sent (or the link broke while closing).
    fn after_close(&mut self, now: Instant, then: AfterClose) {
        self.connected_at = None;
        // Nothing sent on the closed connection will be answered: resend it on the next.
        self.requeue_unacked();
        match then {
            AfterClose::Stop => {
                self.conn = Conn::Stopped;
                self.events.push_back(Event::Stopped);
            }
            AfterClose::Reconnect(target) => {
                self.target = *target;
                self.conn = Conn::Connecting;
                self.actions.push_back(Action::Connect(self.target.clone()));
            }
            AfterClose::Wait(wait) => {
                self.conn = Conn::Waiting {
                    at: backoff::deadline(now, wait),
                };
            }
        }
    }

    fn update_server_capabilities(&mut self, caps: ServerCapabilities) {
        if self.server_caps == Some(caps) {
            return;
        }
        let before = self.applicable();
        self.server_caps = Some(caps);
        // A capability the server just gained: report that sub-message whole.
        self.dirty |= self.applicable().without(before);
        self.events
            .push_back(Event::ServerCapabilitiesChanged(caps));
    }

    fn set_settings_status(
        &mut self,
        hash: &[u8],
        status: v1::ConnectionSettingsStatuses,
        error_message: String,
    ) {
        if !self
            .capabilities
            .contains(AgentCapabilities::REPORTS_CONNECTION_SETTINGS_STATUS)
        {
            return;
        }
        self.set_connection_settings_status(v1::ConnectionSettingsStatus {
            last_connection_settings_hash: hash.to_vec(),
            status: status as i32,
            error_message,
        });
    }

    /// `connection_settings` (OPC-3..17, CAP-15, CSS-1..5).
    fn process_offers(&mut self, offers: v1::ConnectionSettingsOffers) {
        // OPC-12: an offer already processed is skipped.
        if !offers.hash.is_empty() && self.last_offer_hash.as_ref() == Some(&offers.hash) {
            return;
        }
        if !offers.hash.is_empty() {
            self.last_offer_hash = Some(offers.hash.clone());
        }
        let caps = self.capabilities;
        let mut lacking: Vec<&'static str> = Vec::new();
        let mut for_app = v1::ConnectionSettingsOffers {
            hash: offers.hash.clone(),
            ..Default::default()
        };
        let mut app_has_any = false;
        for (offer, slot, cap, name) in [
            (
                offers.own_metrics,
                &mut for_app.own_metrics,
                AgentCapabilities::REPORTS_OWN_METRICS,
                "ReportsOwnMetrics",
            ),
            (
                offers.own_traces,
                &mut for_app.own_traces,
                AgentCapabilities::REPORTS_OWN_TRACES,
                "ReportsOwnTraces",
            ),
            (
                offers.own_logs,
                &mut for_app.own_logs,
                AgentCapabilities::REPORTS_OWN_LOGS,
                "ReportsOwnLogs",
            ),
        ] {
            if let Some(o) = offer {
                if caps.contains(cap) {
                    *slot = Some(o);
                    app_has_any = true;
                } else {
                    lacking.push(name);
                }
            }
        }
        if !offers.other_connections.is_empty() {
            if caps.contains(AgentCapabilities::ACCEPTS_OTHER_CONNECTION_SETTINGS) {
                for_app.other_connections = offers.other_connections;
                app_has_any = true;
            } else {
                lacking.push("AcceptsOtherConnectionSettings");
            }
        }
        if app_has_any {
            self.events
                .push_back(Event::ConnectionSettingsOffer(for_app));
        }
        let mut opamp_handled = false;
        if let Some(op) = offers.opamp {
            if caps.contains(AgentCapabilities::ACCEPTS_OPAMP_CONNECTION_SETTINGS) {
                opamp_handled = true;
                self.offer_opamp(&op, &offers.hash);
            } else {
                lacking.push("AcceptsOpAMPConnectionSettings");
            }
        }
        if !opamp_handled && !app_has_any && !lacking.is_empty() {
            // opamp-go behaviour: report FAILED for an offer we cannot take at all.
            self.set_settings_status(
                &offers.hash,
                v1::ConnectionSettingsStatuses::Failed,
                format!("the agent lacks the capability: {}", lacking.join(", ")),
            );
        }
    }

    /// The OpAMP connection settings offer flow (OPC-5).
    fn offer_opamp(&mut self, op: &v1::OpAmpConnectionSettings, hash: &[u8]) {
        if !op.destination_endpoint.is_empty()
            && !endpoint_fits(&op.destination_endpoint, self.transport)
        {
            self.set_settings_status(
                hash,
                v1::ConnectionSettingsStatuses::Failed,
                format!(
                    "destination_endpoint {:?} is not a {} URL (OPC-2)",
                    op.destination_endpoint
                        .chars()
                        .take(256)
                        .collect::<String>(),
                    match self.transport {
                        Transport::WebSocket => "ws:// or wss://",
                        Transport::Http => "http:// or https://",
                    }
                ),
            );
            return;
        }
        let new = merge_offer(&self.target, op);
        if new == self.target {
            self.set_settings_status(hash, v1::ConnectionSettingsStatuses::Applied, String::new());
            return;
        }
        let same_connection = ConnectionTarget {
            heartbeat_interval: self.target.heartbeat_interval,
            ..new.clone()
        } == self.target;
        if same_connection {
            // Only the heartbeat changed (OPC-17, HB-2): nothing to test, apply in place.
            self.target = new.clone();
            self.events.push_back(Event::OpampSettingsAccepted(new));
            self.set_settings_status(hash, v1::ConnectionSettingsStatuses::Applied, String::new());
            return;
        }
        // OPC-5 steps 3..5: persist as candidate, report APPLYING (CSS-3), say goodbye
        // (OPC-13), disconnect and connect with the new settings (OPC-4).
        self.events
            .push_back(Event::OpampSettingsCandidate(new.clone()));
        self.try_candidate(PendingCandidate::new(new.clone(), hash));
        self.conn = Conn::Closing(AfterClose::Reconnect(Box::new(new)));
    }

    /// OPC-5 step 3 after a restart: a candidate persisted by the previous run is tried by
    /// the first connection (`new` issues `Action::Connect(self.target)` next). From here
    /// on it is the live offer flow: `handle_connected` / the first HTTP response accept
    /// it, a failure before that reverts it.
    fn resume_candidate(&mut self, pending: PendingCandidate) {
        if !pending.offer_hash.is_empty() {
            // OPC-12: this offer has been processed; the same offer again is skipped.
            self.last_offer_hash = Some(pending.offer_hash.clone());
        }
        if !endpoint_fits(&pending.target.endpoint, self.transport) {
            // OPC-2: not a URL of this transport; never connect with it.
            let reason = format!(
                "the stored candidate endpoint {:?} does not fit the transport (OPC-2)",
                pending
                    .target
                    .endpoint
                    .chars()
                    .take(256)
                    .collect::<String>()
            );
            let previous = self.target.clone();
            self.reject_candidate(Candidate { pending, previous }, reason);
            return;
        }
        let target = pending.target.clone();
        self.try_candidate(pending);
        self.target = target;
    }

    /// OPC-5 step 3, CSS-3: `pending` is the candidate now, replacing the current target
    /// once connected with it; until then the status is APPLYING.
    fn try_candidate(&mut self, pending: PendingCandidate) {
        self.set_settings_status(
            &pending.offer_hash,
            v1::ConnectionSettingsStatuses::Applying,
            String::new(),
        );
        self.candidate = Some(Candidate {
            pending,
            previous: self.target.clone(),
        });
    }

    /// OPC-5 step 8, CSS-4: the candidate works.
    fn accept_candidate(&mut self) {
        if let Some(c) = self.candidate.take() {
            let PendingCandidate { target, offer_hash } = c.pending;
            self.events.push_back(Event::OpampSettingsAccepted(target));
            self.set_settings_status(
                &offer_hash,
                v1::ConnectionSettingsStatuses::Applied,
                String::new(),
            );
        }
    }

    /// OPC-5 step 9, CSS-4: `c` failed: say so, report FAILED and go back to the previous
    /// target (the caller connects).
    fn reject_candidate(&mut self, c: Candidate, reason: String) {
        let PendingCandidate { target, offer_hash } = c.pending;
        self.events.push_back(Event::OpampSettingsRejected {
            target,
            reason: reason.clone(),
        });
        self.set_settings_status(&offer_hash, v1::ConnectionSettingsStatuses::Failed, reason);
        self.target = c.previous;
    }

    /// OPC-5 step 9, CSS-4: the candidate failed; go back to the previous settings.
    fn revert_candidate(&mut self, error: TransportError) {
        let Some(c) = self.candidate.take() else {
            return;
        };
        self.reject_candidate(c, error.to_string());
        self.connected_at = None;
        if self.transport == Transport::Http {
            self.actions.push_back(Action::Disconnect);
        }
        self.conn = Conn::Connecting;
        self.actions.push_back(Action::Connect(self.target.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_forces_reports_status_and_drops_undefined_bits_cap_2_cap_3() {
        let c = normalize(AgentCapabilities::from_wire(0x1_0000 | 0x2));
        assert_eq!(c.bits(), 0x3);
        assert!(c.is_valid_to_send());
    }

    #[test]
    fn endpoint_family_must_match_transport_opc_2() {
        assert!(endpoint_fits("wss://x:4320/v1/opamp", Transport::WebSocket));
        assert!(endpoint_fits("WS://x", Transport::WebSocket));
        assert!(!endpoint_fits("https://x", Transport::WebSocket));
        assert!(endpoint_fits("https://x", Transport::Http));
        assert!(!endpoint_fits("http://", Transport::Http));
        assert!(!endpoint_fits("ftp://x", Transport::Http));
    }

    #[test]
    fn merge_rules_opc_8_opc_10_opc_17() {
        let cert = v1::TlsCertificate {
            cert: b"c".to_vec(),
            ..Default::default()
        };
        let current = ConnectionTarget {
            endpoint: "wss://a".into(),
            headers: vec![("k".into(), "v".into())],
            tls: Some(v1::TlsConnectionSettings::default()),
            certificate: Some(cert.clone()),
            heartbeat_interval: None,
        };
        // OPC-17: heartbeat only.
        let t = merge_offer(
            &current,
            &v1::OpAmpConnectionSettings {
                heartbeat_interval_seconds: 5,
                ..Default::default()
            },
        );
        assert_eq!(t.endpoint, "wss://a");
        assert_eq!(t.certificate, Some(cert.clone()));
        assert_eq!(t.heartbeat_interval, Some(Duration::from_secs(5)));
        // Full offer without certificate: no client certificate (OPC-8); tls kept (OPC-10).
        let t = merge_offer(
            &current,
            &v1::OpAmpConnectionSettings {
                destination_endpoint: "wss://b".into(),
                ..Default::default()
            },
        );
        assert_eq!(t.certificate, None);
        assert!(t.tls.is_some());
        assert_eq!(t.headers, current.headers);
        assert_eq!(t.heartbeat_interval, Some(Duration::ZERO));
        // CSR reply: a bare certificate keeps the heartbeat.
        let t = merge_offer(
            &current,
            &v1::OpAmpConnectionSettings {
                certificate: Some(v1::TlsCertificate::default()),
                ..Default::default()
            },
        );
        assert_eq!(t.heartbeat_interval, None);
        assert_eq!(t.endpoint, "wss://a");
    }
}
