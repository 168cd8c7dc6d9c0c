//! The OpAMP connection settings offer flow (OPC-5) and connection settings status (CSS).

mod common;

use std::time::Duration;

use common::*;
use opamp_agent_fsm::{
    Action, ConnectionTarget, Event, PendingCandidate, Settings, Transport, TransportError,
};
use opamp_proto::{AgentCapabilities as A, v1};

fn caps() -> A {
    A::REPORTS_STATUS
        | A::ACCEPTS_OPAMP_CONNECTION_SETTINGS
        | A::REPORTS_CONNECTION_SETTINGS_STATUS
        | A::REPORTS_HEARTBEAT
}

fn offer(hash: &[u8], endpoint: &str) -> v1::ServerToAgent {
    v1::ServerToAgent {
        connection_settings: Some(v1::ConnectionSettingsOffers {
            hash: hash.to_vec(),
            opamp: Some(v1::OpAmpConnectionSettings {
                destination_endpoint: endpoint.into(),
                headers: Some(v1::Headers {
                    headers: vec![v1::Header {
                        key: "Authorization".into(),
                        value: "Bearer new".into(),
                    }],
                }),
                heartbeat_interval_seconds: 15,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..ack()
    }
}

fn status_of(m: &v1::AgentToServer) -> Option<(i32, Vec<u8>)> {
    m.connection_settings_status
        .as_ref()
        .map(|s| (s.status, s.last_connection_settings_hash.clone()))
}

const APPLYING: i32 = v1::ConnectionSettingsStatuses::Applying as i32;
const APPLIED: i32 = v1::ConnectionSettingsStatuses::Applied as i32;
const FAILED: i32 = v1::ConnectionSettingsStatuses::Failed as i32;

#[test]
fn websocket_offer_flow_candidate_goodbye_reconnect_accept_opc_5_opc_4_opc_13_css_3_css_4() {
    let mut h = Harness::ws(caps());
    h.establish(hello(all_server_caps()));
    let m = h.reply(offer(b"h1", "wss://new.example:4320/v1/opamp"));
    // Step 4: APPLYING (CSS-3) in the goodbye (OPC-13), then disconnect.
    assert_eq!(m.len(), 1);
    assert!(m[0].agent_disconnect.is_some());
    assert_eq!(status_of(&m[0]), Some((APPLYING, b"h1".to_vec())));
    let ev = h.take_events();
    let candidate = match &ev[..] {
        [
            Event::OpampSettingsCandidate(t),
            Event::Disconnected { error: None },
        ] => t.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(candidate.endpoint, "wss://new.example:4320/v1/opamp");
    assert_eq!(
        candidate.headers,
        [("Authorization".to_string(), "Bearer new".to_string())]
    );
    assert_eq!(candidate.heartbeat_interval, Some(Duration::from_secs(15)));
    // Step 5: connect with the new settings (OPC-4: tested by actually connecting).
    let actions = h.take_actions();
    match &actions[..] {
        [Action::Disconnect, Action::Connect(t)] => assert_eq!(*t, candidate),
        other => panic!("{other:?}"),
    }
    assert_eq!(*h.agent.current_target(), candidate);
    h.agent.handle_connected(h.now);
    let first = h.drain();
    // Step 8: accepted, APPLIED (CSS-4) in the first report on the new connection.
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::Connected, Event::OpampSettingsAccepted(t)] if *t == candidate),
        "{ev:?}"
    );
    assert_eq!(first.len(), 1);
    assert_eq!(status_of(&first[0]), Some((APPLIED, b"h1".to_vec())));
    // The offered heartbeat is in force (HB-2).
    assert_eq!(
        h.agent.poll_timeout(),
        Some(h.now + Duration::from_secs(15))
    );
}

#[test]
fn failed_candidate_reverts_to_the_old_settings_opc_5_step_9_css_4() {
    let mut h = Harness::ws(caps());
    h.establish(hello(all_server_caps()));
    h.reply(offer(b"h1", "wss://bad.example/v1/opamp"));
    h.take_events();
    h.take_actions();
    let m = h.fail(TransportError::Failed {
        reason: "TLS handshake failed".into(),
    });
    assert!(m.is_empty());
    let ev = h.take_events();
    match &ev[..] {
        [Event::OpampSettingsRejected { target, reason }] => {
            assert_eq!(target.endpoint, "wss://bad.example/v1/opamp");
            assert!(reason.contains("TLS handshake failed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Connect(t)] if *t == ws_target()),
        "{actions:?}"
    );
    assert_eq!(*h.agent.current_target(), ws_target());
    h.agent.handle_connected(h.now);
    let first = h.drain();
    let st = first[0].connection_settings_status.as_ref().unwrap();
    assert_eq!(st.status, FAILED);
    assert_eq!(st.last_connection_settings_hash, b"h1".to_vec());
    assert!(st.error_message.contains("TLS"), "{}", st.error_message);
    // The same offer again is skipped (OPC-12): no reconnect loop.
    assert!(
        h.reply(offer(b"h1", "wss://bad.example/v1/opamp"))
            .is_empty()
    );
    assert!(h.take_actions().is_empty());
}

#[test]
fn http_offer_flow_is_confirmed_by_the_first_response_opc_5_opc_13_disc_4() {
    let mut h = Harness::http(caps());
    h.establish(hello(all_server_caps()));
    h.advance_with(Duration::ZERO, |_| ack());
    // The offer arrives in a poll response.
    assert_eq!(h.advance(Duration::from_secs(30)).len(), 1);
    let m = h.reply(offer(b"h2", "https://new.example/v1/opamp"));
    assert_eq!(m.len(), 1, "goodbye with APPLYING");
    assert!(m[0].agent_disconnect.is_some());
    assert_eq!(status_of(&m[0]), Some((APPLYING, b"h2".to_vec())));
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Disconnect, Action::Connect(t)] if t.endpoint == "https://new.example/v1/opamp")
    );
    h.agent.handle_connected(h.now);
    assert_eq!(h.drain().len(), 1);
    assert!(
        !h.take_events()
            .iter()
            .any(|e| matches!(e, Event::OpampSettingsAccepted(_))),
        "not accepted before a response"
    );
    let m = h.reply(ack());
    assert!(
        h.take_events()
            .iter()
            .any(|e| matches!(e, Event::OpampSettingsAccepted(_)))
    );
    assert_eq!(m.len(), 1, "APPLIED reported right after the response");
    assert_eq!(status_of(&m[0]), Some((APPLIED, b"h2".to_vec())));
}

#[test]
fn http_candidate_rejected_with_401_reverts_opc_5_opc_16() {
    let mut h = Harness::http(caps());
    h.establish(hello(all_server_caps()));
    h.advance_with(Duration::ZERO, |_| ack());
    h.advance(Duration::from_secs(30));
    h.reply(offer(b"h3", "https://new.example/v1/opamp"));
    h.take_actions();
    h.agent.handle_connected(h.now);
    h.drain();
    h.take_events();
    h.fail(TransportError::Unauthorized);
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::OpampSettingsRejected { .. }]),
        "{ev:?}"
    );
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Disconnect, Action::Connect(t)] if *t == http_target()),
        "{actions:?}"
    );
    h.agent.handle_connected(h.now);
    let m = h.drain();
    assert_eq!(
        m[0].connection_settings_status.as_ref().unwrap().status,
        FAILED
    );
}

