//! Authentication (CONN-6) and admission control (THR-1, THR-3) on both transports.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::time::Duration;

use common::*;
use opamp_proto::prost::Message as _;
use opamp_proto::v1::{AgentToServer, ServerErrorResponseType, ServerToAgent};
use opamp_server::{Admission, AgentContext, ConnectionRequest, Handler, ServerConfig};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Connects a WebSocket expecting an HTTP refusal; returns (status, Retry-After).
async fn ws_refused(url: &str, token: Option<&str>) -> (u16, Option<String>) {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio::time::timeout(GUARD, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
    {
        Err(tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        ),
        Ok(_) => panic!("connection was accepted"),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn auth_failure_gets_401_on_http_and_on_ws_upgrade_conn_6() {
    let srv = start(test_config(), TestHandler::with_token("s3cret")).await;
    let client = http_client();
    // HTTP without and with a wrong token.
    let response = http_post(
        &client,
        &srv.http_url(),
        full(uid(1), 0, BASIC).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 401);
    let response = client
        .post(srv.http_url())
        .header("content-type", "application/x-protobuf")
        .header("authorization", "Bearer wrong")
        .body(full(uid(1), 0, BASIC).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // WS upgrade.
    assert_eq!(ws_refused(&srv.ws_url(), None).await.0, 401);
    assert_eq!(ws_refused(&srv.ws_url(), Some("wrong")).await.0, 401);
    // The right token is served on both.
    let response = client
        .post(srv.http_url())
        .header("content-type", "application/x-protobuf")
        .header("authorization", "Bearer s3cret")
        .body(full(uid(1), 0, BASIC).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut request = srv.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let reply = ws_exchange(&mut ws, &full(uid(2), 0, BASIC)).await;
    assert_eq!(reply.instance_uid, uid(2).to_vec());
    assert_eq!(srv.server.metrics().rejected_unauthorized, 4);
    // Nothing was registered for refused requests.
    assert_eq!(srv.handler().seen.lock().unwrap().messages.len(), 2);
    srv.stop().await;
}

#[tokio::test]
async fn too_many_ws_connections_get_503_with_retry_after_thr_3() {
    let config = ServerConfig::builder()
        .ws(test_config().ws)
        .max_ws_connections(1)
        .retry_after(Duration::from_secs(42))
        .build();
    let srv = start(config, TestHandler::default()).await;
    let mut first = ws_connect(&srv.ws_url()).await;
    ws_exchange(&mut first, &full(uid(1), 0, BASIC)).await;
    let (status, retry_after) = ws_refused(&srv.ws_url(), None).await;
    assert_eq!(status, 503);
    assert_eq!(retry_after.as_deref(), Some("42"));
    assert_eq!(srv.server.metrics().rejected_overload, 1);
    // HTTP is not affected by the WebSocket cap.
    assert_still_serving(&srv.http_url(), 3).await;
    // Once the first connection is gone, a new one is admitted.
    drop(first);
    tokio::time::timeout(GUARD, async {
        while srv.server.metrics().ws_connections != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let mut again = ws_connect(&srv.ws_url()).await;
    ws_exchange(&mut again, &full(uid(4), 0, BASIC)).await;
    srv.stop().await;
}

#[tokio::test]
async fn reconnect_storm_is_paced_with_429_and_retry_after_thr_3() {
    let config = ServerConfig::builder()
        .ws(test_config().ws)
        .new_ws_connection_rate(0.001, 2)
        .build();
    let srv = start(config, TestHandler::default()).await;
    let _a = ws_connect(&srv.ws_url()).await;
    let _b = ws_connect(&srv.ws_url()).await;
    let (status, retry_after) = ws_refused(&srv.ws_url(), None).await;
    assert_eq!(status, 429);
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!(secs >= 1);
    assert_eq!(srv.server.metrics().rejected_rate, 1);
    srv.stop().await;
}

#[tokio::test]
async fn too_many_http_requests_in_flight_get_503_thr_3() {
    let config = ServerConfig::builder()
        .max_http_in_flight(0)
        .retry_after(Duration::from_secs(7))
        .build();
    let srv = start(config, TestHandler::default()).await;
    let response = http_post(
        &http_client(),
        &srv.http_url(),
        full(uid(1), 0, BASIC).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    srv.stop().await;
}

/// A handler that throttles by itself.
struct Throttling;

impl Handler for Throttling {
    async fn on_connecting(&self, request: &ConnectionRequest) -> Admission {
        if request.headers.contains_key("x-throttle") {
            Admission::TooManyRequests {
                retry_after: Some(Duration::from_secs(30)),
            }
        } else {
            Admission::Accept
        }
    }

    async fn on_message(&self, _ctx: &AgentContext, msg: &AgentToServer) -> ServerToAgent {
        if msg.sequence_num > 0 {
            ServerToAgent::unavailable(Vec::new(), Duration::from_secs(3))
        } else {
            ServerToAgent::default()
        }
    }
}

#[tokio::test]
async fn handler_throttling_429_on_http_and_unavailable_over_ws_thr_1_thr_3() {
    let srv = start(test_config(), Throttling).await;
    let response = http_client()
        .post(srv.http_url())
        .header("content-type", "application/x-protobuf")
        .header("x-throttle", "1")
        .body(full(uid(1), 0, BASIC).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "30");

    let mut ws = ws_connect(&srv.ws_url()).await;
    let first = ws_exchange(&mut ws, &full(uid(2), 0, BASIC)).await;
    assert!(first.error_response.is_none());
    let throttled = ws_exchange(&mut ws, &heartbeat(uid(2), 1, BASIC)).await;
    let err = throttled.error_response.as_ref().unwrap();
    assert_eq!(err.r#type, ServerErrorResponseType::Unavailable as i32);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(throttled.instance_uid, uid(2).to_vec(), "MSG-5");
    assert!(throttled.error_exclusivity_holds(), "MSG-7");
    srv.stop().await;
}
