//! A simulated agent: what a real OpenTelemetry Collector under OpAMP would send and how
//! it reacts to the server, as a small sans-IO state machine (no sockets, no clock).
//!
//! The transports (`ws`, `poll`) feed it the server's messages and send what it returns.
//! It must stay small: the load generator holds tens of thousands of them. Configuration
//! bodies are shared (`Arc`) between agents, never copied per agent.
//!
//! Behaviour, following the specification for a well-behaved agent:
//! - the first message is a full report: agent description, health with a few pipeline
//!   components, the effective config (a few KiB of YAML) and the remote config status;
//! - later messages are heartbeats carrying only the uid, sequence number and
//!   capabilities (status compression: nothing changed);
//! - `ReportFullState` in a reply is answered with a full report (SEQ-11);
//! - a remote config with a hash it does not run yet is "applied" at once and reported
//!   back with status `APPLIED`, its hash (RCFG-3) and the new effective config in one
//!   message (RCFG-11);
//! - a `new_instance_uid` is adopted for every later message (UID-5).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use opamp_proto::v1::{
    AgentConfigFile, AgentConfigMap, AgentDescription, AgentDisconnect, AgentToServer,
    ComponentHealth, EffectiveConfig, KeyValue, RemoteConfigStatus, RemoteConfigStatuses,
    ServerToAgent,
};
use opamp_proto::{AgentCapabilities, InstanceUid, ServerToAgentFlags};

/// The capabilities every simulated agent declares.
pub const CAPABILITIES: AgentCapabilities = AgentCapabilities::REPORTS_STATUS
    .union(AgentCapabilities::ACCEPTS_REMOTE_CONFIG)
    .union(AgentCapabilities::REPORTS_EFFECTIVE_CONFIG)
    .union(AgentCapabilities::REPORTS_HEALTH)
    .union(AgentCapabilities::REPORTS_REMOTE_CONFIG)
    .union(AgentCapabilities::REPORTS_HEARTBEAT);

/// The name of the config file in every config map (local and remote).
pub const CONFIG_FILE: &str = "collector.yaml";

/// A collector-style YAML configuration of at least `min_size` bytes, different for every
/// `generation` (so its hash changes). Used for the agents' local effective config and
/// for the remote configs the bench server pushes.
pub fn collector_config(generation: u64, min_size: usize) -> String {
    let mut text = String::with_capacity(min_size + 256);
    let _ = writeln!(text, "# generation {generation}");
    text.push_str(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n      \
         http:\n        endpoint: 0.0.0.0:4318\n  hostmetrics:\n    collection_interval: 30s\n    \
         scrapers:\n      cpu: {}\n      memory: {}\n      disk: {}\n      network: {}\n\
         processors:\n  batch:\n    send_batch_size: 8192\n    timeout: 5s\n  memory_limiter:\n    \
         check_interval: 1s\n    limit_percentage: 80\n",
    );
    let mut n = 0;
    while text.len() < min_size {
        let _ = write!(
            text,
            "  attributes/team{n}:\n    actions:\n      - key: team\n        value: team-{n}\n        \
             action: upsert\n      - key: generation\n        value: \"{generation}\"\n        action: insert\n"
        );
        n += 1;
    }
    text.push_str(
        "exporters:\n  otlphttp:\n    endpoint: https://collector.example.internal:4318\n\
         service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      \
         exporters: [otlphttp]\n    metrics:\n      receivers: [otlp, hostmetrics]\n      processors: [memory_limiter, batch]\n      \
         exporters: [otlphttp]\n",
    );
    text
}

/// A config map holding one YAML file.
pub fn config_map(body: String) -> AgentConfigMap {
    AgentConfigMap {
        config_map: BTreeMap::from([(
            CONFIG_FILE.to_string(),
            AgentConfigFile {
                body: body.into_bytes(),
                content_type: "text/yaml".to_string(),
            },
        )]),
    }
}

/// State shared by every simulated agent of a run: the local config all start with and
/// the remote configs received, interned by hash so 10,000 agents running the same config
/// hold one copy.
#[derive(Debug)]
pub struct Fleet {
    local_config: Arc<AgentConfigMap>,
    start_time_unix_nano: u64,
    configs: Mutex<HashMap<Vec<u8>, Arc<AgentConfigMap>>>,
}

