//! Plain-HTTP transport over real sockets.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::time::Duration;

use common::*;
use opamp_proto::prost::Message as _;
use opamp_proto::v1::{ServerToAgent, ServerToAgentCommand};
use opamp_proto::{AgentCapabilities, ServerCapabilities, ServerToAgentFlags};
use opamp_server::{Delivery, DisconnectReason, ServerConfig};

#[tokio::test]
async fn http_first_reply_carries_capabilities_and_echoes_uid_cap_8_msg_5_http_14() {
    let srv = start_default().await;
    let client = http_client();
    let reply = http_exchange(&client, &srv.http_url(), &full(uid(1), 0, BASIC)).await;
    assert_eq!(reply.instance_uid, uid(1).to_vec());
    assert!(
        reply
            .server_capabilities()
            .contains(ServerCapabilities::ACCEPTS_STATUS)
    );
    let second = http_exchange(&client, &srv.http_url(), &heartbeat(uid(1), 1, BASIC)).await;
    // Every HTTP reply repeats the capabilities (each poll stands alone; the Node client
    // re-reads them), and otherwise carries only the uid when there is nothing to say (HTTP-2).
    assert_eq!(
        second,
        ServerToAgent {
            instance_uid: uid(1).to_vec(),
            capabilities: reply.capabilities,
            ..Default::default()
        },
        "HTTP-2: nothing to say, only instance_uid and capabilities"
    );
    assert_eq!(srv.server.metrics().http_requests_total, 2);
    srv.stop().await;
}

