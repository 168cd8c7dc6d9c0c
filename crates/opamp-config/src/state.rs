//! The configuration state machine of one agent.
//!
//! ```text
//!                  offer(h)                     applied(h)
//!  NotConfigured ───────────► Configuring ──────────────────► Configured
//!                                  │                            │    ▲
//!                                  │ failed(h, err)    offer(h')│    │ applied(h')
//!                                  ▼                            ▼    │
//!                          ConfigurationError ◄──────────── Updating ┘
//!                                  │          failed(h', err)   ▲
//!                                  └────────────────────────────┘
//!                                             offer(h'')
//! ```
//!
//! - `offer` of the hash that is already applied (in `Configured`) or already pending changes
//!   nothing (idempotent, MSG-3).
//! - `applied`/`failed` must name the pending hash; anything else is an error, so a late
//!   report about an older config cannot overwrite the state of a newer one.
//! - A config that failed never becomes the current (last applied) one.
//!
//! The state maps onto `RemoteConfigStatuses` (RCFG-6): `NotConfigured` → UNSET,
//! `Configuring`/`Updating` → APPLYING, `Configured` → APPLIED, `ConfigurationError` → FAILED.

use opamp_proto::v1;
use serde::{Deserialize, Serialize};

use crate::{ConfigHash, Error};

/// The states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigState {
    /// No configuration was ever offered.
    NotConfigured,
    /// The first configuration is being applied.
    Configuring,
    /// The current configuration is applied.
    Configured,
    /// The last configuration offered failed to apply.
    ConfigurationError,
    /// A new configuration is being applied over a previous one.
    Updating,
}

/// What the state machine was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigEvent {
    /// A configuration with this hash was offered and will be applied.
    Offer(ConfigHash),
    /// The configuration with this hash is now in use.
    Applied(ConfigHash),
    /// Applying the configuration with this hash failed.
    Failed(ConfigHash, String),
}

/// The state machine with the hashes it tracks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigStateMachine {
    state: ConfigState,
    /// The configuration being applied (Configuring / Updating) or that failed.
    pending: Option<ConfigHash>,
    /// The last configuration applied successfully.
    current: Option<ConfigHash>,
    /// Why the last configuration failed.
    last_error: Option<String>,
}

impl Default for ConfigStateMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigStateMachine {
    /// A machine in `NotConfigured`.
    pub fn new() -> Self {
        Self {
            state: ConfigState::NotConfigured,
            pending: None,
            current: None,
            last_error: None,
        }
    }

