//! Agents as the store keeps them: what each agent last reported, plus operator-set labels.
//!
//! These are domain types (serde, JSON for the admin API), never wire types: the fleet layer
//! converts `AgentToServer` sub-messages into an [`AgentUpdate`] in one place.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use opamp_config::{ConfigHash, ConfigMap};
use opamp_proto::{AgentCapabilities, InstanceUid};
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A JSON object of attributes (`AgentDescription` key/values, converted from `AnyValue`).
pub type Attributes = BTreeMap<String, serde_json::Value>;

/// How an agent talks to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Transport {
    /// WebSocket (`ws` / `wss`).
    #[serde(rename = "ws")]
    WebSocket,
    /// Plain HTTP polling (`http` / `https`).
    Http,
}

impl Transport {
    /// `"ws"` or `"http"`, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Http => "http",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ws" | "wss" | "websocket" => Ok(Transport::WebSocket),
            "http" | "https" => Ok(Transport::Http),
            other => Err(crate::Error::invalid(
                "transport",
                format!("{other:?} is neither \"ws\" nor \"http\""),
            )),
        }
    }
}

/// The agent's description (`AgentDescription`): attributes that identify it and attributes
/// that only describe it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentDescription {
    /// Identifying attributes (`service.name`, `service.instance.id`, ...).
    #[serde(default)]
    pub identifying_attributes: Attributes,
    /// Non-identifying attributes (`os.type`, `host.name`, ...).
    #[serde(default)]
    pub non_identifying_attributes: Attributes,
}

/// The state of the last remote config the agent reported on (`RemoteConfigStatuses`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RemoteConfigState {
    /// `UNSET`: nothing reported.
    #[default]
    Unset,
    /// `APPLIED`: the config with `last_remote_config_hash` is in effect.
    Applied,
    /// `APPLYING`: being applied.
    Applying,
    /// `FAILED`: could not be applied; see `error_message`.
    Failed,
}

impl RemoteConfigState {
    /// The stored and shown name (`"APPLIED"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteConfigState::Unset => "UNSET",
            RemoteConfigState::Applied => "APPLIED",
            RemoteConfigState::Applying => "APPLYING",
            RemoteConfigState::Failed => "FAILED",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "UNSET" => RemoteConfigState::Unset,
            "APPLIED" => RemoteConfigState::Applied,
            "APPLYING" => RemoteConfigState::Applying,
            "FAILED" => RemoteConfigState::Failed,
            _ => return None,
        })
    }
}

/// The agent's report on the last remote config it received (`RemoteConfigStatus`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteConfigStatus {
    /// Applied, applying, failed or unset.
    pub status: RemoteConfigState,
    /// The hash of the remote config the status is about, as raw bytes (hex in JSON). Usually
    /// a 32-byte [`ConfigHash`] this server offered; other lengths are kept as they came.
    #[serde(with = "hex_bytes", default)]
    pub last_remote_config_hash: Vec<u8>,
    /// The agent's error message when the status is `FAILED`.
    #[serde(default)]
    pub error_message: String,
}

impl RemoteConfigStatus {
    /// The hash as a [`ConfigHash`] when it is 32 bytes long.
    pub fn config_hash(&self) -> Option<ConfigHash> {
        ConfigHash::from_slice(&self.last_remote_config_hash)
    }
}

/// Everything the store knows about one agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent's instance uid (UID-3).
    pub instance_uid: InstanceUid,
    /// Identifying and non-identifying attributes, as last reported.
    #[serde(flatten)]
    pub description: AgentDescription,
    /// Capability bits as last reported.
    pub capabilities: AgentCapabilities,
    /// The component health tree (JSON form of `ComponentHealth`), if reported.
    pub health: Option<serde_json::Value>,
    /// The effective config the agent reported. List queries leave it out unless
    /// [`AgentFilter::with_effective_config`] is set; the hash is always there.
    pub effective_config: Option<ConfigMap>,
    /// The hash of the effective config (computed by the store with [`ConfigMap::hash`]).
    pub effective_config_hash: Option<ConfigHash>,
    /// The last remote config status, if reported.
    pub remote_config_status: Option<RemoteConfigStatus>,
    /// Package statuses (JSON form of `PackageStatuses`), if reported.
    pub package_statuses: Option<serde_json::Value>,
    /// Custom capabilities the agent announced.
    pub custom_capabilities: Vec<String>,
    /// Available components (JSON form of `AvailableComponents`), if reported.
    pub available_components: Option<serde_json::Value>,
    /// The transport of the current or last connection.
    pub transport: Option<Transport>,
    /// Whether a server replica holds a live connection (or, for HTTP, a recent poll).
    pub connected: bool,
    /// The server replica that set `connected` (see [`crate::Store::disconnect_server`]).
    pub connected_via: Option<String>,
    /// When the store first heard of the agent.
    pub first_seen: Timestamp,
    /// The newest message from the agent (written in batches: see
    /// [`crate::LastSeenBatcher`]).
    pub last_seen: Timestamp,
    /// Operator-set labels (separate from description attributes).
    pub labels: BTreeMap<String, String>,
}

impl Agent {
    /// The labels selectors match against: description attributes with scalar values
    /// (non-identifying, then identifying ones over them), then operator labels over both.
    /// Strings are taken as they are, numbers and booleans in their JSON spelling; null,
    /// arrays and objects are not labels.
    ///
    /// [`AgentFilter::labels`] applies the same precedence in SQL.
    pub fn effective_labels(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for attrs in [
            &self.description.non_identifying_attributes,
            &self.description.identifying_attributes,
        ] {
            for (k, v) in attrs {
                if let Some(s) = scalar_label(v) {
                    out.insert(k.clone(), s);
                }
            }
        }
        for (k, v) in &self.labels {
            out.insert(k.clone(), v.clone());
        }
        out
    }
}

