//! The sans-IO server session: every protocol rule the server applies, with no sockets, no
//! tasks and no clock.
//!
//! [`ServerSession`] holds the state of every agent the server talks to and of every
//! WebSocket connection they use. The async driver (or any other driver, or a test) feeds
//! it what happened and sends what it returns:
//!
//! ```text
//!   AgentToServer ──► receive(now, via, msg) ──► Received::Accepted(Inbound)
//!                                   │                     │  (application builds its reply)
//!                                   │                     ▼
//!                                   │          reply(now, &inbound, app_reply) ──► Reply (send it)
//!                                   └─► Received::Rejected(error reply)      ──► send it
//!   application push ──► push(now, uid, msg) ──► PushOutcome (send now / pending / nothing)
//!   connection closed ──► close_connection(now, conn)
//!   timer ──► poll_timeout() / handle_timeout(now)
//!   then drain poll_event() for AgentDisconnected events
//! ```
//!
//! Time only comes in as `now: Instant` arguments and fresh instance uids come from a
//! generator given to [`ServerSession::new`], so every rule is tested in memory
//! (`session::tests`).
//!
//! # Rules applied to every outgoing message
//!
//! - `instance_uid` echoes the uid of the AgentToServer being answered, also when the
//!   reply assigns a new uid (MSG-5); a push carries the target agent's uid.
//! - An error reply carries only `instance_uid` and `error_response` (MSG-7); a first reply
//!   that is an error carries no capabilities (requirements §4 item 2).
//! - The first non-error message on each WebSocket connection, and every non-error plain
//!   HTTP reply, carries the server capabilities, with `AcceptsStatus` always set and no
//!   undefined bit (CAP-8, CAP-9). Repeating them over HTTP costs 2 bytes and matches what
//!   HTTP peers expect (each poll stands alone; the Node client re-reads them).
//! - Offers the agent cannot take are removed: `remote_config` without
//!   `AcceptsRemoteConfig` (RCFG-1, CAP-12), `packages_available` without
//!   `AcceptsPackages` (CAP-14, PKG-1), each connection-settings part without its bit
//!   (CAP-15, OTH-1), `command` without `AcceptsRestartCommand` (CAP-16, CMD-1), a custom
//!   message for a capability the agent has not declared (CUS-3).
//! - A message with `command` carries only `command`, `instance_uid` and `capabilities`
//!   (CMD-2, MSG-8); the rest follows in a second message (WebSocket) or on the next poll
//!   (HTTP).
//! - Remote config: the config the application offers is remembered per agent (shared
//!   between agents with the same hash), `config_hash` is filled in with SHA-256 of the
//!   config map when empty (RCFG-2), resent whenever the agent reports a different
//!   `last_remote_config_hash` (RCFG-4) and not resent when it reports the same (RCFG-5).
//! - `ReportFullState` is set when the agent is unknown or there is a sequence gap **and**
//!   the message leaves out a sub-message the agent's capabilities say it reports
//!   (SEQ-11, SEQ-13). Sequence numbers may start at 0 or 1, repeat, go backwards or
//!   continue across reconnects: never an error. The message right after a request is
//!   taken as the answer, so the server never asks twice in a row (no loop).
//!
//! # Policies
//!
//! - **Invalid uid** (missing, or not 16 bytes, e.g. a legacy 26-byte ULID): the reply is
//!   `BAD_REQUEST` echoing the bytes received, and nothing is registered (UID-10).
//! - **RequestInstanceUid**: a fresh uid from the generator (UUIDv7 in the driver) is sent
//!   in `agent_identification.new_instance_uid`, 16 bytes (UID-5, UID-7). The agent's state
//!   lives under the new uid from then on; messages still carrying the old uid on the same
//!   connection get the same new uid again.
//! - **Duplicate uid** (UID-8, UID-9, requirements §4 item 12): see [`DuplicatePolicy`].
//! - **Disconnect** (DISC-6): `agent_disconnect` detaches the agent from its connection
//!   after the reply; a closed connection detaches every agent on it (several per
//!   connection are allowed, MSG-6).
//! - **HTTP liveness** (DISC-5): an HTTP agent not heard from within
//!   `missed_polls × poll interval` (default 3 × 30 s; the poll interval is the one offered
//!   in `heartbeat_interval_seconds`, if any) is reported disconnected.
//! - Detached agents are forgotten after `detached_retention`.

