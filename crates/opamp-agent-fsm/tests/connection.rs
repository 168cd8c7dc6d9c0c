//! Timing and the transport: heartbeats, polling, backoff, throttling, errors, size limits,
//! stop.

mod common;

use std::time::Duration;

use common::*;
use opamp_agent_fsm::{Action, Backoff, Event, Transport, TransportError};
use opamp_proto::{AgentCapabilities as A, v1};

const S30: Duration = Duration::from_secs(30);

fn hb_caps() -> A {
    A::REPORTS_STATUS | A::REPORTS_HEARTBEAT | A::REPORTS_HEALTH
}

fn no_jitter(mut s: opamp_agent_fsm::Settings) -> opamp_agent_fsm::Settings {
    s.backoff = Backoff {
        jitter: 0.0,
        ..Backoff::default()
    };
    s
}

fn connect_waits(events: &[Event]) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ConnectFailed { retry_in, .. } => Some(*retry_in),
            _ => None,
        })
        .collect()
}

fn connects(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Connect(_)))
        .count()
}

// ------------------------------------------------------------------ heartbeats (HB)

#[test]
fn ws_heartbeats_every_30_s_by_default_hb_7_ws_10() {
    let mut h = Harness::ws(hb_caps());
    h.establish(hello(all_server_caps()));
    let t0 = h.now;
    assert_eq!(h.agent.poll_timeout(), Some(t0 + S30));
    let beats = h.advance(Duration::from_secs(95));
    assert_eq!(beats.len(), 3);
    for b in &beats {
        assert_eq!(b.instance_uid, UID.to_vec(), "HB-4");
        assert!(
            b.health.is_none(),
            "a heartbeat carries no unchanged status"
        );
    }
}

#[test]
fn heartbeat_is_timed_from_the_last_message_sent_hb_6() {
    let mut h = Harness::ws(hb_caps());
    h.establish(hello(all_server_caps()));
    h.advance(Duration::from_secs(20));
    h.agent.set_health(health(false));
    assert_eq!(h.drain().len(), 1);
    let sent_at = h.now;
    assert_eq!(h.agent.poll_timeout(), Some(sent_at + S30));
    assert!(h.advance(Duration::from_secs(29)).is_empty());
    assert_eq!(h.advance(Duration::from_secs(1)).len(), 1);
}

#[test]
fn locally_configured_heartbeat_interval_is_used_ws_10() {
    let mut s = settings(Transport::WebSocket, hb_caps());
    s.heartbeat_interval = Some(Duration::from_secs(5));
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    assert_eq!(h.advance(Duration::from_secs(26)).len(), 5);
}

#[test]
fn no_ws_heartbeats_without_reports_heartbeat_hb_1_ws_9() {
    let mut h = Harness::ws(A::REPORTS_STATUS);
    h.establish(hello(all_server_caps()));
    assert_eq!(h.agent.poll_timeout(), None);
    assert!(h.advance(Duration::from_secs(600)).is_empty());
}

fn opamp_offer(hash: &[u8], op: v1::OpAmpConnectionSettings) -> v1::ServerToAgent {
    v1::ServerToAgent {
        connection_settings: Some(v1::ConnectionSettingsOffers {
            hash: hash.to_vec(),
            opamp: Some(op),
            ..Default::default()
        }),
        ..ack()
    }
}

#[test]
fn server_heartbeat_interval_overrides_the_local_one_hb_2_opc_17() {
    let mut h = Harness::ws(hb_caps() | A::ACCEPTS_OPAMP_CONNECTION_SETTINGS);
    h.establish(hello(all_server_caps()));
    let m = h.reply(opamp_offer(
        b"h",
        v1::OpAmpConnectionSettings {
            heartbeat_interval_seconds: 10,
            ..Default::default()
        },
    ));
    assert!(m.is_empty(), "no reconnect for a heartbeat-only offer");
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::OpampSettingsAccepted(t)] if t.heartbeat_interval == Some(Duration::from_secs(10)) && t.endpoint == ws_target().endpoint),
        "{ev:?}"
    );
    assert!(
        h.take_actions().is_empty(),
        "OPC-17: endpoint kept, no reconnect"
    );
    assert_eq!(h.advance(Duration::from_secs(35)).len(), 3);
}

