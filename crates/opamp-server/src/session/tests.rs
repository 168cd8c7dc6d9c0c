//! In-memory tests of every server-side rule of the session, named after the requirement
//! IDs they prove.

use std::time::{Duration, Instant};

use opamp_proto::ServerToAgentFlags;
use opamp_proto::v1::{
    AgentConfigFile, AgentConfigMap, AgentDescription, AgentDisconnect, AgentRemoteConfig,
    ComponentHealth, ConnectionSettingsOffers, EffectiveConfig, OpAmpConnectionSettings,
    PackagesAvailable, RemoteConfigStatus, ServerErrorResponseType, ServerToAgentCommand,
    TelemetryConnectionSettings,
};

use super::*;

const CONN_A: ConnectionId = ConnectionId(1);
const CONN_B: ConnectionId = ConnectionId(2);

fn uid(n: u8) -> InstanceUid {
    InstanceUid::from_array([n; 16])
}

fn session_with(config: SessionConfig) -> ServerSession {
    let mut next = 0xA0u8;
    ServerSession::new(
        config,
        Box::new(move || {
            next += 1;
            InstanceUid::from_array([next; 16])
        }),
    )
}

fn session() -> ServerSession {
    session_with(SessionConfig::default())
}

fn description(host: &str) -> AgentDescription {
    AgentDescription {
        identifying_attributes: vec![opamp_proto::v1::KeyValue::new("service.name", "test")],
        non_identifying_attributes: vec![opamp_proto::v1::KeyValue::new("host.name", host)],
    }
}

/// A compressed status report (heartbeat): no sub-messages.
fn heartbeat(u: InstanceUid, seq: u64, caps: AgentCapabilities) -> AgentToServer {
    AgentToServer {
        instance_uid: u.to_vec(),
        sequence_num: seq,
        capabilities: caps.bits(),
        ..Default::default()
    }
}

/// A full status report for `caps`.
fn full(u: InstanceUid, seq: u64, caps: AgentCapabilities) -> AgentToServer {
    let mut msg = heartbeat(u, seq, caps);
    msg.agent_description = Some(description("host-1"));
    if caps.contains(AgentCapabilities::REPORTS_HEALTH) {
        msg.health = Some(ComponentHealth::default());
    }
    if caps.contains(AgentCapabilities::REPORTS_EFFECTIVE_CONFIG) {
        msg.effective_config = Some(EffectiveConfig::default());
    }
    if caps.contains(AgentCapabilities::REPORTS_REMOTE_CONFIG) {
        msg.remote_config_status = Some(RemoteConfigStatus::default());
    }
    msg
}

const BASIC: AgentCapabilities = AgentCapabilities::REPORTS_STATUS;
const PYTHON: AgentCapabilities = AgentCapabilities::from_bits_retain(0x3007);

fn accept(s: &mut ServerSession, now: Instant, via: Via, msg: &AgentToServer) -> Inbound {
    match s.receive(now, via, msg) {
        Received::Accepted(inbound) => inbound,
        Received::Rejected(reply) => panic!("rejected: {reply:?}"),
    }
}

/// receive + reply with an empty application reply.
fn exchange(s: &mut ServerSession, now: Instant, via: Via, msg: &AgentToServer) -> ServerToAgent {
    exchange_with(s, now, via, msg, ServerToAgent::default())
}

fn exchange_with(
    s: &mut ServerSession,
    now: Instant,
    via: Via,
    msg: &AgentToServer,
    app: ServerToAgent,
) -> ServerToAgent {
    let inbound = accept(s, now, via, msg);
    let reply = s.reply(now, &inbound, app);
    assert!(reply.follow_up.is_none(), "unexpected follow-up");
    reply.message
}

fn remote_config(body: &str) -> AgentRemoteConfig {
    AgentRemoteConfig {
        config: Some(AgentConfigMap {
            config_map: [(
                String::new(),
                AgentConfigFile {
                    body: body.as_bytes().to_vec(),
                    content_type: "text/yaml".into(),
                },
            )]
            .into_iter()
            .collect(),
        }),
        config_hash: Vec::new(),
    }
}

fn full_state_flag(msg: &ServerToAgent) -> bool {
    msg.server_flags()
        .contains(ServerToAgentFlags::REPORT_FULL_STATE)
}