#[test]
fn an_offer_without_opamp_keeps_the_current_settings_opc_3() {
    let mut h = Harness::ws(caps() | A::REPORTS_OWN_METRICS);
    h.establish(hello(all_server_caps()));
    let m = h.reply(v1::ServerToAgent {
        connection_settings: Some(v1::ConnectionSettingsOffers {
            hash: b"o".to_vec(),
            own_metrics: Some(v1::TelemetryConnectionSettings::default()),
            ..Default::default()
        }),
        ..ack()
    });
    assert!(
        m.is_empty(),
        "the application reports own-telemetry status (CSS-5)"
    );
    assert!(h.take_actions().is_empty());
    assert!(matches!(
        h.take_events()[..],
        [Event::ConnectionSettingsOffer(_)]
    ));
    assert_eq!(*h.agent.current_target(), ws_target());
}

#[test]
fn an_offer_equal_to_the_current_settings_only_reports_applied_css_4() {
    let mut t = ws_target();
    t.heartbeat_interval = Some(Duration::from_secs(15));
    t.headers = vec![("Authorization".into(), "Bearer new".into())];
    let mut s = settings(Transport::WebSocket, caps());
    s.target = t;
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    let m = h.reply(offer(b"same", &ws_target().endpoint));
    assert_eq!(m.len(), 1);
    assert!(m[0].agent_disconnect.is_none(), "no reconnect");
    assert_eq!(status_of(&m[0]), Some((APPLIED, b"same".to_vec())));
}