#[test]
fn server_heartbeat_zero_disables_ws_heartbeats_hb_3() {
    let mut h = Harness::ws(hb_caps() | A::ACCEPTS_OPAMP_CONNECTION_SETTINGS);
    h.establish(hello(all_server_caps()));
    h.reply(opamp_offer(b"h", v1::OpAmpConnectionSettings::default()));
    assert_eq!(h.agent.poll_timeout(), None);
    assert!(h.advance(Duration::from_secs(300)).is_empty());
    // Status changes still go out.
    h.agent.set_health(health(false));
    assert_eq!(h.drain().len(), 1);
}

#[test]
fn http_polls_every_30_s_by_default_http_3_http_4() {
    let mut h = Harness::http(A::REPORTS_STATUS);
    h.establish(hello(all_server_caps()));
    let polls = h.advance_with(Duration::from_secs(95), |_| ack());
    assert_eq!(polls.len(), 3);
    assert!(polls.iter().all(|p| p.instance_uid == UID.to_vec()));
}

#[test]
fn http_polls_even_without_reports_heartbeat_and_with_zero_interval_http_3() {
    let mut s = settings(Transport::Http, A::REPORTS_STATUS);
    s.polling_interval = Duration::ZERO;
    s.heartbeat_interval = None;
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    assert_eq!(h.advance_with(Duration::from_secs(61), |_| ack()).len(), 2);
}

#[test]
fn http_polling_interval_is_configurable_http_4() {
    let mut s = settings(Transport::Http, A::REPORTS_STATUS);
    s.polling_interval = Duration::from_secs(7);
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    assert_eq!(h.advance_with(Duration::from_secs(22), |_| ack()).len(), 3);
}

#[test]
fn http_uses_the_offered_non_zero_interval_http_5_hb_5() {
    let mut h = Harness::http(A::REPORTS_STATUS | A::ACCEPTS_OPAMP_CONNECTION_SETTINGS);
    h.establish(hello(all_server_caps()));
    h.reply(opamp_offer(
        b"h",
        v1::OpAmpConnectionSettings {
            heartbeat_interval_seconds: 5,
            ..Default::default()
        },
    ));
    assert_eq!(h.advance_with(Duration::from_secs(21), |_| ack()).len(), 4);
}

#[test]
fn http_ignores_an_offered_zero_interval_and_keeps_polling_hb_3_http_3() {
    let mut h = Harness::http(A::REPORTS_STATUS | A::ACCEPTS_OPAMP_CONNECTION_SETTINGS);
    h.establish(hello(all_server_caps()));
    h.reply(opamp_offer(b"h", v1::OpAmpConnectionSettings::default()));
    assert_eq!(h.advance_with(Duration::from_secs(61), |_| ack()).len(), 2);
}

// ------------------------------------------------------------------ HTTP request discipline

#[test]
fn http_has_at_most_one_request_in_flight_http_6() {
    let mut h = Harness::http(all_caps());
    let first = h.connect();
    assert_eq!(first.len(), 1);
    h.agent.set_health(health(false));
    h.agent.set_effective_config(effective(b"z"));
    assert!(h.drain().is_empty(), "waits for the response");
    assert!(
        h.advance(Duration::from_secs(120)).is_empty(),
        "no polls either"
    );
    // The response arrives: the next request may go out at once (HTTP-6).
    let m = h.reply(hello(all_server_caps()));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].health, Some(health(false)));
    assert!(m[0].effective_config.is_some());
}

