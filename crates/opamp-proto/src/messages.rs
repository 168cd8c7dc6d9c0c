//! Typed accessors and constructors on the generated messages.
//!
//! The generated structs keep the raw wire types (`Vec<u8>`, `u64`). These methods parse
//! them once into this crate's types, so callers do not repeat length checks or bit
//! arithmetic.

use crate::v1::{
    AgentToServer, ServerErrorResponse, ServerErrorResponseType, ServerToAgent,
    server_error_response,
};
use crate::{
    AgentCapabilities, AgentToServerFlags, Error, InstanceUid, ServerCapabilities,
    ServerToAgentFlags,
};

impl AgentToServer {
    /// The instance uid, validated to be 16 bytes (UID-3).
    pub fn instance_uid(&self) -> Result<InstanceUid, Error> {
        InstanceUid::from_bytes(&self.instance_uid)
    }

    /// The capabilities, unknown bits kept.
    pub fn agent_capabilities(&self) -> AgentCapabilities {
        AgentCapabilities::from_wire(self.capabilities)
    }

    /// The flags, unknown bits kept.
    pub fn agent_flags(&self) -> AgentToServerFlags {
        AgentToServerFlags::from_wire(self.flags)
    }

    /// Whether this is the agent's last message (DISC-1). Checks presence: the
    /// `AgentDisconnect` message is empty.
    pub fn is_disconnect(&self) -> bool {
        self.agent_disconnect.is_some()
    }
}

impl ServerToAgent {
    /// The echoed instance uid, validated to be 16 bytes.
    pub fn instance_uid(&self) -> Result<InstanceUid, Error> {
        InstanceUid::from_bytes(&self.instance_uid)
    }

    /// The server capabilities, unknown bits kept. `0` means "unchanged" after the first
    /// message (CAP-8).
    pub fn server_capabilities(&self) -> ServerCapabilities {
        ServerCapabilities::from_wire(self.capabilities)
    }

    /// The flags, unknown bits kept.
    pub fn server_flags(&self) -> ServerToAgentFlags {
        ServerToAgentFlags::from_wire(self.flags)
    }

    /// The new instance uid the server assigned, if any. A value that is not 16 bytes is
    /// an error, and the agent must keep its old uid (UID-7).
    pub fn new_instance_uid(&self) -> Option<Result<InstanceUid, Error>> {
        self.agent_identification
            .as_ref()
            .map(|id| InstanceUid::from_bytes(&id.new_instance_uid))
    }

    /// An error reply: only `instance_uid` and `error_response` are set (MSG-7).
    pub fn error(
        instance_uid: Vec<u8>,
        kind: ServerErrorResponseType,
        message: impl Into<String>,
    ) -> Self {
        ServerToAgent {
            instance_uid,
            error_response: Some(ServerErrorResponse {
                r#type: kind as i32,
                error_message: message.into(),
                details: None,
            }),
            ..Default::default()
        }
    }

    /// An `UNAVAILABLE` error reply with a retry hint (THR-1).
    pub fn unavailable(instance_uid: Vec<u8>, retry_after: std::time::Duration) -> Self {
        let mut msg = Self::error(
            instance_uid,
            ServerErrorResponseType::Unavailable,
            "server unavailable, retry later",
        );
        if let Some(err) = msg.error_response.as_mut() {
            err.details = Some(server_error_response::Details::RetryInfo(
                crate::v1::RetryInfo {
                    retry_after_nanoseconds: u64::try_from(retry_after.as_nanos())
                        .unwrap_or(u64::MAX),
                },
            ));
        }
        msg
    }

    /// Whether the MSG-7 exclusivity rule holds: with `error_response` set, every field
    /// below it is unset.
    pub fn error_exclusivity_holds(&self) -> bool {
        self.error_response.is_none()
            || (self.remote_config.is_none()
                && self.connection_settings.is_none()
                && self.packages_available.is_none()
                && self.flags == 0
                && self.capabilities == 0
                && self.agent_identification.is_none()
                && self.command.is_none()
                && self.custom_capabilities.is_none()
                && self.custom_message.is_none())
    }
}

impl ServerErrorResponse {
    /// The retry hint of an `UNAVAILABLE` error, if given.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.details
            .map(|server_error_response::Details::RetryInfo(info)| {
                std::time::Duration::from_nanos(info.retry_after_nanoseconds)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{AgentIdentification, ServerToAgentCommand};

    #[test]
    fn accessors_parse_once() {
        let msg = AgentToServer {
            instance_uid: vec![9; 16],
            capabilities: 0x3007,
            flags: 1,
            agent_disconnect: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            msg.instance_uid().unwrap(),
            InstanceUid::from_array([9; 16])
        );
        assert!(
            msg.agent_capabilities()
                .contains(AgentCapabilities::REPORTS_HEARTBEAT)
        );
        assert!(
            msg.agent_flags()
                .contains(AgentToServerFlags::REQUEST_INSTANCE_UID)
        );
        assert!(msg.is_disconnect());
        let bad = AgentToServer {
            instance_uid: vec![1; 10],
            ..Default::default()
        };
        assert!(bad.instance_uid().is_err());
    }

    #[test]
    fn ten_byte_new_instance_uid_is_an_error_uid_7() {
        let msg = ServerToAgent {
            agent_identification: Some(AgentIdentification {
                new_instance_uid: vec![1; 10],
            }),
            ..Default::default()
        };
        assert!(matches!(
            msg.new_instance_uid(),
            Some(Err(Error::InstanceUidLength { len: 10 }))
        ));
        assert!(ServerToAgent::default().new_instance_uid().is_none());
    }

    #[test]
    fn error_replies_are_exclusive_msg_7() {
        let err = ServerToAgent::error(vec![1; 16], ServerErrorResponseType::BadRequest, "bad");
        assert!(err.error_exclusivity_holds());
        let mut broken = err.clone();
        broken.command = Some(ServerToAgentCommand { r#type: 0 });
        assert!(!broken.error_exclusivity_holds());
        let unavailable = ServerToAgent::unavailable(vec![], std::time::Duration::from_secs(2));
        let info = unavailable.error_response.as_ref().unwrap();
        assert_eq!(info.retry_after(), Some(std::time::Duration::from_secs(2)));
        assert!(unavailable.error_exclusivity_holds());
    }
}
