//! Which assignment decides an agent's desired config: the precedence rules, as one pure
//! function over the assignments, the groups and the agent's labels.
//!
//! # Precedence
//!
//! 1. An assignment that targets **the agent itself** (by instance uid) wins over any other.
//! 2. Otherwise, assignments that target a **group** whose selector matches the agent's
//!    labels.
//! 3. Otherwise, assignments that target a **selector** matching the agent's labels.
//!
//! Within one level (several groups, or several selectors, match the same agent) the
//! **newest assignment** wins: the greatest `created_at` (the time it was last set), and for
//! equal times the greatest id. There is at most one assignment per target (assigning again
//! to the same target replaces it and makes it the newest).
//!
//! An agent that matches no assignment has no desired config: the server offers it nothing
//! and its sync state is `unmanaged`. Assignments whose group is missing or whose selector
//! does not parse (both are refused by the admin API, so only a hand-edited database has
//! them) match nothing.
//!
//! This module must never touch the store: the caller passes what it loaded.

use std::collections::{BTreeMap, HashMap};

use opamp_proto::InstanceUid;
use opamp_store::{Assignment, AssignmentTarget};

use crate::selector::Selector;

/// How specific an assignment is; a higher level wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// A selector assignment.
    Selector = 0,
    /// A group assignment.
    Group = 1,
    /// An agent assignment.
    Agent = 2,
}

impl Level {
    /// The level of an assignment target.
    pub fn of(target: &AssignmentTarget) -> Self {
        match target {
            AssignmentTarget::Agent(_) => Level::Agent,
            AssignmentTarget::Group(_) => Level::Group,
            AssignmentTarget::Selector(_) => Level::Selector,
        }
    }
}

/// Assignments prepared for matching: selectors parsed once, agent assignments indexed by
/// uid.
#[derive(Debug, Default, Clone)]
pub struct Resolver {
    by_agent: HashMap<InstanceUid, Assignment>,
    /// Group and selector assignments with their parsed selector.
    by_labels: Vec<(Level, Selector, Assignment)>,
}

impl Resolver {
    /// Prepares `assignments`, looking group selectors up in `groups` (name → selector
    /// text).
    pub fn new(assignments: &[Assignment], groups: &HashMap<String, String>) -> Self {
        let mut r = Resolver::default();
        for a in assignments {
            match &a.target {
                AssignmentTarget::Agent(uid) => {
                    r.by_agent.insert(*uid, a.clone());
                }
                AssignmentTarget::Group(name) => {
                    let Some(text) = groups.get(name) else {
                        tracing::warn!(assignment = a.id, group = %name, "assignment to a missing group ignored");
                        continue;
                    };
                    match Selector::parse(text) {
                        Ok(sel) => r.by_labels.push((Level::Group, sel, a.clone())),
                        Err(e) => {
                            tracing::warn!(group = %name, error = %e, "group selector does not parse: ignored");
                        }
                    }
                }
                AssignmentTarget::Selector(text) => match Selector::parse(text) {
                    Ok(sel) => r.by_labels.push((Level::Selector, sel, a.clone())),
                    Err(e) => {
                        tracing::warn!(assignment = a.id, error = %e, "assignment selector does not parse: ignored");
                    }
                },
            }
        }
        // Most specific first, then newest first: the first match wins.
        r.by_labels.sort_by(|(la, _, a), (lb, _, b)| {
            lb.cmp(la)
                .then(b.created_at.cmp(&a.created_at))
                .then(b.id.cmp(&a.id))
        });
        r
    }

    /// The assignment that decides the desired config of the agent `uid` with `labels`,
    /// if any (see the module docs for the precedence).
    pub fn resolve(
        &self,
        uid: &InstanceUid,
        labels: &BTreeMap<String, String>,
    ) -> Option<&Assignment> {
        if let Some(a) = self.by_agent.get(uid) {
            return Some(a);
        }
        self.by_labels
            .iter()
            .find(|(_, sel, _)| sel.matches(labels))
            .map(|(_, _, a)| a)
    }

    /// True when no assignment exists.
    pub fn is_empty(&self) -> bool {
        self.by_agent.is_empty() && self.by_labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use opamp_store::Timestamp;

    fn a(id: i64, config: &str, target: AssignmentTarget, at: i64) -> Assignment {
        Assignment {
            id,
            config: config.into(),
            version: None,
            target,
            created_at: Timestamp(at),
            author: "test".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn agent_beats_group_beats_selector() {
        let uid = InstanceUid::from_array([7; 16]);
        let other = InstanceUid::from_array([8; 16]);
        let groups: HashMap<String, String> = [("shop".into(), "team=shop".into())].into();
        let all = vec![
            a(
                1,
                "by-selector",
                AssignmentTarget::Selector("team=shop".into()),
                300,
            ),
            a(2, "by-group", AssignmentTarget::Group("shop".into()), 200),
            a(3, "by-agent", AssignmentTarget::Agent(uid), 100),
        ];
        let l = labels(&[("team", "shop")]);
        let r = Resolver::new(&all, &groups);
        assert_eq!(r.resolve(&uid, &l).unwrap().config, "by-agent");
        assert_eq!(r.resolve(&other, &l).unwrap().config, "by-group");
        let r = Resolver::new(&all[..1], &groups);
        assert_eq!(r.resolve(&other, &l).unwrap().config, "by-selector");
        assert!(r.resolve(&other, &labels(&[("team", "ops")])).is_none());
    }

    #[test]
    fn newest_wins_within_a_level_then_highest_id() {
        let uid = InstanceUid::from_array([1; 16]);
        let l = labels(&[("env", "prod"), ("region", "eu")]);
        let all = vec![
            a(1, "old", AssignmentTarget::Selector("env=prod".into()), 100),
            a(
                2,
                "new",
                AssignmentTarget::Selector("region=eu".into()),
                200,
            ),
            a(
                3,
                "same-time-lower-id",
                AssignmentTarget::Selector("env".into()),
                150,
            ),
            a(
                4,
                "same-time-higher-id",
                AssignmentTarget::Selector("region".into()),
                150,
            ),
        ];
        let r = Resolver::new(&all, &HashMap::new());
        assert_eq!(r.resolve(&uid, &l).unwrap().config, "new");
        let r = Resolver::new(&all[2..], &HashMap::new());
        assert_eq!(r.resolve(&uid, &l).unwrap().config, "same-time-higher-id");
    }

    #[test]
    fn broken_targets_match_nothing() {
        let uid = InstanceUid::from_array([1; 16]);
        let all = vec![
            a(1, "x", AssignmentTarget::Group("missing".into()), 1),
            a(2, "y", AssignmentTarget::Selector("a in (".into()), 2),
        ];
        let r = Resolver::new(&all, &HashMap::new());
        assert!(r.resolve(&uid, &labels(&[("a", "b")])).is_none());
    }
}
