//! The harness itself: the two peer agents against the peer mock server, no code of ours.
//! When a test against our server fails and this one passes, the fault is ours.

#![allow(clippy::unwrap_used)] // tests and their support module may unwrap

use opamp_interop::peers_or_skip;

const CONFIG: &str = r#"{"log_level":"debug"}"#;

async fn agent_applies_the_mock_config(
    mut agent: opamp_interop::PeerProcess,
    mut mock: opamp_interop::MockServer,
) {
    let offered = agent
        .wait_for("a remote config", |e| e["event"] == "remote_config")
        .await;
    let hash = offered["hash"].as_str().unwrap().to_owned();
    assert_eq!(offered["files"]["app.json"]["body"], CONFIG);
    agent
        .wait_for("APPLIED reported", |e| {
            e["event"] == "remote_config_status" && e["hash"] == hash.as_str()
        })
        .await;
    mock.wait_for("APPLIED seen by the mock", |e| {
        e["remote_config_status"]["status"] == 1
            && e["remote_config_status"]["hash"] == hash.as_str()
    })
    .await;
    agent.stop().await;
    mock.process().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_node_agent_applies_mock_server_config() {
    let peers = peers_or_skip!("harness_node_agent_applies_mock_server_config");
    let mock = peers.mock_server(&[("app.json", CONFIG)]).await;
    let agent = peers.node_agent(mock.endpoint(), &[]);
    agent_applies_the_mock_config(agent, mock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_python_agent_applies_mock_server_config() {
    let peers = peers_or_skip!("harness_python_agent_applies_mock_server_config");
    let mock = peers.mock_server(&[("app.json", CONFIG)]).await;
    let agent = peers.python_agent(mock.endpoint(), &[]);
    agent_applies_the_mock_config(agent, mock).await;
}
