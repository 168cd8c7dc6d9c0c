//! Property tests: random server messages, transport errors, timeouts and application
//! inputs never make the session panic, break sequence numbers or mandatory fields, loop,
//! or put two HTTP requests in flight.

mod common;

use std::time::Duration;

use common::*;
use opamp_agent_fsm::{
    ConnectionTarget, Event, PendingCandidate, Settings, Transport, TransportError,
};
use opamp_proto::{AgentCapabilities, v1};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Message(Box<v1::ServerToAgent>),
    Error(TransportError),
    Connected,
    Advance(u64),
    SetHealth(bool),
    SetEffective(u8),
    SetComponents(u8),
    SetCapabilities(u64),
    Custom(bool),
    Csr,
    Stop,
}

fn arb_uid_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(UID.to_vec()),
        2 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

fn arb_error_response() -> impl Strategy<Value = v1::ServerErrorResponse> {
    (
        0i32..5,
        any::<bool>(),
        prop_oneof![0u64..100_000_000_000, Just(u64::MAX)],
    )
        .prop_map(|(t, retry, nanos)| v1::ServerErrorResponse {
            r#type: t,
            error_message: "e".into(),
            details: retry.then_some(v1::server_error_response::Details::RetryInfo(
                v1::RetryInfo {
                    retry_after_nanoseconds: nanos,
                },
            )),
        })
}

