//! In-memory test harness: a virtual clock, the session, and helpers that shuttle
//! `poll_transmit` → (fake server) → `handle_message`, recording everything.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use opamp_agent_fsm::{Action, AgentSession, ConnectionTarget, Event, Settings, Transport};
use opamp_proto::{AgentCapabilities, InstanceUid, ServerCapabilities, v1};

pub const UID: [u8; 16] = [0x11; 16];

pub fn uid() -> InstanceUid {
    InstanceUid::from_array(UID)
}

pub fn ws_target() -> ConnectionTarget {
    ConnectionTarget::new("ws://127.0.0.1:4320/v1/opamp")
}

pub fn http_target() -> ConnectionTarget {
    ConnectionTarget::new("http://127.0.0.1:4320/v1/opamp")
}

pub fn settings(transport: Transport, caps: AgentCapabilities) -> Settings {
    let target = match transport {
        Transport::WebSocket => ws_target(),
        Transport::Http => http_target(),
    };
    let mut s = Settings::new(uid(), transport, target);
    s.capabilities = caps;
    s
}

/// Every agent capability.
pub fn all_caps() -> AgentCapabilities {
    AgentCapabilities::all()
}

/// Every server capability.
pub fn all_server_caps() -> ServerCapabilities {
    ServerCapabilities::all()
}

/// A plain acknowledgement.
pub fn ack() -> v1::ServerToAgent {
    v1::ServerToAgent {
        instance_uid: UID.to_vec(),
        ..Default::default()
    }
}

/// The first reply of a server with `caps`.
pub fn hello(caps: ServerCapabilities) -> v1::ServerToAgent {
    v1::ServerToAgent {
        instance_uid: UID.to_vec(),
        capabilities: caps.bits(),
        ..Default::default()
    }
}

pub fn description(name: &str) -> v1::AgentDescription {
    v1::AgentDescription {
        identifying_attributes: vec![v1::KeyValue {
            key: "service.name".into(),
            value: Some(v1::AnyValue {
                value: Some(v1::any_value::Value::StringValue(name.into())),
            }),
        }],
        non_identifying_attributes: vec![],
    }
}

pub fn health(healthy: bool) -> v1::ComponentHealth {
    v1::ComponentHealth {
        healthy,
        status: if healthy { "ok" } else { "bad" }.into(),
        last_error: if healthy { "" } else { "boom" }.into(),
        ..Default::default()
    }
}

pub fn effective(body: &[u8]) -> v1::EffectiveConfig {
    let mut map = v1::AgentConfigMap::default();
    map.config_map.insert(
        String::new(),
        v1::AgentConfigFile {
            body: body.to_vec(),
            content_type: "text/yaml".into(),
        },
    );
    v1::EffectiveConfig {
        config_map: Some(map),
    }
}

pub fn remote_status(hash: &[u8], status: v1::RemoteConfigStatuses) -> v1::RemoteConfigStatus {
    v1::RemoteConfigStatus {
        last_remote_config_hash: hash.to_vec(),
        status: status as i32,
        error_message: String::new(),
    }
}

pub fn packages(hash: &[u8]) -> v1::PackageStatuses {
    v1::PackageStatuses {
        server_provided_all_packages_hash: hash.to_vec(),
        ..Default::default()
    }
}

pub fn components(hash: &[u8]) -> v1::AvailableComponents {
    let mut c = v1::AvailableComponents {
        hash: hash.to_vec(),
        ..Default::default()
    };
    c.components
        .insert("receivers".into(), v1::ComponentDetails::default());
    c
}

pub struct Harness {
    pub agent: AgentSession,
    pub now: Instant,
    pub start: Instant,
    pub transport: Transport,
    /// Every message handed out, in order.
    pub sent: Vec<v1::AgentToServer>,
    pub events: Vec<Event>,
    pub actions: Vec<Action>,
    /// HTTP: requests handed out and not yet answered (must never exceed 1, HTTP-6).
    pub outstanding: usize,
}

impl Harness {
    pub fn new(settings: Settings) -> Self {
        let now = Instant::now();
        let transport = settings.transport;
        Self {
            agent: AgentSession::new(settings, now, 7),
            now,
            start: now,
            transport,
            sent: Vec::new(),
            events: Vec::new(),
            actions: Vec::new(),
            outstanding: 0,
        }
    }

    pub fn ws(caps: AgentCapabilities) -> Self {
        Self::new(settings(Transport::WebSocket, caps))
    }