    /// A machine that starts from a configuration applied earlier (e.g. restored from disk).
    pub fn configured(current: ConfigHash) -> Self {
        Self {
            state: ConfigState::Configured,
            pending: None,
            current: Some(current),
            last_error: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ConfigState {
        self.state
    }

    /// The last configuration applied successfully.
    pub fn current(&self) -> Option<ConfigHash> {
        self.current
    }

    /// The configuration being applied, or the one that failed.
    pub fn pending(&self) -> Option<ConfigHash> {
        self.pending
    }

    /// The error of the last failed configuration.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Applies an event; on error the machine is unchanged.
    pub fn handle(&mut self, event: ConfigEvent) -> Result<ConfigState, Error> {
        use ConfigState::*;
        let illegal = |state: ConfigState, event: &ConfigEvent| Error::IllegalTransition {
            state,
            event: format!("{event:?}"),
        };
        match (&self.state, &event) {
            (Configured, ConfigEvent::Offer(h)) if Some(*h) == self.current => {}
            (Configuring | Updating, ConfigEvent::Offer(h)) if Some(*h) == self.pending => {}
            (NotConfigured, ConfigEvent::Offer(h)) => {
                self.state = Configuring;
                self.pending = Some(*h);
            }
            (Configuring, ConfigEvent::Offer(h)) => self.pending = Some(*h),
            (Configured | Updating | ConfigurationError, ConfigEvent::Offer(h)) => {
                self.state = if self.current.is_some() {
                    Updating
                } else {
                    Configuring
                };
                self.pending = Some(*h);
            }
            (Configuring | Updating, ConfigEvent::Applied(h)) => {
                let pending = self.pending.ok_or_else(|| illegal(self.state, &event))?;
                if *h != pending {
                    return Err(Error::HashMismatch { pending, got: *h });
                }
                self.state = Configured;
                self.current = Some(*h);
                self.pending = None;
                self.last_error = None;
            }
            (Configuring | Updating, ConfigEvent::Failed(h, err)) => {
                let pending = self.pending.ok_or_else(|| illegal(self.state, &event))?;
                if *h != pending {
                    return Err(Error::HashMismatch { pending, got: *h });
                }
                self.state = ConfigurationError;
                self.last_error = Some(err.clone());
            }
            (NotConfigured | Configured | ConfigurationError, _) => {
                return Err(illegal(self.state, &event));
            }
        }
        Ok(self.state)
    }

    /// The RemoteConfigStatus an agent reports for this state (RCFG-3, RCFG-6):
    /// `last_remote_config_hash` is the hash of the last config received.
    pub fn remote_config_status(&self) -> v1::RemoteConfigStatus {
        let (status, hash) = match self.state {
            ConfigState::NotConfigured => (v1::RemoteConfigStatuses::Unset, None),
            ConfigState::Configuring | ConfigState::Updating => {
                (v1::RemoteConfigStatuses::Applying, self.pending)
            }
            ConfigState::Configured => (v1::RemoteConfigStatuses::Applied, self.current),
            ConfigState::ConfigurationError => (v1::RemoteConfigStatuses::Failed, self.pending),
        };
        v1::RemoteConfigStatus {
            last_remote_config_hash: hash.map(|h| h.to_vec()).unwrap_or_default(),
            status: status as i32,
            error_message: if self.state == ConfigState::ConfigurationError {
                self.last_error.clone().unwrap_or_default()
            } else {
                String::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(n: u8) -> ConfigHash {
        ConfigHash([n; 32])
    }

    #[test]
    fn happy_path_and_update() {
        let mut m = ConfigStateMachine::new();
        assert_eq!(
            m.remote_config_status().status,
            v1::RemoteConfigStatuses::Unset as i32
        );
        assert_eq!(
            m.handle(ConfigEvent::Offer(h(1))).unwrap(),
            ConfigState::Configuring
        );
        assert_eq!(
            m.remote_config_status().status,
            v1::RemoteConfigStatuses::Applying as i32
        );
        assert_eq!(
            m.handle(ConfigEvent::Applied(h(1))).unwrap(),
            ConfigState::Configured
        );
        let st = m.remote_config_status();
        assert_eq!(st.status, v1::RemoteConfigStatuses::Applied as i32);
        assert_eq!(st.last_remote_config_hash, h(1).to_vec());
        assert_eq!(
            m.handle(ConfigEvent::Offer(h(2))).unwrap(),
            ConfigState::Updating
        );
        assert_eq!(
            m.handle(ConfigEvent::Applied(h(2))).unwrap(),
            ConfigState::Configured
        );
        assert_eq!(m.current(), Some(h(2)));
    }

    #[test]
    fn failure_keeps_the_last_good_config_rcfg_6() {
        let mut m = ConfigStateMachine::configured(h(1));
        m.handle(ConfigEvent::Offer(h(2))).unwrap();
        assert_eq!(
            m.handle(ConfigEvent::Failed(h(2), "bad key".into()))
                .unwrap(),
            ConfigState::ConfigurationError
        );
        assert_eq!(
            m.current(),
            Some(h(1)),
            "a failed config never becomes current"
        );
        let st = m.remote_config_status();
        assert_eq!(st.status, v1::RemoteConfigStatuses::Failed as i32);
        assert_eq!(st.error_message, "bad key");
        assert_eq!(st.last_remote_config_hash, h(2).to_vec());
        // A new offer recovers.
        assert_eq!(
            m.handle(ConfigEvent::Offer(h(3))).unwrap(),
            ConfigState::Updating
        );
    }

    #[test]
    fn repeated_offers_are_idempotent_msg_3() {
        let mut m = ConfigStateMachine::configured(h(1));
        assert_eq!(
            m.handle(ConfigEvent::Offer(h(1))).unwrap(),
            ConfigState::Configured
        );
        m.handle(ConfigEvent::Offer(h(2))).unwrap();
        assert_eq!(
            m.handle(ConfigEvent::Offer(h(2))).unwrap(),
            ConfigState::Updating
        );
    }

    #[test]
    fn stale_and_illegal_events_are_errors_and_change_nothing() {
        let mut m = ConfigStateMachine::new();
        assert!(matches!(
            m.handle(ConfigEvent::Applied(h(1))),
            Err(Error::IllegalTransition {
                state: ConfigState::NotConfigured,
                ..
            })
        ));
        m.handle(ConfigEvent::Offer(h(1))).unwrap();
        let before = m.clone();
        assert!(matches!(
            m.handle(ConfigEvent::Applied(h(9))),
            Err(Error::HashMismatch { .. })
        ));
        assert_eq!(m, before);
        m.handle(ConfigEvent::Applied(h(1))).unwrap();
        assert!(m.handle(ConfigEvent::Failed(h(1), "late".into())).is_err());
        assert_eq!(m.state(), ConfigState::Configured);
    }

    proptest! {
        #[test]
        fn random_event_sequences_keep_invariants(events in proptest::collection::vec((0u8..3, 0u8..4), 0..40)) {
            let mut m = ConfigStateMachine::new();
            for (kind, n) in events {
                let event = match kind {
                    0 => ConfigEvent::Offer(h(n)),
                    1 => ConfigEvent::Applied(h(n)),
                    _ => ConfigEvent::Failed(h(n), "e".into()),
                };
                let before = m.clone();
                match m.handle(event.clone()) {
                    Ok(state) => {
                        prop_assert_eq!(state, m.state());
                        // Only an Applied event can change the current config.
                        if !matches!(event, ConfigEvent::Applied(_)) {
                            prop_assert_eq!(m.current(), before.current());
                        }
                    }
                    Err(_) => prop_assert_eq!(&m, &before),
                }
                // Invariants.
                match m.state() {
                    ConfigState::NotConfigured => prop_assert!(m.current().is_none() && m.pending().is_none()),
                    ConfigState::Configured => prop_assert!(m.current().is_some() && m.pending().is_none()),
                    ConfigState::Configuring => prop_assert!(m.current().is_none() && m.pending().is_some()),
                    ConfigState::Updating => prop_assert!(m.current().is_some() && m.pending().is_some()),
                    ConfigState::ConfigurationError => prop_assert!(m.pending().is_some() && m.last_error().is_some()),
                }
            }
        }
    }
}
