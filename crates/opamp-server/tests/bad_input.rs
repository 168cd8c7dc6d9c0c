//! The bad input table: each case gets its documented response, and another agent on the
//! same server is still served afterwards.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use opamp_proto::ServerToAgentFlags;
use opamp_proto::prost::Message as _;
use opamp_proto::v1::{AgentToServer, ServerErrorResponseType, ServerToAgent};
use opamp_server::{Error, ServerConfig};
use tokio_tungstenite::tungstenite::Message;

const LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
enum Case {
    HttpMalformedProtobuf,
    HttpTruncatedGzip,
    HttpOversizedBody,
    HttpOversizedDeclaredLength,
    HttpUnknownContentEncoding,
    HttpGetWithProtobufContentType,
    WrongContentType,
    PlainGetWithoutUpgrade,
    HttpTenByteUid,
    HttpMissingUid,
    HttpUnknownAgent,
    WsMalformedProtobufNoUid,
    WsMalformedProtobufKnownUid,
    WsNonZeroHeader,
    WsLegacyHeaderless,
    WsTextFrame,
    WsOversizedMessage,
    WsTenByteUid,
    WsEmptyMessage,
}

const CASES: &[Case] = &[
    Case::HttpMalformedProtobuf,
    Case::HttpTruncatedGzip,
    Case::HttpOversizedBody,
    Case::HttpOversizedDeclaredLength,
    Case::HttpUnknownContentEncoding,
    Case::HttpGetWithProtobufContentType,
    Case::WrongContentType,
    Case::PlainGetWithoutUpgrade,
    Case::HttpTenByteUid,
    Case::HttpMissingUid,
    Case::HttpUnknownAgent,
    Case::WsMalformedProtobufNoUid,
    Case::WsMalformedProtobufKnownUid,
    Case::WsNonZeroHeader,
    Case::WsLegacyHeaderless,
    Case::WsTextFrame,
    Case::WsOversizedMessage,
    Case::WsTenByteUid,
    Case::WsEmptyMessage,
];

/// Bytes that are not a valid AgentToServer: field 1 (bytes) claims 100 bytes, has 2.
const GARBAGE: &[u8] = &[0x0a, 0x64, 0x01, 0x02];

