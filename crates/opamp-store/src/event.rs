//! Agent timelines, commands for agents, and change events for server replicas.

use opamp_proto::InstanceUid;
use serde::{Deserialize, Serialize};

use crate::{AssignmentTarget, Timestamp, Transport};

/// Something that happened to an agent, for its timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentEventKind {
    /// A connection was established (or, for HTTP, the agent started polling).
    Connected {
        /// Its transport.
        transport: Transport,
    },
    /// The connection ended.
    Disconnected,
    /// The agent reported `APPLIED` for a remote config.
    ConfigApplied {
        /// The hash it applied (hex).
        hash: String,
    },
    /// The agent reported `FAILED` for a remote config.
    ConfigFailed {
        /// The hash it failed to apply (hex).
        hash: String,
        /// The agent's error message.
        error: String,
    },
    /// The agent restarted (noticed by the fleet layer, e.g. a new start time).
    Restarted,
    /// A command was queued for the agent.
    CommandSent {
        /// The command.
        command: Command,
    },
    /// Anything else worth showing, in words.
    Note {
        /// The text.
        message: String,
    },
}

impl AgentEventKind {
    /// The `kind` tag as stored (`"connected"`, `"config_failed"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            AgentEventKind::Connected { .. } => "connected",
            AgentEventKind::Disconnected => "disconnected",
            AgentEventKind::ConfigApplied { .. } => "config_applied",
            AgentEventKind::ConfigFailed { .. } => "config_failed",
            AgentEventKind::Restarted => "restarted",
            AgentEventKind::CommandSent { .. } => "command_sent",
            AgentEventKind::Note { .. } => "note",
        }
    }
}

/// One timeline entry. Each agent keeps its newest
/// [`crate::StoreOptions::events_per_agent`] entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEvent {
    /// Increasing id.
    pub id: i64,
    /// The agent.
    pub instance_uid: InstanceUid,
    /// When.
    pub at: Timestamp,
    /// What.
    #[serde(flatten)]
    pub kind: AgentEventKind,
}

/// A command for an agent (`ServerToAgentCommand`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// Restart the agent (`CommandType_Restart`).
    Restart,
}

impl Command {
    /// `"restart"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Restart => "restart",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "restart" => Some(Command::Restart),
            _ => None,
        }
    }
}

/// A command waiting for delivery. It is stored (not kept in replica memory) so that an
/// HTTP agent gets it on its next poll, whichever replica the poll lands on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCommand {
    /// Increasing id.
    pub id: i64,
    /// The agent.
    pub instance_uid: InstanceUid,
    /// The command.
    pub command: Command,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Who queued it.
    pub author: String,
}

/// A committed change that server replicas may need to act on (recompute desired configs,
/// push to the agents they hold). Delivered to every [`crate::Store::subscribe`]r, on every
/// replica when the backend is PostgreSQL (`NOTIFY opamp_changes`), only after the change
/// is committed.
///
/// JSON form: `{"type": "assignment_changed", "id": 3, "target": {"group": "edge"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeEvent {
    /// A new version of a config exists (assignments without a pin now mean it).
    ConfigVersionAdded {
        /// The config.
        config: String,
        /// The new version.
        version: u64,
    },
    /// A config and its versions were deleted.
    ConfigDeleted {
        /// The config.
        config: String,
    },
    /// An assignment was created or replaced.
    AssignmentChanged {
        /// Its id.
        id: i64,
        /// Its target.
        target: AssignmentTarget,
    },
    /// An assignment was deleted.
    AssignmentDeleted {
        /// Its id.
        id: i64,
        /// Its former target.
        target: AssignmentTarget,
    },
    /// A group was created or its selector changed.
    GroupChanged {
        /// The group.
        name: String,
    },
    /// A group was deleted.
    GroupDeleted {
        /// The group.
        name: String,
    },
    /// An agent's operator labels changed.
    LabelsChanged {
        /// The agent.
        instance_uid: InstanceUid,
    },
    /// An agent was deleted.
    AgentDeleted {
        /// The agent.
        instance_uid: InstanceUid,
    },
    /// A command is pending for an agent: the replica holding it should deliver it
    /// (see [`crate::Store::take_pending_commands`]).
    CommandQueued {
        /// The agent.
        instance_uid: InstanceUid,
        /// The command.
        command: Command,
    },
    /// A token was revoked (replicas caching tokens must drop it).
    TokenRevoked {
        /// The token's id.
        id: i64,
    },
    /// Events may have been missed (a slow subscriber, or the PostgreSQL listener
    /// reconnected): reload whatever state you derive from the store.
    Resync,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_event_json_is_tagged_by_type() {
        let e = ChangeEvent::AssignmentChanged {
            id: 3,
            target: AssignmentTarget::Group("edge".into()),
        };
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"type":"assignment_changed","id":3,"target":{"group":"edge"}}"#
        );
        assert_eq!(serde_json::from_str::<ChangeEvent>(&j).unwrap(), e);
        assert_eq!(
            serde_json::to_string(&ChangeEvent::Resync).unwrap(),
            r#"{"type":"resync"}"#
        );
    }

    #[test]
    fn agent_event_json_is_flat() {
        let e = AgentEvent {
            id: 1,
            instance_uid: InstanceUid::from_array([0; 16]),
            at: Timestamp(0),
            kind: AgentEventKind::ConfigFailed {
                hash: "ab".into(),
                error: "boom".into(),
            },
        };
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["kind"], "config_failed");
        assert_eq!(j["error"], "boom");
        assert_eq!(serde_json::from_value::<AgentEvent>(j).unwrap(), e);
    }
}
