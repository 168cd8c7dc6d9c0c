//! WebSocket transport over real sockets.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::time::Duration;

use common::*;
use opamp_proto::v1::{AgentDisconnect, RemoteConfigStatus, ServerToAgent};
use opamp_proto::{ServerCapabilities, ServerToAgentFlags};
use opamp_server::{Delivery, DisconnectReason, ServerConfig};

#[tokio::test]
async fn ws_first_reply_carries_capabilities_and_echoes_uid_cap_8_msg_5() {
    let srv = start_default().await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    let reply = ws_exchange(&mut ws, &full(uid(1), 0, BASIC)).await;
    assert_eq!(reply.instance_uid, uid(1).to_vec());
    let caps = reply.server_capabilities();
    assert!(caps.contains(ServerCapabilities::ACCEPTS_STATUS));
    assert!(caps.is_valid_to_send(), "CAP-9");
    assert!(
        !reply
            .server_flags()
            .contains(ServerToAgentFlags::REPORT_FULL_STATE)
    );
    let second = ws_exchange(&mut ws, &heartbeat(uid(1), 1, BASIC)).await;
    assert_eq!(second.capabilities, 0);
    assert_eq!(second.instance_uid, uid(1).to_vec());
    let snapshot = srv.server.metrics();
    assert_eq!(snapshot.ws_connections, 1);
    assert_eq!(snapshot.messages_in, 2);
    assert_eq!(snapshot.messages_out, 2);
    srv.stop().await;
}