#[test]
fn http_reply_timeout_abandons_the_request_and_retries_err_5() {
    let mut s = no_jitter(settings(Transport::Http, all_caps()));
    s.reply_timeout = Some(Duration::from_secs(10));
    let mut h = Harness::new(s);
    h.agent.set_health(health(true));
    h.connect();
    assert_eq!(
        h.agent.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(10));
    let actions = h.take_actions();
    assert!(matches!(actions[..], [Action::Disconnect]), "{actions:?}");
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::Connected, Event::ConnectFailed { error: TransportError::Failed { .. }, retry_in }] if *retry_in == Duration::from_secs(1)),
        "{ev:?}"
    );
    let retry = h.connect_after(Duration::from_secs(1));
    assert_eq!(
        retry[0].health,
        Some(health(true)),
        "the retry carries the state"
    );
}

trait ConnectAfter {
    fn connect_after(&mut self, d: Duration) -> Vec<v1::AgentToServer>;
}

impl ConnectAfter for Harness {
    /// Advances `d`, expects exactly one `Action::Connect`, connects.
    fn connect_after(&mut self, d: Duration) -> Vec<v1::AgentToServer> {
        let before = self.now;
        assert!(self.advance(d - Duration::from_millis(1)).is_empty());
        assert_eq!(connects(&self.take_actions()), 0, "not before {d:?}");
        self.advance(Duration::from_millis(1));
        let actions = self.take_actions();
        assert_eq!(connects(&actions), 1, "{actions:?}");
        assert_eq!(self.now - before, d);
        self.agent.handle_connected(self.now);
        self.drain()
    }
}

#[test]
fn http_failed_request_is_retried_after_backoff_with_the_latest_state_err_5_err_7_hb_9() {
    let mut h = Harness::new(no_jitter(settings(Transport::Http, all_caps())));
    h.agent.set_health(health(true));
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    assert_eq!(h.drain().len(), 1);
    h.fail(TransportError::Failed {
        reason: "connection refused".into(),
    });
    assert_eq!(connect_waits(&h.take_events()), [Duration::from_secs(1)]);
    h.agent.set_effective_config(effective(b"later"));
    assert!(h.drain().is_empty(), "no request during the backoff (HB-9)");
    let retry = h.advance(Duration::from_secs(1));
    assert_eq!(retry.len(), 1);
    assert_eq!(
        retry[0].health,
        Some(health(false)),
        "the unanswered change is retried"
    );
    assert!(
        retry[0].effective_config.is_some(),
        "together with the new one"
    );
    // A second failure doubles the wait (CONN-2).
    h.fail(TransportError::Failed { reason: "x".into() });
    assert_eq!(connect_waits(&h.take_events()), [Duration::from_secs(2)]);
    assert!(h.advance(Duration::from_millis(1999)).is_empty());
    assert_eq!(h.advance(Duration::from_millis(1)).len(), 1);
    // Success resets the backoff.
    h.reply(ack());
    h.advance_with(S30, |_| ack());
    h.fail(TransportError::Failed { reason: "x".into() });
    assert_eq!(connect_waits(&h.take_events()), [Duration::from_secs(1)]);
}

// ------------------------------------------------------------------ backoff (CONN, THR)

#[test]
fn connect_failures_back_off_exponentially_with_jitter_conn_2() {
    let mut h = Harness::ws(all_caps()); // default jitter ±20 %
    h.drain();
    h.take_actions();
    let mut waits = Vec::new();
    for _ in 0..12 {
        h.fail(TransportError::Failed {
            reason: "refused".into(),
        });
        let w = connect_waits(&h.take_events());
        assert_eq!(w.len(), 1);
        waits.push(w[0]);
        assert_eq!(h.agent.poll_timeout(), Some(h.now + w[0]));
        h.advance(w[0]);
        assert_eq!(connects(&h.take_actions()), 1);
    }
    for (i, w) in waits.iter().enumerate() {
        let nominal = (1u64 << i).min(300) as f64;
        let s = w.as_secs_f64();
        assert!(
            s >= nominal * 0.8 - 1e-9 && s <= (nominal * 1.2).min(300.0) + 1e-9,
            "attempt {i}: {s}"
        );
    }
    assert!(
        waits.iter().any(|w| w.subsec_nanos() != 0),
        "jitter is applied"
    );
}

