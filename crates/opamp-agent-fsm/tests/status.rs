//! Status reporting: sequence numbers, mandatory fields, compression, full state, uids.

mod common;

use std::time::Duration;

use common::*;
use opamp_agent_fsm::{Event, Transport};
use opamp_proto::{AgentCapabilities as A, AgentToServerFlags, ServerCapabilities as S, v1};

fn everything_set(h: &mut Harness) {
    h.agent.set_agent_description(description("a"));
    h.agent.set_health(health(true));
    h.agent.set_effective_config(effective(b"x: 1"));
    h.agent
        .set_remote_config_status(remote_status(b"h", v1::RemoteConfigStatuses::Applied));
    h.agent.set_package_statuses(packages(b"p"));
    h.agent
        .set_connection_settings_status(v1::ConnectionSettingsStatus {
            last_connection_settings_hash: b"c".to_vec(),
            status: v1::ConnectionSettingsStatuses::Applied as i32,
            error_message: String::new(),
        });
    h.agent
        .set_custom_capabilities(vec!["io.example.cap".into()]);
    h.agent.set_available_components(components(b"ac"));
}

fn all_status_present(m: &v1::AgentToServer) -> bool {
    m.agent_description.is_some()
        && m.health.is_some()
        && m.effective_config.is_some()
        && m.remote_config_status.is_some()
        && m.package_statuses.is_some()
        && m.connection_settings_status.is_some()
        && m.custom_capabilities.is_some()
        && m.available_components.is_some()
}

fn no_status_present(m: &v1::AgentToServer) -> bool {
    m.agent_description.is_none()
        && m.health.is_none()
        && m.effective_config.is_none()
        && m.remote_config_status.is_none()
        && m.package_statuses.is_none()
        && m.connection_settings_status.is_none()
        && m.custom_capabilities.is_none()
        && m.available_components.is_none()
}

#[test]
fn first_message_after_connecting_is_a_full_status_report_seq_1_conn_1() {
    let mut h = Harness::ws(all_caps());
    everything_set(&mut h);
    let first = h.connect();
    assert_eq!(first.len(), 1);
    assert!(all_status_present(&first[0]), "{:?}", first[0]);
    assert!(first[0].agent_disconnect.is_none());
}

#[test]
fn first_message_is_sent_even_with_no_status_set_seq_1() {
    let mut h = Harness::http(A::REPORTS_STATUS);
    let first = h.connect();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].capabilities, A::REPORTS_STATUS.bits());
}

#[test]
fn sequence_numbers_start_at_zero_and_grow_by_one_for_every_message_seq_6() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::REPORTS_HEARTBEAT | A::REPORTS_HEALTH);
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    h.drain();
    h.advance(Duration::from_secs(95)); // three heartbeats
    h.agent.stop(h.now);
    h.drain();
    let seqs: Vec<u64> = h.sent.iter().map(|m| m.sequence_num).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert!(seqs.len() >= 6, "{seqs:?}");
    assert!(h.sent.last().unwrap().agent_disconnect.is_some());
    // Harness::check_invariants asserted uid and capabilities on each (GEN-5, CAP-1, HB-4).
}

#[test]
fn sequence_numbers_continue_across_reconnects_seq_6() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    h.fail(opamp_agent_fsm::TransportError::ConnectionLost {
        reason: "reset".into(),
    });
    let again = h.connect();
    assert_eq!(again[0].sequence_num, 1);
}

#[test]
fn capabilities_are_normalized_cap_2_cap_3() {
    let mut s = settings(Transport::WebSocket, A::from_wire(0x2 | 0x1_0000));
    s.capabilities = A::from_wire(0x2 | 0x1_0000); // no ReportsStatus, one undefined bit
    let mut h = Harness::new(s);
    let first = h.connect();
    assert_eq!(first[0].capabilities, 0x3);
    h.agent
        .set_capabilities(A::from_wire(0x8000_0000_0000_0000));
    let m = h.drain();
    assert_eq!(m[0].capabilities, A::REPORTS_STATUS.bits());
    assert_eq!(h.agent.capabilities(), A::REPORTS_STATUS);
}

