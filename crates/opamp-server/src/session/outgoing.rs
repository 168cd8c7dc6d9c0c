//! Pure functions that shape a `ServerToAgent` before it leaves: capability gating,
//! error exclusivity, command isolation and merging of pending data.
//!
//! Nothing here keeps state; the caller ([`super::ServerSession`]) passes in what it knows
//! about the agent. Never reads the clock, never allocates more than the message needs.

use opamp_proto::v1::{ServerToAgent, ServerToAgentCommand};
use opamp_proto::{AgentCapabilities, InstanceUid, ServerToAgentFlags};

/// Whether `msg` carries anything an agent should act on, beyond `instance_uid` and
/// `capabilities`. A push without content is not sent.
pub(crate) fn has_content(msg: &ServerToAgent) -> bool {
    msg.error_response.is_some()
        || msg.remote_config.is_some()
        || msg.connection_settings.is_some()
        || msg.packages_available.is_some()
        || msg.flags != 0
        || msg.agent_identification.is_some()
        || msg.command.is_some()
        || msg.custom_capabilities.is_some()
        || msg.custom_message.is_some()
}

/// An error reply: only `instance_uid` and `error_response` survive (MSG-7, requirements
/// §4 item 2: an error reply carries no capabilities, even when it is the first reply).
pub(crate) fn error_only(msg: ServerToAgent) -> ServerToAgent {
    ServerToAgent {
        instance_uid: msg.instance_uid,
        error_response: msg.error_response,
        ..Default::default()
    }
}

/// Merges `overlay` into `base`: every sub-message `overlay` sets replaces the one in
/// `base`, flags are OR-ed. Used for the one pending message per HTTP agent (ERR-7) and to
/// lay the application's reply over it.
pub(crate) fn merge(base: &mut ServerToAgent, overlay: ServerToAgent) {
    let ServerToAgent {
        instance_uid: _,
        error_response,
        remote_config,
        connection_settings,
        packages_available,
        flags,
        capabilities: _,
        agent_identification,
        command,
        custom_capabilities,
        custom_message,
    } = overlay;
    if error_response.is_some() {
        base.error_response = error_response;
    }
    if remote_config.is_some() {
        base.remote_config = remote_config;
    }
    if connection_settings.is_some() {
        base.connection_settings = connection_settings;
    }
    if packages_available.is_some() {
        base.packages_available = packages_available;
    }
    base.flags |= flags;
    if agent_identification.is_some() {
        base.agent_identification = agent_identification;
    }
    if command.is_some() {
        base.command = command;
    }
    if custom_capabilities.is_some() {
        base.custom_capabilities = custom_capabilities;
    }
    if custom_message.is_some() {
        base.custom_message = custom_message;
    }
}

/// Removes every offer the agent's capabilities do not allow (CAP-6, CAP-14, CAP-15,
/// CAP-16, PKG-1, OTH-1, CMD-1, RCFG-1), flags this version does not define, flags the
/// agent cannot act on, a `new_instance_uid` that is not 16 bytes (UID-7) and custom
/// messages for a capability the agent has not declared (CUS-3).
pub(crate) fn gate(
    msg: &mut ServerToAgent,
    caps: AgentCapabilities,
    custom_capabilities: Option<&[String]>,
) {
    if !caps.contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG) {
        msg.remote_config = None;
    }
    if !caps.contains(AgentCapabilities::ACCEPTS_PACKAGES) {
        msg.packages_available = None;
    }
    if !caps.contains(AgentCapabilities::ACCEPTS_RESTART_COMMAND) {
        msg.command = None;
    }
    if let Some(cs) = msg.connection_settings.as_mut() {
        if !caps.contains(AgentCapabilities::ACCEPTS_OPAMP_CONNECTION_SETTINGS) {
            cs.opamp = None;
        }
        if !caps.contains(AgentCapabilities::REPORTS_OWN_METRICS) {
            cs.own_metrics = None;
        }
        if !caps.contains(AgentCapabilities::REPORTS_OWN_TRACES) {
            cs.own_traces = None;
        }
        if !caps.contains(AgentCapabilities::REPORTS_OWN_LOGS) {
            cs.own_logs = None;
        }
        if !caps.contains(AgentCapabilities::ACCEPTS_OTHER_CONNECTION_SETTINGS) {
            cs.other_connections.clear();
        }
        if cs.opamp.is_none()
            && cs.own_metrics.is_none()
            && cs.own_traces.is_none()
            && cs.own_logs.is_none()
            && cs.other_connections.is_empty()
        {
            msg.connection_settings = None;
        }
    }
    let mut flags = ServerToAgentFlags::from_wire(msg.flags) & ServerToAgentFlags::all();
    if !caps.contains(AgentCapabilities::REPORTS_AVAILABLE_COMPONENTS) {
        flags.remove(ServerToAgentFlags::REPORT_AVAILABLE_COMPONENTS);
    }
    msg.flags = flags.bits();
    if let Some(id) = msg.agent_identification.as_ref()
        && InstanceUid::from_bytes(&id.new_instance_uid).is_err()
    {
        tracing::warn!(
            len = id.new_instance_uid.len(),
            "dropping new_instance_uid that is not 16 bytes (UID-7)"
        );
        msg.agent_identification = None;
    }
    if let Some(custom) = msg.custom_message.as_ref() {
        let declared = custom_capabilities.is_some_and(|list| list.contains(&custom.capability));
        if !declared {
            msg.custom_message = None;
        }
    }
}