#[test]
fn a_broken_websocket_reconnects_at_once_then_backs_off_conn_4() {
    let mut h = Harness::new(no_jitter(settings(Transport::WebSocket, all_caps())));
    h.establish(hello(all_server_caps()));
    h.fail(TransportError::ConnectionLost {
        reason: "reset".into(),
    });
    let ev = h.take_events();
    assert!(
        matches!(ev[..], [Event::Disconnected { error: Some(_) }]),
        "{ev:?}"
    );
    assert_eq!(connects(&h.take_actions()), 1, "immediately");
    h.agent.handle_connected(h.now);
    h.drain();
    // Broken again before any reply: now backoff.
    h.fail(TransportError::ConnectionLost {
        reason: "reset".into(),
    });
    assert_eq!(connects(&h.take_actions()), 0);
    assert_eq!(connect_waits(&h.take_events()), [Duration::from_secs(1)]);
    let first = h.connect_after(Duration::from_secs(1));
    assert_eq!(first.len(), 1);
    // A healthy connection (a reply) earns another immediate reconnect.
    h.reply(ack());
    h.fail(TransportError::ConnectionLost { reason: "x".into() });
    assert_eq!(connects(&h.take_actions()), 1);
}

#[test]
fn throttled_connect_waits_the_longer_of_backoff_and_retry_after_thr_3_conn_3() {
    let mut s = no_jitter(settings(Transport::WebSocket, all_caps()));
    s.throttle_floor = Duration::ZERO;
    let mut h = Harness::new(s);
    h.drain();
    h.take_actions();
    h.fail(TransportError::Throttled {
        retry_after: Some(Duration::from_secs(45)),
    });
    assert_eq!(connect_waits(&h.take_events()), [Duration::from_secs(45)]);
    h.advance(Duration::from_secs(45));
    assert_eq!(connects(&h.take_actions()), 1);
    // Retry-After shorter than the backoff: the backoff wins (opamp-go: max).
    h.fail(TransportError::Failed { reason: "x".into() }); // failure 2 -> 2 s
    assert_eq!(connect_waits(&h.take_events()), [Duration::from_secs(2)]);
    h.advance(Duration::from_secs(2));
    assert_eq!(connects(&h.take_actions()), 1);
    h.fail(TransportError::Throttled {
        retry_after: Some(Duration::from_secs(1)),
    }); // failure 3 -> 4 s
    assert_eq!(connect_waits(&h.take_events()), [Duration::from_secs(4)]);
}

#[test]
fn throttled_retries_wait_at_least_the_30_s_floor_thr_5() {
    let mut h = Harness::new(no_jitter(settings(Transport::Http, all_caps())));
    h.establish(hello(all_server_caps()));
    h.advance_with(Duration::ZERO, |_| ack());
    h.agent.set_health(health(false));
    h.drain();
    h.fail(TransportError::Throttled {
        retry_after: Some(Duration::from_secs(2)),
    });
    assert_eq!(connect_waits(&h.take_events()), [S30]);
    assert!(
        h.advance(Duration::from_secs(29)).is_empty(),
        "THR-4: no polls while waiting"
    );
    assert_eq!(h.advance(Duration::from_secs(1)).len(), 1);
    // The floor is configurable.
    let mut s = no_jitter(settings(Transport::Http, all_caps()));
    s.throttle_floor = Duration::from_secs(3);
    let mut h = Harness::new(s);
    h.connect();
    h.fail(TransportError::Throttled { retry_after: None });
    assert_eq!(connect_waits(&h.take_events()), [Duration::from_secs(3)]);
}

