//! WebSocket transport against the scripted mock server: framing, bad input, limits,
//! headers, reconnects, throttling and the closing handshake.

#![allow(clippy::unwrap_used)] // tests and their support module may unwrap

mod support;

use std::time::Duration;

use opamp_client::opamp_proto::prost::Message as _;
use opamp_client::{ClientEvent, InstanceUid, OpampClient, TransportError, v1};
use support::{MockServer, Reply, WsEvent, caps, config_msg, fast, next_event};

fn is_config(hash: &'static [u8]) -> impl Fn(&ClientEvent) -> bool {
    move |e| matches!(e, ClientEvent::RemoteConfig(c) if c.config_hash == hash)
}

#[tokio::test]
async fn every_message_has_the_zero_header_and_headers_reach_the_upgrade_ws_3_opc_7() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.ws_url()))
        .service_name("ws-agent")
        .header("Authorization", "Bearer secret")
        .header("X-Custom", "42")
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    next_event(&mut events, "connected", |e| {
        matches!(e, ClientEvent::Connected)
    })
    .await;
    server
        .wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    handle
        .set_health(v1::ComponentHealth {
            healthy: true,
            ..Default::default()
        })
        .await
        .unwrap();
    server
        .wait("second message", |r| r.ws_messages().len() >= 2)
        .await;
    server.with(|r| {
        let (headers, _) = &r.upgrades[0];
        assert_eq!(headers["authorization"], "Bearer secret");
        assert_eq!(headers["x-custom"], "42");
        for e in &r.ws {
            if let WsEvent::Message { first_byte, .. } = e {
                assert_eq!(*first_byte, Some(0x00), "WS-3: header 0x00");
            }
        }
        let first = &r.ws_messages()[0];
        assert_eq!(first.instance_uid.len(), 16, "UID-3");
        let desc = first
            .agent_description
            .as_ref()
            .expect("full first report (SEQ-1)");
        assert!(
            desc.identifying_attributes
                .iter()
                .any(|kv| kv.key == "service.name")
        );
    });
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn client_accepts_legacy_headerless_frames_ws_7() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    server
        .wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    // A ServerToAgent without the 0x00 header, as pre-2023 servers sent it.
    server.push(Reply::Raw(config_msg(b"legacy", b"a: 1").encode_to_vec()));
    next_event(&mut events, "legacy config", is_config(b"legacy")).await;
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_dropped_and_the_connection_keeps_working_ws_1_ws_4_uid_7_msg_7() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let uid = handle.instance_uid().await;
    server
        .wait("first message", |r| !r.ws_messages().is_empty())
        .await;

    // Garbage protobuf after a valid header.
    server.push(Reply::Raw(vec![0x00, 0x0a, 0xff, 0xff]));
    next_event(&mut events, "garbage dropped", |e| {
        matches!(e, ClientEvent::MalformedMessage { .. })
    })
    .await;
    // A non-zero header (WS-4).
    let mut framed = vec![0x05];
    framed.extend(config_msg(b"bad-header", b"x").encode_to_vec());
    server.push(Reply::Raw(framed));
    next_event(
        &mut events,
        "non-zero header dropped",
        |e| matches!(e, ClientEvent::MalformedMessage { reason } if reason.contains("header")),
    )
    .await;
    // A text frame (WS-1).
    server.push(Reply::Text("hello".into()));
    next_event(
        &mut events,
        "text frame dropped",
        |e| matches!(e, ClientEvent::MalformedMessage { reason } if reason.contains("text")),
    )
    .await;
    // A 10-byte new_instance_uid (UID-7): ignored, the uid stays.
    server.push(Reply::Message(v1::ServerToAgent {
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: vec![1; 10],
        }),
        ..Default::default()
    }));
    // An error_response with other fields set (MSG-7): the error wins, nothing applied.
    let mut err = config_msg(b"with-error", b"x");
    err.error_response = Some(v1::ServerErrorResponse {
        r#type: v1::ServerErrorResponseType::BadRequest as i32,
        error_message: "nope".into(),
        details: None,
    });
    server.push(Reply::Message(err));
    next_event(&mut events, "server error", |e| {
        matches!(e, ClientEvent::ServerError(_))
    })
    .await;

    // A later good message is processed, on the same connection.
    server.push(Reply::Message(config_msg(b"good", b"a: 1")));
    let mut seen = Vec::new();
    let ev = next_event(&mut events, "good config", |e| {
        matches!(
            e,
            ClientEvent::RemoteConfig(_) | ClientEvent::NewInstanceUid(_)
        )
    })
    .await;
    seen.push(ev);
    assert!(
        matches!(&seen[0], ClientEvent::RemoteConfig(c) if c.config_hash == b"good"),
        "nothing from the bad messages was applied: {seen:?}"
    );
    assert_eq!(
        handle.instance_uid().await,
        uid,
        "UID-7: 10-byte uid ignored"
    );
    assert_eq!(server.with(|r| r.ws_opened()), 1, "no reconnect was needed");
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_server_message_closes_with_1009_then_recovers_wsl_4() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .max_message_size(4096)
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    server
        .wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    server.push(Reply::Message(config_msg(b"huge", &vec![b'x'; 10_000])));
    server
        .wait("close 1009", |r| {
            r.ws.iter().any(|e| matches!(e, WsEvent::Close(Some(1009))))
        })
        .await;
    // The client reconnects (CONN-4) and a later good message is processed.
    server.wait("reconnected", |r| r.ws_opened() >= 2).await;
    server
        .wait("report on the new connection", |r| {
            let opened =
                r.ws.iter()
                    .rposition(|e| matches!(e, WsEvent::Opened(_)))
                    .unwrap();
            r.ws[opened..]
                .iter()
                .any(|e| matches!(e, WsEvent::Message { .. }))
        })
        .await;
    server.push(Reply::Message(config_msg(b"small", b"a: 1")));
    let ev = next_event(&mut events, "small config", |e| {
        matches!(e, ClientEvent::RemoteConfig(_))
    })
    .await;
    assert!(matches!(ev, ClientEvent::RemoteConfig(c) if c.config_hash == b"small"));
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_outgoing_message_is_not_sent_wsl_6() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .max_message_size(512)
        .non_identifying_attribute("big", "y".repeat(2000))
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    next_event(&mut events, "discarded", |e| {
        matches!(e, ClientEvent::MessageDiscarded { .. })
    })
    .await;
    server
        .wait("a bare message instead", |r| !r.ws_messages().is_empty())
        .await;
    server.with(|r| {
        for m in r.ws_messages() {
            assert!(m.encoded_len() < 512);
            assert!(m.agent_description.is_none());
        }
    });
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn stop_sends_agent_disconnect_then_close_handshake_disc_2() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    server
        .wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    handle.stop().await.unwrap();
    server
        .wait("close seen", |r| {
            r.ws.iter().any(|e| matches!(e, WsEvent::Close(_)))
        })
        .await;
    server.with(|r| {
        let msgs: Vec<_> =
            r.ws.iter()
                .filter(|e| matches!(e, WsEvent::Message { .. } | WsEvent::Close(_)))
                .collect();
        let n = msgs.len();
        assert!(n >= 2);
        assert!(
            matches!(msgs[n - 2], WsEvent::Message { msg, .. } if msg.agent_disconnect.is_some()),
            "DISC-1: the last message carries agent_disconnect: {msgs:?}"
        );
        assert!(
            matches!(msgs[n - 1], WsEvent::Close(Some(1000))),
            "{msgs:?}"
        );
    });
    // The event stream ends with Stopped.
    let mut last = None;
    while let Some(e) = events.recv().await {
        last = Some(e);
    }
    assert!(matches!(last, Some(ClientEvent::Stopped)), "{last:?}");
    // Calling stop again is harmless; setters now fail.
    handle.stop().await.unwrap();
    assert!(handle.set_health(Default::default()).await.is_err());
}

