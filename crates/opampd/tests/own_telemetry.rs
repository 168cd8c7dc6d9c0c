//! Own telemetry: with `--own-metrics-endpoint`, opampd offers that OTLP/HTTP destination to
//! every agent that reports its own metrics (OWN-1, OWN-6), over both transports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use opamp_client::{AgentCapabilities, Backoff, ClientEvent, OpampClient, v1};
use support::{Opampd, WAIT, opampd_bin};
use tokio::process::Command;

const ENDPOINT: &str = "http://127.0.0.1:4318/v1/metrics";

/// Connects an agent reporting its own metrics and returns the first own-telemetry offer.
async fn first_offer(url: &str) -> v1::ConnectionSettingsOffers {
    let client = OpampClient::builder(url)
        .service_name("own-telemetry-test")
        .capabilities(AgentCapabilities::REPORTS_OWN_METRICS | AgentCapabilities::REPORTS_HEARTBEAT)
        .heartbeat_interval(Some(Duration::from_secs(1)))
        .polling_interval(Duration::from_millis(300))
        .backoff(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            multiplier: 2.0,
            jitter: 0.2,
        })
        .build()
        .unwrap();
    let (handle, mut events) = client.start().await.unwrap();
    let offer = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(ClientEvent::ConnectionSettingsOffer(o)) => break o,
                Some(_) => {}
                None => panic!("client stopped before any offer"),
            }
        }
    })
    .await
    .expect("no own-telemetry offer");
    handle.stop().await.ok();
    offer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_destination_is_offered_on_attach_own_1_own_6() {
    let dir = tempfile::tempdir().unwrap();
    let d = Opampd::start(
        &dir.path().join("data"),
        None,
        &["--own-metrics-endpoint", ENDPOINT],
    )
    .await;
    for url in [d.ws_url(), d.http_url()] {
        let offer = first_offer(&url).await;
        let metrics = offer.own_metrics.expect("own_metrics offered");
        assert_eq!(metrics.destination_endpoint, ENDPOINT, "{url}");
        assert_eq!(offer.hash.len(), 32, "the offer carries a SHA-256 hash");
        assert!(offer.own_traces.is_none() && offer.own_logs.is_none());
    }
}

#[tokio::test]
async fn own_metrics_endpoint_must_be_an_http_url_own_6() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(opampd_bin())
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--own-metrics-endpoint", "127.0.0.1:4318"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--own-metrics-endpoint must be a full OTLP/HTTP URL"),
        "{stderr}"
    );
}

/// Posts one protobuf message over plain HTTP and decodes the reply.
async fn post(url: &str, msg: &v1::AgentToServer) -> v1::ServerToAgent {
    use opamp_proto::prost::Message as _;
    let body = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .body(msg.encode_to_vec())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    v1::ServerToAgent::decode(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_connection_settings_hash_gets_the_offer_again_css_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = Opampd::start(
        &dir.path().join("data"),
        None,
        &["--own-metrics-endpoint", ENDPOINT],
    )
    .await;
    let uid = opamp_proto::InstanceUid::new_v7();
    let caps = (AgentCapabilities::REPORTS_STATUS
        | AgentCapabilities::REPORTS_OWN_METRICS
        | AgentCapabilities::REPORTS_CONNECTION_SETTINGS_STATUS)
        .bits();
    let mut msg = v1::AgentToServer {
        instance_uid: uid.as_bytes().to_vec(),
        sequence_num: 0,
        capabilities: caps,
        agent_description: Some(v1::AgentDescription::default()),
        ..Default::default()
    };
    // First contact: offered (OWN-1).
    let first = post(&d.http_url(), &msg).await;
    let offer = first.connection_settings.expect("offered on first contact");

    // The agent applied it and says so: nothing more is sent.
    msg.sequence_num = 1;
    msg.agent_description = None;
    msg.connection_settings_status = Some(v1::ConnectionSettingsStatus {
        last_connection_settings_hash: offer.hash.clone(),
        status: v1::ConnectionSettingsStatuses::Applied as i32,
        error_message: String::new(),
    });
    let second = post(&d.http_url(), &msg).await;
    assert!(second.connection_settings.is_none(), "{second:?}");

    // The agent reports another hash: the reply MUST carry the settings (CSS-2).
    msg.sequence_num = 2;
    msg.connection_settings_status = Some(v1::ConnectionSettingsStatus {
        last_connection_settings_hash: vec![7; 32],
        status: v1::ConnectionSettingsStatuses::Applied as i32,
        error_message: String::new(),
    });
    let third = post(&d.http_url(), &msg).await;
    assert_eq!(third.connection_settings, Some(offer));
}