#[test]
fn an_absent_certificate_in_a_full_offer_means_no_client_certificate_opc_8() {
    let mut s = settings(Transport::WebSocket, caps());
    s.target.certificate = Some(v1::TlsCertificate {
        cert: b"old".to_vec(),
        ..Default::default()
    });
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    h.reply(offer(b"c", "wss://same.example/"));
    let ev = h.take_events();
    assert!(
        matches!(
            &ev[0],
            Event::OpampSettingsCandidate(ConnectionTarget {
                certificate: None,
                ..
            })
        ),
        "{ev:?}"
    );
}

#[test]
fn a_csr_reply_certificate_keeps_the_endpoint_csr_3_opc_17() {
    let mut h = Harness::ws(caps());
    h.establish(hello(all_server_caps()));
    h.agent.request_certificate(b"csr".to_vec()).unwrap();
    h.drain();
    h.reply(v1::ServerToAgent {
        connection_settings: Some(v1::ConnectionSettingsOffers {
            hash: b"cert".to_vec(),
            opamp: Some(v1::OpAmpConnectionSettings {
                certificate: Some(v1::TlsCertificate {
                    cert: b"issued".to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..ack()
    });
    let ev = h.take_events();
    match &ev[0] {
        Event::OpampSettingsCandidate(t) => {
            assert_eq!(t.endpoint, ws_target().endpoint);
            assert_eq!(t.certificate.as_ref().unwrap().cert, b"issued".to_vec());
            assert_eq!(
                t.heartbeat_interval, None,
                "a bare certificate leaves the heartbeat alone"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_endpoint_that_does_not_fit_the_transport_fails_the_offer_opc_2() {
    let mut h = Harness::ws(caps());
    h.establish(hello(all_server_caps()));
    let m = h.reply(offer(b"x", "ftp://nope"));
    assert_eq!(m.len(), 1);
    assert!(m[0].agent_disconnect.is_none());
    assert_eq!(status_of(&m[0]).unwrap().0, FAILED);
    assert!(h.take_actions().is_empty());
}

#[test]
fn opamp_offer_without_the_capability_is_ignored_and_reported_failed_cap_15() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::REPORTS_CONNECTION_SETTINGS_STATUS);
    h.establish(hello(all_server_caps()));
    let m = h.reply(offer(b"n", "wss://other/"));
    assert_eq!(m.len(), 1);
    let st = m[0].connection_settings_status.as_ref().unwrap();
    assert_eq!(st.status, FAILED);
    assert!(st.error_message.contains("AcceptsOpAMPConnectionSettings"));
    assert!(h.take_actions().is_empty());
    assert!(h.take_events().is_empty());
}

#[test]
fn without_reports_connection_settings_status_no_status_is_sent_css_1() {
    let mut h = Harness::ws(A::REPORTS_STATUS | A::ACCEPTS_OPAMP_CONNECTION_SETTINGS);
    h.establish(hello(all_server_caps()));
    let m = h.reply(offer(b"n", "wss://other/"));
    assert_eq!(m.len(), 1);
    assert!(m[0].connection_settings_status.is_none());
    assert!(m[0].agent_disconnect.is_some());
}

#[test]
fn stop_during_the_offer_flow_stops() {
    let mut h = Harness::ws(caps());
    h.establish(hello(all_server_caps()));
    h.agent.handle_message(h.now, offer(b"s", "wss://other/"));
    h.agent.stop(h.now);
    let m = h.drain();
    assert_eq!(m.len(), 1);
    assert!(m[0].agent_disconnect.is_some());
    assert!(!h.actions.iter().any(|a| matches!(a, Action::Connect(_))));
    assert!(matches!(h.events.last(), Some(Event::Stopped)));
}

#[test]
fn the_pending_candidate_carries_the_offer_hash_until_resolved_opc_5_step_3() {
    let mut h = Harness::ws(caps());
    h.establish(hello(all_server_caps()));
    assert!(h.agent.pending_candidate().is_none());
    h.reply(offer(b"h1", "wss://new.example/v1/opamp"));
    let candidate = match &h.take_events()[..] {
        [Event::OpampSettingsCandidate(t), ..] => t.clone(),
        other => panic!("{other:?}"),
    };
    // What the driver persists next to the event (OPC-5 step 3).
    assert_eq!(
        h.agent.pending_candidate(),
        Some(&PendingCandidate::new(candidate, b"h1".to_vec()))
    );
    h.take_actions();
    h.agent.handle_connected(h.now);
    h.drain();
    assert!(h.agent.pending_candidate().is_none(), "accepted");
}

// ---- Resuming a candidate persisted before a restart (OPC-5 step 3: the candidate
// survives crashes, so steps 5 to 9 are retried).

fn candidate_target() -> ConnectionTarget {
    let mut t = ConnectionTarget::new("wss://new.example:4320/v1/opamp");
    t.headers = vec![("Authorization".into(), "Bearer new".into())];
    t.heartbeat_interval = Some(Duration::from_secs(15));
    t
}

/// Settings as a driver builds them after a restart: the valid target, and the stored
/// candidate with its offer hash.
fn resumed(transport: Transport, endpoint: &str, hash: &[u8]) -> Settings {
    let mut s = settings(transport, caps());
    let mut t = candidate_target();
    t.endpoint = endpoint.into();
    s.candidate = Some(PendingCandidate::new(t, hash));
    s
}

#[test]
fn a_resumed_websocket_candidate_is_tried_first_and_accepted_opc_5_step_3_css_4() {
    let mut h = Harness::new(resumed(
        Transport::WebSocket,
        &candidate_target().endpoint,
        b"h1",
    ));
    // Step 5: the first connection uses the candidate.
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Connect(t)] if *t == candidate_target()),
        "{actions:?}"
    );
    assert_eq!(*h.agent.current_target(), candidate_target());
    assert_eq!(
        h.agent.pending_candidate().map(|c| c.offer_hash.as_slice()),
        Some(&b"h1"[..])
    );
    assert!(
        h.take_events().is_empty(),
        "no new candidate event: it is stored"
    );
    // Step 8: connected, so accepted; APPLIED with the offer's hash (CSS-4).
    h.agent.handle_connected(h.now);
    let first = h.drain();
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::Connected, Event::OpampSettingsAccepted(t)] if *t == candidate_target()),
        "{ev:?}"
    );
    assert_eq!(first.len(), 1);
    assert_eq!(status_of(&first[0]), Some((APPLIED, b"h1".to_vec())));
    assert!(h.agent.pending_candidate().is_none());
    // The candidate's heartbeat is in force (HB-2).
    assert_eq!(
        h.agent.poll_timeout(),
        Some(h.now + Duration::from_secs(15))
    );
    // The same offer again is skipped (OPC-12): already processed before the restart.
    assert!(
        h.reply(offer(b"h1", "wss://new.example:4320/v1/opamp"))
            .is_empty()
    );
    assert!(h.take_actions().is_empty());
}

#[test]
fn a_resumed_websocket_candidate_that_fails_reverts_opc_5_step_9_css_4() {
    let mut h = Harness::new(resumed(
        Transport::WebSocket,
        "wss://bad.example/v1/opamp",
        b"h1",
    ));
    h.take_actions();
    let m = h.fail(TransportError::Failed {
        reason: "TLS handshake failed".into(),
    });
    assert!(m.is_empty());
    let ev = h.take_events();
    match &ev[..] {
        [Event::OpampSettingsRejected { target, reason }] => {
            assert_eq!(target.endpoint, "wss://bad.example/v1/opamp");
            assert!(reason.contains("TLS handshake failed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Step 9: back to the previous settings at once, no backoff.
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Connect(t)] if *t == ws_target()),
        "{actions:?}"
    );
    assert_eq!(*h.agent.current_target(), ws_target());
    assert!(h.agent.pending_candidate().is_none());
    h.agent.handle_connected(h.now);
    let first = h.drain();
    let st = first[0].connection_settings_status.as_ref().unwrap();
    assert_eq!(st.status, FAILED);
    assert_eq!(st.last_connection_settings_hash, b"h1".to_vec());
    assert!(st.error_message.contains("TLS"), "{}", st.error_message);
    // It continues normally: the server's reply settles, the same offer is skipped.
    assert!(h.reply(hello(all_server_caps())).is_empty());
    assert!(
        h.reply(offer(b"h1", "wss://bad.example/v1/opamp"))
            .is_empty()
    );
    assert!(h.take_actions().is_empty());
    // A later failure of the valid settings is an ordinary reconnect, not a revert.
    h.fail(TransportError::ConnectionLost {
        reason: "reset".into(),
    });
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Connect(t)] if *t == ws_target()),
        "{actions:?}"
    );
    assert!(
        !h.take_events()
            .iter()
            .any(|e| matches!(e, Event::OpampSettingsRejected { .. }))
    );
}