fn assert_bad_request(reply: &ServerToAgent, uid_bytes: &[u8]) {
    let err = reply.error_response.as_ref().expect("error_response");
    assert_eq!(err.r#type, ServerErrorResponseType::BadRequest as i32);
    assert!(!err.error_message.is_empty(), "ERR-1: human-readable");
    assert!(reply.error_exclusivity_holds(), "MSG-7");
    assert_eq!(reply.instance_uid, uid_bytes);
}

async fn run_case(case: Case, srv: &TestServer<TestHandler>, n: u8) {
    let client = http_client();
    let url = srv.http_url();
    let post = |body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body)
    };
    match case {
        Case::HttpMalformedProtobuf => {
            // Policy: 400 with a BAD_REQUEST ServerToAgent body (no uid to echo).
            let response = post(GARBAGE.to_vec()).send().await.unwrap();
            assert_eq!(response.status(), 400);
            assert_eq!(response.headers()["content-type"], "application/x-protobuf");
            let reply = ServerToAgent::decode(response.bytes().await.unwrap()).unwrap();
            assert_bad_request(&reply, &[]);
        }
        Case::HttpTruncatedGzip => {
            let mut gz = opamp_proto::limits::gzip(&full(uid(n), 0, BASIC).encode_to_vec());
            gz.truncate(gz.len() - 8);
            let response = post(gz)
                .header("content-encoding", "gzip")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400);
            let reply = ServerToAgent::decode(response.bytes().await.unwrap()).unwrap();
            assert_bad_request(&reply, &[]);
        }
        Case::HttpOversizedBody => {
            // Streamed without Content-Length: counted while reading (HSL-2, HSL-3).
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..(2 * LIMIT / 65536))
                .map(|_| Ok(vec![0x0a; 65536]))
                .collect();
            let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
            let response = post(Vec::new()).body(body).send().await.unwrap();
            assert_eq!(response.status(), 413);
        }
        Case::HttpOversizedDeclaredLength => {
            let response = post(vec![0x0a; LIMIT + 1]).send().await.unwrap();
            assert_eq!(response.status(), 413);
        }
        Case::HttpUnknownContentEncoding => {
            let response = post(full(uid(n), 0, BASIC).encode_to_vec())
                .header("content-encoding", "br")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 415);
        }
        Case::HttpGetWithProtobufContentType => {
            let response = client
                .get(&url)
                .header("content-type", "application/x-protobuf")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405);
            assert_eq!(response.headers()["allow"], "POST");
        }
        Case::WrongContentType => {
            // Not protobuf, so it is taken as a WebSocket upgrade attempt (HTTP-8); not a
            // valid one: 400 with an explanation of both options.
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(full(uid(n), 0, BASIC).encode_to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400);
            let text = response.text().await.unwrap();
            assert!(text.contains("application/x-protobuf") && text.contains("WebSocket"));
        }
        Case::PlainGetWithoutUpgrade => {
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 400);
        }
        Case::HttpTenByteUid => {
            let msg = AgentToServer {
                instance_uid: vec![7; 10],
                capabilities: 1,
                ..Default::default()
            };
            let reply = http_exchange(&client, &url, &msg).await;
            assert_bad_request(&reply, &[7; 10]);
            assert_eq!(reply.capabilities, 0);
        }
        Case::HttpMissingUid => {
            let reply = http_exchange(&client, &url, &AgentToServer::default()).await;
            assert_bad_request(&reply, &[]);
        }
        Case::HttpUnknownAgent => {
            let reply = http_exchange(&client, &url, &heartbeat(uid(n), 41, BASIC)).await;
            assert!(
                reply
                    .server_flags()
                    .contains(ServerToAgentFlags::REPORT_FULL_STATE)
            );
        }
        Case::WsMalformedProtobufNoUid => {
            // Policy: no uid known on the connection, so nothing can be echoed: the
            // message is counted, not answered, and the connection stays usable.
            let mut ws = ws_connect(&srv.ws_url()).await;
            let mut frame = vec![0u8];
            frame.extend_from_slice(GARBAGE);
            ws.send(Message::Binary(frame.into())).await.unwrap();
            let reply = ws_exchange(&mut ws, &full(uid(n), 0, BASIC)).await;
            assert_eq!(
                reply.instance_uid,
                uid(n).to_vec(),
                "the next reply is to the valid message"
            );
            assert!(reply.error_response.is_none());
        }
        Case::WsMalformedProtobufKnownUid => {
            let mut ws = ws_connect(&srv.ws_url()).await;
            ws_exchange(&mut ws, &full(uid(n), 0, BASIC)).await;
            let mut frame = vec![0u8];
            frame.extend_from_slice(GARBAGE);
            ws.send(Message::Binary(frame.into())).await.unwrap();
            assert_bad_request(&ws_recv(&mut ws).await, &uid(n).to_vec());
            let ok = ws_exchange(&mut ws, &heartbeat(uid(n), 1, BASIC)).await;
            assert!(ok.error_response.is_none(), "connection kept");
        }
        Case::WsNonZeroHeader => {
            let mut ws = ws_connect(&srv.ws_url()).await;
            ws_exchange(&mut ws, &full(uid(n), 0, BASIC)).await;
            let mut frame = vec![0x01];
            frame.extend(heartbeat(uid(n), 1, BASIC).encode_to_vec());
            ws.send(Message::Binary(frame.into())).await.unwrap();
            assert_bad_request(&ws_recv(&mut ws).await, &uid(n).to_vec());
        }
        Case::WsLegacyHeaderless => {
            // Accepted for tolerance (WS-7).
            let mut ws = ws_connect(&srv.ws_url()).await;
            let frame = full(uid(n), 0, BASIC).encode_to_vec();
            ws.send(Message::Binary(frame.into())).await.unwrap();
            let reply = ws_recv(&mut ws).await;
            assert_eq!(reply.instance_uid, uid(n).to_vec());
            assert!(reply.error_response.is_none());
        }
        Case::WsTextFrame => {
            let mut ws = ws_connect(&srv.ws_url()).await;
            ws_exchange(&mut ws, &full(uid(n), 0, BASIC)).await;
            ws.send(Message::Text("hello".into())).await.unwrap();
            assert_bad_request(&ws_recv(&mut ws).await, &uid(n).to_vec());
            let ok = ws_exchange(&mut ws, &heartbeat(uid(n), 1, BASIC)).await;
            assert!(ok.error_response.is_none(), "connection kept");
        }
        Case::WsOversizedMessage => {
            let mut ws = ws_connect(&srv.ws_url()).await;
            ws_exchange(&mut ws, &full(uid(n), 0, BASIC)).await;
            let mut big = heartbeat(uid(n), 1, BASIC);
            big.custom_message = Some(opamp_proto::v1::CustomMessage {
                data: vec![1; LIMIT],
                ..Default::default()
            });
            let _ = ws
                .send(Message::Binary(opamp_proto::framing::encode(&big).into()))
                .await;
            assert_eq!(ws_close_code(&mut ws).await, Some(1009), "WSL-3");
        }
        Case::WsTenByteUid => {
            let mut ws = ws_connect(&srv.ws_url()).await;
            let msg = AgentToServer {
                instance_uid: vec![3; 10],
                capabilities: 1,
                ..Default::default()
            };
            assert_bad_request(&ws_exchange(&mut ws, &msg).await, &[3; 10]);
            assert!(
                srv.server
                    .agents()
                    .iter()
                    .all(|(u, _)| u.as_bytes()[..10] != [3; 10]),
                "UID-10: not registered"
            );
        }
        Case::WsEmptyMessage => {
            // A lone header byte is an empty AgentToServer (WS-6): decodes, has no uid.
            let mut ws = ws_connect(&srv.ws_url()).await;
            ws.send(Message::Binary(vec![0u8].into())).await.unwrap();
            assert_bad_request(&ws_recv(&mut ws).await, &[]);
        }
    }
}

