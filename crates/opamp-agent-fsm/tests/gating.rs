//! Capability gating of everything the server offers (CAP-5, CAP-11..16), commands, custom
//! messages, unknown values.

mod common;

use common::*;
use opamp_agent_fsm::Event;
use opamp_proto::{AgentCapabilities as A, v1};

fn offer_everything() -> v1::ServerToAgent {
    let telemetry = || v1::TelemetryConnectionSettings {
        destination_endpoint: "https://otlp.example/v1/metrics".into(),
        ..Default::default()
    };
    let mut other = std::collections::BTreeMap::new();
    other.insert(
        "exporter".to_string(),
        v1::OtherConnectionSettings {
            destination_endpoint: "host:1".into(),
            ..Default::default()
        },
    );
    v1::ServerToAgent {
        remote_config: Some(v1::AgentRemoteConfig {
            config_hash: vec![1],
            config: None,
        }),
        packages_available: Some(v1::PackagesAvailable {
            all_packages_hash: vec![2],
            ..Default::default()
        }),
        connection_settings: Some(v1::ConnectionSettingsOffers {
            hash: vec![3],
            opamp: None,
            own_metrics: Some(telemetry()),
            own_traces: Some(telemetry()),
            own_logs: Some(telemetry()),
            other_connections: other,
        }),
        ..ack()
    }
}

#[test]
fn nothing_is_offered_to_an_agent_that_declared_nothing_cap_5_cap_11() {
    let mut h = Harness::ws(A::REPORTS_STATUS);
    h.establish(hello(all_server_caps()));
    let m = h.reply(offer_everything());
    assert!(m.is_empty());
    assert!(h.take_events().is_empty());
}

#[test]
fn remote_config_needs_accepts_remote_config_cap_12_rcfg_1() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::ACCEPTS_REMOTE_CONFIG);
    h.establish(hello(all_server_caps()));
    h.reply(offer_everything());
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::RemoteConfig(rc)] if rc.config_hash == [1]),
        "{ev:?}"
    );
}

#[test]
fn packages_need_accepts_packages_cap_14_pkg_1() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::ACCEPTS_PACKAGES);
    h.establish(hello(all_server_caps()));
    h.reply(offer_everything());
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::PackagesAvailable(p)] if p.all_packages_hash == [2]),
        "{ev:?}"
    );
}

#[test]
fn own_telemetry_offers_are_gated_per_signal_cap_15_own_2() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::REPORTS_OWN_METRICS | A::REPORTS_OWN_LOGS);
    h.establish(hello(all_server_caps()));
    h.reply(offer_everything());
    let ev = h.take_events();
    match &ev[..] {
        [Event::ConnectionSettingsOffer(o)] => {
            assert!(o.own_metrics.is_some());
            assert!(o.own_logs.is_some());
            assert!(o.own_traces.is_none(), "no ReportsOwnTraces");
            assert!(
                o.other_connections.is_empty(),
                "no AcceptsOtherConnectionSettings"
            );
            assert!(o.opamp.is_none());
            assert_eq!(o.hash, vec![3]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_connections_need_accepts_other_connection_settings_cap_15_oth_1() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::ACCEPTS_OTHER_CONNECTION_SETTINGS);
    h.establish(hello(all_server_caps()));
    h.reply(offer_everything());
    let ev = h.take_events();
    match &ev[..] {
        [Event::ConnectionSettingsOffer(o)] => {
            assert_eq!(o.other_connections.len(), 1);
            assert!(o.own_metrics.is_none() && o.own_traces.is_none() && o.own_logs.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_offer_the_agent_cannot_take_reports_failed_css_1() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::REPORTS_CONNECTION_SETTINGS_STATUS);
    h.establish(hello(all_server_caps()));
    let m = h.reply(offer_everything());
    assert_eq!(m.len(), 1);
    let st = m[0].connection_settings_status.as_ref().unwrap();
    assert_eq!(st.status, v1::ConnectionSettingsStatuses::Failed as i32);
    assert_eq!(st.last_connection_settings_hash, vec![3]);
    assert!(
        st.error_message.contains("ReportsOwnMetrics"),
        "{}",
        st.error_message
    );
    // The same offer again is skipped (OPC-12): no loop.
    assert!(h.reply(offer_everything()).is_empty());
}

#[test]
fn command_needs_accepts_restart_command_and_then_the_rest_is_processed_cmd_1_cap_16() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::ACCEPTS_REMOTE_CONFIG);
    h.establish(hello(all_server_caps()));
    h.reply(v1::ServerToAgent {
        command: Some(v1::ServerToAgentCommand { r#type: 0 }),
        ..offer_everything()
    });
    let ev = h.take_events();
    assert!(matches!(&ev[..], [Event::RemoteConfig(_)]), "{ev:?}");
}

#[test]
fn a_command_makes_everything_else_ignored_msg_9_cmd_3_cmd_4() {
    let mut h = Harness::ws(all_caps());
    h.agent.set_available_components(components(b"a"));
    h.establish(hello(all_server_caps()));
    let m = h.reply(v1::ServerToAgent {
        command: Some(v1::ServerToAgentCommand::default()), // Restart = 0: present, empty
        flags: opamp_proto::ServerToAgentFlags::all().bits(),
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: vec![5; 16],
        }),
        ..offer_everything()
    });
    assert!(m.is_empty(), "flags ignored: no full state");
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::Command(c)] if c.r#type == 0),
        "{ev:?}"
    );
    assert_eq!(h.agent.instance_uid(), uid());
}

#[test]
fn unknown_command_types_are_ignored_cmd_5() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    let m = h.reply(v1::ServerToAgent {
        command: Some(v1::ServerToAgentCommand { r#type: 7 }),
        ..offer_everything()
    });
    assert!(m.is_empty());
    assert!(h.take_events().is_empty());
}

#[test]
fn custom_message_for_a_capability_we_lack_is_dropped_cus_3() {
    let mut s = settings(opamp_agent_fsm::Transport::WebSocket, all_caps());
    s.custom_capabilities = vec!["io.x.mine".into()];
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    h.reply(v1::ServerToAgent {
        custom_message: Some(v1::CustomMessage {
            capability: "io.x.other".into(),
            r#type: "t".into(),
            data: vec![],
        }),
        ..ack()
    });
    assert!(h.take_events().is_empty());
    h.reply(v1::ServerToAgent {
        custom_message: Some(v1::CustomMessage {
            capability: "io.x.mine".into(),
            r#type: "t".into(),
            data: vec![1],
        }),
        ..ack()
    });
    assert!(matches!(&h.take_events()[..], [Event::CustomMessage(m)] if m.data == [1]));
}

#[test]
fn unknown_flags_and_enum_values_are_ignored_msg_10() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    let m = h.reply(v1::ServerToAgent {
        flags: 0xFFFF_0000,
        capabilities: 0xFF00 | 0x1, // undefined server bits kept, not an error
        packages_available: Some(v1::PackagesAvailable {
            packages: [(
                "p".to_string(),
                v1::PackageAvailable {
                    r#type: 99,
                    ..Default::default()
                },
            )]
            .into(),
            all_packages_hash: vec![1],
        }),
        ..ack()
    });
    assert!(m.is_empty(), "unknown flag bits ask for nothing");
    let ev = h.take_events();
    assert!(
        ev.iter().any(|e| matches!(e, Event::PackagesAvailable(_))),
        "{ev:?}"
    );
}
