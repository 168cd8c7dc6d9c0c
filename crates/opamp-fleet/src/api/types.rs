//! The admin API's request and response bodies (with their OpenAPI schemas), and the
//! conversions from store types. Field names are the API contract: change them only with
//! a new API version.

use std::collections::BTreeMap;

use opamp_config::ConfigMap;
use opamp_store::{Agent, ApiToken, Assignment, AssignmentTarget, Config, ConfigVersion, Group};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::SyncState;
use crate::fleet::Resolved;

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error: a stable code and a message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_selector`, `agent_not_found`, `config_not_found`,
    /// `version_not_found`, `group_not_found`, `assignment_not_found`, `token_not_found`,
    /// `invalid_config`, `invalid_input`, `invalid_json`, `invalid_query`, `invalid_path`,
    /// `payload_too_large`, `unsupported_media_type`, `unauthorized`, `forbidden`,
    /// `conflict`, `route_not_found`, `method_not_allowed`, `store_unavailable`, `internal`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// One config file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FileSchema {
    /// MIME type, e.g. `text/yaml`, `application/json`, `text/plain`. YAML and JSON files
    /// must parse.
    #[serde(default)]
    pub content_type: String,
    /// The content as text. Binary content is written `{"base64": "..."}`.
    pub body: String,
}

/// A remote config status as the agent reported it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RemoteConfigStatusView {
    /// `UNSET`, `APPLIED`, `APPLYING` or `FAILED`.
    pub status: String,
    /// Hex of the hash the status is about.
    pub last_remote_config_hash: String,
    /// The agent's error message (FAILED).
    pub error_message: String,
}

/// Where an agent's desired config comes from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DesiredView {
    /// The config's name.
    pub config: String,
    /// The version (resolved: for an assignment that follows the latest version, the
    /// latest one now).
    pub version: u64,
    /// The assignment that decided it.
    pub assignment_id: i64,
    /// Hex of its hash.
    pub hash: String,
}

impl From<&Resolved> for DesiredView {
    fn from(r: &Resolved) -> Self {
        Self {
            config: r.config.clone(),
            version: r.version,
            assignment_id: r.assignment_id,
            hash: r.hash.to_string(),
        }
    }
}

/// An agent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    /// The instance uid (UUID text form).
    pub instance_uid: String,
    /// Whether a server replica holds a live connection (or a recent HTTP poll).
    pub connected: bool,
    /// `ws` or `http` (of the current or last connection).
    pub transport: Option<String>,
    /// Identifying description attributes.
    #[schema(value_type = Object)]
    pub identifying_attributes: serde_json::Value,
    /// Non-identifying description attributes.
    #[schema(value_type = Object)]
    pub non_identifying_attributes: serde_json::Value,
    /// The labels selectors match: description attributes overlaid with operator labels.
    pub labels: BTreeMap<String, String>,
    /// The labels an operator set.
    pub operator_labels: BTreeMap<String, String>,
    /// The component health tree, if reported.
    #[schema(value_type = Option<Object>)]
    pub health: Option<serde_json::Value>,
    /// The last remote config status.
    pub remote_config_status: Option<RemoteConfigStatusView>,
    /// Hex of the desired config's hash (`null`: unmanaged).
    pub desired_config_hash: Option<String>,
    /// Where the desired config comes from.
    pub desired_config: Option<DesiredView>,
    /// in_sync, pending, failed, drifted or unmanaged.
    pub sync_state: SyncState,
    /// Capability names (`AcceptsRemoteConfig`, ...).
    pub capabilities: Vec<String>,
    /// The capability bits.
    pub capabilities_bits: u64,
    /// Custom capabilities.
    pub custom_capabilities: Vec<String>,
    /// Hex of the effective config's hash, if reported.
    pub effective_config_hash: Option<String>,
    /// Package statuses, if reported.
    #[schema(value_type = Option<Object>)]
    pub package_statuses: Option<serde_json::Value>,
    /// Available components, if reported.
    #[schema(value_type = Option<Object>)]
    pub available_components: Option<serde_json::Value>,
    /// When first seen (RFC 3339).
    pub first_seen: String,
    /// When last seen (RFC 3339; written in batches, may lag a few seconds).
    pub last_seen: String,
}

/// An agent with its effective config.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentDetail {
    /// The agent.
    #[serde(flatten)]
    pub agent: AgentView,
    /// The effective config files (secret-looking values redacted unless
    /// `effective_config_redacted` is false).
    #[schema(value_type = Option<BTreeMap<String, FileSchema>>)]
    pub effective_config: Option<ConfigMap>,
    /// Whether secret-looking values were redacted.
    pub effective_config_redacted: bool,
}

/// A page of agents.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    /// The agents.
    pub agents: Vec<AgentView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/agents`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentQuery {
    /// A label selector, e.g. `service.name=checkout,env in (prod,staging)`.
    pub selector: Option<String>,
    /// Only agents in this sync state.
    pub sync_state: Option<String>,
    /// Only connected (`true`) or disconnected (`false`) agents.
    pub connected: Option<bool>,
    /// Only agents on this transport (`ws` or `http`).
    pub transport: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query of `GET /api/v1/agents/{uid}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevealQuery {
    /// Show secret-looking values (admin only).
    #[serde(default)]
    pub reveal: bool,
}

/// Paging query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query of `GET /api/v1/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The bearer token, for clients that cannot send headers (`EventSource`).
    pub access_token: Option<String>,
}

