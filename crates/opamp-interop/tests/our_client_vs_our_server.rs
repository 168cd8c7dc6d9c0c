//! Our client against our server, end to end over real sockets, WebSocket and plain HTTP:
//! connect, describe, push a config, APPLIED, agent_disconnect on stop. These need no
//! peers and always run.

#![allow(clippy::unwrap_used)] // tests and their support module may unwrap

mod support;

use std::time::Duration;

use opamp_client::{AgentCapabilities, ClientEvent, OpampClient};
use opamp_proto::v1::{RemoteConfigStatuses, ServerToAgent};
use opamp_server::{Delivery, DisconnectReason, Transport};
use support::{ClientEvents, OurServer, Record, apply, attr, remote_config};

const BODY: &str = r#"{"exporters":["otlp"]}"#;

fn client(url: String) -> OpampClient {
    OpampClient::builder(url)
        .service_name("interop-rust-agent")
        .service_version("0.1.0")
        .capabilities(
            AgentCapabilities::ACCEPTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
                | AgentCapabilities::REPORTS_HEARTBEAT,
        )
        .heartbeat_interval(Some(Duration::from_secs(1)))
        .polling_interval(Duration::from_millis(500))
        .build()
        .unwrap()
}

async fn round_trip(transport: Transport) {
    let mut server = OurServer::start().await;
    let url = match transport {
        Transport::WebSocket => server.ws_url(),
        Transport::Http => server.http_url(),
    };
    let (handle, rx) = client(url).start().await.unwrap();
    let mut events = ClientEvents::new(rx);
    events
        .wait_for("Connected", |e| matches!(e, ClientEvent::Connected))
        .await;
    let uid = handle.instance_uid().await;

    // Connect and describe (SEQ-1, DESC-5).
    let (ctx, first) = server
        .wait_message("the first message", |_, m| m.agent_description.is_some())
        .await;
    assert_eq!(ctx.instance_uid, uid);
    assert_eq!(ctx.transport(), transport);
    let desc = first.agent_description.as_ref().unwrap();
    assert_eq!(
        attr(&desc.identifying_attributes, "service.name").as_deref(),
        Some("interop-rust-agent")
    );
    assert_eq!(
        attr(&desc.identifying_attributes, "service.version").as_deref(),
        Some("0.1.0")
    );

    // Push a config: at once over WebSocket, on the next poll over HTTP (RCFG-10).
    let config = remote_config("collector.json", BODY);
    let delivery = server
        .server
        .push(
            uid,
            ServerToAgent {
                remote_config: Some(config.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let expected = match transport {
        Transport::WebSocket => Delivery::Sent,
        Transport::Http => Delivery::Pending,
    };
    assert_eq!(delivery, expected);
    let received = events.remote_config().await;
    assert_eq!(received, config);
    apply(&handle, &received).await;

    // APPLIED with the hash, and the effective config (RCFG-3, RCFG-11).
    let (_, applied) = server
        .wait_message("APPLIED with the pushed hash", |_, m| {
            m.remote_config_status.as_ref().is_some_and(|s| {
                s.status == RemoteConfigStatuses::Applied as i32
                    && s.last_remote_config_hash == config.config_hash
            })
        })
        .await;
    let effective = match &applied.effective_config {
        Some(effective) => effective.clone(),
        None => server
            .wait_message("the effective config", |_, m| m.effective_config.is_some())
            .await
            .1
            .effective_config
            .unwrap(),
    };
    assert_eq!(effective.config_map, config.config);
    assert_eq!(
        server.server.agent(&uid).unwrap().reported_config_hash,
        Some(config.config_hash.clone())
    );

    // Stop: agent_disconnect is the last message (DISC-1), then the server forgets the
    // agent (DISC-6).
    handle.stop().await.unwrap();
    events
        .wait_for("Stopped", |e| matches!(e, ClientEvent::Stopped))
        .await;
    let (_, bye) = server
        .wait_message("agent_disconnect", |_, m| m.agent_disconnect.is_some())
        .await;
    let gone = server
        .wait_for("on_disconnect", |r| matches!(r, Record::Disconnected(_)))
        .await;
    let Record::Disconnected(gone) = gone else {
        unreachable!()
    };
    assert_eq!(gone.instance_uid, uid);
    assert_eq!(gone.reason, DisconnectReason::AgentDisconnect);

    // SEQ-6: our client counts every message, the disconnect included.
    let seqs: Vec<u64> = server
        .messages()
        .iter()
        .map(|(_, m)| m.sequence_num)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers {seqs:?}"
    );
    assert_eq!(seqs.last(), Some(&bye.sequence_num));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_and_server_over_websocket_push_apply_disconnect_rcfg_10_disc_2() {
    round_trip(Transport::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_and_server_over_http_push_apply_disconnect_http_13_disc_4() {
    round_trip(Transport::Http).await;
}