#[test]
fn unauthorized_is_reported_then_retried_with_backoff_conn_6() {
    let mut h = Harness::new(no_jitter(settings(Transport::WebSocket, all_caps())));
    h.drain();
    h.take_actions();
    h.fail(TransportError::Unauthorized);
    let ev = h.take_events();
    assert!(matches!(ev[0], Event::AuthenticationFailed), "{ev:?}");
    assert_eq!(connect_waits(&ev), [Duration::from_secs(1)]);
    h.connect_after(Duration::from_secs(1));
    // Over HTTP too.
    let mut h = Harness::new(no_jitter(settings(Transport::Http, all_caps())));
    h.connect();
    h.fail(TransportError::Unauthorized);
    assert!(matches!(
        h.take_events()[..],
        [
            Event::Connected,
            Event::AuthenticationFailed,
            Event::ConnectFailed { .. }
        ]
    ));
}

#[test]
fn no_heartbeats_while_waiting_to_reconnect_hb_9_thr_4() {
    let mut h = Harness::new(no_jitter(settings(Transport::WebSocket, hb_caps())));
    h.establish(hello(all_server_caps()));
    h.fail(TransportError::Throttled {
        retry_after: Some(Duration::from_secs(120)),
    });
    assert!(h.advance(Duration::from_secs(119)).is_empty());
    assert_eq!(connects(&h.take_actions()), 0);
    h.advance(Duration::from_secs(1));
    assert_eq!(connects(&h.take_actions()), 1);
}

// ------------------------------------------------------------------ error_response (§1.8)

fn error(kind: v1::ServerErrorResponseType) -> v1::ServerToAgent {
    v1::ServerToAgent::error(UID.to_vec(), kind, "no")
}

#[test]
fn error_response_is_detected_by_presence_and_wins_over_other_fields() {
    let mut h = Harness::ws(all_caps());
    h.establish(hello(all_server_caps()));
    // UNKNOWN with no message encodes as an empty sub-message: present nonetheless.
    let m = h.reply(v1::ServerToAgent {
        error_response: Some(v1::ServerErrorResponse::default()),
        remote_config: Some(v1::AgentRemoteConfig::default()),
        flags: opamp_proto::ServerToAgentFlags::REPORT_FULL_STATE.bits(),
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: vec![3; 16],
        }),
        ..ack()
    });
    assert!(m.is_empty(), "the error wins: no full state");
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::ServerError(e)] if e.r#type == 0),
        "{ev:?}"
    );
    assert_eq!(h.agent.instance_uid(), uid());
}

#[test]
fn bad_request_is_not_retried_err_2() {
    for transport in [Transport::WebSocket, Transport::Http] {
        let mut h = Harness::new(settings(transport, all_caps()));
        h.establish(hello(all_server_caps()));
        h.agent.set_health(health(false));
        assert_eq!(h.drain().len(), 1);
        assert!(
            h.reply(error(v1::ServerErrorResponseType::BadRequest))
                .is_empty()
        );
        let later = if transport == Transport::Http {
            h.advance_with(Duration::from_secs(31), |_| ack())
        } else {
            h.advance(Duration::from_secs(31))
        };
        assert!(
            later.iter().all(|m| m.health.is_none()),
            "{transport:?}: {later:?}"
        );
    }
}

#[test]
fn unknown_error_is_not_retried_err_4() {
    let mut h = Harness::http(all_caps());
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    h.drain();
    assert!(
        h.reply(error(v1::ServerErrorResponseType::Unknown))
            .is_empty()
    );
    let later = h.advance_with(Duration::from_secs(31), |_| ack());
    assert!(later.iter().all(|m| m.health.is_none()));
    // An error type from the future is treated the same way.
    h.agent.set_health(health(true));
    h.advance_with(Duration::ZERO, |_| v1::ServerToAgent {
        error_response: Some(v1::ServerErrorResponse {
            r#type: 42,
            ..Default::default()
        }),
        ..ack()
    });
    let later = h.advance_with(Duration::from_secs(31), |_| ack());
    assert!(later.iter().all(|m| m.health.is_none()));
}