/// A label value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelValue {
    /// The value.
    pub value: String,
}

/// An agent's operator labels.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LabelsView {
    /// The operator labels after the change.
    pub labels: BTreeMap<String, String>,
}

/// A queued command.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandView {
    /// Its id.
    pub id: i64,
    /// `restart`.
    pub command: String,
    /// When it was queued.
    pub created_at: String,
}

/// A page of timeline events or audit rows (objects as the store keeps them).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryList {
    /// The entries, newest first.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Creates a config, or its next version when it exists.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConfigRequest {
    /// The config's name (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// File name → file.
    #[schema(value_type = BTreeMap<String, FileSchema>)]
    pub files: ConfigMap,
    /// A note for the version history.
    #[serde(default)]
    pub message: Option<String>,
}

/// A config.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The newest version (0: none yet).
    pub latest_version: u64,
    /// When it was created.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
}

impl From<&Config> for ConfigView {
    fn from(c: &Config) -> Self {
        Self {
            name: c.name.clone(),
            description: c.description.clone(),
            latest_version: c.latest_version,
            created_at: c.created_at.to_string(),
            created_by: c.created_by.clone(),
        }
    }
}

/// A config with its latest version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigDetail {
    /// The config.
    #[serde(flatten)]
    pub config: ConfigView,
    /// Its newest version.
    pub latest: Option<VersionView>,
}

/// A page of configs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigList {
    /// The configs.
    pub configs: Vec<ConfigView>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// A version without its files.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionSummary {
    /// The config's name.
    pub config: String,
    /// The version number, from 1.
    pub version: u64,
    /// Hex of its hash (what agents report back).
    pub hash: String,
    /// When it was created.
    pub created_at: String,
    /// Who created it.
    pub author: String,
    /// The author's note.
    pub message: String,
    /// The version it restores, for a rollback.
    pub rollback_of: Option<u64>,
}

impl From<&ConfigVersion> for VersionSummary {
    fn from(v: &ConfigVersion) -> Self {
        Self {
            config: v.config.clone(),
            version: v.version,
            hash: v.hash.to_string(),
            created_at: v.created_at.to_string(),
            author: v.author.clone(),
            message: v.message.clone(),
            rollback_of: v.rollback_of,
        }
    }
}

/// A version with its files.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    /// The version.
    #[serde(flatten)]
    pub summary: VersionSummary,
    /// Its files.
    #[schema(value_type = BTreeMap<String, FileSchema>)]
    pub files: ConfigMap,
}

impl From<&ConfigVersion> for VersionView {
    fn from(v: &ConfigVersion) -> Self {
        Self {
            summary: v.into(),
            files: v.config_map.clone(),
        }
    }
}

/// The answer to creating a version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedVersion {
    /// False when the files equal the latest version's (nothing was written; `version` is
    /// that latest version).
    pub created: bool,
    /// The version.
    pub version: VersionView,
}

/// A page of versions, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    /// The versions.
    pub versions: Vec<VersionSummary>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Query of the diff endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The old version.
    pub from: u64,
    /// The new version (default: the latest).
    pub to: Option<u64>,
}

/// The difference between two versions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DiffView {
    /// The config.
    pub config: String,
    /// The old version.
    pub from: u64,
    /// The new version.
    pub to: u64,
    /// `{"files": [{"name", "change": "added"|"removed"|"changed", "keys": [...],
    /// "lines": [...], "unified": "..."}]}`.
    #[schema(value_type = Object)]
    pub diff: serde_json::Value,
}

/// Restores an older version as a new version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to restore.
    pub version: u64,
    /// A note (default: "rollback to version N").
    #[serde(default)]
    pub message: Option<String>,
}

/// Assigns a config to exactly one of an agent, a group or a selector.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRequest {
    /// The config's name.
    pub config: String,
    /// A version to pin; absent: always the latest.
    #[serde(default)]
    pub version: Option<u64>,
    /// A label selector.
    #[serde(default)]
    pub selector: Option<String>,
    /// A group name.
    #[serde(default)]
    pub group: Option<String>,
    /// An agent's instance uid.
    #[serde(default)]
    pub agent: Option<String>,
}

/// An assignment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssignmentView {
    /// Its id.
    pub id: i64,
    /// The config.
    pub config: String,
    /// The pinned version; `null`: follows the latest.
    pub version: Option<u64>,
    /// The selector it targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The group it targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The agent it targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When it was last set (newest wins ties, see the precedence rules).
    pub created_at: String,
    /// Who set it.
    pub author: String,
}