#[test]
fn capability_change_is_reported_at_once_cap_4() {
    let mut h = Harness::ws(A::REPORTS_STATUS);
    h.agent.set_health(health(true)); // stored, not reportable yet
    let first = h.establish(hello(all_server_caps()));
    assert!(first.health.is_none(), "no ReportsHealth: no health");
    h.agent
        .set_capabilities(A::REPORTS_STATUS | A::REPORTS_HEALTH);
    let m = h.drain();
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].capabilities,
        (A::REPORTS_STATUS | A::REPORTS_HEALTH).bits()
    );
    assert!(
        m[0].health.is_some(),
        "a newly enabled sub-message is sent whole"
    );
    // The same value again: nothing.
    h.agent
        .set_capabilities(A::REPORTS_STATUS | A::REPORTS_HEALTH);
    assert!(h.drain().is_empty());
}

#[test]
fn unchanged_sub_messages_are_left_out_seq_8_seq_10_desc_7_eff_3_rcfg_7_css_6() {
    let mut h = Harness::ws(all_caps());
    everything_set(&mut h);
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    let m = h.drain();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].health, Some(health(false)));
    let mut rest = m[0].clone();
    rest.health = None;
    assert!(no_status_present(&rest), "only health changed: {rest:?}");
}

#[test]
fn a_changed_sub_message_is_sent_whole_seq_9() {
    let mut h = Harness::ws(all_caps());
    let mut d = description("a");
    d.non_identifying_attributes = description("os").identifying_attributes;
    h.agent.set_agent_description(d.clone());
    h.establish(hello(all_server_caps()));
    d.identifying_attributes = description("b").identifying_attributes;
    h.agent.set_agent_description(d.clone());
    let m = h.drain();
    assert_eq!(
        m[0].agent_description,
        Some(d),
        "both attribute lists, not a delta"
    );
}

#[test]
fn setting_an_equal_value_sends_nothing_desc_7_eff_3() {
    let mut h = Harness::ws(all_caps());
    everything_set(&mut h);
    h.establish(hello(all_server_caps()));
    everything_set(&mut h);
    assert!(h.drain().is_empty());
}

#[test]
fn several_changes_coalesce_into_one_report_err_7() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    h.agent.set_health(health(true));
    h.agent.set_effective_config(effective(b"y"));
    let m = h.drain();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].health, Some(health(true)), "the latest value");
    assert!(m[0].effective_config.is_some());
}

#[test]
fn report_full_state_sends_exactly_the_listed_fields_seq_11_seq_12() {
    let mut h = Harness::ws(all_caps());
    everything_set(&mut h);
    h.establish(hello(all_server_caps()));
    let m = h.reply(v1::ServerToAgent {
        flags: opamp_proto::ServerToAgentFlags::REPORT_FULL_STATE.bits(),
        ..ack()
    });
    assert_eq!(m.len(), 1);
    assert!(all_status_present(&m[0]), "{:?}", m[0]);
    let comps = m[0].available_components.as_ref().unwrap();
    assert_eq!(comps.hash, b"ac".to_vec());
    assert!(
        comps.components.is_empty(),
        "hash only unless asked (AVC-5)"
    );
    assert!(m[0].connection_settings_request.is_none() && m[0].custom_message.is_none());
}

#[test]
fn full_state_includes_only_fields_whose_capability_applies_seq_12() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::REPORTS_EFFECTIVE_CONFIG);
    everything_set(&mut h);
    let first = h.establish(hello(all_server_caps()));
    assert!(first.agent_description.is_some(), "no capability needed");
    assert!(first.custom_capabilities.is_some(), "no capability needed");
    assert!(first.effective_config.is_some());
    assert!(first.health.is_none());
    assert!(first.remote_config_status.is_none());
    assert!(first.package_statuses.is_none());
    assert!(first.connection_settings_status.is_none());
    assert!(first.available_components.is_none(), "AVC-1");
}

#[test]
fn full_state_is_sent_on_every_connection_by_default() {
    let mut h = Harness::ws(all_caps());
    everything_set(&mut h);
    h.establish(hello(all_server_caps()));
    h.fail(opamp_agent_fsm::TransportError::ConnectionLost { reason: "x".into() });
    let again = h.connect();
    assert!(all_status_present(&again[0]));
}