fn events(s: &mut ServerSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

// ---------------------------------------------------------------------------------------
// MSG-5, CAP-8, CAP-9, MSG-7

#[test]
fn reply_echoes_instance_uid_msg_5() {
    let mut s = session();
    let now = Instant::now();
    let reply = exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    assert_eq!(reply.instance_uid, uid(1).to_vec());
}

#[test]
fn first_reply_carries_capabilities_later_ones_do_not_cap_8() {
    let mut s = session();
    let now = Instant::now();
    let first = exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    assert!(
        first
            .server_capabilities()
            .contains(ServerCapabilities::ACCEPTS_STATUS)
    );
    let second = exchange(&mut s, now, Via::Ws(CONN_A), &heartbeat(uid(1), 1, BASIC));
    assert_eq!(second.capabilities, 0);
    assert_eq!(
        second,
        ServerToAgent {
            instance_uid: uid(1).to_vec(),
            ..Default::default()
        },
        "a reply with nothing to say carries only instance_uid (HTTP-2)"
    );
    // On a new connection the first reply carries them again.
    s.close_connection(now, CONN_A);
    let again = exchange(&mut s, now, Via::Ws(CONN_B), &heartbeat(uid(1), 2, BASIC));
    assert_ne!(again.capabilities, 0);
}

#[test]
fn capabilities_always_accept_status_and_no_undefined_bits_cap_9() {
    let config = SessionConfig {
        capabilities: ServerCapabilities::from_wire(0xF00 | 0x02),
        ..Default::default()
    };
    let mut s = session_with(config);
    let reply = exchange(&mut s, Instant::now(), Via::Http, &full(uid(1), 0, BASIC));
    let caps = reply.server_capabilities();
    assert!(caps.is_valid_to_send(), "{caps:?}");
    assert_eq!(caps.bits(), 0x03);
}

#[test]
fn error_reply_carries_only_uid_and_error_msg_7() {
    let mut s = session();
    let now = Instant::now();
    let mut app = ServerToAgent::unavailable(Vec::new(), Duration::from_secs(5));
    app.remote_config = Some(remote_config("x"));
    app.flags = 1;
    app.command = Some(ServerToAgentCommand::default());
    let caps = BASIC | AgentCapabilities::ACCEPTS_REMOTE_CONFIG;
    let reply = exchange_with(
        &mut s,
        now,
        Via::Ws(CONN_A),
        &heartbeat(uid(1), 0, caps),
        app,
    );
    assert!(reply.error_exclusivity_holds());
    assert_eq!(reply.instance_uid, uid(1).to_vec());
    assert_eq!(
        reply.error_response.as_ref().unwrap().r#type,
        ServerErrorResponseType::Unavailable as i32
    );
    assert!(reply.error_response.unwrap().retry_after().is_some());
}

#[test]
fn first_reply_that_is_an_error_has_no_capabilities_and_the_next_one_has_them() {
    // Requirements §4 item 2.
    let mut s = session();
    let now = Instant::now();
    let err = ServerToAgent::error(Vec::new(), ServerErrorResponseType::BadRequest, "no");
    let first = exchange_with(&mut s, now, Via::Http, &full(uid(1), 0, BASIC), err);
    assert_eq!(first.capabilities, 0);
    let second = exchange(&mut s, now, Via::Http, &heartbeat(uid(1), 1, BASIC));
    assert_ne!(second.capabilities, 0);
}

// ---------------------------------------------------------------------------------------
// SEQ-4, SEQ-7, SEQ-11, SEQ-13, ERR-6

#[test]
fn unknown_agent_with_compressed_message_gets_report_full_state_seq_11_seq_13() {
    let mut s = session();
    let reply = exchange(
        &mut s,
        Instant::now(),
        Via::Ws(CONN_A),
        &heartbeat(uid(1), 42, BASIC),
    );
    assert!(full_state_flag(&reply));
}

#[test]
fn unknown_agent_with_full_report_is_not_asked_seq_13() {
    let mut s = session();
    let reply = exchange(
        &mut s,
        Instant::now(),
        Via::Ws(CONN_A),
        &full(uid(1), 0, PYTHON),
    );
    assert!(!full_state_flag(&reply));
}

#[test]
fn sequence_may_start_at_zero_or_one_seq_6() {
    for start in [0, 1] {
        let mut s = session();
        let now = Instant::now();
        let first = exchange(&mut s, now, Via::Http, &full(uid(1), start, BASIC));
        assert!(!full_state_flag(&first));
        let next = exchange(&mut s, now, Via::Http, &heartbeat(uid(1), start + 1, BASIC));
        assert!(!full_state_flag(&next), "start {start}");
    }
}

#[test]
fn sequence_gap_with_compressed_message_asks_for_full_state_seq_7_seq_11() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, PYTHON));
    let gap = exchange(&mut s, now, Via::Ws(CONN_A), &heartbeat(uid(1), 5, PYTHON));
    assert!(full_state_flag(&gap));
    // The agent answers with its full state: accepted, no new request.
    let answer = exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 6, PYTHON));
    assert!(!full_state_flag(&answer));
}

#[test]
fn sequence_gap_with_full_message_is_not_asked_seq_13() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, PYTHON));
    let reply = exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 9, PYTHON));
    assert!(!full_state_flag(&reply));
}

#[test]
fn never_asks_twice_in_a_row_even_if_the_answer_is_incomplete_seq_13() {
    // An agent that claims ReportsRemoteConfig but never sends remote_config_status.
    let mut s = session();
    let now = Instant::now();
    let mut incomplete = full(uid(1), 0, PYTHON);
    incomplete.remote_config_status = None;
    let first = exchange(&mut s, now, Via::Http, &incomplete);
    assert!(full_state_flag(&first));
    incomplete.sequence_num = 1;
    let second = exchange(&mut s, now, Via::Http, &incomplete);
    assert!(!full_state_flag(&second), "no loop");
    incomplete.sequence_num = 2;
    let third = exchange(&mut s, now, Via::Http, &incomplete);
    assert!(!full_state_flag(&third), "no gap, no request");
}

#[test]
fn repeated_and_backwards_sequence_numbers_are_gaps_never_errors_seq_7() {
    // The Python client resends an encoded payload unchanged.
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Http, &full(uid(1), 0, PYTHON));
    exchange(&mut s, now, Via::Http, &heartbeat(uid(1), 1, PYTHON));
    let repeated = exchange(&mut s, now, Via::Http, &heartbeat(uid(1), 1, PYTHON));
    assert!(repeated.error_response.is_none());
    assert!(full_state_flag(&repeated));
    let answer = exchange(&mut s, now, Via::Http, &full(uid(1), 2, PYTHON));
    assert!(!full_state_flag(&answer));
    let backwards = exchange(&mut s, now, Via::Http, &heartbeat(uid(1), 0, PYTHON));
    assert!(backwards.error_response.is_none());
    assert!(full_state_flag(&backwards));
    // Continuing from the backwards number is fine again.
    let answer = exchange(&mut s, now, Via::Http, &full(uid(1), 1, PYTHON));
    assert!(!full_state_flag(&answer));
    let next = exchange(&mut s, now, Via::Http, &heartbeat(uid(1), 2, PYTHON));
    assert!(!full_state_flag(&next));
}