#[tokio::test]
async fn unauthorized_upgrade_is_an_authentication_event_conn_6() {
    let server = MockServer::start().await;
    server.upgrade([Some((401, vec![]))]);
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    next_event(&mut events, "auth failed", |e| {
        matches!(e, ClientEvent::AuthenticationFailed)
    })
    .await;
    // Retried with backoff; the next upgrade is accepted.
    next_event(&mut events, "connected", |e| {
        matches!(e, ClientEvent::Connected)
    })
    .await;
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn throttled_upgrade_honours_retry_after_thr_3() {
    let server = MockServer::start().await;
    server.upgrade([Some((429, vec![("Retry-After".into(), "7".into())]))]);
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let ev = next_event(&mut events, "throttled", |e| {
        matches!(e, ClientEvent::ConnectFailed { .. })
    })
    .await;
    match ev {
        ClientEvent::ConnectFailed {
            error: TransportError::Throttled { retry_after },
            retry_in,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(retry_in >= Duration::from_secs(7), "{retry_in:?}");
        }
        other => panic!("{other:?}"),
    }
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn new_instance_uid_is_adopted_uid_6() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    server
        .wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    let new = InstanceUid::new_v7();
    server.push(Reply::Message(v1::ServerToAgent {
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: new.to_vec(),
        }),
        ..Default::default()
    }));
    let ev = next_event(&mut events, "new uid", |e| {
        matches!(e, ClientEvent::NewInstanceUid(_))
    })
    .await;
    assert!(matches!(ev, ClientEvent::NewInstanceUid(u) if u == new));
    assert_eq!(handle.instance_uid().await, new);
    handle
        .set_health(v1::ComponentHealth {
            healthy: true,
            ..Default::default()
        })
        .await
        .unwrap();
    server
        .wait("message with the new uid", |r| {
            r.ws_messages()
                .last()
                .is_some_and(|m| m.instance_uid == new.to_vec())
        })
        .await;
    handle.stop().await.unwrap();
}