#[test]
fn ws_reconnect_may_omit_unchanged_fields_when_configured_seq_2() {
    let mut s = settings(Transport::WebSocket, all_caps());
    s.full_state_on_reconnect = false;
    let mut h = Harness::new(s);
    everything_set(&mut h);
    h.establish(hello(all_server_caps()));
    h.fail(opamp_agent_fsm::TransportError::ConnectionLost { reason: "x".into() });
    h.agent.set_health(health(false));
    let again = h.connect();
    assert_eq!(again.len(), 1, "still a first status report (SEQ-1)");
    assert_eq!(again[0].health, Some(health(false)));
    let mut rest = again[0].clone();
    rest.health = None;
    assert!(no_status_present(&rest), "{rest:?}");
}

#[test]
fn ws_reconnect_resends_what_got_no_reply_seq_2_err_5() {
    let mut s = settings(Transport::WebSocket, all_caps());
    s.full_state_on_reconnect = false;
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    h.agent.set_effective_config(effective(b"new"));
    assert_eq!(h.drain().len(), 1);
    // The link breaks before the server answered.
    h.fail(opamp_agent_fsm::TransportError::ConnectionLost { reason: "x".into() });
    let again = h.connect();
    assert_eq!(again[0].effective_config, Some(effective(b"new")));
}

#[test]
fn a_pure_acknowledgement_is_never_answered_msg_4_seq_14() {
    for transport in [Transport::WebSocket, Transport::Http] {
        let mut h = Harness::new(settings(transport, all_caps()));
        everything_set(&mut h);
        h.establish(hello(all_server_caps()));
        for _ in 0..5 {
            assert!(h.reply(ack()).is_empty());
            assert!(h.reply(hello(all_server_caps())).is_empty());
        }
    }
}

#[test]
fn repeated_server_messages_are_processed_idempotently_msg_3() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    let offer = v1::ServerToAgent {
        remote_config: Some(v1::AgentRemoteConfig {
            config_hash: vec![1],
            config: None,
        }),
        packages_available: Some(v1::PackagesAvailable {
            all_packages_hash: vec![2],
            ..Default::default()
        }),
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: vec![0x22; 16],
        }),
        ..ack()
    };
    h.reply(offer.clone());
    let first = h.take_events();
    assert_eq!(first.len(), 3, "{first:?}");
    for _ in 0..3 {
        assert!(h.reply(offer.clone()).is_empty());
        assert!(h.take_events().is_empty());
    }
}

#[test]
fn request_instance_uid_flag_is_set_until_a_uid_arrives_uid_4_uid_6() {
    let mut s = settings(Transport::WebSocket, all_caps());
    s.request_instance_uid = true;
    let mut h = Harness::new(s);
    let first = h.connect();
    assert_eq!(
        first[0].flags,
        AgentToServerFlags::REQUEST_INSTANCE_UID.bits()
    );
    let new = [0x42u8; 16];
    let m = h.reply(v1::ServerToAgent {
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: new.to_vec(),
        }),
        ..hello(all_server_caps())
    });
    assert!(m.is_empty(), "a new uid is not a status change");
    assert!(
        h.take_events()
            .iter()
            .any(|e| matches!(e, Event::NewInstanceUid(u) if *u.as_bytes() == new))
    );
    assert_eq!(h.agent.instance_uid().as_bytes(), &new);
    h.agent.set_health(health(false));
    let m = h.drain();
    assert_eq!(
        m[0].instance_uid,
        new.to_vec(),
        "used for all further messages"
    );
    assert_eq!(m[0].flags, 0, "RequestInstanceUid cleared");
}

#[test]
fn new_instance_uid_of_wrong_length_is_ignored_uid_7() {
    for len in [0usize, 10, 15, 17, 26] {
        let mut h = Harness::ws(all_caps());
        h.establish(hello(all_server_caps()));
        let m = h.reply(v1::ServerToAgent {
            agent_identification: Some(v1::AgentIdentification {
                new_instance_uid: vec![9; len],
            }),
            ..ack()
        });
        assert!(m.is_empty());
        assert!(h.take_events().is_empty(), "len {len}");
        assert_eq!(h.agent.instance_uid(), uid());
    }
}

