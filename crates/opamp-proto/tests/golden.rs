//! The reference byte vectors of `opamp-requirements.md` §1.9, and the fields whose
//! presence (not value) carries meaning.
//!
//! The vectors were produced with `protoc --encode` from the specification's proto files;
//! prost must produce the same bytes, and decode them back to the same message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use opamp_proto::prost::Message;
use opamp_proto::v1::{
    AgentDisconnect, AgentToServer, ComponentHealth, RetryInfo, ServerErrorResponse,
    ServerErrorResponseType, ServerToAgent, ServerToAgentCommand, server_error_response,
};
use opamp_proto::{
    AgentCapabilities, InstanceUid, Limits, ServerCapabilities, ServerToAgentFlags, framing,
};

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.replace(' ', "")).unwrap()
}

fn assert_golden<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, hex_text: &str) {
    let want = bytes(hex_text);
    assert_eq!(
        hex::encode(msg.encode_to_vec()),
        hex::encode(&want),
        "{msg:?}"
    );
    assert_eq!(&M::decode(want.as_slice()).unwrap(), msg);
}

fn status_report() -> AgentToServer {
    let uid: InstanceUid = "018f3a5e-7dec-71d0-a765-00a0c91e6bf6".parse().unwrap();
    AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: 1,
        capabilities: AgentCapabilities::REPORTS_STATUS.bits(),
        ..Default::default()
    }
}

#[test]
fn status_report_bytes() {
    assert_golden(
        &status_report(),
        "0a 10 01 8f 3a 5e 7d ec 71 d0 a7 65 00 a0 c9 1e 6b f6 10 01 20 01",
    );
}

#[test]
fn status_report_as_ws_message_ws_2_ws_3() {
    let frame = framing::encode(&status_report());
    assert_eq!(
        hex::encode(&frame),
        hex::encode(bytes(
            "00 0a 10 01 8f 3a 5e 7d ec 71 d0 a7 65 00 a0 c9 1e 6b f6 10 01 20 01"
        ))
    );
    let back: AgentToServer = framing::decode(&frame, Limits::default()).unwrap();
    assert_eq!(back, status_report());
}

#[test]
fn agent_disconnect_is_an_empty_present_submessage_disc_1() {
    let msg = AgentToServer {
        agent_disconnect: Some(AgentDisconnect {}),
        ..Default::default()
    };
    assert_golden(&msg, "4a 00");
    let decoded = AgentToServer::decode(&bytes("4a 00")[..]).unwrap();
    assert!(decoded.is_disconnect());
    assert!(!AgentToServer::default().is_disconnect());
    assert!(AgentToServer::default().encode_to_vec().is_empty());
}

#[test]
fn restart_command_is_detected_by_presence_cmd_4() {
    let msg = ServerToAgent {
        command: Some(ServerToAgentCommand { r#type: 0 }),
        ..Default::default()
    };
    assert_golden(&msg, "4a 00");
    let decoded = ServerToAgent::decode(&bytes("4a 00")[..]).unwrap();
    let command = decoded.command.expect("the command is present");
    assert_eq!(command.r#type(), opamp_proto::v1::CommandType::Restart);
    assert!(ServerToAgent::decode(&b""[..]).unwrap().command.is_none());
}

#[test]
fn unknown_error_response_is_detected_by_presence() {
    let msg = ServerToAgent {
        error_response: Some(ServerErrorResponse::default()),
        ..Default::default()
    };
    assert_golden(&msg, "12 00");
    let decoded = ServerToAgent::decode(&bytes("12 00")[..]).unwrap();
    let err = decoded
        .error_response
        .expect("present even though type is UNKNOWN (0)");
    assert_eq!(err.r#type(), ServerErrorResponseType::Unknown);
}

#[test]
fn bad_request_error_bytes() {
    let msg = ServerToAgent {
        error_response: Some(ServerErrorResponse {
            r#type: ServerErrorResponseType::BadRequest as i32,
            error_message: "x".into(),
            details: None,
        }),
        ..Default::default()
    };
    assert_golden(&msg, "12 05 08 01 12 01 78");
}

#[test]
fn unavailable_with_retry_info_bytes_thr_1() {
    let msg = ServerToAgent {
        error_response: Some(ServerErrorResponse {
            r#type: ServerErrorResponseType::Unavailable as i32,
            error_message: String::new(),
            details: Some(server_error_response::Details::RetryInfo(RetryInfo {
                retry_after_nanoseconds: 2_000_000_000,
            })),
        }),
        ..Default::default()
    };
    assert_golden(&msg, "12 0a 08 02 1a 06 08 80 a8 d6 b9 07");
    let err = msg.error_response.unwrap();
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(2)));
}

#[test]
fn flags_and_capabilities_bytes() {
    let msg = ServerToAgent {
        flags: ServerToAgentFlags::REPORT_FULL_STATE.bits(),
        capabilities: ServerCapabilities::ACCEPTS_STATUS.bits(),
        ..Default::default()
    };
    assert_golden(&msg, "30 01 38 01");
}

#[test]
fn component_health_times_are_fixed64_hlth_5() {
    let msg = ComponentHealth {
        healthy: true,
        start_time_unix_nano: 1,
        ..Default::default()
    };
    assert_golden(&msg, "08 01 11 01 00 00 00 00 00 00 00");
}

#[test]
fn all_sixteen_agent_capability_bits() {
    let msg = AgentToServer {
        capabilities: AgentCapabilities::all().bits(),
        ..Default::default()
    };
    assert_eq!(msg.capabilities, 0xFFFF);
    assert_golden(&msg, "20 ff ff 03");
}

#[test]
fn unknown_fields_are_ignored_msg_10_iop_2() {
    // The status report followed by field 99 (varint) and field 100 (length-delimited):
    // fields a newer peer might send.
    let mut wire = status_report().encode_to_vec();
    wire.extend(bytes("98 06 2a a2 06 03 61 62 63"));
    let decoded = AgentToServer::decode(wire.as_slice()).unwrap();
    assert_eq!(decoded, status_report());
}

#[test]
fn unknown_enum_values_decode_msg_10() {
    // error_response { type: 7 } — a value this version does not define.
    let decoded = ServerToAgent::decode(&bytes("12 02 08 07")[..]).unwrap();
    let err = decoded.error_response.unwrap();
    assert_eq!(err.r#type, 7);
    assert!(ServerErrorResponseType::try_from(err.r#type).is_err());
}
