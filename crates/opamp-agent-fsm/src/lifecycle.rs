//! The agent lifecycle: a small checked state machine, separate from the protocol session.
//!
//! The session ([`AgentSession`](crate::AgentSession)) knows about messages; this module
//! knows what the *agent* is doing, so that an application (the supervisor) can refuse
//! nonsensical steps, such as finishing an update that never started. It never performs IO.
//!
//! ```text
//!  +--------------+  Connect   +-----------+  Start                    +---------+
//!  | Initializing | ---------> | Connected | ------------------------> |         |
//!  +--------------+            +-----------+                           |         |
//!                                    |  BeginConfiguring               |         |
//!                                    v                                 |         |
//!                             +-------------+   ConfigApplied          |         |
//!                  +--------> | Configuring | -----------------------> |         |
//!                  |          +-------------+                          | Running |
//!  BeginConfiguring|                 | Fail        BeginConfiguring    |         |
//!  (from Running   |                 v           <-------------------- |         |
//!   and Error)     |          +-------------+   Recover                |         |
//!                  +--------- |    Error    | -----------------------> |         |
//!                             +-------------+                          |         |
//!                                 |      ^  Fail                       |         |
//!                      BeginUpdate|      |                BeginUpdate  |         |
//!                                 v      |               <------------ |         |
//!                             +-------------+   UpdateCompleted        |         |
//!                             |  Updating   | -----------------------> |         |
//!                             +-------------+                          +---------+
//!
//!   Fail: from Connected, Configuring, Running and Updating.
//!   Disconnect: from every state except Disconnected  --->  +--------------+
//!   Connect: Disconnected ---> Connected                     | Disconnected |
//!                                                            +--------------+
//! ```
//!
//! The full table (every other pair is illegal and returns [`LifecycleError`] naming the
//! state, the transition and the state it would have led to):
//!
//! | transition         | from                                   | to           |
//! |--------------------|----------------------------------------|--------------|
//! | `Connect`          | Initializing, Disconnected             | Connected    |
//! | `Start`            | Connected                              | Running      |
//! | `BeginConfiguring` | Connected, Running, Error              | Configuring  |
//! | `ConfigApplied`    | Configuring                            | Running      |
//! | `BeginUpdate`      | Running, Error                         | Updating     |
//! | `UpdateCompleted`  | Updating                               | Running      |
//! | `Fail`             | Connected, Configuring, Running, Updating | Error     |
//! | `Recover`          | Error                                  | Running      |
//! | `Disconnect`       | every state except Disconnected        | Disconnected |
//!
//! Every transition has exactly one target state ([`Transition::target`]); the table only
//! decides where it may start.
//!
//! ```
//! use opamp_agent_fsm::lifecycle::{Lifecycle, State, Transition};
//!
//! let mut life = Lifecycle::new();
//! assert_eq!(life.apply(Transition::Connect).unwrap(), State::Connected);
//! assert_eq!(life.apply(Transition::BeginConfiguring).unwrap(), State::Configuring);
//! assert_eq!(life.apply(Transition::ConfigApplied).unwrap(), State::Running);
//! let err = life.apply(Transition::UpdateCompleted).unwrap_err();
//! assert_eq!(err.from, State::Running);
//! assert_eq!(err.to, State::Running);
//! assert_eq!(life.state(), State::Running, "an illegal transition changes nothing");
//! ```

use std::fmt;

/// Where the agent is in its life.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Starting up; never connected yet.
    Initializing,
    /// Connected to the server, not yet running a configuration.
    Connected,
    /// Applying a (new) configuration.
    Configuring,
    /// Running normally.
    Running,
    /// Installing a package / new version.
    Updating,
    /// Something failed; waiting for a new configuration, an update or a recovery.
    Error,
    /// Not connected to the server (after having started).
    Disconnected,
}

impl State {
    /// Every state, in declaration order.
    pub const ALL: [State; 7] = [
        State::Initializing,
        State::Connected,
        State::Configuring,
        State::Running,
        State::Updating,
        State::Error,
        State::Disconnected,
    ];
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A step in the agent's life. Each has exactly one target state.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// The connection to the server is up → Connected.
    Connect,
    /// Run with the local configuration, no remote one needed → Running.
    Start,
    /// A configuration is being applied → Configuring.
    BeginConfiguring,
    /// The configuration was applied → Running.
    ConfigApplied,
    /// A package / version update started → Updating.
    BeginUpdate,
    /// The update finished → Running.
    UpdateCompleted,
    /// Something failed → Error.
    Fail,
    /// Recovered from an error (for example after a rollback) → Running.
    Recover,
    /// The connection to the server is gone → Disconnected.
    Disconnect,
}

impl Transition {
    /// Every transition, in declaration order.
    pub const ALL: [Transition; 9] = [
        Transition::Connect,
        Transition::Start,
        Transition::BeginConfiguring,
        Transition::ConfigApplied,
        Transition::BeginUpdate,
        Transition::UpdateCompleted,
        Transition::Fail,
        Transition::Recover,
        Transition::Disconnect,
    ];

    /// The state this transition leads to.
    pub const fn target(self) -> State {
        match self {
            Transition::Connect => State::Connected,
            Transition::Start
            | Transition::ConfigApplied
            | Transition::UpdateCompleted
            | Transition::Recover => State::Running,
            Transition::BeginConfiguring => State::Configuring,
            Transition::BeginUpdate => State::Updating,
            Transition::Fail => State::Error,
            Transition::Disconnect => State::Disconnected,
        }
    }