#[test]
fn sequence_continues_across_ws_reconnect_without_full_state_request_seq_2() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, PYTHON));
    exchange(&mut s, now, Via::Ws(CONN_A), &heartbeat(uid(1), 1, PYTHON));
    s.close_connection(now, CONN_A);
    let reply = exchange(&mut s, now, Via::Ws(CONN_B), &heartbeat(uid(1), 2, PYTHON));
    assert!(!full_state_flag(&reply));
    assert_ne!(reply.capabilities, 0, "new connection, capabilities again");
}

#[test]
fn disconnect_message_never_triggers_full_state() {
    let mut s = session();
    let mut msg = heartbeat(uid(1), 7, PYTHON);
    msg.agent_disconnect = Some(AgentDisconnect {});
    let reply = exchange(&mut s, Instant::now(), Via::Ws(CONN_A), &msg);
    assert!(!full_state_flag(&reply));
}

#[test]
fn duplicate_messages_each_get_a_reply_seq_4_err_6() {
    let mut s = session();
    let now = Instant::now();
    let msg = full(uid(1), 0, BASIC);
    for _ in 0..3 {
        let reply = exchange(&mut s, now, Via::Http, &msg);
        assert_eq!(reply.instance_uid, uid(1).to_vec());
        assert!(reply.error_response.is_none());
    }
}

// ---------------------------------------------------------------------------------------
// Remote config: RCFG-1, RCFG-2, RCFG-4, RCFG-5, CAP-12

const RCFG_CAPS: AgentCapabilities = AgentCapabilities::from_bits_retain(
    AgentCapabilities::REPORTS_STATUS.bits()
        | AgentCapabilities::ACCEPTS_REMOTE_CONFIG.bits()
        | AgentCapabilities::REPORTS_REMOTE_CONFIG.bits(),
);

#[test]
fn no_remote_config_without_accepts_remote_config_rcfg_1_cap_12() {
    let mut s = session();
    let app = ServerToAgent {
        remote_config: Some(remote_config("a")),
        ..Default::default()
    };
    let reply = exchange_with(
        &mut s,
        Instant::now(),
        Via::Http,
        &full(uid(1), 0, BASIC),
        app,
    );
    assert!(reply.remote_config.is_none());
}

#[test]
fn config_hash_is_always_set_rcfg_2() {
    let mut s = session();
    let app = ServerToAgent {
        remote_config: Some(remote_config("a")),
        ..Default::default()
    };
    let reply = exchange_with(
        &mut s,
        Instant::now(),
        Via::Http,
        &full(uid(1), 0, RCFG_CAPS),
        app,
    );
    let rc = reply.remote_config.unwrap();
    assert_eq!(rc.config_hash.len(), 32);
    assert_eq!(rc.config_hash, config_hash(&remote_config("a")));
    assert_ne!(rc.config_hash, config_hash(&remote_config("b")));
}

#[test]
fn remote_config_resent_when_reported_hash_differs_rcfg_4() {
    let mut s = session();
    let now = Instant::now();
    let offer = ServerToAgent {
        remote_config: Some(remote_config("a")),
        ..Default::default()
    };
    let first = exchange_with(
        &mut s,
        now,
        Via::Ws(CONN_A),
        &full(uid(1), 0, RCFG_CAPS),
        offer,
    );
    let hash = first.remote_config.unwrap().config_hash;
    // Heartbeats while the agent applies: not resent.
    let hb = exchange(
        &mut s,
        now,
        Via::Ws(CONN_A),
        &heartbeat(uid(1), 1, RCFG_CAPS),
    );
    assert!(hb.remote_config.is_none());
    // The agent reports another hash (it runs something else): the reply MUST resend.
    let mut report = heartbeat(uid(1), 2, RCFG_CAPS);
    report.remote_config_status = Some(RemoteConfigStatus {
        last_remote_config_hash: b"other".to_vec(),
        ..Default::default()
    });
    let reply = exchange(&mut s, now, Via::Ws(CONN_A), &report);
    assert_eq!(reply.remote_config.unwrap().config_hash, hash);
}

#[test]
fn remote_config_not_resent_when_reported_hash_equal_rcfg_5() {
    let mut s = session();
    let now = Instant::now();
    let offer = || ServerToAgent {
        remote_config: Some(remote_config("a")),
        ..Default::default()
    };
    let first = exchange_with(&mut s, now, Via::Http, &full(uid(1), 0, RCFG_CAPS), offer());
    let hash = first.remote_config.unwrap().config_hash;
    let mut applied = heartbeat(uid(1), 1, RCFG_CAPS);
    applied.remote_config_status = Some(RemoteConfigStatus {
        last_remote_config_hash: hash.clone(),
        status: opamp_proto::v1::RemoteConfigStatuses::Applied as i32,
        error_message: String::new(),
    });
    // Even when the application offers it again in every reply.
    let reply = exchange_with(&mut s, now, Via::Http, &applied, offer());
    assert!(reply.remote_config.is_none());
    let reply = exchange_with(
        &mut s,
        now,
        Via::Http,
        &heartbeat(uid(1), 2, RCFG_CAPS),
        offer(),
    );
    assert!(reply.remote_config.is_none());
    // A new config is sent.
    let changed = ServerToAgent {
        remote_config: Some(remote_config("b")),
        ..Default::default()
    };
    let reply = exchange_with(
        &mut s,
        now,
        Via::Http,
        &heartbeat(uid(1), 3, RCFG_CAPS),
        changed,
    );
    assert_ne!(reply.remote_config.unwrap().config_hash, hash);
}