#[test]
fn a_reply_for_another_instance_is_ignored_msg_5() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    let m = h.reply(v1::ServerToAgent {
        instance_uid: vec![0x99; 16],
        remote_config: Some(v1::AgentRemoteConfig::default()),
        ..Default::default()
    });
    assert!(m.is_empty());
    assert!(h.take_events().is_empty());
    // An empty uid is accepted.
    h.reply(v1::ServerToAgent {
        instance_uid: vec![],
        remote_config: Some(v1::AgentRemoteConfig::default()),
        ..Default::default()
    });
    assert!(matches!(h.take_events()[..], [Event::RemoteConfig(_)]));
}

#[test]
fn the_old_uid_is_still_accepted_right_after_a_new_uid_msg_5() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    h.reply(v1::ServerToAgent {
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: vec![0x33; 16],
        }),
        ..ack()
    });
    h.take_events();
    h.reply(v1::ServerToAgent {
        remote_config: Some(v1::AgentRemoteConfig::default()),
        ..ack() // still addressed to the old uid
    });
    assert!(matches!(h.take_events()[..], [Event::RemoteConfig(_)]));
}

#[test]
fn remote_config_flow_reports_status_once_rcfg_3_rcfg_11() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    h.reply(v1::ServerToAgent {
        remote_config: Some(v1::AgentRemoteConfig {
            config_hash: b"h1".to_vec(),
            config: None,
        }),
        ..ack()
    });
    assert!(matches!(h.take_events()[..], [Event::RemoteConfig(_)]));
    // The application applies it and reports.
    h.agent
        .set_remote_config_status(remote_status(b"h1", v1::RemoteConfigStatuses::Applied));
    h.agent.set_effective_config(effective(b"applied"));
    let m = h.drain();
    assert_eq!(m.len(), 1, "one message with both");
    assert_eq!(
        m[0].remote_config_status
            .as_ref()
            .unwrap()
            .last_remote_config_hash,
        b"h1".to_vec()
    );
    assert!(m[0].effective_config.is_some());
    // Applying the same config again changes nothing: nothing is sent.
    h.agent
        .set_remote_config_status(remote_status(b"h1", v1::RemoteConfigStatuses::Applied));
    h.agent.set_effective_config(effective(b"applied"));
    assert!(h.drain().is_empty());
}

#[test]
fn custom_capabilities_are_compressed_cus_1_cus_5() {
    let mut h = Harness::ws(all_caps());
    h.agent.set_custom_capabilities(vec!["io.x.a".into()]);
    let first = h.establish(hello(all_server_caps()));
    assert_eq!(first.custom_capabilities.unwrap().capabilities, ["io.x.a"]);
    h.agent.set_custom_capabilities(vec!["io.x.a".into()]);
    assert!(h.drain().is_empty());
    h.agent.set_custom_capabilities(vec![]);
    let m = h.drain();
    assert_eq!(
        m[0].custom_capabilities,
        Some(v1::CustomCapabilities {
            capabilities: vec![]
        }),
        "an emptied list is sent so it replaces the old one"
    );
}