/// The label spelling of an attribute value, `None` for values that are not labels.
pub fn scalar_label(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A partial update of an agent's reported state: `None` fields are left as stored, so a
/// status message that carries only health writes only health (status compression, SEQ-4).
/// The first update of an unknown uid creates the agent.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentUpdate {
    /// Which agent.
    pub instance_uid: InstanceUid,
    /// When the message arrived; `last_seen` moves forward to it (never back).
    pub seen_at: Timestamp,
    /// A new description (replaces both attribute sets).
    pub description: Option<AgentDescription>,
    /// New capability bits.
    pub capabilities: Option<AgentCapabilities>,
    /// A new health tree.
    pub health: Option<serde_json::Value>,
    /// A new effective config; the store computes and stores its hash.
    pub effective_config: Option<ConfigMap>,
    /// A new remote config status. A change to `APPLIED` or `FAILED` also appends a
    /// [`crate::AgentEventKind::ConfigApplied`] / `ConfigFailed` event.
    pub remote_config_status: Option<RemoteConfigStatus>,
    /// New package statuses.
    pub package_statuses: Option<serde_json::Value>,
    /// New custom capabilities.
    pub custom_capabilities: Option<Vec<String>>,
    /// New available components.
    pub available_components: Option<serde_json::Value>,
    /// The transport, when known.
    pub transport: Option<Transport>,
}

impl AgentUpdate {
    /// An update that changes nothing but `last_seen`; fill in the fields that changed.
    pub fn new(instance_uid: InstanceUid, seen_at: Timestamp) -> Self {
        Self {
            instance_uid,
            seen_at,
            description: None,
            capabilities: None,
            health: None,
            effective_config: None,
            remote_config_status: None,
            package_statuses: None,
            custom_capabilities: None,
            available_components: None,
            transport: None,
        }
    }

    /// True when no sub-state is set (only `last_seen` would move).
    pub fn is_heartbeat(&self) -> bool {
        self.description.is_none()
            && self.capabilities.is_none()
            && self.health.is_none()
            && self.effective_config.is_none()
            && self.remote_config_status.is_none()
            && self.package_statuses.is_none()
            && self.custom_capabilities.is_none()
            && self.available_components.is_none()
            && self.transport.is_none()
    }
}

/// What [`crate::Store::upsert_agent`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpsertOutcome {
    /// The uid was new: a row was created.
    pub created: bool,
}

/// Filters for listing and counting agents; all set conditions must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentFilter {
    /// Only connected (`true`) or disconnected (`false`) agents.
    pub connected: Option<bool>,
    /// Only agents on this transport.
    pub transport: Option<Transport>,
    /// `key = value` on effective labels (see [`Agent::effective_labels`]), all must hold.
    pub labels: Vec<(String, String)>,
    /// The effective label key must exist.
    pub has_labels: Vec<String>,
    /// Include the effective config bodies (left out by default: they can be large).
    pub with_effective_config: bool,
}

mod hex_bytes {
    pub(super) fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        hex::decode(s.as_ref()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agent() -> Agent {
        Agent {
            instance_uid: InstanceUid::from_array([1; 16]),
            description: AgentDescription {
                identifying_attributes: [
                    ("service.name".to_owned(), json!("checkout")),
                    ("host.name".to_owned(), json!("id-wins")),
                ]
                .into(),
                non_identifying_attributes: [
                    ("host.name".to_owned(), json!("n1")),
                    ("cores".to_owned(), json!(4)),
                    ("debug".to_owned(), json!(true)),
                    ("tags".to_owned(), json!(["a"])),
                ]
                .into(),
            },
            capabilities: AgentCapabilities::REPORTS_STATUS,
            health: None,
            effective_config: None,
            effective_config_hash: None,
            remote_config_status: None,
            package_statuses: None,
            custom_capabilities: vec![],
            available_components: None,
            transport: Some(Transport::Http),
            connected: false,
            connected_via: None,
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            labels: [("service.name".to_owned(), "override".to_owned())].into(),
        }
    }

    #[test]
    fn effective_labels_layer_attributes_then_operator_labels() {
        let l = agent().effective_labels();
        assert_eq!(l["service.name"], "override");
        assert_eq!(l["host.name"], "id-wins");
        assert_eq!(l["cores"], "4");
        assert_eq!(l["debug"], "true");
        assert!(!l.contains_key("tags"));
    }

    #[test]
    fn agent_json_has_the_api_field_names() {
        let mut a = agent();
        a.remote_config_status = Some(RemoteConfigStatus {
            status: RemoteConfigState::Failed,
            last_remote_config_hash: vec![0xab, 0x01],
            error_message: "bad yaml".into(),
        });
        let j = serde_json::to_value(&a).unwrap();
        assert_eq!(j["instance_uid"], "01010101-0101-0101-0101-010101010101");
        assert_eq!(j["identifying_attributes"]["service.name"], "checkout");
        assert_eq!(j["transport"], "http");
        assert_eq!(j["remote_config_status"]["status"], "FAILED");
        assert_eq!(j["remote_config_status"]["last_remote_config_hash"], "ab01");
        let back: Agent = serde_json::from_value(j).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn heartbeat_update_has_no_sub_state() {
        let mut u = AgentUpdate::new(InstanceUid::from_array([2; 16]), Timestamp(5));
        assert!(u.is_heartbeat());
        u.health = Some(json!({"healthy": true}));
        assert!(!u.is_heartbeat());
    }
}