    pub fn http(caps: AgentCapabilities) -> Self {
        Self::new(settings(Transport::Http, caps))
    }

    /// Collects actions and events; returns the messages handed out now.
    pub fn drain(&mut self) -> Vec<v1::AgentToServer> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            match self.agent.poll_transmit(self.now) {
                Some(m) => {
                    if self.transport == Transport::Http {
                        self.outstanding += 1;
                        assert!(
                            self.outstanding <= 1,
                            "two HTTP requests in flight (HTTP-6)"
                        );
                    }
                    self.check_invariants(&m);
                    out.push(m.clone());
                    self.sent.push(m);
                }
                None => break,
            }
        }
        while let Some(a) = self.agent.poll_action() {
            if matches!(a, Action::Disconnect | Action::Connect(_)) {
                // The driver abandons an outstanding HTTP request when told to (re)connect.
                self.outstanding = 0;
            }
            self.actions.push(a);
        }
        while let Some(e) = self.agent.poll_event() {
            self.events.push(e);
        }
        out
    }

    /// Properties every message must have (GEN-5, CAP-1, CAP-2, CAP-3, SEQ-6).
    pub fn check_invariants(&self, m: &v1::AgentToServer) {
        assert_eq!(m.instance_uid.len(), 16, "instance_uid is 16 bytes (UID-3)");
        assert_eq!(m.instance_uid, self.agent.instance_uid().to_vec());
        assert!(
            m.agent_capabilities().is_valid_to_send(),
            "capabilities {:#x} (CAP-1..3)",
            m.capabilities
        );
        if let Some(prev) = self.sent.last() {
            assert_eq!(m.sequence_num, prev.sequence_num + 1, "SEQ-6");
        } else {
            assert_eq!(m.sequence_num, 0, "the first message has sequence number 0");
        }
    }

    /// Expects `Action::Connect` next (after draining) and answers it with `handle_connected`.
    pub fn connect(&mut self) -> Vec<v1::AgentToServer> {
        self.drain();
        let a = self.actions.pop().expect("an action");
        assert!(
            matches!(a, Action::Connect(_)),
            "expected Connect, got {a:?}"
        );
        self.agent.handle_connected(self.now);
        self.drain()
    }

    /// Connects, takes the first message and answers it with `reply`.
    pub fn establish(&mut self, reply: v1::ServerToAgent) -> v1::AgentToServer {
        let first = self.connect();
        assert_eq!(first.len(), 1, "exactly one first message: {first:?}");
        let more = self.reply(reply);
        assert!(more.is_empty(), "the first reply needs no answer: {more:?}");
        // Start the test proper with empty event and action logs.
        self.events.clear();
        self.actions.clear();
        first.into_iter().next().unwrap()
    }

    pub fn reply(&mut self, msg: v1::ServerToAgent) -> Vec<v1::AgentToServer> {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.agent.handle_message(self.now, msg);
        self.drain()
    }

    pub fn fail(&mut self, e: opamp_agent_fsm::TransportError) -> Vec<v1::AgentToServer> {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.agent.handle_transport_error(self.now, e);
        self.drain()
    }

    /// Runs the virtual clock forward by `d`, firing every timeout on the way; returns the
    /// messages handed out.
    pub fn advance(&mut self, d: Duration) -> Vec<v1::AgentToServer> {
        let end = self.now + d;
        let mut out = self.drain();
        for _ in 0..100_000 {
            match self.agent.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.agent.handle_timeout(self.now);
                    out.extend(self.drain());
                }
                _ => break,
            }
        }
        self.now = end;
        out.extend(self.drain());
        out
    }

    /// Like [`advance`], but every HTTP request is answered by `server` right away.
    pub fn advance_with(
        &mut self,
        d: Duration,
        mut server: impl FnMut(&v1::AgentToServer) -> v1::ServerToAgent,
    ) -> Vec<v1::AgentToServer> {
        let end = self.now + d;
        let mut out = Vec::new();
        let mut pending = self.drain();
        for _ in 0..100_000 {
            if let Some(m) = pending.pop() {
                out.push(m.clone());
                let r = server(&m);
                pending.extend(self.reply(r));
                continue;
            }
            match self.agent.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.agent.handle_timeout(self.now);
                    pending.extend(self.drain());
                }
                _ => break,
            }
        }
        self.now = end;
        out
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        self.drain();
        std::mem::take(&mut self.events)
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        self.drain();
        std::mem::take(&mut self.actions)
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}