#[test]
fn custom_messages_go_out_one_per_message_cus_2() {
    let mut s = settings(Transport::WebSocket, all_caps());
    s.custom_capabilities = vec!["io.x.a".into()];
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    let msg = |t: &str| v1::CustomMessage {
        capability: "io.x.a".into(),
        r#type: t.into(),
        data: vec![1],
    };
    h.agent.send_custom_message(msg("one")).unwrap();
    h.agent.send_custom_message(msg("two")).unwrap();
    let m = h.drain();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].custom_message.as_ref().unwrap().r#type, "one");
    assert_eq!(m[1].custom_message.as_ref().unwrap().r#type, "two");
    let err = h
        .agent
        .send_custom_message(v1::CustomMessage {
            capability: "io.other".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(
        err,
        opamp_agent_fsm::Error::CustomCapabilityNotDeclared { .. }
    ));
    for i in 0..opamp_agent_fsm::MAX_PENDING_CUSTOM_MESSAGES {
        h.agent.send_custom_message(msg(&i.to_string())).unwrap();
    }
    assert!(matches!(
        h.agent.send_custom_message(msg("overflow")),
        Err(opamp_agent_fsm::Error::CustomMessageQueueFull { .. })
    ));
}

#[test]
fn server_custom_capabilities_are_tracked_cus_1() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    let cc = v1::ServerToAgent {
        custom_capabilities: Some(v1::CustomCapabilities {
            capabilities: vec!["io.s".into()],
        }),
        ..ack()
    };
    assert!(h.reply(cc.clone()).is_empty());
    assert!(matches!(&h.take_events()[..], [Event::ServerCustomCapabilities(c)] if c == &["io.s"]));
    h.reply(cc);
    assert!(h.take_events().is_empty());
    assert_eq!(
        h.agent.server_custom_capabilities(),
        Some(&["io.s".to_string()][..])
    );
}

#[test]
fn available_components_hash_first_then_full_map_on_request_avc_2_avc_3_avc_4_avc_5() {
    let mut h = Harness::ws(all_caps());
    h.agent.set_available_components(components(b"h1"));
    let first = h.establish(hello(all_server_caps()));
    let c = first.available_components.unwrap();
    assert_eq!(c.hash, b"h1".to_vec());
    assert!(c.components.is_empty(), "AVC-3");
    let m = h.reply(v1::ServerToAgent {
        flags: opamp_proto::ServerToAgentFlags::REPORT_AVAILABLE_COMPONENTS.bits(),
        ..ack()
    });
    assert_eq!(m.len(), 1);
    let c = m[0].available_components.as_ref().unwrap();
    assert_eq!(c.hash, b"h1".to_vec(), "AVC-2: hash always included");
    assert_eq!(c.components.len(), 1, "AVC-4: full map");
    assert!(m[0].health.is_none(), "not a full state");
    // A new set: the hash goes out, the map again only on request (AVC-5, AVC-6).
    h.agent.set_available_components(components(b"h2"));
    let m = h.drain();
    let c = m[0].available_components.as_ref().unwrap();
    assert_eq!(c.hash, b"h2".to_vec());
    assert!(c.components.is_empty());
    h.agent.set_available_components(components(b"h2"));
    assert!(h.drain().is_empty(), "AVC-6: unchanged, left out");
}

#[test]
fn no_available_components_without_the_capability_avc_1() {
    let mut h = Harness::ws(A::REPORTS_STATUS);
    h.agent.set_available_components(components(b"h1"));
    let first = h.establish(hello(all_server_caps()));
    assert!(first.available_components.is_none());
    let m = h.reply(v1::ServerToAgent {
        flags: opamp_proto::ServerToAgentFlags::REPORT_AVAILABLE_COMPONENTS.bits(),
        ..ack()
    });
    assert!(m.is_empty());
}

#[test]
fn health_is_reported_only_with_reports_health_hlth_1_hlth_2() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::REPORTS_HEALTH);
    h.agent.set_health(health(true));
    let first = h.establish(hello(all_server_caps()));
    assert_eq!(first.health, Some(health(true)));
    h.agent.set_health(health(true));
    assert!(h.drain().is_empty(), "HLTH-2: unchanged, left out");
    let mut h = Harness::ws(A::REPORTS_STATUS);
    h.agent.set_health(health(true));
    assert!(h.establish(hello(all_server_caps())).health.is_none());
}

#[test]
fn remote_config_status_needs_reports_remote_config_rcfg_8() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::ACCEPTS_REMOTE_CONFIG);
    h.agent
        .set_remote_config_status(remote_status(b"h", v1::RemoteConfigStatuses::Applied));
    assert!(
        h.establish(hello(all_server_caps()))
            .remote_config_status
            .is_none()
    );
}