#[test]
fn unavailable_over_websocket_disconnects_waits_and_resumes_thr_1_thr_2() {
    let mut h = Harness::new(no_jitter(settings(Transport::WebSocket, hb_caps())));
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    h.drain();
    let m = h.reply(v1::ServerToAgent::unavailable(
        UID.to_vec(),
        Duration::from_secs(60),
    ));
    assert_eq!(m.len(), 1, "a goodbye before closing (CONN-5)");
    assert!(m[0].agent_disconnect.is_some());
    let actions = h.take_actions();
    assert!(matches!(actions[..], [Action::Disconnect]), "{actions:?}");
    let ev = h.take_events();
    assert!(matches!(ev[0], Event::ServerError(_)));
    assert_eq!(connect_waits(&ev), [Duration::from_secs(60)]);
    assert!(!h.agent.is_connected());
    let first = h.connect_after(Duration::from_secs(60));
    assert_eq!(first.len(), 1, "resume with a status report");
    assert_eq!(first[0].health, Some(health(false)));
}

#[test]
fn unavailable_without_retry_info_backs_off_to_the_floor_thr_2_thr_5() {
    let mut h = Harness::new(no_jitter(settings(Transport::WebSocket, all_caps())));
    h.establish(hello(all_server_caps()));
    h.reply(error(v1::ServerErrorResponseType::Unavailable));
    assert_eq!(connect_waits(&h.take_events()), [S30]);
}

#[test]
fn unavailable_over_http_holds_back_the_next_request_thr_2() {
    let mut h = Harness::new(no_jitter(settings(Transport::Http, all_caps())));
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    h.drain();
    assert!(
        h.reply(v1::ServerToAgent::unavailable(
            UID.to_vec(),
            Duration::from_secs(40)
        ))
        .is_empty()
    );
    assert!(
        h.take_actions().is_empty(),
        "HTTP has no connection to close"
    );
    assert!(h.advance(Duration::from_secs(39)).is_empty());
    let retry = h.advance(Duration::from_secs(1));
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].health, Some(health(false)), "retried");
}

// ------------------------------------------------------------------ size limits

#[test]
fn http_413_drops_that_request_and_keeps_going_hsl_4() {
    let mut h = Harness::http(all_caps());
    h.establish(hello(all_server_caps()));
    h.agent.set_effective_config(effective(&[b'x'; 1000]));
    assert_eq!(h.drain().len(), 1);
    assert!(
        h.fail(TransportError::RequestTooLarge).is_empty(),
        "not retried"
    );
    let ev = h.take_events();
    assert!(matches!(ev[..], [Event::MessageDiscarded { .. }]), "{ev:?}");
    // Polls continue and do not repeat the dropped sub-message.
    let polls = h.advance_with(Duration::from_secs(61), |_| ack());
    assert_eq!(polls.len(), 2);
    assert!(polls.iter().all(|m| m.effective_config.is_none()));
    // The next real report carries it again: the state is not lost for good.
    h.agent.set_health(health(false));
    let m = h.advance_with(Duration::ZERO, |_| ack());
    assert_eq!(m.len(), 1);
    assert!(m[0].health.is_some());
    assert_eq!(m[0].effective_config, Some(effective(&[b'x'; 1000])));
}

#[test]
fn oversized_outgoing_message_is_not_sent_wsl_6_hsl_7() {
    for transport in [Transport::WebSocket, Transport::Http] {
        let mut s = settings(transport, all_caps());
        s.max_message_size = 200;
        let mut h = Harness::new(s);
        h.agent.set_health(health(true));
        h.agent.set_effective_config(effective(&[b'y'; 500]));
        let first = h.connect();
        assert_eq!(first.len(), 1, "a bare first message still goes out");
        assert!(first[0].effective_config.is_none() && first[0].health.is_none());
        assert_eq!(
            first[0].sequence_num, 0,
            "the dropped message used no number"
        );
        let ev = h.take_events();
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::MessageDiscarded { reason } if reason.contains("200"))),
            "{ev:?}"
        );
        h.reply(hello(all_server_caps()));
        // A smaller config later gets through, with the health that was dropped.
        h.agent.set_effective_config(effective(b"small"));
        let m = h.drain();
        assert_eq!(m.len(), 1, "{transport:?}");
        assert_eq!(m[0].effective_config, Some(effective(b"small")));
        assert_eq!(m[0].health, Some(health(true)));
    }
}

