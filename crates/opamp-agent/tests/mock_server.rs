//! opamp-agent against a server we did not write: npm `@elastic/mockopampserver` (HTTP only),
//! run by `interop/node/mock-server.js`, which reports every request it answered. The
//! managed agent is Debian's collectd, as in `collectd.rs`.
//!
//! Skipped (with a printed line) unless `cargo xtask test` installed the peers
//! (`OPAMP_INTEROP_NODE_MODULES`, `OPAMP_INTEROP_PYTHON`), and when /usr/sbin/collectd is
//! missing unless `OPAMP_REQUIRE_COLLECTD=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_e2e;

use opamp_interop::peers_or_skip;
use serde_json::Value;
use support_e2e::{Agent, Layout, alive, wait_collectd, wait_until};

/// The config the mock offers: the load plugin.
const LOAD: &str = "LoadPlugin load\n";

/// `RemoteConfigStatuses::Applied` as the mock reports it.
const APPLIED: u64 = 1;

#[tokio::test]
async fn mock_server_config_is_applied_to_collectd_and_reported_rcfg_3_eff_2_eff_5_http_1_disc_4() {
    let test = "mock_server_config_is_applied_to_collectd_and_reported";
    let peers = peers_or_skip!(test);
    collectd_or_skip!(test);
    let mut mock = peers.mock_server(&[]).await;
    mock.set_config(&[("", LOAD, "text/plain")]).await;

    let layout = Layout::new();
    layout.write_agent_config(mock.endpoint(), "1s", "");
    let mut agent = Agent::start(&layout.config).await;
    let first = wait_collectd(&agent, "the first collectd", &[]).await;

    // The mock offers its config on its first reply, as a single file under the key ""
    // (EFF-5): opamp-agent writes it as its main file (collectd.conf), validates it,
    // restarts collectd with it, and reports APPLIED with the mock's hash and its effective
    // config.
    let offer = mock
        .wait_for("the mock's offer", |e| e["remote_config_hash"].is_string())
        .await;
    let hash = offer["remote_config_hash"].as_str().unwrap().to_owned();
    mock.wait_for("APPLIED with the mock's hash", |e| {
        e["remote_config_status"]["status"].as_u64() == Some(APPLIED)
            && e["remote_config_status"]["hash"] == hash.as_str()
    })
    .await;
    // The mock offers at once, so the restart may be over before `first` was read: what
    // matters is that the collectd running now was started after the apply began.
    let restarted = wait_collectd(&agent, "collectd running after the apply", &[]).await;
    let log = agent.output.text();
    let lines: Vec<&str> = log.lines().collect();
    let applying = lines
        .iter()
        .position(|l| l.contains("applying config"))
        .unwrap_or_else(|| panic!("no apply logged:\n{log}"));
    let started = lines
        .iter()
        .rposition(|l| l.ends_with(&format!("process started pid={restarted}")))
        .unwrap_or_else(|| panic!("no start of pid {restarted} logged:\n{log}"));
    assert!(
        started > applying,
        "collectd {restarted} predates the apply:\n{log}"
    );
    if first != restarted {
        assert!(!alive(first));
    }
    let remote = std::fs::read_to_string(layout.config_dir.join("collectd.conf")).unwrap();
    assert_eq!(remote, LOAD);
    wait_until(
        "CSV rows from the load plugin",
        || layout.csv_rows("load") >= 2,
        || agent.dump(),
    )
    .await;
    let seen = mock.process().seen().to_vec();
    assert!(
        seen.iter()
            .any(|e| e["event"] == "request" && e["effective_config"] == true),
        "the mock never got an effective config"
    );
    let uid = std::fs::read_to_string(layout.state.join("instance_uid")).unwrap();
    let uid_hex = uid.trim().replace('-', "");
    let requests: Vec<&Value> = seen.iter().filter(|e| e["event"] == "request").collect();
    for r in &requests {
        // The mock answered every request normally: they were well-formed OpAMP over HTTP.
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["instance_uid"], uid_hex.as_str(), "{r}");
    }
    let described = requests
        .iter()
        .find(|r| !r["agent_description"].is_null())
        .expect("no agent description sent");
    assert_eq!(
        described["agent_description"]["identifying"]["service.name"],
        "collectd"
    );
    assert_eq!(
        described["agent_description"]["identifying"]["service.instance.id"],
        uid.trim()
    );

    // SIGTERM: collectd stopped, agent_disconnect sent, exit 0.
    let status = agent.terminate().await;
    assert!(status.success(), "exit {status}\n{}", agent.dump());
    assert!(!alive(restarted));
    mock.wait_for("agent_disconnect", |e| e["agent_disconnect"] == true)
        .await;
    mock.process().stop().await;
}