mod agent;
mod outgoing;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opamp_proto::prost::Message;
use opamp_proto::v1::{
    AgentIdentification, AgentRemoteConfig, AgentToServer, ServerErrorResponseType, ServerToAgent,
};
use opamp_proto::{AgentCapabilities, AgentToServerFlags, InstanceUid, ServerCapabilities};

use agent::AgentState;
pub use agent::Attachment;

use crate::Error;

/// Identifies one transport connection (a WebSocket). Allocated by the driver; unique for
/// the lifetime of a [`ServerSession`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// How a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// On this WebSocket connection.
    Ws(ConnectionId),
    /// As a plain-HTTP request (each request may use another TCP connection).
    Http,
}

impl Via {
    fn attachment(self) -> Attachment {
        match self {
            Via::Ws(c) => Attachment::Ws(c),
            Via::Http => Attachment::Http,
        }
    }
}

/// What to do when an instance uid that is live on one connection shows up on another
/// (UID-8, UID-9).
///
/// "Live on another connection" means: attached to a different open WebSocket connection,
/// or attached to WebSocket while the message comes over HTTP, or polling over HTTP (and
/// not yet past its liveness deadline) while the message comes over WebSocket. Two HTTP
/// requests cannot be told apart, so HTTP-to-HTTP duplicates are never detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DuplicatePolicy {
    /// The default. When the newcomer's `agent_description` is present and differs from
    /// the one the live holder reported, the newcomer is another agent with a colliding
    /// uid (a cloned VM, a bad generator): it gets a fresh uid in `new_instance_uid`, and
    /// the holder keeps its uid. Otherwise (same description, or none sent) it is the same
    /// agent reconnecting while its old connection is not yet known to be dead: the uid
    /// moves to the new connection.
    #[default]
    ReassignOnDifferentDescription,
    /// Any second live connection gets a fresh uid for its agent.
    ReassignAlways,
    /// Never reassign: the uid simply moves to the newest connection.
    Ignore,
}

/// Configuration of a [`ServerSession`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The server capabilities sent in the first reply (CAP-8). `AcceptsStatus` is always
    /// added and undefined bits are removed (CAP-9).
    pub capabilities: ServerCapabilities,
    /// Duplicate instance uid handling (UID-8, UID-9).
    pub duplicate_policy: DuplicatePolicy,
    /// The polling interval assumed for HTTP agents that were not offered one (HTTP-4).
    pub http_poll_interval: Duration,
    /// How many poll intervals an HTTP agent may miss before it is reported disconnected
    /// (DISC-5).
    pub missed_polls: u32,
    /// How long the state of a detached agent (sequence number, capabilities, remote config
    /// hashes) is kept, so a reconnect continues where it left off.
    pub detached_retention: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            capabilities: ServerCapabilities::ACCEPTS_STATUS
                | ServerCapabilities::OFFERS_REMOTE_CONFIG
                | ServerCapabilities::ACCEPTS_EFFECTIVE_CONFIG,
            duplicate_policy: DuplicatePolicy::default(),
            http_poll_interval: Duration::from_secs(30),
            missed_polls: 3,
            detached_retention: Duration::from_secs(300),
        }
    }
}

impl SessionConfig {
    /// The capabilities as they go on the wire: `AcceptsStatus` set, no undefined bit
    /// (CAP-9, CAP-10).
    pub fn wire_capabilities(&self) -> ServerCapabilities {
        (self.capabilities | ServerCapabilities::ACCEPTS_STATUS) & ServerCapabilities::all()
    }
}

/// Why the server assigned a new instance uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UidAssignment {
    /// The agent set `RequestInstanceUid` (UID-4, UID-5).
    Requested,
    /// The uid is live on another connection (UID-8); see [`DuplicatePolicy`].
    Duplicate,
}

