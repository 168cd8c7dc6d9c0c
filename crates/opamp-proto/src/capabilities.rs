//! Typed capability and flag bitsets.
//!
//! The wire fields are plain `uint64`s. These types name every bit the specification
//! defines and keep bits they do not know (`from_bits_retain`), so a value read from a
//! newer peer survives a round trip unchanged. Checks for the specification's rules on
//! undefined bits (CAP-2, CAP-9, CAP-10) are explicit methods, never silent masking.

use bitflags::bitflags;

bitflags! {
    /// `AgentToServer.capabilities`: what the agent can do (spec §3.4, enum
    /// `AgentCapabilities`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct AgentCapabilities: u64 {
        /// The agent reports status. Must always be set (CAP-3).
        const REPORTS_STATUS = 0x0001;
        /// The agent accepts remote configuration (CAP-12).
        const ACCEPTS_REMOTE_CONFIG = 0x0002;
        /// The agent reports its effective configuration (CAP-13, EFF-1).
        const REPORTS_EFFECTIVE_CONFIG = 0x0004;
        /// The agent accepts package offers (CAP-14).
        const ACCEPTS_PACKAGES = 0x0008;
        /// The agent reports package statuses.
        const REPORTS_PACKAGE_STATUSES = 0x0010;
        /// The agent sends its own traces to `own_traces`.
        const REPORTS_OWN_TRACES = 0x0020;
        /// The agent sends its own metrics to `own_metrics`.
        const REPORTS_OWN_METRICS = 0x0040;
        /// The agent sends its own logs to `own_logs`.
        const REPORTS_OWN_LOGS = 0x0080;
        /// The agent accepts new OpAMP connection settings.
        const ACCEPTS_OPAMP_CONNECTION_SETTINGS = 0x0100;
        /// The agent accepts settings for other destinations.
        const ACCEPTS_OTHER_CONNECTION_SETTINGS = 0x0200;
        /// The agent accepts the restart command (CAP-16).
        const ACCEPTS_RESTART_COMMAND = 0x0400;
        /// The agent reports health.
        const REPORTS_HEALTH = 0x0800;
        /// The agent reports remote configuration status.
        const REPORTS_REMOTE_CONFIG = 0x1000;
        /// The agent sends heartbeats (WS-9, HB-1).
        const REPORTS_HEARTBEAT = 0x2000;
        /// The agent reports available components (AVC-1).
        const REPORTS_AVAILABLE_COMPONENTS = 0x4000;
        /// The agent reports connection settings status (CSS-1).
        const REPORTS_CONNECTION_SETTINGS_STATUS = 0x8000;
    }
}

bitflags! {
    /// `ServerToAgent.capabilities`: what the server can do (spec §3.4, enum
    /// `ServerCapabilities`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct ServerCapabilities: u64 {
        /// The server accepts status reports. Must always be set (CAP-9).
        const ACCEPTS_STATUS = 0x01;
        /// The server offers remote configuration.
        const OFFERS_REMOTE_CONFIG = 0x02;
        /// The server accepts effective configuration reports.
        const ACCEPTS_EFFECTIVE_CONFIG = 0x04;
        /// The server offers packages.
        const OFFERS_PACKAGES = 0x08;
        /// The server accepts package statuses.
        const ACCEPTS_PACKAGES_STATUS = 0x10;
        /// The server offers connection settings (OPC-1).
        const OFFERS_CONNECTION_SETTINGS = 0x20;
        /// The server accepts connection settings requests such as CSRs (CSR-9).
        const ACCEPTS_CONNECTION_SETTINGS_REQUEST = 0x40;
    }
}

bitflags! {
    /// `AgentToServer.flags` (enum `AgentToServerFlags`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct AgentToServerFlags: u64 {
        /// The agent asks the server for a new instance uid (UID-4).
        const REQUEST_INSTANCE_UID = 0x1;
    }
}