#[tokio::test]
async fn ws_push_arrives_immediately_rcfg_10_ws_8() {
    let srv = start_default().await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    ws_exchange(&mut ws, &full(uid(2), 0, rcfg_caps())).await;
    let delivery = srv
        .server
        .push(
            uid(2),
            ServerToAgent {
                remote_config: Some(remote_config(b"pushed: true")),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(delivery, Delivery::Sent);
    let pushed = ws_recv(&mut ws).await;
    assert_eq!(pushed.instance_uid, uid(2).to_vec());
    let rc = pushed.remote_config.unwrap();
    assert_eq!(rc.config_hash.len(), 32, "RCFG-2");
    srv.stop().await;
}

#[tokio::test]
async fn ws_sequence_gap_gets_report_full_state_seq_11() {
    let srv = start_default().await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    ws_exchange(&mut ws, &full(uid(3), 0, rcfg_caps())).await;
    let gap = ws_exchange(&mut ws, &heartbeat(uid(3), 7, rcfg_caps())).await;
    assert!(
        gap.server_flags()
            .contains(ServerToAgentFlags::REPORT_FULL_STATE)
    );
    let answer = ws_exchange(&mut ws, &full(uid(3), 8, rcfg_caps())).await;
    assert!(
        !answer
            .server_flags()
            .contains(ServerToAgentFlags::REPORT_FULL_STATE)
    );
    srv.stop().await;
}

#[tokio::test]
async fn ws_remote_config_resent_only_when_hash_differs_rcfg_4_rcfg_5() {
    let srv = start(test_config(), TestHandler::offering(remote_config(b"a: 1"))).await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    let first = ws_exchange(&mut ws, &full(uid(4), 0, rcfg_caps())).await;
    let hash = first.remote_config.expect("offered").config_hash;
    // Applied: not resent although the handler offers it in every reply (RCFG-5).
    let mut applied = heartbeat(uid(4), 1, rcfg_caps());
    applied.remote_config_status = Some(RemoteConfigStatus {
        last_remote_config_hash: hash.clone(),
        status: opamp_proto::v1::RemoteConfigStatuses::Applied as i32,
        error_message: String::new(),
    });
    assert!(ws_exchange(&mut ws, &applied).await.remote_config.is_none());
    assert!(
        ws_exchange(&mut ws, &heartbeat(uid(4), 2, rcfg_caps()))
            .await
            .remote_config
            .is_none()
    );
    // The agent reports another hash: resent (RCFG-4).
    let mut other = heartbeat(uid(4), 3, rcfg_caps());
    other.remote_config_status = Some(RemoteConfigStatus {
        last_remote_config_hash: b"something else".to_vec(),
        ..Default::default()
    });
    let resent = ws_exchange(&mut ws, &other).await;
    assert_eq!(resent.remote_config.unwrap().config_hash, hash);
    srv.stop().await;
}

#[tokio::test]
async fn ws_several_agents_on_one_connection_msg_6() {
    let srv = start_default().await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    for n in 10..13 {
        let reply = ws_exchange(&mut ws, &full(uid(n), 0, rcfg_caps())).await;
        assert_eq!(reply.instance_uid, uid(n).to_vec());
    }
    // A push to the middle one carries its uid.
    srv.server
        .push(
            uid(11),
            ServerToAgent {
                remote_config: Some(remote_config(b"x")),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(ws_recv(&mut ws).await.instance_uid, uid(11).to_vec());
    drop(ws);
    // Closing the connection detaches all three (DISC-6).
    tokio::time::timeout(GUARD, async {
        while srv.handler().seen.lock().unwrap().disconnects.len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    {
        let seen = srv.handler().seen.lock().unwrap();
        assert!(
            seen.disconnects
                .iter()
                .all(|d| d.reason == DisconnectReason::ConnectionClosed)
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn ws_agent_disconnect_is_answered_and_forgotten_disc_6() {
    let srv = start_default().await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    ws_exchange(&mut ws, &full(uid(5), 0, BASIC)).await;
    let mut bye = heartbeat(uid(5), 1, BASIC);
    bye.agent_disconnect = Some(AgentDisconnect {});
    let reply = ws_exchange(&mut ws, &bye).await;
    assert_eq!(reply.instance_uid, uid(5).to_vec());
    assert!(matches!(
        srv.server.push(uid(5), ServerToAgent::default()),
        Err(opamp_server::Error::AgentNotConnected(_))
    ));
    {
        let seen = srv.handler().seen.lock().unwrap();
        assert_eq!(seen.disconnects.len(), 1);
        assert_eq!(
            seen.disconnects[0].reason,
            DisconnectReason::AgentDisconnect
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_websockets_with_1001_disc_3() {
    let srv = start_default().await;
    let mut a = ws_connect(&srv.ws_url()).await;
    let mut b = ws_connect(&srv.ws_url()).await;
    ws_exchange(&mut a, &full(uid(6), 0, BASIC)).await;
    ws_exchange(&mut b, &full(uid(7), 0, BASIC)).await;
    let server = srv.server.clone();
    let stopping = tokio::spawn(srv.stop());
    assert_eq!(ws_close_code(&mut a).await, Some(1001));
    assert_eq!(ws_close_code(&mut b).await, Some(1001));
    tokio::time::timeout(GUARD, stopping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.metrics().ws_connections, 0);
}

#[tokio::test]
async fn unanswered_pings_close_the_connection() {
    // The client never reads, so it never answers the server's pings.
    let config = ServerConfig::builder()
        .ws(test_config().ws)
        .ping(Duration::from_millis(50), Duration::from_millis(100))
        .build();
    let srv = start(config, TestHandler::default()).await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    ws_send(&mut ws, &full(uid(8), 0, BASIC)).await;
    tokio::time::timeout(GUARD, async {
        while srv.server.metrics().ws_connections_total == 0
            || srv.server.metrics().ws_connections != 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("connection closed");
    srv.stop().await;
}

#[tokio::test]
async fn answered_pings_keep_the_connection() {
    let config = ServerConfig::builder()
        .ws(test_config().ws)
        .ping(Duration::from_millis(20), Duration::from_secs(5))
        .build();
    let srv = start(config, TestHandler::default()).await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    ws_send(&mut ws, &full(uid(9), 0, BASIC)).await;
    ws_recv(&mut ws).await;
    // Reading answers pings (tungstenite replies automatically); after several ping
    // rounds the connection still works.
    let reader = tokio::time::timeout(Duration::from_millis(300), ws_recv(&mut ws)).await;
    assert!(reader.is_err(), "nothing but pings arrived");
    let reply = ws_exchange(&mut ws, &heartbeat(uid(9), 1, BASIC)).await;
    assert_eq!(reply.instance_uid, uid(9).to_vec());
    srv.stop().await;
}

#[tokio::test]
async fn idle_connection_is_closed_with_1000() {
    let config = ServerConfig::builder()
        .ws(test_config().ws)
        .idle_timeout(Some(Duration::from_millis(100)))
        .build();
    let srv = start(config, TestHandler::default()).await;
    // Connected, but no OpAMP message ever arrives.
    let mut ws = ws_connect(&srv.ws_url()).await;
    assert_eq!(ws_close_code(&mut ws).await, Some(1000));
    srv.stop().await;
}

#[tokio::test]
async fn request_instance_uid_over_ws_uid_5_uid_7() {
    let srv = start_default().await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    let mut msg = full(uid(12), 0, BASIC);
    msg.flags = opamp_proto::AgentToServerFlags::REQUEST_INSTANCE_UID.bits();
    let reply = ws_exchange(&mut ws, &msg).await;
    assert_eq!(reply.instance_uid, uid(12).to_vec(), "MSG-5: old uid");
    let new = reply.new_instance_uid().unwrap().unwrap();
    assert_eq!(new.uuid_version(), 7, "UUIDv7");
    let next = ws_exchange(&mut ws, &heartbeat(new, 1, BASIC)).await;
    assert_eq!(next.instance_uid, new.to_vec());
    srv.stop().await;
}

#[tokio::test]
async fn server_disconnect_closes_with_1008() {
    let srv = start_default().await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    ws_exchange(&mut ws, &full(uid(13), 0, BASIC)).await;
    assert!(srv.server.disconnect(&uid(13)));
    assert_eq!(ws_close_code(&mut ws).await, Some(1008));
    srv.stop().await;
}

#[tokio::test]
async fn ws_oversized_reply_is_not_sent_and_counted_wsl_5() {
    let mut config = test_config();
    config.max_outgoing_message_size = 1024;
    let srv = start(
        config,
        TestHandler::offering(remote_config(&vec![b'z'; 4096])),
    )
    .await;
    let mut ws = ws_connect(&srv.ws_url()).await;
    ws_send(&mut ws, &full(uid(14), 0, rcfg_caps())).await;
    // The reply is over the limit: not sent. The connection keeps working.
    tokio::time::timeout(GUARD, async {
        while srv.server.metrics().oversized_out == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let small = ws_exchange(
        &mut ws,
        &heartbeat(uid(15), 0, opamp_proto::AgentCapabilities::REPORTS_STATUS),
    )
    .await;
    assert_eq!(small.instance_uid, uid(15).to_vec());
    srv.stop().await;
}