#[test]
fn server_capabilities_zero_means_unchanged_cap_8() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(S::ACCEPTS_STATUS | S::ACCEPTS_PACKAGES_STATUS));
    assert_eq!(
        h.agent.server_capabilities(),
        Some(S::ACCEPTS_STATUS | S::ACCEPTS_PACKAGES_STATUS)
    );
    h.reply(ack()); // capabilities 0
    assert_eq!(
        h.agent.server_capabilities(),
        Some(S::ACCEPTS_STATUS | S::ACCEPTS_PACKAGES_STATUS)
    );
    h.agent.set_package_statuses(packages(b"x"));
    assert!(h.drain()[0].package_statuses.is_some());
}

#[test]
fn package_statuses_are_not_sent_to_a_server_without_accepts_packages_status_cap_7_pkg_21() {
    let mut h = Harness::ws(all_caps());
    h.agent.set_package_statuses(packages(b"1"));
    let first = h.establish(hello(S::ACCEPTS_STATUS));
    assert!(
        first.package_statuses.is_some(),
        "unknown server capabilities: sent"
    );
    h.agent.set_package_statuses(packages(b"2"));
    assert!(h.drain().is_empty(), "known and lacking: not sent");
    // The server gains the capability: the current statuses go out whole.
    let m = h.reply(hello(S::ACCEPTS_STATUS | S::ACCEPTS_PACKAGES_STATUS));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].package_statuses, Some(packages(b"2")));
    assert!(
        h.take_events()
            .iter()
            .any(|e| matches!(e, Event::ServerCapabilitiesChanged(_)))
    );
}

#[test]
fn effective_config_is_not_sent_to_a_server_without_accepts_effective_config_cap_7() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(S::ACCEPTS_STATUS));
    h.agent.set_effective_config(effective(b"x"));
    assert!(h.drain().is_empty());
    let m = h.reply(v1::ServerToAgent {
        flags: opamp_proto::ServerToAgentFlags::REPORT_FULL_STATE.bits(),
        ..ack()
    });
    assert!(
        m[0].effective_config.is_none(),
        "not even in the full state"
    );
}

#[test]
fn csr_is_refused_unless_the_server_accepts_it_cap_7_csr_9() {
    let mut h = Harness::ws(all_caps());
    h.drain();
    assert!(matches!(
        h.agent.request_certificate(b"csr".to_vec()),
        Err(opamp_agent_fsm::Error::ServerCapabilitiesUnknown)
    ));
    h.establish(hello(S::ACCEPTS_STATUS));
    let err = h.agent.request_certificate(b"csr".to_vec()).unwrap_err();
    assert!(
        err.to_string().contains("AcceptsConnectionSettingsRequest"),
        "{err}"
    );
    assert!(h.drain().is_empty());
    let mut h = Harness::ws(A::REPORTS_STATUS);
    h.establish(hello(all_server_caps()));
    assert!(matches!(
        h.agent.request_certificate(b"csr".to_vec()),
        Err(opamp_agent_fsm::Error::CapabilityNotDeclared { .. })
    ));
}

#[test]
fn csr_is_sent_once_csr_1_csr_9() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    h.agent
        .request_certificate(b"-----BEGIN CSR".to_vec())
        .unwrap();
    let m = h.drain();
    assert_eq!(m.len(), 1);
    let req = m[0].connection_settings_request.as_ref().unwrap();
    assert_eq!(
        req.opamp
            .as_ref()
            .unwrap()
            .certificate_request
            .as_ref()
            .unwrap()
            .csr,
        b"-----BEGIN CSR".to_vec()
    );
    h.reply(ack());
    h.agent.set_health(health(false));
    let m = h.advance(Duration::from_secs(31));
    assert!(m.iter().all(|m| m.connection_settings_request.is_none()));
}

#[test]
fn compressed_reconnect_after_unavailable_resends_the_goodbye_status_thr_2_seq_2() {
    let mut s = settings(Transport::WebSocket, all_caps());
    s.full_state_on_reconnect = false;
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    h.drain();
    // The server was too busy to process it.
    let m = h.reply(v1::ServerToAgent::unavailable(
        UID.to_vec(),
        Duration::from_secs(31),
    ));
    assert!(m[0].agent_disconnect.is_some());
    h.advance(Duration::from_secs(60));
    let again = h.connect();
    assert_eq!(
        again[0].health,
        Some(health(false)),
        "resumed with what was not processed"
    );
}