#[test]
fn a_resumed_http_candidate_is_accepted_by_the_first_response_opc_5_css_3_css_4() {
    let mut h = Harness::new(resumed(
        Transport::Http,
        "https://new.example/v1/opamp",
        b"h2",
    ));
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Connect(t)] if t.endpoint == "https://new.example/v1/opamp"),
        "{actions:?}"
    );
    h.agent.handle_connected(h.now);
    let first = h.drain();
    assert_eq!(first.len(), 1);
    // Not proven yet: the first request reports APPLYING (CSS-3).
    assert_eq!(status_of(&first[0]), Some((APPLYING, b"h2".to_vec())));
    assert!(
        !h.take_events()
            .iter()
            .any(|e| matches!(e, Event::OpampSettingsAccepted(_))),
        "not accepted before a response"
    );
    let m = h.reply(hello(all_server_caps()));
    let ev = h.take_events();
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::OpampSettingsAccepted(t) if t.endpoint == "https://new.example/v1/opamp")
        ),
        "{ev:?}"
    );
    assert_eq!(m.len(), 1, "APPLIED reported right after the response");
    assert_eq!(status_of(&m[0]), Some((APPLIED, b"h2".to_vec())));
    assert_eq!(
        h.agent.current_target().endpoint,
        "https://new.example/v1/opamp"
    );
}

