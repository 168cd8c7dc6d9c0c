//! Plain-HTTP transport against the scripted mock server: headers, gzip, limits,
//! statuses (401, 413, 429, 503), one request in flight, new uid, goodbye.

#![allow(clippy::unwrap_used)] // tests and their support module may unwrap

mod support;

use std::time::{Duration, SystemTime};

use opamp_client::opamp_proto::prost::Message as _;
use opamp_client::{ClientEvent, InstanceUid, OpampClient, TransportError, v1};
use support::{MockServer, Reply, caps, config_msg, fast, next_event};

fn poll_fast(b: opamp_client::ClientBuilder) -> opamp_client::ClientBuilder {
    fast(b).polling_interval(Duration::from_millis(50))
}

#[tokio::test]
async fn posts_protobuf_with_uid_and_custom_headers_http_1_http_7_http_11_opc_7() {
    let server = MockServer::start().await;
    let client = poll_fast(OpampClient::builder(server.http_url()))
        .service_name("http-agent")
        .header("Authorization", "Bearer t0k3n")
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, _events) = client.start().await.unwrap();
    let uid = handle.instance_uid().await;
    server.wait("two requests", |r| r.http.len() >= 2).await;
    server.with(|r| {
        for req in &r.http {
            assert_eq!(req.headers["content-type"], "application/x-protobuf");
            assert_eq!(req.headers["authorization"], "Bearer t0k3n");
            assert_eq!(req.headers["opamp-instance-uid"], uid.to_string().as_str());
            assert!(req.headers.get("content-encoding").is_none());
            assert_eq!(req.headers["accept-encoding"], "gzip");
            let msg = req
                .msg
                .as_ref()
                .expect("a decodable AgentToServer (HTTP-1)");
            assert_eq!(msg.instance_uid, uid.to_vec());
        }
    });
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn gzip_request_bodies_and_gzip_responses_http_9() {
    let server = MockServer::start().await;
    server.reply([
        Reply::Message(Default::default()),
        Reply::GzipMessage(config_msg(b"gz", &vec![b'a'; 5000])),
    ]);
    let client = poll_fast(OpampClient::builder(server.http_url()))
        .capabilities(caps())
        .non_identifying_attribute("padding", "z".repeat(4000))
        .gzip_requests(true)
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let ev = next_event(&mut events, "gzipped config", |e| {
        matches!(e, ClientEvent::RemoteConfig(_))
    })
    .await;
    assert!(matches!(ev, ClientEvent::RemoteConfig(c) if c.config_hash == b"gz"));
    server.with(|r| {
        let first = &r.http[0];
        assert_eq!(first.headers["content-encoding"], "gzip");
        let msg = first.msg.as_ref().expect("the gzipped body decodes");
        // Compressed on the wire: much smaller than the encoded message.
        assert!(
            first.raw_len < msg.encoded_len() / 2,
            "{} vs {}",
            first.raw_len,
            msg.encoded_len()
        );
    });
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_responses_are_discarded_and_the_client_recovers_hsl_5() {
    let server = MockServer::start().await;
    server.reply([
        // Plain, over the limit.
        Reply::Message(config_msg(b"big", &vec![b'x'; 10_000])),
        // A gzip bomb: small on the wire, over the limit once inflated.
        Reply::GzipMessage(config_msg(b"bomb", &vec![0u8; 100_000])),
        // Garbage protobuf.
        Reply::Raw(vec![0x0a, 0xff, 0xff]),
        Reply::Message(config_msg(b"ok", b"a: 1")),
    ]);
    let client = poll_fast(OpampClient::builder(server.http_url()))
        .capabilities(caps())
        .max_message_size(4096)
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let mut malformed = 0;
    let ev = next_event(&mut events, "the good config", |e| {
        if matches!(e, ClientEvent::MalformedMessage { .. }) {
            malformed += 1;
        }
        matches!(e, ClientEvent::RemoteConfig(_))
    })
    .await;
    assert!(
        matches!(&ev, ClientEvent::RemoteConfig(c) if c.config_hash == b"ok"),
        "nothing from the discarded responses was applied: {ev:?}"
    );
    assert_eq!(malformed, 3, "each bad response was recorded (HSL-5)");
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_request_is_not_sent_hsl_7() {
    let server = MockServer::start().await;
    let client = poll_fast(OpampClient::builder(server.http_url()))
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
    server.wait("some request", |r| !r.http.is_empty()).await;
    server.with(|r| {
        for req in &r.http {
            assert!(req.raw_len <= 512, "HSL-7: {}", req.raw_len);
        }
    });
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn unauthorized_is_an_authentication_event_conn_6() {
    let server = MockServer::start().await;
    server.reply([Reply::Status(401, vec![])]);
    let client = poll_fast(OpampClient::builder(server.http_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    next_event(&mut events, "auth failed", |e| {
        matches!(e, ClientEvent::AuthenticationFailed)
    })
    .await;
    server
        .wait("retried after backoff", |r| r.http.len() >= 2)
        .await;
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn request_too_large_is_not_retried_hsl_4() {
    let server = MockServer::start().await;
    server.reply([Reply::Status(413, vec![])]);
    let client = poll_fast(OpampClient::builder(server.http_url()))
        .service_name("x")
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    next_event(&mut events, "discarded", |e| {
        matches!(e, ClientEvent::MessageDiscarded { .. })
    })
    .await;
    server.wait("the next poll", |r| r.http.len() >= 2).await;
    server.with(|r| {
        let first = r.http[0].msg.as_ref().unwrap();
        let second = r.http[1].msg.as_ref().unwrap();
        assert!(first.agent_description.is_some());
        assert_eq!(second.sequence_num, first.sequence_num + 1);
        assert!(
            second.agent_description.is_none(),
            "the rejected report is not sent again"
        );
    });
    handle.stop().await.unwrap();
}

async fn throttled(status: u16, retry_after: String) -> (Option<Duration>, Duration) {
    let server = MockServer::start().await;
    server.reply([Reply::Status(
        status,
        vec![("Retry-After".into(), retry_after)],
    )]);
    let client = poll_fast(OpampClient::builder(server.http_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let ev = next_event(&mut events, "throttled", |e| {
        matches!(e, ClientEvent::ConnectFailed { .. })
    })
    .await;
    handle.stop().await.unwrap();
    match ev {
        ClientEvent::ConnectFailed {
            error: TransportError::Throttled { retry_after },
            retry_in,
        } => (retry_after, retry_in),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn too_many_requests_with_delta_seconds_thr_3() {
    let (retry_after, retry_in) = throttled(429, "7".into()).await;
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    assert!(retry_in >= Duration::from_secs(7));
}

#[tokio::test]
async fn service_unavailable_with_http_date_thr_3() {
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let (retry_after, retry_in) = throttled(503, date).await;
    let d = retry_after.expect("HTTP-date parsed");
    assert!(
        d > Duration::from_secs(100) && d <= Duration::from_secs(120),
        "{d:?}"
    );
    assert!(retry_in >= d);
}

#[tokio::test]
async fn one_request_in_flight_http_6() {
    let server = MockServer::start().await;
    server.set_http_delay(Duration::from_millis(100));
    let client = poll_fast(OpampClient::builder(server.http_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, _events) = client.start().await.unwrap();
    for i in 0..5 {
        handle
            .set_health(v1::ComponentHealth {
                healthy: true,
                status: format!("step {i}"),
                ..Default::default()
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    server.wait("several requests", |r| r.http.len() >= 3).await;
    handle.stop().await.unwrap();
    assert_eq!(server.with(|r| r.http_max_in_flight), 1);
    // The latest status made it out.
    server.with(|r| {
        let last_health = r
            .http_messages()
            .iter()
            .rev()
            .find_map(|m| m.health.clone())
            .unwrap();
        assert_eq!(last_health.status, "step 4");
    });
}

#[tokio::test]
async fn new_instance_uid_switches_the_header_uid_6_http_11() {
    let server = MockServer::start().await;
    let new = InstanceUid::new_v7();
    server.reply([Reply::Message(v1::ServerToAgent {
        agent_identification: Some(v1::AgentIdentification {
            new_instance_uid: new.to_vec(),
        }),
        ..Default::default()
    })]);
    let client = poll_fast(OpampClient::builder(server.http_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let old = handle.instance_uid().await;
    next_event(
        &mut events,
        "new uid",
        |e| matches!(e, ClientEvent::NewInstanceUid(u) if *u == new),
    )
    .await;
    server
        .wait("a request after the switch", |r| r.http.len() >= 2)
        .await;
    server.with(|r| {
        assert_eq!(
            r.http[0].headers["opamp-instance-uid"],
            old.to_string().as_str()
        );
        let later = &r.http[r.http.len() - 1];
        assert_eq!(
            later.headers["opamp-instance-uid"],
            new.to_string().as_str()
        );
        assert_eq!(later.msg.as_ref().unwrap().instance_uid, new.to_vec());
    });
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn last_post_carries_agent_disconnect_disc_4() {
    let server = MockServer::start().await;
    let client = fast(OpampClient::builder(server.http_url()))
        .capabilities(caps())
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    server.wait("first request", |r| !r.http.is_empty()).await;
    next_event(&mut events, "connected", |e| {
        matches!(e, ClientEvent::Connected)
    })
    .await;
    handle.stop().await.unwrap();
    server.with(|r| {
        let last = r.http.last().unwrap().msg.as_ref().unwrap();
        assert!(last.agent_disconnect.is_some(), "{:?}", r.http_messages());
    });
}

/// HTTP-3 / HTTP-4 on the paused clock: with nothing to say, a poll every interval.
#[tokio::test(start_paused = true)]
async fn polls_at_the_configured_interval_http_3_http_4() {
    let server = MockServer::start().await;
    let client = OpampClient::builder(server.http_url())
        .capabilities(caps())
        .polling_interval(Duration::from_secs(30))
        .build()
        .unwrap();
    let (handle, _events) = client.start().await.unwrap();
    server
        .wait_for(Duration::from_secs(600), "three requests", |r| {
            r.http.len() >= 3
        })
        .await;
    let times: Vec<_> = server.with(|r| r.http.iter().map(|h| h.at).collect());
    for pair in times.windows(2).skip(1) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_secs(30) && gap < Duration::from_secs(31),
            "{gap:?}"
        );
    }
    handle.stop().await.unwrap();
}
