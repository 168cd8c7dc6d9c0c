//! The agent's reportable status and the bookkeeping for status compression (SEQ-8..10).
//!
//! Each compressible sub-message is kept whole, with a bit in [`Fields`] saying whether it
//! changed since it was last sent. A message carries whole sub-messages only (SEQ-9).

use opamp_proto::v1;

/// A set of compressible `AgentToServer` sub-messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields(u16);

impl Fields {
    pub(crate) const EMPTY: Fields = Fields(0);
    pub(crate) const DESCRIPTION: Fields = Fields(1 << 0);
    pub(crate) const HEALTH: Fields = Fields(1 << 1);
    pub(crate) const EFFECTIVE_CONFIG: Fields = Fields(1 << 2);
    pub(crate) const REMOTE_CONFIG_STATUS: Fields = Fields(1 << 3);
    pub(crate) const PACKAGE_STATUSES: Fields = Fields(1 << 4);
    pub(crate) const CONNECTION_SETTINGS_STATUS: Fields = Fields(1 << 5);
    pub(crate) const CUSTOM_CAPABILITIES: Fields = Fields(1 << 6);
    pub(crate) const AVAILABLE_COMPONENTS: Fields = Fields(1 << 7);
    pub(crate) const ALL: Fields = Fields(0xFF);

    pub(crate) const fn union(self, other: Fields) -> Fields {
        Fields(self.0 | other.0)
    }
    pub(crate) const fn intersect(self, other: Fields) -> Fields {
        Fields(self.0 & other.0)
    }
    pub(crate) const fn without(self, other: Fields) -> Fields {
        Fields(self.0 & !other.0)
    }
    pub(crate) const fn contains(self, other: Fields) -> bool {
        self.0 & other.0 == other.0
    }
    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Fields {
    type Output = Fields;
    fn bitor(self, rhs: Fields) -> Fields {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for Fields {
    fn bitor_assign(&mut self, rhs: Fields) {
        *self = self.union(rhs);
    }
}

/// Current values of the compressible sub-messages. `None`: never set, never reported.
#[derive(Clone, Debug, Default)]
pub(crate) struct Status {
    pub(crate) description: Option<v1::AgentDescription>,
    pub(crate) health: Option<v1::ComponentHealth>,
    pub(crate) effective_config: Option<v1::EffectiveConfig>,
    pub(crate) remote_config_status: Option<v1::RemoteConfigStatus>,
    pub(crate) package_statuses: Option<v1::PackageStatuses>,
    pub(crate) connection_settings_status: Option<v1::ConnectionSettingsStatus>,
    pub(crate) custom_capabilities: Option<v1::CustomCapabilities>,
    pub(crate) available_components: Option<v1::AvailableComponents>,
}

/// Stores `value` in `slot`; returns whether anything changed.
pub(crate) fn replace<T: PartialEq>(slot: &mut Option<T>, value: T) -> bool {
    if slot.as_ref() == Some(&value) {
        false
    } else {
        *slot = Some(value);
        true
    }
}

impl Status {
    /// The fields that have a value.
    pub(crate) fn present(&self) -> Fields {
        let mut f = Fields::EMPTY;
        let pairs = [
            (self.description.is_some(), Fields::DESCRIPTION),
            (self.health.is_some(), Fields::HEALTH),
            (self.effective_config.is_some(), Fields::EFFECTIVE_CONFIG),
            (
                self.remote_config_status.is_some(),
                Fields::REMOTE_CONFIG_STATUS,
            ),
            (self.package_statuses.is_some(), Fields::PACKAGE_STATUSES),
            (
                self.connection_settings_status.is_some(),
                Fields::CONNECTION_SETTINGS_STATUS,
            ),
            (
                self.custom_capabilities.is_some(),
                Fields::CUSTOM_CAPABILITIES,
            ),
            (
                self.available_components.is_some(),
                Fields::AVAILABLE_COMPONENTS,
            ),
        ];
        for (present, bit) in pairs {
            if present {
                f |= bit;
            }
        }
        f
    }

    /// The names of our custom capabilities.
    pub(crate) fn custom_capability_names(&self) -> &[String] {
        self.custom_capabilities
            .as_ref()
            .map_or(&[], |c| c.capabilities.as_slice())
    }

    /// Copies the selected sub-messages, whole, into `msg`. `AvailableComponents` carries its
    /// full `components` map only when `full_components` (AVC-3..5); otherwise the hash alone.
    pub(crate) fn fill(&self, msg: &mut v1::AgentToServer, fields: Fields, full_components: bool) {
        if fields.contains(Fields::DESCRIPTION) {
            msg.agent_description = self.description.clone();
        }
        if fields.contains(Fields::HEALTH) {
            msg.health = self.health.clone();
        }
        if fields.contains(Fields::EFFECTIVE_CONFIG) {
            msg.effective_config = self.effective_config.clone();
        }
        if fields.contains(Fields::REMOTE_CONFIG_STATUS) {
            msg.remote_config_status = self.remote_config_status.clone();
        }
        if fields.contains(Fields::PACKAGE_STATUSES) {
            msg.package_statuses = self.package_statuses.clone();
        }
        if fields.contains(Fields::CONNECTION_SETTINGS_STATUS) {
            msg.connection_settings_status = self.connection_settings_status.clone();
        }
        if fields.contains(Fields::CUSTOM_CAPABILITIES) {
            msg.custom_capabilities = self.custom_capabilities.clone();
        }
        if fields.contains(Fields::AVAILABLE_COMPONENTS) {
            msg.available_components =
                self.available_components
                    .as_ref()
                    .map(|c| v1::AvailableComponents {
                        hash: c.hash.clone(),
                        components: if full_components {
                            c.components.clone()
                        } else {
                            Default::default()
                        },
                    });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let a = Fields::HEALTH | Fields::DESCRIPTION;
        assert!(a.contains(Fields::HEALTH));
        assert!(!a.contains(Fields::HEALTH | Fields::EFFECTIVE_CONFIG));
        assert_eq!(a.without(Fields::HEALTH), Fields::DESCRIPTION);
        assert_eq!(a.intersect(Fields::HEALTH), Fields::HEALTH);
        assert!(Fields::EMPTY.is_empty());
        assert!(Fields::ALL.contains(Fields::AVAILABLE_COMPONENTS));
    }

    #[test]
    fn replace_reports_changes_only() {
        let mut slot = None;
        assert!(replace(&mut slot, 1));
        assert!(!replace(&mut slot, 1));
        assert!(replace(&mut slot, 2));
    }

    #[test]
    fn available_components_hash_only_unless_asked_avc_3() {
        let mut s = Status::default();
        let mut comps = v1::AvailableComponents {
            hash: vec![1, 2],
            ..Default::default()
        };
        comps
            .components
            .insert("receivers".into(), v1::ComponentDetails::default());
        s.available_components = Some(comps);
        let mut msg = v1::AgentToServer::default();
        s.fill(&mut msg, Fields::ALL, false);
        let sent = msg.available_components.unwrap();
        assert_eq!(sent.hash, vec![1, 2]);
        assert!(sent.components.is_empty());
        let mut msg = v1::AgentToServer::default();
        s.fill(&mut msg, Fields::ALL, true);
        assert_eq!(msg.available_components.unwrap().components.len(), 1);
    }
}