/// An accepted AgentToServer, as the session understood it. Pass it back to
/// [`ServerSession::reply`] with the application's reply.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Inbound {
    /// How the message arrived.
    pub via: Via,
    /// The uid in the message, echoed in the reply (MSG-5).
    pub received_uid: InstanceUid,
    /// The uid the server tracks this agent under from now on: the received one, or the
    /// newly assigned one.
    pub instance_uid: InstanceUid,
    /// Set when the reply assigns a new uid (`new_instance_uid`), and why.
    pub assignment: Option<UidAssignment>,
    /// The agent was unknown to this session before this message.
    pub first_contact: bool,
    /// The agent was not attached to this connection (or to HTTP) before this message:
    /// a connect or reconnect.
    pub attached: bool,
    /// The reply will ask for the full state (SEQ-11).
    pub report_full_state: bool,
    /// The message carries `agent_disconnect` (DISC-1); the agent is detached after the
    /// reply (DISC-6).
    pub disconnect: bool,
    /// The agent's capabilities as sent in this message.
    pub capabilities: AgentCapabilities,
    reported_config_now: bool,
}

/// The result of [`ServerSession::receive`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Received {
    /// A valid message; build the reply and call [`ServerSession::reply`].
    Accepted(Inbound),
    /// The message is invalid (UID-10); send this `BAD_REQUEST` reply as is. Nothing was
    /// registered.
    Rejected(Box<ServerToAgent>),
}

/// Messages to send, in order. `message` is the reply (or the push); `follow_up` is the
/// rest of a message that had to be split because it carried a command (CMD-2). Over HTTP
/// the follow-up is never returned: it waits for the next poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The message to send first.
    pub message: ServerToAgent,
    /// A second message to send right after, if any.
    pub follow_up: Option<ServerToAgent>,
}

impl Reply {
    /// The messages in sending order.
    pub fn into_messages(self) -> impl Iterator<Item = ServerToAgent> {
        std::iter::once(self.message).chain(self.follow_up)
    }
}

/// The result of [`ServerSession::push`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// Send these now on the agent's WebSocket connection.
    Send {
        /// The connection the agent is attached to.
        connection: ConnectionId,
        /// The messages, already post-processed.
        reply: Box<Reply>,
    },
    /// The agent polls over HTTP: the data is merged into its one pending message and
    /// delivered on the next poll (HTTP-13, ERR-7).
    Pending,
    /// After capability gating and the remote-config rules nothing was left to send.
    Nothing,
}

/// Why an agent is no longer attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The agent sent `agent_disconnect` (DISC-1, DISC-6).
    AgentDisconnect,
    /// Its WebSocket connection closed (DISC-6).
    ConnectionClosed,
    /// An HTTP agent missed its polls (DISC-5).
    MissedPolls,
    /// The same uid was taken over by another connection (see [`DuplicatePolicy::Ignore`]
    /// and the "same agent reconnecting" case).
    Replaced,
}

/// Something the driver should tell the application about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// An agent is no longer reachable.
    AgentDisconnected {
        /// The agent.
        instance_uid: InstanceUid,
        /// The WebSocket connection it was attached to, if any.
        connection: Option<ConnectionId>,
        /// Why.
        reason: DisconnectReason,
    },
}

/// A read-only view of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentInfo {
    /// Where the agent is reachable.
    pub attachment: Attachment,
    /// Its latest capabilities.
    pub capabilities: AgentCapabilities,
    /// The last sequence number received.
    pub last_sequence_num: Option<u64>,
    /// When the last message arrived.
    pub last_seen: Instant,
    /// The `last_remote_config_hash` it last reported.
    pub reported_config_hash: Option<Vec<u8>>,
    /// The hash of the remote config the server wants it to run.
    pub desired_config_hash: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct ConnState {
    uids: Vec<InstanceUid>,
    /// Uids assigned on this connection that the agent may still be using the old uid
    /// for: (old, new).
    renames: Vec<(InstanceUid, InstanceUid)>,
}

/// The generator of fresh instance uids (UUIDv7 in the driver, a counter in tests).
pub type UidGenerator = Box<dyn FnMut() -> InstanceUid + Send>;