    /// Whether this transition may start in `from`.
    pub const fn allowed_from(self, from: State) -> bool {
        use State as S;
        match self {
            Transition::Connect => matches!(from, S::Initializing | S::Disconnected),
            Transition::Start => matches!(from, S::Connected),
            Transition::BeginConfiguring => matches!(from, S::Connected | S::Running | S::Error),
            Transition::ConfigApplied => matches!(from, S::Configuring),
            Transition::BeginUpdate => matches!(from, S::Running | S::Error),
            Transition::UpdateCompleted => matches!(from, S::Updating),
            Transition::Fail => matches!(
                from,
                S::Connected | S::Configuring | S::Running | S::Updating
            ),
            Transition::Recover => matches!(from, S::Error),
            Transition::Disconnect => !matches!(from, S::Disconnected),
        }
    }
}

/// An illegal transition: local misuse of the lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal lifecycle transition {transition:?} from {from} to {to}")]
pub struct LifecycleError {
    /// The state the lifecycle was (and still is) in.
    pub from: State,
    /// The state the transition would have led to.
    pub to: State,
    /// The refused transition.
    pub transition: Transition,
}

/// The agent lifecycle state machine. Starts in [`State::Initializing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    state: State,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A lifecycle in [`State::Initializing`].
    pub fn new() -> Self {
        Self {
            state: State::Initializing,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether `t` is legal now.
    pub fn can_apply(&self, t: Transition) -> bool {
        t.allowed_from(self.state)
    }

    /// Applies `t`, returning the new state, or an error naming from/to; on error the
    /// state is unchanged.
    pub fn apply(&mut self, t: Transition) -> Result<State, LifecycleError> {
        if t.allowed_from(self.state) {
            self.state = t.target();
            Ok(self.state)
        } else {
            Err(LifecycleError {
                from: self.state,
                to: t.target(),
                transition: t,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn happy_path_through_every_state() {
        let mut l = Lifecycle::new();
        for (t, s) in [
            (Transition::Connect, State::Connected),
            (Transition::BeginConfiguring, State::Configuring),
            (Transition::ConfigApplied, State::Running),
            (Transition::BeginUpdate, State::Updating),
            (Transition::Fail, State::Error),
            (Transition::Recover, State::Running),
            (Transition::Disconnect, State::Disconnected),
            (Transition::Connect, State::Connected),
            (Transition::Start, State::Running),
        ] {
            assert_eq!(l.apply(t).unwrap(), s, "{t:?}");
        }
    }

    #[test]
    fn illegal_transition_names_from_and_to() {
        let mut l = Lifecycle::new();
        let err = l.apply(Transition::ConfigApplied).unwrap_err();
        assert_eq!(err.from, State::Initializing);
        assert_eq!(err.to, State::Running);
        let text = err.to_string();
        assert!(
            text.contains("Initializing") && text.contains("Running"),
            "{text}"
        );
        assert_eq!(l.state(), State::Initializing);
        l.apply(Transition::Disconnect).unwrap();
        assert!(l.apply(Transition::Disconnect).is_err());
        assert!(!l.can_apply(Transition::Disconnect));
    }

    #[test]
    fn transition_table_matches_the_docs() {
        use State as S;
        use Transition as T;
        let table: [(Transition, &[State]); 9] = [
            (T::Connect, &[S::Initializing, S::Disconnected]),
            (T::Start, &[S::Connected]),
            (T::BeginConfiguring, &[S::Connected, S::Running, S::Error]),
            (T::ConfigApplied, &[S::Configuring]),
            (T::BeginUpdate, &[S::Running, S::Error]),
            (T::UpdateCompleted, &[S::Updating]),
            (
                T::Fail,
                &[S::Connected, S::Configuring, S::Running, S::Updating],
            ),
            (T::Recover, &[S::Error]),
            (
                T::Disconnect,
                &[
                    S::Initializing,
                    S::Connected,
                    S::Configuring,
                    S::Running,
                    S::Updating,
                    S::Error,
                ],
            ),
        ];
        for (t, froms) in table {
            for s in State::ALL {
                assert_eq!(t.allowed_from(s), froms.contains(&s), "{t:?} from {s:?}");
            }
        }
    }

    #[test]
    fn initializing_is_never_reentered() {
        for from in State::ALL {
            for t in Transition::ALL {
                if t.allowed_from(from) {
                    assert_ne!(t.target(), State::Initializing);
                }
            }
        }
    }

    fn arb_transition() -> impl Strategy<Value = Transition> {
        proptest::sample::select(Transition::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn random_transition_sequences_keep_invariants(ts in proptest::collection::vec(arb_transition(), 0..64)) {
            let mut l = Lifecycle::new();
            let mut left_initializing = false;
            for t in ts {
                let before = l.state();
                match l.apply(t) {
                    Ok(after) => {
                        // A legal step lands on the transition's single target.
                        prop_assert_eq!(after, t.target());
                        prop_assert_eq!(l.state(), after);
                        prop_assert!(t.allowed_from(before));
                        left_initializing = true;
                        // Running is only entered from a state where work was done or recovered.
                        if after == State::Running {
                            prop_assert!(matches!(before, State::Connected | State::Configuring | State::Updating | State::Error));
                        }
                        // Updating never starts while configuring or disconnected.
                        if after == State::Updating {
                            prop_assert!(matches!(before, State::Running | State::Error));
                        }
                    }
                    Err(e) => {
                        // Illegal steps change nothing and say why.
                        prop_assert_eq!(l.state(), before);
                        prop_assert_eq!(e.from, before);
                        prop_assert_eq!(e.to, t.target());
                        prop_assert!(!t.allowed_from(before));
                    }
                }
                if left_initializing {
                    prop_assert_ne!(l.state(), State::Initializing);
                }
            }
        }
    }
}
