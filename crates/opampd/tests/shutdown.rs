//! Graceful shutdown: on SIGTERM, WebSocket agents get a close frame with code 1001
//! (DISC-3) and the batched last-seen times are written before the process exits.

#![allow(clippy::unwrap_used)]

mod support;

use futures_util::{SinkExt, StreamExt};
use opamp_proto::v1::{AgentDescription, AgentToServer, KeyValue, ServerToAgent};
use opamp_proto::{AgentCapabilities, InstanceUid, Limits, framing};
use support::Opampd;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_websockets_with_1001_and_flushes_last_seen_disc_3() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Last-seen writes only at shutdown: an hour between periodic flushes.
    let mut d = Opampd::start(&data, None, &["--last-seen-flush-secs", "3600"]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url()).await.unwrap();
    let uid = InstanceUid::new_v7();
    let caps = (AgentCapabilities::REPORTS_STATUS | AgentCapabilities::REPORTS_HEARTBEAT).bits();
    let mut exchange = async |msg: AgentToServer| -> ServerToAgent {
        ws.send(Message::Binary(framing::encode(&msg).into()))
            .await
            .unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Binary(b) => return framing::decode(&b, Limits::default()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    exchange(AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: 1,
        capabilities: caps,
        agent_description: Some(AgentDescription {
            identifying_attributes: vec![KeyValue::new("service.name", "bye")],
            non_identifying_attributes: vec![],
        }),
        ..Default::default()
    })
    .await;
    let first = d
        .wait_get("the agent", &format!("/api/v1/agents/{uid}"), |a| {
            a["connected"] == true
        })
        .await;
    // A heartbeat a little later: only the batched last-seen moves.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    exchange(AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: 2,
        capabilities: caps,
        ..Default::default()
    })
    .await;

    let pid = d.terminate_start().await;
    let close = loop {
        match tokio::time::timeout(support::WAIT, ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(
        close.map(|f| f.code),
        Some(CloseCode::Away),
        "DISC-3: close code 1001"
    );
    // Finish the closing handshake (our close frame goes back).
    while let Ok(Some(Ok(_))) = tokio::time::timeout(support::WAIT, ws.next()).await {}
    let status = d.wait_exit().await;
    assert!(status.success(), "{status} (pid {pid})\n{}", d.stderr());

    // Restart: the heartbeat's time was written on the way out.
    let mut d = Opampd::start(&data, None, &["--last-seen-flush-secs", "3600"]).await;
    let after = d.get(&format!("/api/v1/agents/{uid}")).await;
    assert_eq!(after["connected"], false);
    assert!(
        after["last_seen"].as_str() > first["last_seen"].as_str(),
        "last_seen {} not after {}",
        after["last_seen"],
        first["last_seen"]
    );
    assert!(d.terminate().await.success());
}