/// The sans-IO server session. See the [module documentation](self).
pub struct ServerSession {
    config: SessionConfig,
    agents: HashMap<InstanceUid, AgentState>,
    connections: HashMap<ConnectionId, ConnState>,
    timers: BTreeSet<(Instant, InstanceUid)>,
    configs: HashMap<Vec<u8>, Arc<AgentRemoteConfig>>,
    events: VecDeque<SessionEvent>,
    uid_generator: UidGenerator,
}

impl fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession")
            .field("config", &self.config)
            .field("agents", &self.agents.len())
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// A session with no agents. `uid_generator` supplies the uids assigned with
    /// `new_instance_uid`; it must return 16-byte uids that do not collide (UUIDv7,
    /// UID-7).
    pub fn new(config: SessionConfig, uid_generator: UidGenerator) -> Self {
        Self {
            config,
            agents: HashMap::new(),
            connections: HashMap::new(),
            timers: BTreeSet::new(),
            configs: HashMap::new(),
            events: VecDeque::new(),
            uid_generator,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Registers a new WebSocket connection. Optional: [`ServerSession::receive`] registers
    /// unknown connections itself.
    pub fn open_connection(&mut self, connection: ConnectionId) {
        self.connections.entry(connection).or_default();
    }

    /// Handles one AgentToServer. Every call must be answered with exactly one reply
    /// (SEQ-4, ERR-6): [`Received::Rejected`] carries it, otherwise call
    /// [`ServerSession::reply`].
    pub fn receive(&mut self, now: Instant, via: Via, msg: &AgentToServer) -> Received {
        let received_uid = match msg.instance_uid() {
            Ok(uid) => uid,
            Err(e) => {
                return Received::Rejected(Box::new(ServerToAgent::error(
                    msg.instance_uid.clone(),
                    ServerErrorResponseType::BadRequest,
                    format!("invalid instance_uid: {e}"),
                )));
            }
        };
        if let Via::Ws(conn) = via {
            self.connections.entry(conn).or_default();
        }

        let (key, assignment) = self.resolve_uid(now, via, received_uid, msg);
        let (first_contact, attached) = match assignment {
            Some(_) if key != received_uid && !self.agents.contains_key(&key) => {
                let mut st = AgentState::new(now, via.attachment());
                st.assigned_by_server = true;
                self.agents.insert(key, st);
                if let Via::Ws(conn) = via
                    && let Some(cs) = self.connections.get_mut(&conn)
                {
                    cs.uids.push(key);
                    cs.renames.push((received_uid, key));
                }
                (true, true)
            }
            _ => self.attach(now, via, key),
        };

        let deadline = match via {
            Via::Http => Some(now + self.liveness_window(key)),
            Via::Ws(_) => None,
        };
        let Some(st) = self.agents.get_mut(&key) else {
            // attach() always inserts; keep the reply path total anyway.
            return Received::Rejected(Box::new(ServerToAgent::error(
                msg.instance_uid.clone(),
                ServerErrorResponseType::Unknown,
                "internal error: agent state missing",
            )));
        };
        set_deadline(&mut self.timers, key, st, deadline);
        let report_full_state = st.absorb(now, msg);
        Received::Accepted(Inbound {
            via,
            received_uid,
            instance_uid: key,
            assignment,
            first_contact,
            attached,
            report_full_state,
            disconnect: msg.is_disconnect(),
            capabilities: msg.agent_capabilities(),
            reported_config_now: msg.remote_config_status.is_some(),
        })
    }

    /// Post-processes the application's reply to `inbound` (see the module docs) and
    /// returns what to send. Over HTTP, pending pushes are merged in first (HTTP-13). After
    /// an `agent_disconnect`, the agent is detached (DISC-6).
    pub fn reply(&mut self, now: Instant, inbound: &Inbound, app_reply: ServerToAgent) -> Reply {
        let key = inbound.instance_uid;
        let ctx = Finish {
            wire_uid: inbound.received_uid,
            full_state: inbound.report_full_state,
            reported_config_now: inbound.reported_config_now,
            assigned: inbound.assignment.map(|_| key),
            via: Some(inbound.via),
        };
        let mut scratch;
        let st = match self.agents.get_mut(&key) {
            Some(st) => st,
            None => {
                scratch = AgentState::new(now, Attachment::Detached);
                scratch.capabilities = inbound.capabilities;
                &mut scratch
            }
        };
        let reply =
            finish(st, &mut self.configs, &self.config, app_reply, &ctx).unwrap_or_else(|| Reply {
                message: ServerToAgent {
                    instance_uid: inbound.received_uid.to_vec(),
                    ..Default::default()
                },
                follow_up: None,
            });
        if inbound.disconnect {
            self.detach(now, key, DisconnectReason::AgentDisconnect);
        }
        reply
    }

    /// Sends `msg` to one agent outside of a reply: the same post-processing as replies
    /// applies (MSG-5, gating, remote-config rules, CMD-2). A `remote_config` in `msg`
    /// also becomes the agent's desired config.
    pub fn push(
        &mut self,
        _now: Instant,
        uid: InstanceUid,
        msg: ServerToAgent,
    ) -> Result<PushOutcome, Error> {
        let st = self.agents.get_mut(&uid).ok_or(Error::UnknownAgent(uid))?;
        match st.attachment {
            Attachment::Detached => Err(Error::AgentNotConnected(uid)),
            Attachment::Http => {
                let mut msg = msg;
                if let Some(rc) = msg.remote_config.take() {
                    st.desired_config = Some(intern(&mut self.configs, rc));
                }
                if outgoing::has_content(&msg) {
                    match st.pending.as_mut() {
                        Some(p) => outgoing::merge(p, msg),
                        None => {
                            let mut base = ServerToAgent::default();
                            outgoing::merge(&mut base, msg);
                            st.pending = Some(Box::new(base));
                        }
                    }
                }
                Ok(PushOutcome::Pending)
            }
            Attachment::Ws(connection) => {
                let ctx = Finish {
                    wire_uid: uid,
                    full_state: false,
                    reported_config_now: false,
                    assigned: None,
                    via: None,
                };
                Ok(
                    match finish(st, &mut self.configs, &self.config, msg, &ctx) {
                        Some(reply) => PushOutcome::Send {
                            connection,
                            reply: Box::new(reply),
                        },
                        None => PushOutcome::Nothing,
                    },
                )
            }
        }
    }

    /// Pushes `msg` to every attached agent for which `filter` returns true. Returns the
    /// outcome per agent; detached agents are skipped.
    pub fn broadcast(
        &mut self,
        now: Instant,
        msg: &ServerToAgent,
        mut filter: impl FnMut(&InstanceUid, &AgentInfo) -> bool,
    ) -> Vec<(InstanceUid, PushOutcome)> {
        let targets: Vec<InstanceUid> = self
            .agents
            .iter()
            .filter(|(_, st)| st.attachment != Attachment::Detached)
            .filter(|(uid, st)| filter(uid, &info(st)))
            .map(|(uid, _)| *uid)
            .collect();
        targets
            .into_iter()
            .filter_map(|uid| {
                self.push(now, uid, msg.clone())
                    .ok()
                    .map(|outcome| (uid, outcome))
            })
            .collect()
    }

    /// Sets (or clears) the remote config the application wants `uid` to run, without
    /// sending anything now: it goes out with the next reply if the agent does not run it
    /// yet (RCFG-4, RCFG-5).
    pub fn set_desired_config(
        &mut self,
        uid: InstanceUid,
        config: Option<AgentRemoteConfig>,
    ) -> Result<(), Error> {
        let st = self.agents.get_mut(&uid).ok_or(Error::UnknownAgent(uid))?;
        st.desired_config = config.map(|c| intern(&mut self.configs, c));
        Ok(())
    }

    /// The WebSocket connection closed: every agent on it is detached (DISC-6).
    pub fn close_connection(&mut self, now: Instant, connection: ConnectionId) {
        let Some(cs) = self.connections.remove(&connection) else {
            return;
        };
        for uid in cs.uids {
            if self
                .agents
                .get(&uid)
                .is_some_and(|st| st.attachment == Attachment::Ws(connection))
            {
                self.detach(now, uid, DisconnectReason::ConnectionClosed);
            }
        }
    }

    /// The agents attached to a WebSocket connection (MSG-6: there may be several).
    pub fn connection_agents(&self, connection: ConnectionId) -> &[InstanceUid] {
        self.connections
            .get(&connection)
            .map_or(&[], |cs| cs.uids.as_slice())
    }

    /// A view of one agent.
    pub fn agent(&self, uid: &InstanceUid) -> Option<AgentInfo> {
        self.agents.get(uid).map(info)
    }

    /// Every agent the session knows (attached or retained).
    pub fn agents(&self) -> impl Iterator<Item = (InstanceUid, AgentInfo)> + '_ {
        self.agents.iter().map(|(uid, st)| (*uid, info(st)))
    }

    /// The number of agents known (attached or retained).
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// The number of WebSocket connections known.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The next instant at which [`ServerSession::handle_timeout`] has work to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Expires HTTP agents that missed their polls (DISC-5) and forgets detached agents
    /// past their retention.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, uid)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(st) = self.agents.get_mut(&uid) else {
                continue;
            };
            if st.deadline != Some(t) {
                continue;
            }
            st.deadline = None;
            match st.attachment {
                Attachment::Http => self.detach(now, uid, DisconnectReason::MissedPolls),
                Attachment::Detached => {
                    self.agents.remove(&uid);
                }
                Attachment::Ws(_) => {}
            }
        }
        self.configs.retain(|_, c| Arc::strong_count(c) > 1);
    }

    /// The next event for the application, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Decides which uid the message is handled under.
    fn resolve_uid(
        &mut self,
        now: Instant,
        via: Via,
        uid: InstanceUid,
        msg: &AgentToServer,
    ) -> (InstanceUid, Option<UidAssignment>) {
        if let Via::Ws(conn) = via
            && let Some(cs) = self.connections.get_mut(&conn)
        {
            // The agent switched to the uid assigned earlier: forget the rename.
            cs.renames.retain(|(_, new)| *new != uid);
            if let Some((_, new)) = cs.renames.iter().find(|(old, _)| *old == uid) {
                let new = *new;
                let reason = if msg
                    .agent_flags()
                    .contains(AgentToServerFlags::REQUEST_INSTANCE_UID)
                {
                    UidAssignment::Requested
                } else {
                    UidAssignment::Duplicate
                };
                return (new, Some(reason));
            }
        }
        let existing = self.agents.get(&uid);
        let requested = msg
            .agent_flags()
            .contains(AgentToServerFlags::REQUEST_INSTANCE_UID)
            && !existing.is_some_and(|st| st.assigned_by_server);
        if requested {
            return (self.fresh_uid(), Some(UidAssignment::Requested));
        }
        if let Some(st) = existing
            && self.is_duplicate(now, st, via, msg)
        {
            return (self.fresh_uid(), Some(UidAssignment::Duplicate));
        }
        (uid, None)
    }

    fn is_duplicate(&self, now: Instant, st: &AgentState, via: Via, msg: &AgentToServer) -> bool {
        let live_elsewhere = match (st.attachment, via) {
            (Attachment::Ws(held), Via::Ws(conn)) => held != conn,
            (Attachment::Ws(_), Via::Http) => true,
            (Attachment::Http, Via::Ws(_)) => st.deadline.is_some_and(|d| d > now),
            (Attachment::Http, Via::Http) | (Attachment::Detached, _) => false,
        };
        if !live_elsewhere {
            return false;
        }
        match self.config.duplicate_policy {
            DuplicatePolicy::Ignore => false,
            DuplicatePolicy::ReassignAlways => true,
            DuplicatePolicy::ReassignOnDifferentDescription => {
                match (msg.agent_description.as_ref(), st.description_hash) {
                    (Some(desc), Some(held)) => hash_message(desc) != held,
                    _ => false,
                }
            }
        }
    }

    fn fresh_uid(&mut self) -> InstanceUid {
        let mut uid = (self.uid_generator)();
        for _ in 0..8 {
            if !self.agents.contains_key(&uid) {
                break;
            }
            uid = (self.uid_generator)();
        }
        uid
    }

    /// Attaches `uid` to `via`, creating its state if unknown. Returns (first contact,
    /// newly attached).
    fn attach(&mut self, now: Instant, via: Via, uid: InstanceUid) -> (bool, bool) {
        let target = via.attachment();
        let (first_contact, previous) = match self.agents.get_mut(&uid) {
            None => {
                self.agents.insert(uid, AgentState::new(now, target));
                (true, None)
            }
            Some(st) if st.attachment == target => return (false, false),
            Some(st) => {
                let previous = st.attachment;
                st.reattach(target);
                (false, Some(previous))
            }
        };
        if let Some(Attachment::Ws(old)) = previous {
            if let Some(cs) = self.connections.get_mut(&old) {
                cs.uids.retain(|u| *u != uid);
            }
            self.events.push_back(SessionEvent::AgentDisconnected {
                instance_uid: uid,
                connection: Some(old),
                reason: DisconnectReason::Replaced,
            });
        }
        if let Via::Ws(conn) = via
            && let Some(cs) = self.connections.get_mut(&conn)
            && !cs.uids.contains(&uid)
        {
            cs.uids.push(uid);
        }
        (first_contact, true)
    }

    fn detach(&mut self, now: Instant, uid: InstanceUid, reason: DisconnectReason) {
        let retention = self.config.detached_retention;
        let Some(st) = self.agents.get_mut(&uid) else {
            return;
        };
        let connection = match st.attachment {
            Attachment::Ws(conn) => Some(conn),
            Attachment::Http => None,
            Attachment::Detached => return,
        };
        if let Some(conn) = connection
            && let Some(cs) = self.connections.get_mut(&conn)
        {
            cs.uids.retain(|u| *u != uid);
            cs.renames.retain(|(_, new)| *new != uid);
        }
        st.attachment = Attachment::Detached;
        st.pending = None;
        set_deadline(&mut self.timers, uid, st, Some(now + retention));
        self.events.push_back(SessionEvent::AgentDisconnected {
            instance_uid: uid,
            connection,
            reason,
        });
    }

    fn liveness_window(&self, uid: InstanceUid) -> Duration {
        let interval = self
            .agents
            .get(&uid)
            .and_then(|st| st.poll_interval)
            .unwrap_or(self.config.http_poll_interval);
        interval.saturating_mul(self.config.missed_polls.max(1))
    }
}

