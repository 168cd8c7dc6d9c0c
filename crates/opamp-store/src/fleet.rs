//! Groups (named selectors) and assignments (which config version goes where).

use std::fmt;

use opamp_proto::InstanceUid;
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A named selector. The store keeps the selector text as given: parsing and evaluating it
/// is the fleet layer's job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group's name (see [`crate::validate::name`]).
    pub name: String,
    /// A selector in the Kubernetes style (`env=prod,region in (eu,us)`).
    pub selector: String,
    /// Free text for operators.
    #[serde(default)]
    pub description: String,
    /// When it was created.
    #[serde(default)]
    pub created_at: Timestamp,
    /// When it was last changed.
    #[serde(default)]
    pub updated_at: Timestamp,
}

/// What an assignment applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentTarget {
    /// Every agent matching the named group's selector (the group must exist).
    Group(String),
    /// Every agent matching this selector.
    Selector(String),
    /// One agent (it must be known).
    Agent(InstanceUid),
}

impl AssignmentTarget {
    /// `"group"`, `"selector"` or `"agent"`.
    pub fn kind(&self) -> &'static str {
        match self {
            AssignmentTarget::Group(_) => "group",
            AssignmentTarget::Selector(_) => "selector",
            AssignmentTarget::Agent(_) => "agent",
        }
    }

    /// The group name, the selector text or the uid string.
    pub fn value(&self) -> String {
        match self {
            AssignmentTarget::Group(g) => g.clone(),
            AssignmentTarget::Selector(s) => s.clone(),
            AssignmentTarget::Agent(u) => u.to_string(),
        }
    }

    pub(crate) fn from_parts(kind: &str, value: String) -> Option<Self> {
        Some(match kind {
            "group" => AssignmentTarget::Group(value),
            "selector" => AssignmentTarget::Selector(value),
            "agent" => AssignmentTarget::Agent(value.parse().ok()?),
            _ => return None,
        })
    }
}

impl fmt::Display for AssignmentTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.value())
    }
}

/// A config (optionally pinned to one version) assigned to a target. There is at most one
/// assignment per target: assigning again replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Stable id (kept when the assignment for the same target is replaced).
    pub id: i64,
    /// The config's name.
    pub config: String,
    /// A pinned version, or `None` for "always the latest".
    pub version: Option<u64>,
    /// What it applies to.
    pub target: AssignmentTarget,
    /// When it was last set.
    pub created_at: Timestamp,
    /// Who set it (an [`crate::Actor`] in its text form).
    pub author: String,
}

/// An assignment to create or replace with [`crate::Store::put_assignment`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAssignment {
    /// The config's name (it must exist).
    pub config: String,
    /// A version to pin (it must exist), or `None` for the latest.
    #[serde(default)]
    pub version: Option<u64>,
    /// What it applies to.
    pub target: AssignmentTarget,
}