bitflags! {
    /// `ServerToAgent.flags` (enum `ServerToAgentFlags`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct ServerToAgentFlags: u64 {
        /// The agent must send its full state next (SEQ-11, SEQ-12).
        const REPORT_FULL_STATE = 0x1;
        /// The agent must send its full available components next (AVC-4).
        const REPORT_AVAILABLE_COMPONENTS = 0x2;
    }
}

/// Methods shared by the four bitsets.
macro_rules! wire_bits {
    ($ty:ty) => {
        impl $ty {
            /// Reads a wire value, keeping bits this version does not define.
            pub const fn from_wire(bits: u64) -> Self {
                Self::from_bits_retain(bits)
            }

            /// The bits that this version of the specification does not define.
            pub const fn undefined_bits(self) -> u64 {
                self.bits() & !Self::all().bits()
            }
        }

        impl From<u64> for $ty {
            fn from(bits: u64) -> Self {
                Self::from_wire(bits)
            }
        }

        impl From<$ty> for u64 {
            fn from(value: $ty) -> u64 {
                value.bits()
            }
        }
    };
}

wire_bits!(AgentCapabilities);
wire_bits!(ServerCapabilities);
wire_bits!(AgentToServerFlags);
wire_bits!(ServerToAgentFlags);

impl AgentCapabilities {
    /// Whether an agent may send this value: `ReportsStatus` set (CAP-3) and no undefined
    /// bit (CAP-2, CAP-10).
    pub const fn is_valid_to_send(self) -> bool {
        self.contains(Self::REPORTS_STATUS) && self.undefined_bits() == 0
    }
}