/// What [`finish`] needs to know about the message it shapes.
struct Finish {
    /// The uid to put in `instance_uid` (MSG-5).
    wire_uid: InstanceUid,
    full_state: bool,
    reported_config_now: bool,
    assigned: Option<InstanceUid>,
    /// `Some` for a reply (and how the request came), `None` for a push.
    via: Option<Via>,
}

/// Applies every outgoing rule to `msg` for the agent `st`. `None` means a push with
/// nothing left to send.
fn finish(
    st: &mut AgentState,
    configs: &mut HashMap<Vec<u8>, Arc<AgentRemoteConfig>>,
    config: &SessionConfig,
    mut msg: ServerToAgent,
    ctx: &Finish,
) -> Option<Reply> {
    let is_reply = ctx.via.is_some();
    if msg.error_response.is_some() {
        msg.instance_uid = ctx.wire_uid.to_vec();
        return Some(Reply {
            message: outgoing::error_only(msg),
            follow_up: None,
        });
    }
    if ctx.via == Some(Via::Http)
        && let Some(pending) = st.pending.take()
    {
        let mut base = *pending;
        outgoing::merge(&mut base, msg);
        msg = base;
        if msg.error_response.is_some() {
            // A pushed error (e.g. UNAVAILABLE, THR-1) answers this poll.
            msg.instance_uid = ctx.wire_uid.to_vec();
            return Some(Reply {
                message: outgoing::error_only(msg),
                follow_up: None,
            });
        }
    }
    msg.instance_uid = ctx.wire_uid.to_vec();

    if let Some(rc) = msg.remote_config.take() {
        st.desired_config = Some(intern(configs, rc));
    }
    if let Some(desired) = st.desired_config.as_ref()
        && st.should_send_config(&desired.config_hash, ctx.reported_config_now)
    {
        st.sent_config_hash = Some(desired.config_hash.clone());
        msg.remote_config = Some(AgentRemoteConfig::clone(desired));
    }
    if let Some(new_uid) = ctx.assigned {
        msg.agent_identification = Some(AgentIdentification {
            new_instance_uid: new_uid.to_vec(),
        });
    }
    if ctx.full_state {
        msg.flags |= opamp_proto::ServerToAgentFlags::REPORT_FULL_STATE.bits();
    }
    outgoing::gate(&mut msg, st.capabilities, st.custom_capabilities.as_deref());
    // CAP-8 requires capabilities in the first reply and allows 0 later. Over plain HTTP we
    // send them in every reply (2 bytes), as opamp-go does: each poll stands alone (it may even
    // reach another replica), and the Node client re-reads them from every HTTP reply. Over a
    // WebSocket only the first reply on the connection carries them, unless the application
    // set them.
    let http_reply = matches!(ctx.via, Some(Via::Http));
    msg.capabilities = if http_reply || !st.first_reply_sent || msg.capabilities != 0 {
        config.wire_capabilities().bits()
    } else {
        0
    };
    let mut follow_up = outgoing::isolate_command(&mut msg);
    if !is_reply && !outgoing::has_content(&msg) && follow_up.is_none() {
        return None;
    }
    st.first_reply_sent = true;
    for m in std::iter::once(&msg).chain(follow_up.as_ref()) {
        if opamp_proto::ServerToAgentFlags::from_wire(m.flags)
            .contains(opamp_proto::ServerToAgentFlags::REPORT_FULL_STATE)
        {
            st.full_state_requested = true;
        }
        if let Some(secs) = m
            .connection_settings
            .as_ref()
            .and_then(|cs| cs.opamp.as_ref())
            .map(|o| o.heartbeat_interval_seconds)
            .filter(|s| *s > 0)
        {
            st.poll_interval = Some(Duration::from_secs(secs));
        }
    }
    if ctx.via == Some(Via::Http)
        && let Some(rest) = follow_up.take()
    {
        // HTTP answers each request with exactly one message: the rest waits for the next
        // poll (HTTP-13, ERR-7).
        let mut rest = rest;
        rest.instance_uid.clear();
        st.pending = Some(Box::new(rest));
    }
    Some(Reply {
        message: msg,
        follow_up,
    })
}