/// Splits off everything but `instance_uid`, `capabilities` and `command` when a command
/// is present (CMD-2, MSG-8). Returns the rest, if it has content, to be sent after.
pub(crate) fn isolate_command(msg: &mut ServerToAgent) -> Option<ServerToAgent> {
    let command: ServerToAgentCommand = msg.command.take()?;
    let rest = std::mem::replace(
        msg,
        ServerToAgent {
            instance_uid: Vec::new(),
            command: Some(command),
            ..Default::default()
        },
    );
    msg.instance_uid.clone_from(&rest.instance_uid);
    msg.capabilities = rest.capabilities;
    let rest = ServerToAgent {
        capabilities: 0,
        ..rest
    };
    has_content(&rest).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opamp_proto::v1::{
        AgentIdentification, AgentRemoteConfig, ConnectionSettingsOffers, CustomMessage,
        OpAmpConnectionSettings, OtherConnectionSettings, PackagesAvailable,
        TelemetryConnectionSettings,
    };

    fn everything() -> ServerToAgent {
        ServerToAgent {
            instance_uid: vec![1; 16],
            remote_config: Some(AgentRemoteConfig::default()),
            connection_settings: Some(ConnectionSettingsOffers {
                hash: vec![1],
                opamp: Some(OpAmpConnectionSettings::default()),
                own_metrics: Some(TelemetryConnectionSettings::default()),
                own_traces: Some(TelemetryConnectionSettings::default()),
                own_logs: Some(TelemetryConnectionSettings::default()),
                other_connections: [("x".to_string(), OtherConnectionSettings::default())]
                    .into_iter()
                    .collect(),
            }),
            packages_available: Some(PackagesAvailable::default()),
            flags: 0xFF,
            command: Some(ServerToAgentCommand { r#type: 0 }),
            custom_message: Some(CustomMessage {
                capability: "io.example.cap".into(),
                ..Default::default()
            }),
            agent_identification: Some(AgentIdentification {
                new_instance_uid: vec![2; 10],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn gate_with_no_capabilities_strips_every_offer_cap_6() {
        let mut msg = everything();
        gate(&mut msg, AgentCapabilities::REPORTS_STATUS, None);
        assert!(msg.remote_config.is_none());
        assert!(msg.connection_settings.is_none());
        assert!(msg.packages_available.is_none());
        assert!(msg.command.is_none());
        assert!(msg.custom_message.is_none());
        assert!(
            msg.agent_identification.is_none(),
            "10-byte uid dropped (UID-7)"
        );
        assert_eq!(msg.flags, ServerToAgentFlags::REPORT_FULL_STATE.bits());
    }

    #[test]
    fn gate_keeps_only_the_connection_settings_parts_allowed_cap_15() {
        let mut msg = everything();
        gate(
            &mut msg,
            AgentCapabilities::REPORTS_STATUS | AgentCapabilities::REPORTS_OWN_METRICS,
            None,
        );
        let cs = msg.connection_settings.unwrap();
        assert!(cs.own_metrics.is_some());
        assert!(cs.opamp.is_none() && cs.own_traces.is_none() && cs.own_logs.is_none());
        assert!(cs.other_connections.is_empty());
    }

    #[test]
    fn command_is_isolated_cmd_2_msg_8() {
        let mut msg = everything();
        msg.capabilities = 1;
        gate(&mut msg, AgentCapabilities::all(), None);
        let rest = isolate_command(&mut msg).unwrap();
        assert_eq!(
            msg,
            ServerToAgent {
                instance_uid: vec![1; 16],
                capabilities: 1,
                command: Some(ServerToAgentCommand { r#type: 0 }),
                ..Default::default()
            }
        );
        assert!(rest.command.is_none() && rest.remote_config.is_some());
        assert_eq!(rest.capabilities, 0);
    }

    #[test]
    fn merge_overlays_and_ors_flags() {
        let mut base = ServerToAgent {
            flags: 1,
            remote_config: Some(AgentRemoteConfig {
                config_hash: vec![1],
                ..Default::default()
            }),
            ..Default::default()
        };
        merge(
            &mut base,
            ServerToAgent {
                flags: 2,
                remote_config: Some(AgentRemoteConfig {
                    config_hash: vec![2],
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        assert_eq!(base.flags, 3);
        assert_eq!(base.remote_config.unwrap().config_hash, vec![2]);
    }
}