impl ServerCapabilities {
    /// Whether a server may send this value: `AcceptsStatus` set and no undefined bit
    /// (CAP-9, CAP-10).
    pub const fn is_valid_to_send(self) -> bool {
        self.contains(Self::ACCEPTS_STATUS) && self.undefined_bits() == 0
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use super::*;

    macro_rules! serde_bits {
        ($ty:ty) => {
            impl serde::Serialize for $ty {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_u64(self.bits())
                }
            }
            impl<'de> serde::Deserialize<'de> for $ty {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    <u64 as serde::Deserialize>::deserialize(d).map(Self::from_wire)
                }
            }
        };
    }
    serde_bits!(AgentCapabilities);
    serde_bits!(ServerCapabilities);
    serde_bits!(AgentToServerFlags);
    serde_bits!(ServerToAgentFlags);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    fn agent_bits_match_the_generated_enum() {
        use v1::AgentCapabilities as E;
        let pairs = [
            (AgentCapabilities::REPORTS_STATUS, E::ReportsStatus),
            (
                AgentCapabilities::ACCEPTS_REMOTE_CONFIG,
                E::AcceptsRemoteConfig,
            ),
            (
                AgentCapabilities::REPORTS_EFFECTIVE_CONFIG,
                E::ReportsEffectiveConfig,
            ),
            (AgentCapabilities::ACCEPTS_PACKAGES, E::AcceptsPackages),
            (
                AgentCapabilities::REPORTS_PACKAGE_STATUSES,
                E::ReportsPackageStatuses,
            ),
            (AgentCapabilities::REPORTS_OWN_TRACES, E::ReportsOwnTraces),
            (AgentCapabilities::REPORTS_OWN_METRICS, E::ReportsOwnMetrics),
            (AgentCapabilities::REPORTS_OWN_LOGS, E::ReportsOwnLogs),
            (
                AgentCapabilities::ACCEPTS_OPAMP_CONNECTION_SETTINGS,
                E::AcceptsOpAmpConnectionSettings,
            ),
            (
                AgentCapabilities::ACCEPTS_OTHER_CONNECTION_SETTINGS,
                E::AcceptsOtherConnectionSettings,
            ),
            (
                AgentCapabilities::ACCEPTS_RESTART_COMMAND,
                E::AcceptsRestartCommand,
            ),
            (AgentCapabilities::REPORTS_HEALTH, E::ReportsHealth),
            (
                AgentCapabilities::REPORTS_REMOTE_CONFIG,
                E::ReportsRemoteConfig,
            ),
            (AgentCapabilities::REPORTS_HEARTBEAT, E::ReportsHeartbeat),
            (
                AgentCapabilities::REPORTS_AVAILABLE_COMPONENTS,
                E::ReportsAvailableComponents,
            ),
            (
                AgentCapabilities::REPORTS_CONNECTION_SETTINGS_STATUS,
                E::ReportsConnectionSettingsStatus,
            ),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours.bits(), theirs as i32 as u64, "{ours:?}");
        }
        assert_eq!(AgentCapabilities::all().bits(), 0xFFFF);
    }

    #[test]
    fn server_bits_match_the_generated_enum() {
        use v1::ServerCapabilities as E;
        let pairs = [
            (ServerCapabilities::ACCEPTS_STATUS, E::AcceptsStatus),
            (
                ServerCapabilities::OFFERS_REMOTE_CONFIG,
                E::OffersRemoteConfig,
            ),
            (
                ServerCapabilities::ACCEPTS_EFFECTIVE_CONFIG,
                E::AcceptsEffectiveConfig,
            ),
            (ServerCapabilities::OFFERS_PACKAGES, E::OffersPackages),
            (
                ServerCapabilities::ACCEPTS_PACKAGES_STATUS,
                E::AcceptsPackagesStatus,
            ),
            (
                ServerCapabilities::OFFERS_CONNECTION_SETTINGS,
                E::OffersConnectionSettings,
            ),
            (
                ServerCapabilities::ACCEPTS_CONNECTION_SETTINGS_REQUEST,
                E::AcceptsConnectionSettingsRequest,
            ),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours.bits(), theirs as i32 as u64, "{ours:?}");
        }
        assert_eq!(ServerCapabilities::all().bits(), 0x7F);
        assert_eq!(
            AgentToServerFlags::REQUEST_INSTANCE_UID.bits(),
            v1::AgentToServerFlags::RequestInstanceUid as i32 as u64
        );
        assert_eq!(
            ServerToAgentFlags::REPORT_FULL_STATE.bits(),
            v1::ServerToAgentFlags::ReportFullState as i32 as u64
        );
        assert_eq!(
            ServerToAgentFlags::REPORT_AVAILABLE_COMPONENTS.bits(),
            v1::ServerToAgentFlags::ReportAvailableComponents as i32 as u64
        );
    }

    #[test]
    fn unknown_bits_are_preserved() {
        let wire = 0x1_0000 | 0x8000_0000_0000_0000 | 0x3007;
        let caps = AgentCapabilities::from_wire(wire);
        assert_eq!(caps.bits(), wire);
        assert_eq!(caps.undefined_bits(), 0x1_0000 | 0x8000_0000_0000_0000);
        assert!(caps.contains(AgentCapabilities::REPORTS_HEARTBEAT));
        let server = ServerCapabilities::from_wire(0x80 | 0x1);
        assert_eq!(server.bits(), 0x81);
        assert_eq!(server.undefined_bits(), 0x80);
        assert_eq!(ServerToAgentFlags::from(0x4u64).undefined_bits(), 0x4);
    }

    #[test]
    fn send_validity_cap_2_cap_3_cap_9() {
        assert!(AgentCapabilities::from_wire(0x3007).is_valid_to_send());
        assert!(
            !AgentCapabilities::ACCEPTS_REMOTE_CONFIG.is_valid_to_send(),
            "ReportsStatus missing"
        );
        assert!(
            !AgentCapabilities::from_wire(0x1_0001).is_valid_to_send(),
            "undefined bit"
        );
        assert!(ServerCapabilities::ACCEPTS_STATUS.is_valid_to_send());
        assert!(!ServerCapabilities::OFFERS_REMOTE_CONFIG.is_valid_to_send());
        assert!(!ServerCapabilities::from_wire(0x81).is_valid_to_send());
    }
}
