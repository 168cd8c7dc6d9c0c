//! Who changed what: the actor model and the audit log.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Who makes a change. Every mutating operator call takes one and writes an audit row with
/// it, in the same transaction as the change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// How the actor was authenticated.
    pub kind: ActorKind,
    /// The token name, the user name, or a component name for [`ActorKind::System`].
    pub name: String,
}

/// How an [`Actor`] was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ActorKind {
    /// An admin API bearer token (name = the token's name).
    Token,
    /// The server itself (rollouts, the CLI run on the server host such as
    /// `opampd token create`).
    System,
    /// No authentication: loopback first use without tokens.
    Anonymous,
}

impl Actor {
    /// An actor authenticated by the named token.
    pub fn token(name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Token,
            name: name.into(),
        }
    }

    /// The server itself, naming the component (`"rollout"`, `"cli"`).
    pub fn system(component: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::System,
            name: component.into(),
        }
    }

    /// An unauthenticated local user.
    pub fn anonymous() -> Self {
        Self {
            kind: ActorKind::Anonymous,
            name: "local".to_owned(),
        }
    }
}

impl fmt::Display for Actor {
    /// `token:alice`, `system:rollout`, `anonymous:local`: the form stored in audit rows
    /// and in `author` / `created_by` fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ActorKind::Token => "token",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        };
        write!(f, "{kind}:{}", self.name)
    }
}

/// One audit row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing id.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who (an [`Actor`] in its text form).
    pub actor: String,
    /// What, as `noun.verb` (see [`actions`]).
    pub action: String,
    /// On what, as `kind/key` (`config/web`, `agent/<uid>`, `assignment/3`).
    pub target: String,
    /// Details of the change (JSON object).
    pub details: serde_json::Value,
}

/// Filters for [`crate::Store::list_audit`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    /// Only rows about this target (`config/web`).
    pub target: Option<String>,
    /// Only rows with this action.
    pub action: Option<String>,
}

/// The action names the store writes.
pub mod actions {
    /// A config was created.
    pub const CONFIG_CREATE: &str = "config.create";
    /// A config version was added.
    pub const CONFIG_VERSION_CREATE: &str = "config.version.create";
    /// A config (and its versions) was deleted.
    pub const CONFIG_DELETE: &str = "config.delete";
    /// An assignment was created or replaced.
    pub const ASSIGNMENT_PUT: &str = "assignment.put";
    /// An assignment was deleted.
    pub const ASSIGNMENT_DELETE: &str = "assignment.delete";
    /// A group was created.
    pub const GROUP_CREATE: &str = "group.create";
    /// A group was changed.
    pub const GROUP_UPDATE: &str = "group.update";
    /// A group was deleted.
    pub const GROUP_DELETE: &str = "group.delete";
    /// Labels were set on an agent.
    pub const LABELS_SET: &str = "labels.set";
    /// Labels were removed from an agent.
    pub const LABELS_REMOVE: &str = "labels.remove";
    /// An agent was deleted.
    pub const AGENT_DELETE: &str = "agent.delete";
    /// A command was sent to an agent.
    pub const AGENT_COMMAND: &str = "agent.command";
    /// A token was created.
    pub const TOKEN_CREATE: &str = "token.create";
    /// A token was revoked.
    pub const TOKEN_REVOKE: &str = "token.revoke";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_text_form() {
        assert_eq!(Actor::token("alice").to_string(), "token:alice");
        assert_eq!(Actor::system("rollout").to_string(), "system:rollout");
        assert_eq!(Actor::anonymous().to_string(), "anonymous:local");
    }
}