#[test]
fn a_resumed_http_candidate_rejected_with_401_reverts_opc_5_step_9_css_4() {
    let mut h = Harness::new(resumed(
        Transport::Http,
        "https://new.example/v1/opamp",
        b"h3",
    ));
    h.connect();
    h.take_events();
    h.fail(TransportError::Unauthorized);
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::OpampSettingsRejected { target, .. }] if target.endpoint == "https://new.example/v1/opamp"),
        "{ev:?}"
    );
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Disconnect, Action::Connect(t)] if *t == http_target()),
        "{actions:?}"
    );
    h.agent.handle_connected(h.now);
    let m = h.drain();
    let st = m[0].connection_settings_status.as_ref().unwrap();
    assert_eq!(st.status, FAILED);
    assert_eq!(st.last_connection_settings_hash, b"h3".to_vec());
    assert!(st.error_message.contains("401"), "{}", st.error_message);
}

#[test]
fn a_resumed_candidate_of_the_wrong_transport_is_rejected_at_once_opc_2_opc_5_css_4() {
    let mut h = Harness::new(resumed(
        Transport::WebSocket,
        "https://new.example/v1/opamp",
        b"h4",
    ));
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::OpampSettingsRejected { reason, .. }] if reason.contains("OPC-2")),
        "{ev:?}"
    );
    let actions = h.take_actions();
    assert!(
        matches!(&actions[..], [Action::Connect(t)] if *t == ws_target()),
        "never connects with it: {actions:?}"
    );
    h.agent.handle_connected(h.now);
    let m = h.drain();
    assert_eq!(status_of(&m[0]), Some((FAILED, b"h4".to_vec())));
}

