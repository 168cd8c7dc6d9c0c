//! Our client against a server we did not write: `@elastic/mockopampserver` (HTTP only),
//! run by `interop/node/mock-server.js`, which reports every request it answered. The
//! agent is built in-process with the `opamp-client` library, as `examples/agent.rs` does.

#![allow(clippy::unwrap_used)] // tests and their support module may unwrap

mod support;

use std::time::Duration;

use opamp_client::{AgentCapabilities, ClientEvent, OpampClient};
use opamp_interop::{peers_or_skip, to_hex};
use opamp_proto::ServerToAgentFlags;
use serde_json::Value;
use support::{ClientEvents, apply};

const FIRST: &str = r#"{"log_level":"info"}"#;
const SECOND: &str = r#"{"log_level":"debug"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_http_client_applies_mock_server_configs_http_7_http_11_seq_6_rcfg_3_disc_4() {
    let peers = peers_or_skip!("our_http_client_applies_mock_server_configs");
    let mut mock = peers.mock_server(&[("app.json", FIRST)]).await;

    let client = OpampClient::builder(mock.endpoint())
        .service_name("interop-rust-agent")
        .service_version("0.1.0")
        .capabilities(
            AgentCapabilities::ACCEPTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
                | AgentCapabilities::REPORTS_HEARTBEAT,
        )
        .polling_interval(Duration::from_millis(500))
        .build()
        .unwrap();
    let (handle, rx) = client.start().await.unwrap();
    let mut events = ClientEvents::new(rx);
    let uid = handle.instance_uid().await;

    // The mock offers its config on the first reply; we apply it and echo its hash.
    let first = events.remote_config().await;
    let files = &first.config.as_ref().unwrap().config_map;
    assert_eq!(files["app.json"].body, FIRST.as_bytes());
    assert_eq!(files["app.json"].content_type, "application/json");
    apply(&handle, &first).await;
    let first_hash = to_hex(&first.config_hash);
    mock.wait_for("APPLIED with the mock's first hash", |e| {
        e["remote_config_status"]["status"] == 1
            && e["remote_config_status"]["hash"] == first_hash.as_str()
    })
    .await;

    // A new config on the mock reaches us on a later poll (RCFG-10 from the agent's side).
    mock.set_config(&[("app.json", SECOND, "application/json")])
        .await;
    let second = events.remote_config().await;
    assert_ne!(second.config_hash, first.config_hash);
    assert_eq!(
        second.config.as_ref().unwrap().config_map["app.json"].body,
        SECOND.as_bytes()
    );
    apply(&handle, &second).await;
    let second_hash = to_hex(&second.config_hash);
    mock.wait_for("APPLIED with the mock's second hash", |e| {
        e["remote_config_status"]["status"] == 1
            && e["remote_config_status"]["hash"] == second_hash.as_str()
    })
    .await;

    // Stop: the last POST carries agent_disconnect (DISC-4).
    handle.stop().await.unwrap();
    events
        .wait_for("Stopped", |e| matches!(e, ClientEvent::Stopped))
        .await;
    mock.wait_for("agent_disconnect", |e| e["agent_disconnect"] == true)
        .await;
    mock.process().stop().await;

    let requests: Vec<Value> = mock
        .process()
        .seen()
        .iter()
        .filter(|e| e["event"] == "request")
        .cloned()
        .collect();
    let uid_hex = to_hex(uid.as_bytes());
    for r in &requests {
        // The mock answered every request normally: our requests were well-formed.
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["method"], "POST", "HTTP-1: {r}");
        assert_eq!(
            r["req_content_type"], "application/x-protobuf",
            "HTTP-7: {r}"
        );
        assert_eq!(r["instance_uid"], uid_hex.as_str(), "{r}");
        assert_eq!(r["instance_uid_header"], uid.to_string(), "HTTP-11: {r}");
        assert_eq!(r["s2a_instance_uid"], uid_hex.as_str(), "{r}");
    }
    let first_request = &requests[0];
    assert_eq!(
        first_request["agent_description"]["identifying"]["service.name"],
        "interop-rust-agent"
    );
    assert_eq!(
        first_request["agent_description"]["identifying"]["service.version"],
        "0.1.0"
    );
    // SEQ-6: one more for every message, the disconnect included.
    let seqs: Vec<u64> = requests
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers {seqs:?}"
    );
    // The mock asks for the full state only when something is missing; our reports never
    // leave it asking twice in a row (MSG-4 / SEQ-14 loop safety from the agent's side).
    let full_state: Vec<bool> = requests
        .iter()
        .map(|r| r["flags"].as_u64().unwrap() & ServerToAgentFlags::REPORT_FULL_STATE.bits() != 0)
        .collect();
    assert!(
        !full_state.windows(2).any(|w| w[0] && w[1]),
        "ReportFullState loop: {full_state:?}"
    );
    assert!(requests.last().unwrap()["agent_disconnect"] == true);
}