fn set_deadline(
    timers: &mut BTreeSet<(Instant, InstanceUid)>,
    uid: InstanceUid,
    st: &mut AgentState,
    deadline: Option<Instant>,
) {
    if st.deadline == deadline {
        return;
    }
    if let Some(old) = st.deadline.take() {
        timers.remove(&(old, uid));
    }
    if let Some(new) = deadline {
        timers.insert((new, uid));
    }
    st.deadline = deadline;
}

/// Shares one copy of each remote config between all agents offered it, keyed by hash,
/// and fills in `config_hash` with SHA-256 of the encoded config map when it is empty
/// (RCFG-2). Two configs with the same hash are the same config: the hash is the
/// identity the protocol uses.
fn intern(
    configs: &mut HashMap<Vec<u8>, Arc<AgentRemoteConfig>>,
    mut rc: AgentRemoteConfig,
) -> Arc<AgentRemoteConfig> {
    if rc.config_hash.is_empty() {
        rc.config_hash = config_hash(&rc);
    }
    configs
        .entry(rc.config_hash.clone())
        .or_insert_with(|| Arc::new(rc))
        .clone()
}

/// SHA-256 over the protobuf encoding of the config map (deterministic: maps are
/// `BTreeMap`s). Used when the application leaves `config_hash` empty (RCFG-2).
pub fn config_hash(rc: &AgentRemoteConfig) -> Vec<u8> {
    let encoded = rc
        .config
        .as_ref()
        .map(Message::encode_to_vec)
        .unwrap_or_default();
    ring::digest::digest(&ring::digest::SHA256, &encoded)
        .as_ref()
        .to_vec()
}

pub(crate) fn hash_message<M: Message>(msg: &M) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    msg.encode_to_vec().hash(&mut hasher);
    hasher.finish()
}

fn info(st: &AgentState) -> AgentInfo {
    AgentInfo {
        attachment: st.attachment,
        capabilities: st.capabilities,
        last_sequence_num: st.last_seq,
        last_seen: st.last_seen,
        reported_config_hash: st.reported_config_hash.clone(),
        desired_config_hash: st.desired_config.as_ref().map(|c| c.config_hash.clone()),
    }
}