#[test]
fn a_resumed_candidate_without_status_capability_or_hash_still_resolves_opc_5_css_1() {
    // Without ReportsConnectionSettingsStatus: the flow runs, no status is sent (CSS-1).
    let mut s = resumed(Transport::WebSocket, &candidate_target().endpoint, b"h5");
    s.capabilities = A::REPORTS_STATUS | A::ACCEPTS_OPAMP_CONNECTION_SETTINGS;
    let mut h = Harness::new(s);
    let first = h.connect();
    assert!(first[0].connection_settings_status.is_none());
    assert!(
        h.take_events()
            .iter()
            .any(|e| matches!(e, Event::OpampSettingsAccepted(_)))
    );
    // A candidate stored without its hash (older state): APPLIED with an empty hash.
    let mut h = Harness::new(resumed(
        Transport::WebSocket,
        &candidate_target().endpoint,
        b"",
    ));
    let first = h.connect();
    assert_eq!(status_of(&first[0]), Some((APPLIED, Vec::new())));
    // A new offer is processed as usual (no hash was marked as processed).
    let m = h.reply(offer(b"h6", "wss://third.example/v1/opamp"));
    assert_eq!(status_of(&m[0]), Some((APPLYING, b"h6".to_vec())));
}

#[test]
fn stop_before_a_resumed_candidate_connects_leaves_it_unresolved_opc_5_step_3() {
    let mut h = Harness::new(resumed(
        Transport::WebSocket,
        &candidate_target().endpoint,
        b"h7",
    ));
    h.take_actions();
    h.agent.stop(h.now);
    let ev = h.take_events();
    // Neither accepted nor rejected: the stored candidate is tried again next start.
    assert!(matches!(&ev[..], [Event::Stopped]), "{ev:?}");
    assert!(h.sent.is_empty());
}

#[test]
fn a_resumed_candidate_follows_the_live_offer_flow_opc_5_css_4() {
    // The same statuses and events as the offer received live, from the reconnect on.
    let mut live = Harness::ws(caps());
    live.establish(hello(all_server_caps()));
    live.reply(offer(b"h1", &candidate_target().endpoint));
    live.take_events();
    live.take_actions();
    live.agent.handle_connected(live.now);
    let live_first = live.drain();
    let live_events = live.take_events();

    let mut resumed = Harness::new(resumed(
        Transport::WebSocket,
        &candidate_target().endpoint,
        b"h1",
    ));
    let resumed_first = resumed.connect();
    let resumed_events = resumed.take_events();
    assert_eq!(
        live_first[0].connection_settings_status,
        resumed_first[0].connection_settings_status
    );
    assert_eq!(format!("{live_events:?}"), format!("{resumed_events:?}"));
    assert_eq!(live.agent.current_target(), resumed.agent.current_target());
}