/// CONN-4 then CONN-2 on tokio's paused clock: the server drops the WebSocket; the client
/// reconnects at once, then (after failed upgrades) waits 1 s, then 2 s.
#[tokio::test(start_paused = true)]
async fn dropped_websocket_reconnects_at_once_then_backs_off_conn_4_conn_2() {
    let server = MockServer::start().await;
    server.upgrade([None, Some((500, vec![])), Some((500, vec![])), None]);
    server.reply([Reply::Drop]);
    let client = OpampClient::builder(server.ws_url())
        .capabilities(caps())
        .backoff(opamp_client::Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.0,
        })
        .build()
        .unwrap();
    let (handle, _events) = client.start().await.unwrap();
    server
        .wait("four upgrade attempts", |r| r.upgrades.len() >= 4)
        .await;
    server.wait("connected again", |r| r.ws_opened() >= 2).await;
    let times: Vec<_> = server.with(|r| r.upgrades.iter().map(|(_, t)| *t).collect());
    let gap = |a: usize, b: usize| times[b] - times[a];
    assert!(
        gap(0, 1) < Duration::from_millis(100),
        "immediate: {:?}",
        gap(0, 1)
    );
    let near = |d: Duration, want: Duration| d >= want && d < want + Duration::from_millis(100);
    assert!(near(gap(1, 2), Duration::from_secs(1)), "{:?}", gap(1, 2));
    assert!(near(gap(2, 3), Duration::from_secs(2)), "{:?}", gap(2, 3));
    handle.stop().await.unwrap();
}

/// WS-10, HB-6, HB-7 on the paused clock: with nothing to say, a heartbeat every interval,
/// each carrying uid, capabilities and the next sequence number (HB-4, CAP-1, SEQ-6).
#[tokio::test(start_paused = true)]
async fn heartbeats_every_interval_ws_10_hb_7() {
    let server = MockServer::start().await;
    let client = OpampClient::builder(server.ws_url())
        .capabilities(caps())
        .heartbeat_interval(Some(Duration::from_secs(30)))
        .build()
        .unwrap();
    let (handle, _events) = client.start().await.unwrap();
    server
        .wait_for(Duration::from_secs(600), "three messages", |r| {
            r.ws_messages().len() >= 3
        })
        .await;
    let (times, msgs): (Vec<_>, Vec<_>) = server.with(|r| {
        let mut at = None;
        let mut out = Vec::new();
        for e in &r.ws {
            match e {
                WsEvent::Opened(t) => at = Some(*t),
                WsEvent::Message { msg, .. } => out.push((at, msg.clone())),
                _ => {}
            }
        }
        out.into_iter().unzip()
    });
    assert!(times.iter().all(Option::is_some));
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.instance_uid.len(), 16);
        assert_ne!(m.capabilities, 0);
        if i > 0 {
            assert_eq!(m.sequence_num, msgs[i - 1].sequence_num + 1);
        }
    }
    handle.stop().await.unwrap();
}

/// THR-2 on the paused clock: UNAVAILABLE with retry_info over WebSocket → goodbye,
/// close, wait at least retry_after, reconnect.
#[tokio::test(start_paused = true)]
async fn unavailable_disconnects_waits_and_reconnects_thr_2() {
    let server = MockServer::start().await;
    let client = OpampClient::builder(server.ws_url())
        .capabilities(caps())
        .throttle_floor(Duration::ZERO)
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    server
        .wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    let t0 = tokio::time::Instant::now();
    server.push(Reply::Message(v1::ServerToAgent::unavailable(
        vec![],
        Duration::from_secs(45),
    )));
    next_event(&mut events, "server error", |e| {
        matches!(e, ClientEvent::ServerError(_))
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(1), "processed at once");
    server
        .wait("goodbye and close", |r| {
            r.ws.iter().any(|e| matches!(e, WsEvent::Close(Some(1000))))
        })
        .await;
    assert!(server.with(|r| r.ws_messages().iter().any(|m| m.agent_disconnect.is_some())));
    server
        .wait_for(Duration::from_secs(600), "reconnected", |r| {
            r.ws_opened() >= 2
        })
        .await;
    let reopened = server.with(|r| r.upgrades[1].1);
    assert!(
        reopened - t0 >= Duration::from_secs(45),
        "{:?}",
        reopened - t0
    );
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn stop_while_reconnecting_ends_at_once() {
    let server = MockServer::start().await;
    server.upgrade((0..100).map(|_| Some((500, vec![]))));
    let client = OpampClient::builder(server.ws_url())
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    next_event(&mut events, "connect failed", |e| {
        matches!(e, ClientEvent::ConnectFailed { .. })
    })
    .await;
    support::guard("stop", handle.stop()).await.unwrap();
    let mut last = None;
    while let Some(e) = events.recv().await {
        last = Some(e);
    }
    assert!(matches!(last, Some(ClientEvent::Stopped)), "{last:?}");
}

#[tokio::test]
async fn dropping_every_handle_stops_the_client_gracefully() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.ws_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    server
        .wait("first message", |r| !r.ws_messages().is_empty())
        .await;
    let clone = handle.clone();
    drop(handle);
    drop(clone);
    next_event(&mut events, "stopped", |e| {
        matches!(e, ClientEvent::Stopped)
    })
    .await;
    server
        .wait("goodbye", |r| {
            r.ws_messages().iter().any(|m| m.agent_disconnect.is_some())
        })
        .await;
}