#[tokio::test]
async fn bad_input_table_each_case_answered_as_documented_and_server_keeps_serving() {
    let config = ServerConfig::builder()
        .ws(test_config().ws)
        .max_message_size(LIMIT)
        .build();
    let srv = start(config, TestHandler::default()).await;
    for (i, case) in CASES.iter().enumerate() {
        let n = 100 + i as u8;
        tokio::time::timeout(GUARD, run_case(*case, &srv, n))
            .await
            .unwrap_or_else(|_| panic!("{case:?} timed out"));
        assert_still_serving(&srv.http_url(), 200 + i as u8).await;
        let mut ws = ws_connect(&srv.ws_url()).await;
        let reply = ws_exchange(&mut ws, &full(uid(n.wrapping_add(60)), 0, BASIC)).await;
        assert!(reply.error_response.is_none(), "{case:?}: WS still served");
    }
    let m = srv.server.metrics();
    assert!(m.malformed >= 6, "{m:?}");
    assert!(m.oversized_in >= 3, "{m:?}");
    srv.stop().await;
}

#[tokio::test]
async fn ws_client_that_never_reads_is_disconnected_and_memory_stays_bounded() {
    let mut config = test_config();
    config.ws.send_queue = 4;
    config.ws.write_timeout = Duration::from_secs(60);
    let srv = start(config, TestHandler::default()).await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    ws_exchange(&mut ws, &full(uid(1), 0, rcfg_caps())).await;
    // From now on the client never reads. Push distinct 256 KiB configs until the server
    // gives up on it.
    let mut accepted = 0usize;
    let mut outcome = None;
    for i in 0..10_000u32 {
        let mut body = vec![b'#'; 256 * 1024];
        body[..4].copy_from_slice(&i.to_le_bytes());
        let push = ServerToAgent {
            remote_config: Some(remote_config(&body)),
            ..Default::default()
        };
        match srv.server.push(uid(1), push) {
            Ok(_) => accepted += 1,
            Err(e) => {
                outcome = Some(e);
                break;
            }
        }
        // Pace the pushes so that a reading client would keep up: the queue only fills
        // once the socket buffers are full and the connection task's write blocks.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let err = outcome.expect("the server stopped accepting pushes for the slow reader");
    assert!(
        matches!(err, Error::QueueFull(_) | Error::AgentNotConnected(_)),
        "{err}"
    );
    eprintln!("slow reader: {accepted} pushes accepted before: {err}");
    // Bounded: socket buffers plus a queue of 4, far below the 10,000 offered.
    assert!(accepted < 2_000, "accepted {accepted} pushes");
    assert!(srv.server.metrics().dropped_slow_reader >= 1);
    tokio::time::timeout(GUARD, async {
        while srv.server.metrics().ws_connections != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("slow reader's connection closed");
    drop(ws);
    assert_still_serving(&srv.http_url(), 2).await;
    srv.stop().await;
}