#[test]
fn agent_restart_with_old_hash_gets_config_again_rcfg_4() {
    let mut s = session();
    let now = Instant::now();
    s.receive(now, Via::Http, &full(uid(1), 0, RCFG_CAPS));
    s.set_desired_config(uid(1), Some(remote_config("a")))
        .unwrap();
    let mut msg = full(uid(1), 1, RCFG_CAPS);
    msg.remote_config_status = Some(RemoteConfigStatus {
        last_remote_config_hash: config_hash(&remote_config("a")),
        ..Default::default()
    });
    assert!(
        exchange(&mut s, now, Via::Http, &msg)
            .remote_config
            .is_none()
    );
    msg.sequence_num = 2;
    msg.remote_config_status = Some(RemoteConfigStatus::default());
    assert!(
        exchange(&mut s, now, Via::Http, &msg)
            .remote_config
            .is_some()
    );
}

#[test]
fn agents_offered_the_same_config_share_one_copy() {
    let mut s = session();
    let now = Instant::now();
    for n in 1..=3 {
        let app = ServerToAgent {
            remote_config: Some(remote_config("shared")),
            ..Default::default()
        };
        exchange_with(&mut s, now, Via::Http, &full(uid(n), 0, RCFG_CAPS), app);
    }
    assert_eq!(s.configs.len(), 1);
    assert_eq!(Arc::strong_count(s.configs.values().next().unwrap()), 4);
}

// ---------------------------------------------------------------------------------------
// Capability gating: CAP-14, PKG-1, CAP-15, OTH-1, CAP-16, CMD-1, CMD-2, MSG-8

#[test]
fn packages_only_with_accepts_packages_cap_14_pkg_1() {
    let mut s = session();
    let now = Instant::now();
    let app = || ServerToAgent {
        packages_available: Some(PackagesAvailable {
            all_packages_hash: vec![1],
            ..Default::default()
        }),
        ..Default::default()
    };
    let without = exchange_with(&mut s, now, Via::Http, &full(uid(1), 0, BASIC), app());
    assert!(without.packages_available.is_none());
    let caps = BASIC | AgentCapabilities::ACCEPTS_PACKAGES;
    let with = exchange_with(&mut s, now, Via::Http, &full(uid(2), 0, caps), app());
    assert!(with.packages_available.is_some());
}