impl From<&Assignment> for AssignmentView {
    fn from(a: &Assignment) -> Self {
        let (mut selector, mut group, mut agent) = (None, None, None);
        match &a.target {
            AssignmentTarget::Selector(s) => selector = Some(s.clone()),
            AssignmentTarget::Group(g) => group = Some(g.clone()),
            AssignmentTarget::Agent(u) => agent = Some(u.to_string()),
        }
        Self {
            id: a.id,
            config: a.config.clone(),
            version: a.version,
            selector,
            group,
            agent,
            created_at: a.created_at.to_string(),
            author: a.author.clone(),
        }
    }
}

/// All assignments.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssignmentList {
    /// The assignments, by id.
    pub assignments: Vec<AssignmentView>,
}

/// Creates a group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    /// Its name.
    pub name: String,
    /// Its selector.
    pub selector: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Changes a group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    /// The new selector.
    pub selector: String,
    /// The new description (absent: unchanged).
    #[serde(default)]
    pub description: Option<String>,
}

/// A group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupView {
    /// Its name.
    pub name: String,
    /// Its selector.
    pub selector: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at: String,
    /// When it was last changed.
    pub updated_at: String,
}

impl From<&Group> for GroupView {
    fn from(g: &Group) -> Self {
        Self {
            name: g.name.clone(),
            selector: g.selector.clone(),
            description: g.description.clone(),
            created_at: g.created_at.to_string(),
            updated_at: g.updated_at.to_string(),
        }
    }
}

/// All groups.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    /// The groups, by name.
    pub groups: Vec<GroupView>,
}

/// Creates a token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A name for people.
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
}

/// A token (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// When it was created.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// When it was last used.
    pub last_used_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            role: t.role.to_string(),
            created_at: t.created_at.to_string(),
            created_by: t.created_by.clone(),
            last_used_at: t.last_used_at.map(|t| t.to_string()),
            revoked_at: t.revoked_at.map(|t| t.to_string()),
        }
    }
}

/// A new token with its secret (shown once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    pub token: TokenView,
    /// The secret: send it as `Authorization: Bearer <secret>`. It is not stored and
    /// cannot be shown again.
    pub secret: String,
}

/// All tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// The tokens, revoked ones included.
    pub tokens: Vec<TokenView>,
}

/// Fleet counts.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct SummaryView {
    /// Every agent.
    pub total: u64,
    /// By connection state: `connected`, `disconnected`.
    pub by_connection: BTreeMap<String, u64>,
    /// By transport: `ws`, `http`, `unknown`.
    pub by_transport: BTreeMap<String, u64>,
    /// By sync state.
    pub by_sync_state: BTreeMap<String, u64>,
    /// By health: `healthy`, `unhealthy`, `unknown` (not reported).
    pub by_health: BTreeMap<String, u64>,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Details when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Capability names, as the specification spells them without the enum prefix.
pub fn capability_names(caps: opamp_proto::AgentCapabilities) -> Vec<String> {
    caps.iter_names()
        .map(|(name, _)| {
            name.split('_')
                .map(|w| {
                    let mut c = w.chars();
                    match c.next() {
                        Some(f) => {
                            f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase()
                        }
                        None => String::new(),
                    }
                })
                .collect()
        })
        .collect()
}

/// The list form of an agent.
pub(crate) fn agent_view(
    a: &Agent,
    desired: Option<&Resolved>,
    sync_state: SyncState,
) -> AgentView {
    AgentView {
        instance_uid: a.instance_uid.to_string(),
        connected: a.connected,
        transport: a.transport.map(|t| t.as_str().to_owned()),
        identifying_attributes: serde_json::to_value(&a.description.identifying_attributes)
            .unwrap_or_default(),
        non_identifying_attributes: serde_json::to_value(&a.description.non_identifying_attributes)
            .unwrap_or_default(),
        labels: a.effective_labels(),
        operator_labels: a.labels.clone(),
        health: a.health.clone(),
        remote_config_status: a
            .remote_config_status
            .as_ref()
            .map(|s| RemoteConfigStatusView {
                status: s.status.as_str().to_owned(),
                last_remote_config_hash: hex(&s.last_remote_config_hash),
                error_message: s.error_message.clone(),
            }),
        desired_config_hash: desired.map(|d| d.hash.to_string()),
        desired_config: desired.map(DesiredView::from),
        sync_state,
        capabilities: capability_names(a.capabilities),
        capabilities_bits: a.capabilities.bits(),
        custom_capabilities: a.custom_capabilities.clone(),
        effective_config_hash: a.effective_config_hash.map(|h| h.to_string()),
        package_statuses: a.package_statuses.clone(),
        available_components: a.available_components.clone(),
        first_seen: a.first_seen.to_string(),
        last_seen: a.last_seen.to_string(),
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_follow_the_spec_spelling() {
        let names = capability_names(
            opamp_proto::AgentCapabilities::REPORTS_STATUS
                | opamp_proto::AgentCapabilities::ACCEPTS_REMOTE_CONFIG,
        );
        assert_eq!(names, vec!["ReportsStatus", "AcceptsRemoteConfig"]);
    }
}