#[test]
fn limit_counts_the_websocket_header_wsl_1() {
    let mut s = settings(Transport::WebSocket, A::REPORTS_STATUS);
    let bare = v1::AgentToServer {
        instance_uid: UID.to_vec(),
        capabilities: 1,
        ..Default::default()
    };
    use opamp_proto::prost::Message;
    s.max_message_size = bare.encoded_len(); // one byte short of header + data
    let mut h = Harness::new(s);
    assert!(h.connect().is_empty());
    assert!(matches!(
        h.take_events()[..],
        [Event::Connected, Event::MessageDiscarded { .. }]
    ));
}

// ------------------------------------------------------------------ stop (DISC)

#[test]
fn stop_sends_agent_disconnect_last_then_disconnects_disc_1_disc_2() {
    let mut h = Harness::ws(hb_caps());
    h.establish(hello(all_server_caps()));
    h.agent.set_health(health(false));
    h.agent.stop(h.now);
    let m = h.drain();
    assert_eq!(m.len(), 1, "one last message, with the pending change");
    assert!(m[0].agent_disconnect.is_some());
    assert_eq!(m[0].health, Some(health(false)));
    assert!(matches!(h.take_actions()[..], [Action::Disconnect]));
    let ev = h.take_events();
    assert!(matches!(ev.last(), Some(Event::Stopped)), "{ev:?}");
    assert!(h.agent.is_stopped());
    // Nothing after.
    h.agent.set_health(health(true));
    h.agent.handle_message(h.now, hello(all_server_caps()));
    h.agent
        .handle_transport_error(h.now, TransportError::Failed { reason: "x".into() });
    assert!(h.advance(Duration::from_secs(3600)).is_empty());
    assert!(h.take_actions().is_empty() && h.take_events().is_empty());
    assert_eq!(h.agent.poll_timeout(), None);
    assert!(matches!(
        h.agent.send_custom_message(v1::CustomMessage::default()),
        Err(opamp_agent_fsm::Error::Stopped)
    ));
}

#[test]
fn http_stop_waits_for_the_outstanding_request_then_says_goodbye_disc_4() {
    let mut h = Harness::http(all_caps());
    h.connect();
    h.agent.stop(h.now);
    assert!(h.drain().is_empty(), "HTTP-6 still holds");
    let m = h.reply(hello(all_server_caps()));
    assert_eq!(m.len(), 1);
    assert!(m[0].agent_disconnect.is_some());
    assert!(matches!(h.take_actions()[..], [Action::Disconnect]));
    assert!(matches!(h.take_events().last(), Some(Event::Stopped)));
}

#[test]
fn stop_without_a_connection_stops_at_once() {
    let mut h = Harness::ws(all_caps());
    h.drain();
    h.take_actions();
    h.agent.stop(h.now);
    assert!(h.drain().is_empty());
    assert!(matches!(h.take_actions()[..], [Action::Disconnect]));
    assert!(matches!(h.take_events()[..], [Event::Stopped]));
}

#[test]
fn an_oversized_goodbye_still_carries_agent_disconnect_disc_1() {
    let mut s = settings(Transport::WebSocket, all_caps());
    s.max_message_size = 100;
    let mut h = Harness::new(s);
    h.establish(hello(all_server_caps()));
    h.agent.set_effective_config(effective(&[0; 300]));
    h.agent.stop(h.now);
    let m = h.drain();
    assert!(m.iter().any(|m| m.agent_disconnect.is_some()), "{m:?}");
    assert!(m.last().unwrap().agent_disconnect.is_some());
}