impl Fleet {
    /// A fleet whose agents start with a local config of about `config_size` bytes and
    /// report `start_time_unix_nano` as their start time.
    pub fn new(config_size: usize, start_time_unix_nano: u64) -> Self {
        Self {
            local_config: Arc::new(config_map(collector_config(0, config_size))),
            start_time_unix_nano,
            configs: Mutex::new(HashMap::new()),
        }
    }

    fn intern(&self, hash: &[u8], map: &AgentConfigMap) -> Arc<AgentConfigMap> {
        let mut configs = self.configs.lock().unwrap_or_else(PoisonError::into_inner);
        configs
            .entry(hash.to_vec())
            .or_insert_with(|| Arc::new(map.clone()))
            .clone()
    }
}

/// What a simulated agent did with a message from the server.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Reaction {
    /// The message to send back, if any.
    pub send: Option<AgentToServer>,
    /// A remote config with a new hash arrived (and was applied: `send` reports APPLIED).
    pub new_config: bool,
    /// The server asked for the full state (SEQ-11).
    pub full_state_requested: bool,
    /// The server assigned a new instance uid (UID-5).
    pub new_uid: bool,
    /// The message carried an error response (its type).
    pub error: Option<i32>,
}

/// One simulated agent.
#[derive(Debug)]
pub struct SimAgent {
    index: u32,
    uid: InstanceUid,
    seq: u64,
    /// The remote config it runs: hash and body (shared).
    running: Option<(Vec<u8>, Arc<AgentConfigMap>)>,
}

/// A deterministic UUIDv7-shaped uid for agent `index` of run `run_id`.
pub fn agent_uid(run_id: u32, index: u32) -> InstanceUid {
    let mut random = [0u8; 10];
    random[..4].copy_from_slice(&run_id.to_be_bytes());
    random[4..8].copy_from_slice(&index.to_be_bytes());
    InstanceUid::from_v7_parts(1_700_000_000_000 + u64::from(index), random)
}

impl SimAgent {
    /// Agent number `index` with this uid.
    pub fn new(index: u32, uid: InstanceUid) -> Self {
        Self {
            index,
            uid,
            seq: 0,
            running: None,
        }
    }

    /// The uid it uses now.
    pub fn uid(&self) -> InstanceUid {
        self.uid
    }

    /// The hash of the remote config it runs, if any.
    pub fn running_hash(&self) -> Option<&[u8]> {
        self.running.as_ref().map(|(h, _)| h.as_slice())
    }

    fn base(&mut self) -> AgentToServer {
        self.seq += 1;
        AgentToServer {
            instance_uid: self.uid.to_vec(),
            sequence_num: self.seq,
            capabilities: CAPABILITIES.bits(),
            ..Default::default()
        }
    }

    /// A heartbeat: nothing changed, so only uid, sequence number and capabilities.
    pub fn heartbeat(&mut self) -> AgentToServer {
        self.base()
    }

    /// The goodbye message (`agent_disconnect`).
    pub fn disconnect(&mut self) -> AgentToServer {
        let mut msg = self.base();
        msg.agent_disconnect = Some(AgentDisconnect {});
        msg
    }

    /// A full status report (the first message, and the answer to ReportFullState).
    pub fn full_report(&mut self, fleet: &Fleet) -> AgentToServer {
        let mut msg = self.base();
        msg.agent_description = Some(self.description());
        msg.health = Some(health(fleet.start_time_unix_nano));
        msg.effective_config = Some(self.effective_config(fleet));
        msg.remote_config_status = Some(self.remote_config_status());
        msg
    }