#[test]
fn connection_settings_parts_need_their_bits_cap_15_oth_1() {
    let mut s = session();
    let now = Instant::now();
    let offers = || ServerToAgent {
        connection_settings: Some(ConnectionSettingsOffers {
            hash: vec![7],
            opamp: Some(OpAmpConnectionSettings::default()),
            own_logs: Some(TelemetryConnectionSettings::default()),
            other_connections: [("db".to_string(), Default::default())]
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let none = exchange_with(&mut s, now, Via::Http, &full(uid(1), 0, BASIC), offers());
    assert!(none.connection_settings.is_none());
    let caps = BASIC | AgentCapabilities::REPORTS_OWN_LOGS;
    let logs = exchange_with(&mut s, now, Via::Http, &full(uid(2), 0, caps), offers());
    let cs = logs.connection_settings.unwrap();
    assert!(cs.own_logs.is_some() && cs.opamp.is_none() && cs.other_connections.is_empty());
    let caps = BASIC | AgentCapabilities::ACCEPTS_OTHER_CONNECTION_SETTINGS;
    let other = exchange_with(&mut s, now, Via::Http, &full(uid(3), 0, caps), offers());
    let cs = other.connection_settings.unwrap();
    assert_eq!(cs.other_connections.len(), 1);
    assert!(cs.opamp.is_none());
}

#[test]
fn command_only_with_accepts_restart_command_cap_16_cmd_1() {
    let mut s = session();
    let now = Instant::now();
    let app = || ServerToAgent {
        command: Some(ServerToAgentCommand { r#type: 0 }),
        ..Default::default()
    };
    let without = exchange_with(&mut s, now, Via::Http, &full(uid(1), 0, BASIC), app());
    assert!(without.command.is_none());
    let caps = BASIC | AgentCapabilities::ACCEPTS_RESTART_COMMAND;
    let with = exchange_with(&mut s, now, Via::Http, &full(uid(2), 0, caps), app());
    assert!(with.command.is_some());
}

#[test]
fn command_message_carries_only_command_uid_and_capabilities_cmd_2_msg_8() {
    let mut s = session();
    let now = Instant::now();
    let caps = RCFG_CAPS | AgentCapabilities::ACCEPTS_RESTART_COMMAND;
    // Over WS: the rest follows as a second message.
    let inbound = accept(&mut s, now, Via::Ws(CONN_A), &heartbeat(uid(1), 3, caps));
    let app = ServerToAgent {
        command: Some(ServerToAgentCommand { r#type: 0 }),
        remote_config: Some(remote_config("a")),
        ..Default::default()
    };
    let reply = s.reply(now, &inbound, app.clone());
    let m = &reply.message;
    assert!(m.command.is_some());
    assert_eq!(m.instance_uid, uid(1).to_vec());
    assert!(
        m.remote_config.is_none()
            && m.flags == 0
            && m.connection_settings.is_none()
            && m.agent_identification.is_none()
    );
    let rest = reply.follow_up.unwrap();
    assert!(rest.remote_config.is_some());
    assert!(
        full_state_flag(&rest),
        "unknown agent: full state asked in the follow-up"
    );
    assert!(rest.command.is_none());

    // Over HTTP: the rest waits for the next poll.
    let inbound = accept(&mut s, now, Via::Http, &heartbeat(uid(2), 3, caps));
    let reply = s.reply(now, &inbound, app);
    assert!(reply.follow_up.is_none());
    assert!(reply.message.command.is_some() && reply.message.remote_config.is_none());
    let next = exchange(&mut s, now, Via::Http, &full(uid(2), 4, caps));
    assert!(next.remote_config.is_some());
    assert_eq!(next.instance_uid, uid(2).to_vec());
}

// ---------------------------------------------------------------------------------------
// Instance uids: UID-5, UID-7, UID-8, UID-9, UID-10

#[test]
fn ten_byte_instance_uid_gets_bad_request_and_is_not_registered_uid_10() {
    let mut s = session();
    let msg = AgentToServer {
        instance_uid: vec![1; 10],
        capabilities: 1,
        ..Default::default()
    };
    match s.receive(Instant::now(), Via::Http, &msg) {
        Received::Rejected(reply) => {
            assert_eq!(reply.instance_uid, vec![1; 10]);
            let err = reply.error_response.as_ref().unwrap();
            assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
            assert!(!err.error_message.is_empty());
            assert!(reply.error_exclusivity_holds());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.agent_count(), 0);
}

#[test]
fn missing_instance_uid_gets_bad_request_uid_10() {
    let mut s = session();
    let msg = AgentToServer::default();
    assert!(matches!(
        s.receive(Instant::now(), Via::Ws(CONN_A), &msg),
        Received::Rejected(_)
    ));
    assert_eq!(s.agent_count(), 0);
    assert!(s.connection_agents(CONN_A).is_empty());
}

#[test]
fn request_instance_uid_assigns_a_16_byte_uid_and_echoes_the_old_one_uid_5_uid_7_msg_5() {
    let mut s = session();
    let now = Instant::now();
    let mut msg = full(uid(1), 0, BASIC);
    msg.flags = AgentToServerFlags::REQUEST_INSTANCE_UID.bits();
    let inbound = accept(&mut s, now, Via::Ws(CONN_A), &msg);
    assert_eq!(inbound.assignment, Some(UidAssignment::Requested));
    let reply = s.reply(now, &inbound, ServerToAgent::default()).message;
    assert_eq!(reply.instance_uid, uid(1).to_vec(), "old uid echoed");
    let new = reply.new_instance_uid().unwrap().unwrap();
    assert_eq!(new.as_bytes().len(), 16);
    assert_ne!(new, uid(1));
    assert_eq!(inbound.instance_uid, new);
    assert!(s.agent(&uid(1)).is_none(), "temporary uid not registered");
    // The agent switches; a leftover flag does not assign yet another uid, and the sequence
    // continues.
    let mut next = heartbeat(new, 1, BASIC);
    next.flags = AgentToServerFlags::REQUEST_INSTANCE_UID.bits();
    let reply = exchange(&mut s, now, Via::Ws(CONN_A), &next);
    assert!(reply.agent_identification.is_none());
    assert!(!full_state_flag(&reply));
    assert_eq!(s.connection_agents(CONN_A), &[new]);
}

#[test]
fn request_instance_uid_over_http() {
    let mut s = session();
    let now = Instant::now();
    let mut msg = full(uid(1), 0, BASIC);
    msg.flags = AgentToServerFlags::REQUEST_INSTANCE_UID.bits();
    let reply = exchange(&mut s, now, Via::Http, &msg);
    let new = reply.new_instance_uid().unwrap().unwrap();
    assert_eq!(s.agent(&new).unwrap().attachment, Attachment::Http);
}

#[test]
fn duplicate_uid_with_different_description_gets_new_uid_uid_8() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    let mut clone = full(uid(1), 0, BASIC);
    clone.agent_description = Some(description("cloned-vm"));
    let inbound = accept(&mut s, now, Via::Ws(CONN_B), &clone);
    assert_eq!(inbound.assignment, Some(UidAssignment::Duplicate));
    let reply = s.reply(now, &inbound, ServerToAgent::default()).message;
    assert_eq!(reply.instance_uid, uid(1).to_vec(), "MSG-5: old uid echoed");
    let new = reply.new_instance_uid().unwrap().unwrap();
    assert_ne!(new, uid(1));
    // The holder keeps its uid and connection.
    assert_eq!(s.agent(&uid(1)).unwrap().attachment, Attachment::Ws(CONN_A));
    assert_eq!(s.agent(&new).unwrap().attachment, Attachment::Ws(CONN_B));
    // The newcomer repeating the old uid before switching gets the same new uid.
    clone.sequence_num = 1;
    let again = exchange(&mut s, now, Via::Ws(CONN_B), &clone);
    assert_eq!(again.new_instance_uid().unwrap().unwrap(), new);
    // Once it switched, no more assignment.
    let switched = exchange(&mut s, now, Via::Ws(CONN_B), &heartbeat(new, 2, BASIC));
    assert!(switched.agent_identification.is_none());
    assert!(events(&mut s).is_empty());
}

#[test]
fn same_uid_and_description_on_a_new_connection_is_a_reconnect_uid_9() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    let reply = exchange(&mut s, now, Via::Ws(CONN_B), &full(uid(1), 1, BASIC));
    assert!(reply.agent_identification.is_none());
    assert_eq!(s.agent(&uid(1)).unwrap().attachment, Attachment::Ws(CONN_B));
    assert!(s.connection_agents(CONN_A).is_empty());
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::AgentDisconnected {
            instance_uid: uid(1),
            connection: Some(CONN_A),
            reason: DisconnectReason::Replaced,
        }]
    );
    // Closing the old connection later does not detach the agent from the new one.
    s.close_connection(now, CONN_A);
    assert_eq!(s.agent(&uid(1)).unwrap().attachment, Attachment::Ws(CONN_B));
}

#[test]
fn duplicate_policies_reassign_always_and_ignore_uid_9() {
    let mut config = SessionConfig {
        duplicate_policy: DuplicatePolicy::ReassignAlways,
        ..Default::default()
    };
    let mut s = session_with(config.clone());
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    let reply = exchange(&mut s, now, Via::Ws(CONN_B), &full(uid(1), 1, BASIC));
    assert!(reply.agent_identification.is_some());

    config.duplicate_policy = DuplicatePolicy::Ignore;
    let mut s = session_with(config);
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    let mut other = full(uid(1), 0, BASIC);
    other.agent_description = Some(description("elsewhere"));
    let reply = exchange(&mut s, now, Via::Ws(CONN_B), &other);
    assert!(reply.agent_identification.is_none());
    assert_eq!(s.agent(&uid(1)).unwrap().attachment, Attachment::Ws(CONN_B));
}

#[test]
fn duplicate_across_ws_and_http_is_detected_uid_8() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    let mut clone = full(uid(1), 0, BASIC);
    clone.agent_description = Some(description("http-clone"));
    let reply = exchange(&mut s, now, Via::Http, &clone);
    assert!(reply.agent_identification.is_some());
}

// ---------------------------------------------------------------------------------------
// Disconnects and liveness: DISC-5, DISC-6, MSG-6

#[test]
fn agent_disconnect_forgets_the_association_disc_6() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(2), 0, BASIC));
    let mut bye = heartbeat(uid(1), 1, BASIC);
    bye.agent_disconnect = Some(AgentDisconnect {});
    let reply = exchange(&mut s, now, Via::Ws(CONN_A), &bye);
    assert_eq!(
        reply.instance_uid,
        uid(1).to_vec(),
        "still answered (SEQ-4)"
    );
    assert_eq!(s.connection_agents(CONN_A), &[uid(2)]);
    assert_eq!(s.agent(&uid(1)).unwrap().attachment, Attachment::Detached);
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::AgentDisconnected {
            instance_uid: uid(1),
            connection: Some(CONN_A),
            reason: DisconnectReason::AgentDisconnect,
        }]
    );
    assert!(matches!(
        s.push(now, uid(1), ServerToAgent::default()),
        Err(Error::AgentNotConnected(_))
    ));
}