fn arb_offers() -> impl Strategy<Value = v1::ConnectionSettingsOffers> {
    let endpoint = prop_oneof![
        Just(String::new()),
        Just("ws://a/v1/opamp".to_string()),
        Just("wss://b/v1/opamp".to_string()),
        Just("http://c/v1/opamp".to_string()),
        Just("ftp://x".to_string()),
    ];
    let opamp = (
        endpoint,
        prop_oneof![Just(0u64), 1u64..120, Just(u64::MAX)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(e, hb, cert, headers)| v1::OpAmpConnectionSettings {
            destination_endpoint: e,
            heartbeat_interval_seconds: hb,
            certificate: cert.then(|| v1::TlsCertificate {
                cert: b"c".to_vec(),
                ..Default::default()
            }),
            headers: headers.then(|| v1::Headers {
                headers: vec![v1::Header {
                    key: "k".into(),
                    value: "v".into(),
                }],
            }),
            ..Default::default()
        });
    (
        proptest::collection::vec(0u8..3, 0..2),
        proptest::option::of(opamp),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(hash, opamp, own, other)| v1::ConnectionSettingsOffers {
            hash,
            opamp,
            own_metrics: own.then(v1::TelemetryConnectionSettings::default),
            other_connections: if other {
                [("o".to_string(), v1::OtherConnectionSettings::default())].into()
            } else {
                Default::default()
            },
            ..Default::default()
        })
}

fn arb_message() -> impl Strategy<Value = v1::ServerToAgent> {
    (
        (
            arb_uid_bytes(),
            proptest::option::weighted(0.2, arb_error_response()),
            proptest::option::weighted(
                0.2,
                (0u8..3).prop_map(|h| v1::AgentRemoteConfig {
                    config_hash: vec![h],
                    config: None,
                }),
            ),
            proptest::option::weighted(0.2, arb_offers()),
            proptest::option::weighted(
                0.15,
                (0u8..3).prop_map(|h| v1::PackagesAvailable {
                    all_packages_hash: vec![h],
                    ..Default::default()
                }),
            ),
        ),
        (
            prop_oneof![4 => Just(0u64), 2 => 0u64..4, 1 => any::<u64>()],
            prop_oneof![2 => Just(0u64), 1 => 0u64..0x80, 1 => any::<u64>()],
            proptest::option::weighted(
                0.15,
                prop_oneof![
                    3 => proptest::collection::vec(any::<u8>(), 16..=16),
                    1 => proptest::collection::vec(any::<u8>(), 0..30),
                ]
                .prop_map(|u| v1::AgentIdentification {
                    new_instance_uid: u,
                }),
            ),
            proptest::option::weighted(
                0.1,
                (0i32..3).prop_map(|t| v1::ServerToAgentCommand { r#type: t }),
            ),
            proptest::option::weighted(
                0.1,
                prop_oneof![Just("io.x.a"), Just("io.x.b")].prop_map(|c| v1::CustomMessage {
                    capability: c.into(),
                    r#type: "t".into(),
                    data: vec![1],
                }),
            ),
            proptest::option::weighted(
                0.1,
                Just(v1::CustomCapabilities {
                    capabilities: vec!["io.s".into()],
                }),
            ),
        ),
    )
        .prop_map(
            |(
                (instance_uid, error_response, remote_config, connection_settings, packages),
                (flags, capabilities, agent_identification, command, custom_message, cc),
            )| v1::ServerToAgent {
                instance_uid,
                error_response,
                remote_config,
                connection_settings,
                packages_available: packages,
                flags,
                capabilities,
                agent_identification,
                command,
                custom_capabilities: cc,
                custom_message,
            },
        )
}

fn arb_error() -> impl Strategy<Value = TransportError> {
    prop_oneof![
        Just(TransportError::Failed { reason: "f".into() }),
        proptest::option::of(prop_oneof![0u64..100, Just(u64::MAX)]).prop_map(|s| {
            TransportError::Throttled {
                retry_after: s.map(Duration::from_secs),
            }
        }),
        Just(TransportError::Unauthorized),
        Just(TransportError::RequestTooLarge),
        Just(TransportError::ConnectionLost { reason: "l".into() }),
        Just(TransportError::MalformedResponse { reason: "m".into() }),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => arb_message().prop_map(|m| Op::Message(Box::new(m))),
        3 => arb_error().prop_map(Op::Error),
        4 => Just(Op::Connected),
        4 => prop_oneof![0u64..5, 5u64..400].prop_map(Op::Advance),
        2 => any::<bool>().prop_map(Op::SetHealth),
        2 => (0u8..4).prop_map(Op::SetEffective),
        1 => (0u8..3).prop_map(Op::SetComponents),
        1 => any::<u64>().prop_map(Op::SetCapabilities),
        1 => any::<bool>().prop_map(Op::Custom),
        1 => Just(Op::Csr),
        1 => Just(Op::Stop),
    ]
}

fn arb_settings() -> impl Strategy<Value = Settings> {
    (
        prop_oneof![Just(Transport::WebSocket), Just(Transport::Http)],
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(usize::MAX), 40usize..400],
        proptest::option::of(1u64..60),
        proptest::option::of(0u64..60),
    )
        .prop_map(
            |(transport, caps, request_uid, full_on_reconnect, max, reply, hb)| {
                let mut s = settings(transport, AgentCapabilities::from_wire(caps));
                s.request_instance_uid = request_uid;
                s.full_state_on_reconnect = full_on_reconnect;
                s.max_message_size = max;
                s.reply_timeout = reply.map(Duration::from_secs);
                s.heartbeat_interval = hb.map(Duration::from_secs);
                s.custom_capabilities = vec!["io.x.a".into()];
                s
            },
        )
}

/// [`arb_settings`], sometimes with a candidate resumed after a restart (OPC-5 step 3), of
/// either transport or none.
fn arb_settings_maybe_resuming() -> impl Strategy<Value = Settings> {
    (
        arb_settings(),
        proptest::option::weighted(
            0.2,
            (
                prop_oneof![
                    Just("ws://a/v1/opamp"),
                    Just("http://c/v1/opamp"),
                    Just("ftp://x")
                ],
                proptest::collection::vec(0u8..3, 0..2),
            ),
        ),
    )
        .prop_map(|(mut s, candidate)| {
            s.candidate =
                candidate.map(|(e, hash)| PendingCandidate::new(ConnectionTarget::new(e), hash));
            s
        })
}

/// A pure acknowledgement addressed to the agent's current uid.
fn current_ack(h: &Harness) -> v1::ServerToAgent {
    v1::ServerToAgent {
        instance_uid: h.agent.instance_uid().to_vec(),
        ..Default::default()
    }
}

fn run(settings: Settings, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let transport = settings.transport;
    let resumed = usize::from(settings.candidate.is_some());
    let mut h = Harness::new(settings);
    h.drain();
    let mut stopped_at: Option<(usize, usize, usize)> = None;
    for op in ops {
        match op {
            Op::Message(m) => {
                // HTTP responses only exist for requests.
                if transport == Transport::WebSocket || h.outstanding == 1 {
                    h.reply(*m);
                }
            }
            Op::Error(e) => {
                h.fail(e);
            }
            Op::Connected => {
                h.agent.handle_connected(h.now);
                h.drain();
            }
            Op::Advance(s) => {
                h.advance(Duration::from_secs(s));
            }
            Op::SetHealth(b) => h.agent.set_health(health(b)),
            Op::SetEffective(b) => h.agent.set_effective_config(effective(&[b; 30])),
            Op::SetComponents(b) => h.agent.set_available_components(components(&[b])),
            Op::SetCapabilities(c) => h.agent.set_capabilities(AgentCapabilities::from_wire(c)),
            Op::Custom(ours) => {
                let _ = h.agent.send_custom_message(v1::CustomMessage {
                    capability: if ours { "io.x.a" } else { "io.zzz" }.into(),
                    r#type: "t".into(),
                    data: vec![],
                });
            }
            Op::Csr => {
                let _ = h.agent.request_certificate(b"csr".to_vec());
            }
            Op::Stop => h.agent.stop(h.now),
        }
        h.drain();
        // Nothing at all after Stopped.
        if let Some((sent, actions, events)) = stopped_at {
            prop_assert_eq!(h.sent.len(), sent, "message after Stopped");
            prop_assert_eq!(h.actions.len(), actions, "action after Stopped");
            prop_assert_eq!(h.events.len(), events, "event after Stopped");
        } else if h.events.iter().any(|e| matches!(e, Event::Stopped)) {
            prop_assert!(h.agent.is_stopped());
            prop_assert_eq!(h.agent.poll_timeout(), None);
            stopped_at = Some((h.sent.len(), h.actions.len(), h.events.len()));
        }
        // HTTP-6 is asserted inside Harness::drain; GEN-5 / CAP-1..3 / SEQ-6 in
        // Harness::check_invariants.
        // A candidate (offered, or resumed after a restart) is rejected at most once (OPC-5).
        let count = |f: fn(&Event) -> bool| h.events.iter().filter(|e| f(e)).count();
        prop_assert!(
            count(|e| matches!(e, Event::OpampSettingsRejected { .. }))
                <= resumed + count(|e| matches!(e, Event::OpampSettingsCandidate(_))),
            "a rejection without a candidate: {:?}",
            h.events
        );
    }
    // No loops: the same acknowledgement fed back repeatedly settles to silence.
    if h.agent.is_connected() {
        let mut last = usize::MAX;
        for _ in 0..4 {
            let ack = current_ack(&h);
            last = h.reply(ack).len();
        }
        prop_assert_eq!(last, 0, "an acknowledgement was answered (MSG-4)");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_sessions_keep_the_invariants_seq_6_cap_1_msg_4_http_6(
        settings in arb_settings_maybe_resuming(),
        ops in proptest::collection::vec(arb_op(), 0..60),
    ) {
        run(settings, ops)?;
    }

    #[test]
    fn any_single_server_message_is_handled_without_a_panic_msg_10(
        settings in arb_settings_maybe_resuming(),
        msgs in proptest::collection::vec(arb_message(), 1..8),
    ) {
        let mut h = Harness::new(settings);
        h.connect();
        for m in msgs {
            let http = h.transport == Transport::Http;
            if !http || h.outstanding == 1 {
                h.reply(m);
            }
            h.advance(Duration::from_secs(1));
        }
    }

    #[test]
    fn repeated_identical_messages_are_idempotent_msg_3(
        settings in arb_settings(),
        msg in arb_message(),
    ) {
        let mut h = Harness::new(settings);
        h.connect();
        // Deliver the same message three times; after the first, it changes nothing that
        // would need a new report (except what the server explicitly asks for).
        let asks = msg.error_response.is_none()
            && (msg.flags & 0x3 != 0);
        for round in 0..3 {
            if h.transport == Transport::Http && h.outstanding == 0 {
                h.advance(Duration::from_secs(400));
            }
            let events_before = h.events.len();
            let out = h.reply(msg.clone());
            if round == 2 && !asks && msg.error_response.is_none() && msg.connection_settings.is_none() {
                prop_assert!(out.is_empty(), "round {round}: {out:?}");
                let new_events: Vec<_> = h.events[events_before..].iter()
                    .filter(|e| !matches!(e, Event::CustomMessage(_) | Event::Command(_) | Event::Connected))
                    .collect();
                prop_assert!(new_events.is_empty(), "{new_events:?}");
            }
        }
    }
}