    /// Reacts to one message from the server.
    pub fn handle(&mut self, msg: &ServerToAgent, fleet: &Fleet) -> Reaction {
        let mut reaction = Reaction::default();
        if let Some(err) = msg.error_response.as_ref() {
            reaction.error = Some(err.r#type);
            return reaction;
        }
        if let Some(Ok(uid)) = msg.new_instance_uid() {
            self.uid = uid;
            reaction.new_uid = true;
        }
        if let Some(rc) = msg.remote_config.as_ref() {
            let differs = self.running_hash() != Some(rc.config_hash.as_slice());
            if differs && !rc.config_hash.is_empty() {
                let map = rc.config.clone().unwrap_or_default();
                self.running = Some((rc.config_hash.clone(), fleet.intern(&rc.config_hash, &map)));
                reaction.new_config = true;
            }
        }
        reaction.full_state_requested = msg
            .server_flags()
            .contains(ServerToAgentFlags::REPORT_FULL_STATE);
        if reaction.full_state_requested {
            reaction.send = Some(self.full_report(fleet));
        } else if reaction.new_config {
            let mut status = self.base();
            status.remote_config_status = Some(self.remote_config_status());
            status.effective_config = Some(self.effective_config(fleet));
            reaction.send = Some(status);
        }
        reaction
    }

    fn description(&self) -> AgentDescription {
        AgentDescription {
            identifying_attributes: vec![
                KeyValue::new("service.name", "otelcol-contrib"),
                KeyValue::new("service.namespace", "bench"),
                KeyValue::new("service.instance.id", self.uid.to_string()),
                KeyValue::new("service.version", "0.115.1"),
            ],
            non_identifying_attributes: vec![
                KeyValue::new("host.name", format!("bench-host-{:05}", self.index)),
                KeyValue::new("host.arch", "amd64"),
                KeyValue::new("os.type", "linux"),
                KeyValue::new("os.description", "Debian GNU/Linux 12 (bookworm)"),
                KeyValue::new("deployment.environment", "benchmark"),
            ],
        }
    }

    fn effective_config(&self, fleet: &Fleet) -> EffectiveConfig {
        let map = self
            .running
            .as_ref()
            .map_or(&fleet.local_config, |(_, map)| map);
        EffectiveConfig {
            config_map: Some(AgentConfigMap::clone(map)),
        }
    }

    fn remote_config_status(&self) -> RemoteConfigStatus {
        match &self.running {
            Some((hash, _)) => RemoteConfigStatus {
                last_remote_config_hash: hash.clone(),
                status: RemoteConfigStatuses::Applied as i32,
                error_message: String::new(),
            },
            None => RemoteConfigStatus {
                last_remote_config_hash: Vec::new(),
                status: RemoteConfigStatuses::Unset as i32,
                error_message: String::new(),
            },
        }
    }
}

fn health(start: u64) -> ComponentHealth {
    let component = |healthy: bool| ComponentHealth {
        healthy,
        start_time_unix_nano: start,
        status: if healthy {
            "StatusOK"
        } else {
            "StatusRecoverableError"
        }
        .to_string(),
        status_time_unix_nano: start,
        ..Default::default()
    };
    let pipeline = |names: &[&str]| ComponentHealth {
        healthy: true,
        start_time_unix_nano: start,
        status: "StatusOK".to_string(),
        status_time_unix_nano: start,
        component_health_map: names
            .iter()
            .map(|n| ((*n).to_string(), component(true)))
            .collect(),
        ..Default::default()
    };
    ComponentHealth {
        healthy: true,
        start_time_unix_nano: start,
        status: "StatusOK".to_string(),
        status_time_unix_nano: start,
        component_health_map: BTreeMap::from([
            (
                "pipeline:traces".to_string(),
                pipeline(&["receiver:otlp", "processor:batch", "exporter:otlphttp"]),
            ),
            (
                "pipeline:metrics".to_string(),
                pipeline(&[
                    "receiver:otlp",
                    "receiver:hostmetrics",
                    "processor:batch",
                    "exporter:otlphttp",
                ]),
            ),
        ]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use opamp_proto::prost::Message;
    use opamp_proto::v1::{AgentIdentification, AgentRemoteConfig};

    use super::*;

    fn fleet() -> Fleet {
        Fleet::new(3000, 1)
    }

    #[test]
    fn first_message_is_a_full_report_with_a_few_kib_of_config() {
        let fleet = fleet();
        let mut agent = SimAgent::new(7, agent_uid(1, 7));
        let msg = agent.full_report(&fleet);
        assert_eq!(msg.sequence_num, 1);
        assert!(msg.agent_description.is_some());
        assert_eq!(msg.health.as_ref().unwrap().component_health_map.len(), 2);
        let len = msg.encoded_len();
        assert!((3000..8000).contains(&len), "full report is {len} bytes");
        assert_eq!(msg.agent_capabilities(), CAPABILITIES);
        assert_eq!(
            msg.remote_config_status.unwrap().status,
            RemoteConfigStatuses::Unset as i32
        );
    }

    #[test]
    fn heartbeats_carry_only_uid_sequence_and_capabilities_seq_7() {
        let fleet = fleet();
        let mut agent = SimAgent::new(0, agent_uid(1, 0));
        let _ = agent.full_report(&fleet);
        let hb = agent.heartbeat();
        assert_eq!(hb.sequence_num, 2);
        assert!(hb.agent_description.is_none() && hb.health.is_none());
        assert!(hb.encoded_len() < 40);
    }

    #[test]
    fn remote_config_is_applied_and_reported_with_its_hash_rcfg_3_rcfg_11() {
        let fleet = fleet();
        let mut agent = SimAgent::new(0, agent_uid(1, 0));
        let _ = agent.full_report(&fleet);
        let rc = AgentRemoteConfig {
            config: Some(config_map(collector_config(2, 1000))),
            config_hash: vec![9; 32],
        };
        let push = ServerToAgent {
            remote_config: Some(rc.clone()),
            ..Default::default()
        };
        let reaction = agent.handle(&push, &fleet);
        assert!(reaction.new_config);
        let sent = reaction.send.unwrap();
        let status = sent.remote_config_status.unwrap();
        assert_eq!(status.status, RemoteConfigStatuses::Applied as i32);
        assert_eq!(status.last_remote_config_hash, vec![9; 32]);
        assert_eq!(sent.effective_config.unwrap().config_map, rc.config.clone());
        // The same config again: nothing to do (RCFG-5 from the agent's side).
        let again = agent.handle(&push, &fleet);
        assert!(!again.new_config && again.send.is_none());
    }

    #[test]
    fn report_full_state_flag_gets_a_full_report_seq_11() {
        let fleet = fleet();
        let mut agent = SimAgent::new(0, agent_uid(1, 0));
        let reply = ServerToAgent {
            flags: ServerToAgentFlags::REPORT_FULL_STATE.bits(),
            ..Default::default()
        };
        let reaction = agent.handle(&reply, &fleet);
        assert!(reaction.full_state_requested);
        assert!(reaction.send.unwrap().agent_description.is_some());
    }

    #[test]
    fn new_instance_uid_is_adopted_uid_5() {
        let fleet = fleet();
        let mut agent = SimAgent::new(0, agent_uid(1, 0));
        let new = agent_uid(2, 0);
        let reply = ServerToAgent {
            agent_identification: Some(AgentIdentification {
                new_instance_uid: new.to_vec(),
            }),
            ..Default::default()
        };
        assert!(agent.handle(&reply, &fleet).new_uid);
        assert_eq!(agent.heartbeat().instance_uid, new.to_vec());
    }

    #[test]
    fn error_reply_is_reported_not_acted_on() {
        let fleet = fleet();
        let mut agent = SimAgent::new(0, agent_uid(1, 0));
        let reply =
            ServerToAgent::unavailable(agent.uid().to_vec(), std::time::Duration::from_secs(1));
        let reaction = agent.handle(&reply, &fleet);
        assert!(reaction.error.is_some() && reaction.send.is_none());
    }

    #[test]
    fn agents_running_the_same_config_share_one_copy() {
        let fleet = fleet();
        let push = ServerToAgent {
            remote_config: Some(AgentRemoteConfig {
                config: Some(config_map(collector_config(3, 500))),
                config_hash: vec![3; 32],
            }),
            ..Default::default()
        };
        let mut a = SimAgent::new(0, agent_uid(1, 0));
        let mut b = SimAgent::new(1, agent_uid(1, 1));
        let _ = a.handle(&push, &fleet);
        let _ = b.handle(&push, &fleet);
        let (ma, mb) = (
            &a.running.as_ref().unwrap().1,
            &b.running.as_ref().unwrap().1,
        );
        assert!(Arc::ptr_eq(ma, mb));
    }

    #[test]
    fn uids_are_distinct_v7() {
        let a = agent_uid(1, 0);
        let b = agent_uid(1, 1);
        assert_ne!(a, b);
        assert_eq!(a.uuid_version(), 7);
    }
}