#[test]
fn closed_connection_forgets_every_agent_on_it_disc_6_msg_6() {
    let mut s = session();
    let now = Instant::now();
    for n in 1..=3 {
        exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(n), 0, BASIC));
    }
    exchange(&mut s, now, Via::Ws(CONN_B), &full(uid(9), 0, BASIC));
    assert_eq!(s.connection_agents(CONN_A).len(), 3);
    s.close_connection(now, CONN_A);
    let evs = events(&mut s);
    assert_eq!(evs.len(), 3);
    assert!(evs.iter().all(|e| matches!(
        e,
        SessionEvent::AgentDisconnected {
            reason: DisconnectReason::ConnectionClosed,
            connection: Some(CONN_A),
            ..
        }
    )));
    for n in 1..=3 {
        assert_eq!(s.agent(&uid(n)).unwrap().attachment, Attachment::Detached);
    }
    assert_eq!(s.agent(&uid(9)).unwrap().attachment, Attachment::Ws(CONN_B));
}

#[test]
fn http_agent_missing_three_polls_is_disconnected_disc_5() {
    let mut s = session();
    let t0 = Instant::now();
    exchange(&mut s, t0, Via::Http, &full(uid(1), 0, BASIC));
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(90));
    s.handle_timeout(t0 + Duration::from_secs(89));
    assert!(events(&mut s).is_empty());
    // A poll in time pushes the deadline.
    let t1 = t0 + Duration::from_secs(60);
    exchange(&mut s, t1, Via::Http, &heartbeat(uid(1), 1, BASIC));
    s.handle_timeout(t0 + Duration::from_secs(100));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(t1 + Duration::from_secs(90));
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::AgentDisconnected {
            instance_uid: uid(1),
            connection: None,
            reason: DisconnectReason::MissedPolls,
        }]
    );
    // Retained, then forgotten.
    assert_eq!(s.agent(&uid(1)).unwrap().attachment, Attachment::Detached);
    s.handle_timeout(t1 + Duration::from_secs(90) + s.config().detached_retention);
    assert!(s.agent(&uid(1)).is_none());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn offered_heartbeat_interval_sets_the_liveness_window_disc_5_http_5() {
    let mut s = session();
    let t0 = Instant::now();
    let caps = BASIC | AgentCapabilities::ACCEPTS_OPAMP_CONNECTION_SETTINGS;
    let app = ServerToAgent {
        connection_settings: Some(ConnectionSettingsOffers {
            hash: vec![1],
            opamp: Some(OpAmpConnectionSettings {
                heartbeat_interval_seconds: 10,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    exchange_with(&mut s, t0, Via::Http, &full(uid(1), 0, caps), app);
    exchange(&mut s, t0, Via::Http, &heartbeat(uid(1), 1, caps));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
}

#[test]
fn ws_agents_have_no_poll_deadline() {
    let mut s = session();
    let t0 = Instant::now();
    exchange(&mut s, t0, Via::Ws(CONN_A), &full(uid(1), 0, BASIC));
    assert_eq!(s.poll_timeout(), None);
    s.close_connection(t0, CONN_A);
    assert_eq!(s.poll_timeout(), Some(t0 + s.config().detached_retention));
}

// ---------------------------------------------------------------------------------------
// Pushes: HTTP-13, ERR-7, RCFG-10

#[test]
fn push_to_http_agent_is_merged_and_delivered_on_next_poll_http_13_err_7() {
    let mut s = session();
    let now = Instant::now();
    let caps = RCFG_CAPS | AgentCapabilities::REPORTS_OWN_METRICS;
    exchange(&mut s, now, Via::Http, &full(uid(1), 0, caps));
    for body in ["a", "b"] {
        let out = s
            .push(
                now,
                uid(1),
                ServerToAgent {
                    remote_config: Some(remote_config(body)),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(out, PushOutcome::Pending);
    }
    s.push(
        now,
        uid(1),
        ServerToAgent {
            connection_settings: Some(ConnectionSettingsOffers {
                own_metrics: Some(TelemetryConnectionSettings::default()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let poll = exchange(&mut s, now, Via::Http, &heartbeat(uid(1), 1, caps));
    assert_eq!(poll.instance_uid, uid(1).to_vec());
    assert_eq!(
        poll.remote_config.unwrap().config_hash,
        config_hash(&remote_config("b")),
        "one pending message, the latest config"
    );
    assert!(poll.connection_settings.is_some());
    let next = exchange(&mut s, now, Via::Http, &heartbeat(uid(1), 2, caps));
    assert!(next.remote_config.is_none() && next.connection_settings.is_none());
}

#[test]
fn push_to_ws_agent_is_sent_now_and_gated_rcfg_10() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, RCFG_CAPS));
    let out = s
        .push(
            now,
            uid(1),
            ServerToAgent {
                remote_config: Some(remote_config("a")),
                command: Some(ServerToAgentCommand::default()),
                ..Default::default()
            },
        )
        .unwrap();
    let PushOutcome::Send { connection, reply } = out else {
        panic!("{out:?}")
    };
    assert_eq!(connection, CONN_A);
    assert_eq!(reply.message.instance_uid, uid(1).to_vec());
    assert!(reply.message.remote_config.is_some());
    assert!(reply.message.command.is_none(), "no AcceptsRestartCommand");
    assert_eq!(
        reply.message.capabilities, 0,
        "first reply already carried them"
    );
    // The same config again: nothing to send (RCFG-5 applies to pushes too).
    let again = s
        .push(
            now,
            uid(1),
            ServerToAgent {
                remote_config: Some(remote_config("a")),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again, PushOutcome::Nothing);
}

#[test]
fn push_to_unknown_agent_is_an_error() {
    let mut s = session();
    assert!(matches!(
        s.push(Instant::now(), uid(5), ServerToAgent::default()),
        Err(Error::UnknownAgent(_))
    ));
}

#[test]
fn broadcast_reaches_every_attached_agent() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Ws(CONN_A), &full(uid(1), 0, RCFG_CAPS));
    exchange(&mut s, now, Via::Http, &full(uid(2), 0, RCFG_CAPS));
    exchange(&mut s, now, Via::Ws(CONN_B), &full(uid(3), 0, BASIC));
    let msg = ServerToAgent {
        remote_config: Some(remote_config("all")),
        ..Default::default()
    };
    let mut out = s.broadcast(now, &msg, |_, _| true);
    out.sort_by_key(|(u, _)| *u);
    assert_eq!(out.len(), 3);
    assert!(matches!(out[0].1, PushOutcome::Send { .. }));
    assert_eq!(out[1].1, PushOutcome::Pending);
    assert_eq!(out[2].1, PushOutcome::Nothing, "no AcceptsRemoteConfig");
}

#[test]
fn unavailable_pushed_to_http_agent_answers_its_next_poll_thr_1() {
    let mut s = session();
    let now = Instant::now();
    exchange(&mut s, now, Via::Http, &full(uid(1), 0, BASIC));
    s.push(
        now,
        uid(1),
        ServerToAgent::unavailable(Vec::new(), Duration::from_secs(30)),
    )
    .unwrap();
    let reply = exchange(&mut s, now, Via::Http, &heartbeat(uid(1), 1, BASIC));
    assert!(reply.error_response.is_some());
    assert!(reply.error_exclusivity_holds());
    assert_eq!(reply.instance_uid, uid(1).to_vec());
}

#[test]
fn custom_message_only_for_declared_custom_capability_cus_3() {
    let mut s = session();
    let now = Instant::now();
    let app = || ServerToAgent {
        custom_message: Some(opamp_proto::v1::CustomMessage {
            capability: "io.example.pause".into(),
            r#type: "pause".into(),
            data: vec![],
        }),
        ..Default::default()
    };
    let without = exchange_with(&mut s, now, Via::Http, &full(uid(1), 0, BASIC), app());
    assert!(without.custom_message.is_none());
    let mut msg = full(uid(2), 0, BASIC);
    msg.custom_capabilities = Some(opamp_proto::v1::CustomCapabilities {
        capabilities: vec!["io.example.pause".into()],
    });
    let with = exchange_with(&mut s, now, Via::Http, &msg, app());
    assert!(with.custom_message.is_some());
}

#[test]
fn capability_change_is_respected_in_later_messages_cap_4() {
    let mut s = session();
    let now = Instant::now();
    let offer = || ServerToAgent {
        remote_config: Some(remote_config("a")),
        ..Default::default()
    };
    let before = exchange_with(&mut s, now, Via::Http, &full(uid(1), 0, BASIC), offer());
    assert!(before.remote_config.is_none());
    let after = exchange_with(
        &mut s,
        now,
        Via::Http,
        &heartbeat(uid(1), 1, BASIC | AgentCapabilities::ACCEPTS_REMOTE_CONFIG),
        offer(),
    );
    assert!(after.remote_config.is_some());
}

// ---------------------------------------------------------------------------------------
// Random event sequences: the session never panics and every reply keeps the invariants.

mod random {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Message {
            via: Option<u8>,
            uid: u8,
            uid_len: usize,
            seq: u64,
            caps: u64,
            flags: u64,
            described: bool,
            host: u8,
            status: Option<u8>,
            disconnect: bool,
            app_config: Option<u8>,
            app_command: bool,
            app_error: bool,
        },
        Push {
            uid: u8,
            config: Option<u8>,
            command: bool,
        },
        Close(u8),
        Advance(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (
                (proptest::option::of(0u8..3), 0u8..4, prop_oneof![9 => Just(16usize), 1 => 0usize..27]),
                (0u64..6, any::<u64>(), 0u64..4, any::<bool>(), 0u8..2),
                (proptest::option::of(0u8..3), any::<bool>(), proptest::option::of(0u8..3), any::<bool>(), prop::bool::weighted(0.1)),
            )
                .prop_map(|((via, uid, uid_len), (seq, caps, flags, described, host), (status, disconnect, app_config, app_command, app_error))| {
                    Step::Message {
                        via,
                        uid,
                        uid_len,
                        seq,
                        caps: caps & 0x1_FFFF,
                        flags,
                        described,
                        host,
                        status,
                        disconnect: disconnect && seq % 3 == 0,
                        app_config,
                        app_command,
                        app_error,
                    }
                }),
            2 => (0u8..4, proptest::option::of(0u8..3), any::<bool>())
                .prop_map(|(uid, config, command)| Step::Push { uid, config, command }),
            1 => (0u8..3).prop_map(Step::Close),
            1 => (0u16..400).prop_map(Step::Advance),
        ]
    }

    fn check_outgoing(msg: &ServerToAgent, caps: AgentCapabilities) {
        assert!(msg.error_exclusivity_holds(), "MSG-7: {msg:?}");
        if msg.capabilities != 0 {
            assert!(
                ServerCapabilities::from_wire(msg.capabilities).is_valid_to_send(),
                "CAP-9"
            );
        }
        if msg.command.is_some() {
            assert!(
                caps.contains(AgentCapabilities::ACCEPTS_RESTART_COMMAND),
                "CMD-1"
            );
            assert!(
                msg.remote_config.is_none() && msg.flags == 0 && msg.connection_settings.is_none(),
                "CMD-2"
            );
        }
        if let Some(rc) = msg.remote_config.as_ref() {
            assert!(
                caps.contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG),
                "RCFG-1"
            );
            assert!(!rc.config_hash.is_empty(), "RCFG-2");
        }
        if let Some(id) = msg.agent_identification.as_ref() {
            assert_eq!(id.new_instance_uid.len(), 16, "UID-7");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_sequences_keep_every_invariant(steps in prop::collection::vec(step(), 1..60)) {
            let mut s = session();
            let mut now = Instant::now();
            for step in steps {
                match step {
                    Step::Message { via, uid: u, uid_len, seq, caps, flags, described, host, status, disconnect, app_config, app_command, app_error } => {
                        let via = via.map_or(Via::Http, |c| Via::Ws(ConnectionId(u64::from(c))));
                        let mut bytes = vec![u + 1; uid_len];
                        if uid_len == 16 { bytes[6] = 0x70; }
                        let caps = AgentCapabilities::from_wire(caps);
                        let msg = AgentToServer {
                            instance_uid: bytes.clone(),
                            sequence_num: seq,
                            capabilities: caps.bits(),
                            flags,
                            agent_description: described.then(|| description(&format!("h{host}"))),
                            remote_config_status: status.map(|h| RemoteConfigStatus {
                                last_remote_config_hash: config_hash(&remote_config(&h.to_string())),
                                ..Default::default()
                            }),
                            agent_disconnect: disconnect.then_some(AgentDisconnect {}),
                            ..Default::default()
                        };
                        match s.receive(now, via, &msg) {
                            Received::Rejected(reply) => {
                                prop_assert_ne!(uid_len, 16);
                                prop_assert_eq!(&reply.instance_uid, &bytes, "MSG-5");
                                prop_assert!(reply.error_response.is_some());
                                check_outgoing(&reply, caps);
                            }
                            Received::Accepted(inbound) => {
                                prop_assert_eq!(uid_len, 16);
                                let app = if app_error {
                                    ServerToAgent::unavailable(Vec::new(), Duration::from_secs(1))
                                } else {
                                    ServerToAgent {
                                        remote_config: app_config.map(|c| remote_config(&c.to_string())),
                                        command: app_command.then(ServerToAgentCommand::default),
                                        ..Default::default()
                                    }
                                };
                                let reply = s.reply(now, &inbound, app);
                                prop_assert_eq!(&reply.message.instance_uid, &bytes, "MSG-5");
                                if via == Via::Http {
                                    prop_assert!(reply.follow_up.is_none());
                                }
                                for m in reply.into_messages() {
                                    check_outgoing(&m, caps);
                                }
                            }
                        }
                    }
                    Step::Push { uid: u, config, command } => {
                        let mut bytes = [u + 1; 16];
                        bytes[6] = 0x70;
                        let target = InstanceUid::from_array(bytes);
                        let caps = s.agent(&target).map(|a| a.capabilities);
                        let msg = ServerToAgent {
                            remote_config: config.map(|c| remote_config(&c.to_string())),
                            command: command.then(ServerToAgentCommand::default),
                            ..Default::default()
                        };
                        if let Ok(PushOutcome::Send { reply, .. }) = s.push(now, target, msg) {
                            let caps = caps.unwrap_or_default();
                            for m in reply.into_messages() {
                                prop_assert_eq!(&m.instance_uid, &target.to_vec());
                                check_outgoing(&m, caps);
                            }
                        }
                    }
                    Step::Close(c) => s.close_connection(now, ConnectionId(u64::from(c))),
                    Step::Advance(secs) => {
                        now += Duration::from_secs(u64::from(secs));
                        s.handle_timeout(now);
                    }
                }
                while s.poll_event().is_some() {}
                // Every uid listed on a connection is attached to it.
                for c in 0..3u64 {
                    for uid in s.connection_agents(ConnectionId(c)).to_vec() {
                        prop_assert_eq!(
                            s.agent(&uid).map(|a| a.attachment),
                            Some(Attachment::Ws(ConnectionId(c)))
                        );
                    }
                }
            }
        }
    }
}