#[tokio::test]
async fn content_type_with_parameters_and_other_case_is_plain_http_http_8() {
    let srv = start_default().await;
    let client = http_client();
    let response = client
        .post(srv.http_url())
        .header(
            "content-type",
            "Application/X-Protobuf; proto=opamp.proto.v1.AgentToServer",
        )
        .body(full(uid(2), 0, BASIC).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply = ServerToAgent::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(reply.instance_uid, uid(2).to_vec());
    srv.stop().await;
}

#[tokio::test]
async fn gzip_request_and_gzip_response_http_10_http_12() {
    let big = vec![b'x'; 8192];
    let srv = start(test_config(), TestHandler::offering(remote_config(&big))).await;
    let client = http_client();
    let body = opamp_proto::limits::gzip(&full(uid(3), 0, rcfg_caps()).encode_to_vec());
    let response = client
        .post(srv.http_url())
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .header("accept-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.unwrap();
    assert!(compressed.len() < big.len());
    let plain = opamp_proto::limits::gunzip(&compressed, 1 << 20).unwrap();
    let reply = ServerToAgent::decode(plain.as_slice()).unwrap();
    assert_eq!(reply.instance_uid, uid(3).to_vec());
    assert_eq!(
        reply.remote_config.unwrap().config.unwrap().config_map["agent.yaml"].body,
        big
    );
    // The handler saw the decompressed message.
    {
        let seen = srv.handler().seen.lock().unwrap();
        assert_eq!(seen.messages[0].1.instance_uid, uid(3).to_vec());
    }
    srv.stop().await;
}

#[tokio::test]
async fn no_gzip_response_without_accept_encoding_http_12() {
    let srv = start(
        test_config(),
        TestHandler::offering(remote_config(&vec![b'y'; 4096])),
    )
    .await;
    let response = http_post(
        &http_client(),
        &srv.http_url(),
        full(uid(4), 0, rcfg_caps()).encode_to_vec(),
    )
    .await;
    assert!(response.headers().get("content-encoding").is_none());
    let reply = ServerToAgent::decode(response.bytes().await.unwrap()).unwrap();
    assert!(reply.remote_config.is_some());
    srv.stop().await;
}

#[tokio::test]
async fn push_to_http_agent_arrives_on_next_poll_http_13_err_7() {
    let srv = start_default().await;
    let client = http_client();
    let caps = rcfg_caps() | AgentCapabilities::ACCEPTS_RESTART_COMMAND;
    http_exchange(&client, &srv.http_url(), &full(uid(5), 0, caps)).await;
    for body in [&b"first"[..], b"second"] {
        let delivery = srv
            .server
            .push(
                uid(5),
                ServerToAgent {
                    remote_config: Some(remote_config(body)),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(delivery, Delivery::Pending);
    }
    let poll = http_exchange(&client, &srv.http_url(), &heartbeat(uid(5), 1, caps)).await;
    let rc = poll
        .remote_config
        .expect("pending config delivered on the poll");
    assert_eq!(rc.config.unwrap().config_map["agent.yaml"].body, b"second");
    let next = http_exchange(&client, &srv.http_url(), &heartbeat(uid(5), 2, caps)).await;
    assert!(next.remote_config.is_none(), "delivered once");
    // A pushed command goes alone (CMD-2).
    srv.server
        .push(
            uid(5),
            ServerToAgent {
                command: Some(ServerToAgentCommand { r#type: 0 }),
                flags: ServerToAgentFlags::REPORT_FULL_STATE.bits(),
                ..Default::default()
            },
        )
        .unwrap();
    let cmd = http_exchange(&client, &srv.http_url(), &heartbeat(uid(5), 3, caps)).await;
    assert!(cmd.command.is_some());
    assert_eq!(cmd.flags, 0);
    let rest = http_exchange(&client, &srv.http_url(), &heartbeat(uid(5), 4, caps)).await;
    assert!(
        rest.server_flags()
            .contains(ServerToAgentFlags::REPORT_FULL_STATE)
    );
    srv.stop().await;
}

#[tokio::test]
async fn http_unknown_agent_gets_report_full_state_seq_13() {
    let srv = start_default().await;
    let reply = http_exchange(
        &http_client(),
        &srv.http_url(),
        &heartbeat(uid(6), 100, rcfg_caps()),
    )
    .await;
    assert!(
        reply
            .server_flags()
            .contains(ServerToAgentFlags::REPORT_FULL_STATE)
    );
    srv.stop().await;
}

#[tokio::test]
async fn http_agent_that_stops_polling_is_reported_disconnected_disc_5() {
    let config = ServerConfig::builder()
        .http_poll_interval(Duration::from_millis(100))
        .missed_polls(2)
        .build();
    let srv = start(config, TestHandler::default()).await;
    http_exchange(&http_client(), &srv.http_url(), &full(uid(7), 0, BASIC)).await;
    tokio::time::timeout(GUARD, async {
        while srv.handler().seen.lock().unwrap().disconnects.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("liveness timeout reported");
    {
        let seen = srv.handler().seen.lock().unwrap();
        assert_eq!(seen.disconnects[0].instance_uid, uid(7));
        assert_eq!(seen.disconnects[0].reason, DisconnectReason::MissedPolls);
    }
    srv.stop().await;
}

#[tokio::test]
async fn oversized_reply_is_not_sent_and_answered_500_hsl_6() {
    let config = ServerConfig::builder()
        .max_outgoing_message_size(1024)
        .build();
    let srv = start(
        config,
        TestHandler::offering(remote_config(&vec![b'z'; 4096])),
    )
    .await;
    let response = http_post(
        &http_client(),
        &srv.http_url(),
        full(uid(8), 0, rcfg_caps()).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 500);
    assert_eq!(srv.server.metrics().oversized_out, 1);
    assert_still_serving(&srv.http_url(), 9).await;
    srv.stop().await;
}

#[tokio::test]
async fn router_can_be_mounted_at_a_custom_path_gen_3() {
    let config = ServerConfig::builder().path("/custom/opamp").build();
    let server = opamp_server::Server::new(config, TestHandler::default());
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let url = format!("http://{addr}/custom/opamp");
    let reply = http_exchange(&http_client(), &url, &full(uid(10), 0, BASIC)).await;
    assert_eq!(reply.instance_uid, uid(10).to_vec());
    let mut ws = ws_connect(&format!("ws://{addr}/custom/opamp")).await;
    let reply = ws_exchange(&mut ws, &full(uid(11), 0, BASIC)).await;
    assert_eq!(reply.instance_uid, uid(11).to_vec());
    {
        let seen = server.handler().seen.lock().unwrap();
        assert!(seen.connecting.iter().all(|c| c.peer_addr.is_some()));
    }
    task.abort();
}

/// A handler that holds every message until released.
struct Gate {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl opamp_server::Handler for Gate {
    async fn on_message(
        &self,
        _ctx: &opamp_server::AgentContext,
        _msg: &opamp_proto::v1::AgentToServer,
    ) -> ServerToAgent {
        self.entered.notify_one();
        self.release.notified().await;
        ServerToAgent::default()
    }
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_http_requests() {
    let srv = start(
        test_config(),
        Gate {
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        },
    )
    .await;
    let url = srv.http_url();
    let request =
        tokio::spawn(
            async move { http_exchange(&http_client(), &url, &full(uid(12), 0, BASIC)).await },
        );
    tokio::time::timeout(GUARD, srv.handler().entered.notified())
        .await
        .unwrap();
    srv.server.shutdown();
    // The server stopped accepting, but the request in flight is still answered.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!request.is_finished());
    srv.handler().release.notify_one();
    let reply = tokio::time::timeout(GUARD, request).await.unwrap().unwrap();
    assert_eq!(reply.instance_uid, uid(12).to_vec());
    tokio::time::timeout(GUARD, srv.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
