//! opamp-agent managing a real agent, Debian's collectd, against the real opampd (issue 7,
//! "Tests with a real agent"). Each test runs its own opampd (SQLite in a temp dir, port 0),
//! the opamp-agent binary with a generated config, and the collectd daemons it starts;
//! everything is observed from outside: opampd's admin API, /proc, the files in the config
//! dir, collectd's own log and CSV output.
//!
//! collectd's configuration has a local part (`base.conf`: global options, `Interval 1`, the
//! log file and CSV output under the test's temp dir, and an `Include` of the remote file)
//! and a remote part (`collectd.conf`: read plugins), validated with `collectd -T -C {file}`
//! (5.12's `-t` does not read the file at all). A plugin's CSV file growing row by row proves
//! the daemon runs with that plugin (a `-T` validation run loads no output plugin, so it
//! writes nothing). The last test runs `examples/collectd.toml` itself.
//!
//! Skipped (with a printed line) when /usr/sbin/collectd is missing, unless
//! `OPAMP_REQUIRE_COLLECTD=1` (`.ci/run` sets it). The opampd binary must be built into the
//! same target dir (`cargo test --workspace` does it; else `cargo build -p opampd`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_e2e;

use std::time::SystemTime;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use support_e2e::{
    Agent, Layout, Opampd, alive, collectd_daemons, file_names, kill, wait_collectd, wait_until,
};

/// Remote config: the load plugin.
const LOAD: &str = "LoadPlugin load\n";
/// Remote config: memory, and uptime on its own interval.
const MEMORY_UPTIME: &str = "LoadPlugin memory\n<LoadPlugin uptime>\n  Interval 2\n</LoadPlugin>\n";
/// A second remote file collectd does not read.
const NOTES: &str = "Pushed by the e2e test.\n";
/// Remote config collectd refuses.
const BROKEN: &str = "LoadPlugin load\nLoadPlugin nosuchplugin_e2e\n";
/// collectd's own words about [`BROKEN`].
const BROKEN_MESSAGE: &str = "Could not find plugin \"nosuchplugin_e2e\"";

/// One test's world: opampd, opamp-agent, and the collectd it started.
struct World {
    layout: Layout,
    opampd: Opampd,
    agent: Agent,
    uid: String,
    /// The first collectd daemon's pid.
    pid: u32,
}

/// Starts opampd and opamp-agent (collectd restarts after `backoff`), waits for the agent
/// to connect and collectd to run.
async fn start(backoff: &str) -> World {
    let layout = Layout::new();
    let opampd = Opampd::start(&layout.opampd_data).await;
    layout.write_agent_config(&opampd.ws_url(), backoff, "");
    let agent = Agent::start(&layout.config).await;
    let uid = opampd.wait_agent().await;
    let pid = wait_collectd(&agent, "the first collectd", &[]).await;
    wait_until(
        "collectd's first start in its log",
        || layout.collectd_starts() >= 1,
        || format!("{}\ncollectd log:\n{}", agent.dump(), layout.log_text()),
    )
    .await;
    World {
        layout,
        opampd,
        agent,
        uid,
        pid,
    }
}

impl World {
    fn detail(&self) -> String {
        format!(
            "{}\ncollectd log:\n{}",
            self.agent.dump(),
            self.layout.log_text()
        )
    }

    /// Waits until `plugin`'s CSV files hold at least `rows` data rows.
    async fn wait_rows(&self, plugin: &str, rows: usize) {
        wait_until(
            &format!("{rows} CSV rows from the {plugin} plugin"),
            || self.layout.csv_rows(plugin) >= rows,
            || self.detail(),
        )
        .await;
    }

    /// The remote file in the config dir, and its modification time.
    fn remote_file(&self) -> (String, SystemTime) {
        let path = self.layout.config_dir.join("collectd.conf");
        let text = std::fs::read_to_string(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        (text, mtime)
    }

    /// Pushes `body` and waits for APPLIED and for a new collectd daemon (not `old`).
    async fn apply(&self, version_of: &str, body: &str, old: u32) -> (String, u32) {
        self.apply_files(version_of, &[("collectd.conf", body)], old)
            .await
    }

    /// Like [`World::apply`], with several files (name, body).
    async fn apply_files(
        &self,
        version_of: &str,
        files: &[(&str, &str)],
        old: u32,
    ) -> (String, u32) {
        let hash = self.opampd.push_files(version_of, files, &self.uid).await;
        self.opampd.wait_status(&self.uid, &hash, "APPLIED").await;
        let pid = wait_collectd(&self.agent, "collectd restarted with the config", &[old]).await;
        (hash, pid)
    }
}

/// The effective config reported for the agent, file by file.
fn effective(detail: &Value) -> &Value {
    &detail["effective_config"]
}

#[tokio::test]
async fn collectd_good_config_restarts_it_and_is_applied_with_effective_config_rcfg_3_rcfg_11_eff_2()
 {
    collectd_or_skip!("collectd_good_config_restarts_it_and_is_applied_with_effective_config");
    let w = start("1s").await;
    // Before any remote config, collectd runs on the local part alone (no read plugin).
    assert_eq!(w.layout.csv_rows("load"), 0);
    let detail = w
        .opampd
        .wait_get(
            "the local effective config",
            &format!("/api/v1/agents/{}", w.uid),
            |a| effective(a)["base.conf"]["body"].is_string(),
        )
        .await;
    assert_eq!(
        effective(&detail)["base.conf"]["body"],
        w.layout.base_conf().as_str()
    );
    assert!(
        effective(&detail).get("collectd.conf").is_none(),
        "{detail}"
    );
    let caps = detail["capabilities"].as_array().unwrap();
    for c in [
        "ReportsStatus",
        "AcceptsRemoteConfig",
        "ReportsRemoteConfig",
        "ReportsEffectiveConfig",
        "ReportsHealth",
        "AcceptsRestartCommand",
    ] {
        assert!(caps.contains(&Value::from(c)), "{c} missing: {caps:?}");
    }

    // First config: the load plugin, and a second file collectd does not read. collectd is
    // restarted with it (a new daemon), whose CSV output grows row by row.
    let starts = w.layout.collectd_starts();
    let (hash1, pid1) = w
        .apply_files(
            "collectd",
            &[("collectd.conf", LOAD), ("NOTES.txt", NOTES)],
            w.pid,
        )
        .await;
    assert!(!alive(w.pid), "the old collectd {} still runs", w.pid);
    assert_eq!(w.remote_file().0, LOAD);
    w.wait_rows("load", 3).await;
    assert!(w.layout.collectd_starts() > starts, "{}", w.detail());
    let detail = w.opampd.agent(&w.uid).await;
    assert_eq!(detail["sync_state"], "in_sync", "{detail}");
    assert_eq!(
        file_names(effective(&detail)),
        ["NOTES.txt", "base.conf", "collectd.conf"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(effective(&detail)["collectd.conf"]["body"], LOAD);
    assert_eq!(effective(&detail)["NOTES.txt"]["body"], NOTES);
    assert_eq!(
        std::fs::read_to_string(w.layout.config_dir.join("NOTES.txt")).unwrap(),
        NOTES
    );
    assert_eq!(
        effective(&detail)["base.conf"]["body"],
        w.layout.base_conf().as_str()
    );

    // Second version: other plugins, one on its own interval; the load plugin is gone.
    let (hash2, pid2) = w.apply("collectd", MEMORY_UPTIME, pid1).await;
    assert_ne!(hash1, hash2);
    assert!(!alive(pid1));
    assert_eq!(w.remote_file().0, MEMORY_UPTIME);
    w.wait_rows("uptime", 2).await;
    w.wait_rows("memory", 2).await;
    let detail = w
        .opampd
        .wait_get(
            "the second effective config",
            &format!("/api/v1/agents/{}", w.uid),
            |a| effective(a)["collectd.conf"]["body"] == MEMORY_UPTIME,
        )
        .await;
    assert_eq!(detail["remote_config_status"]["status"], "APPLIED");
    // The file the new version no longer has is gone, from the dir and the report.
    assert!(!w.layout.config_dir.join("NOTES.txt").exists());
    assert_eq!(
        file_names(effective(&detail)),
        ["base.conf", "collectd.conf"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(collectd_daemons(w.agent.pid), vec![pid2]);
    let log = w.layout.log_text();
    assert!(
        log.contains("plugin \"uptime\" successfully loaded"),
        "{log}"
    );
    let timeline = w.opampd.timeline(&w.uid).await;
    for h in [&hash1, &hash2] {
        assert!(
            timeline
                .iter()
                .any(|e| e["kind"] == "config_applied" && e["hash"] == h.as_str()),
            "no config_applied for {h}: {timeline:?}"
        );
    }
}

#[tokio::test]
async fn collectd_broken_config_fails_validation_with_its_message_old_config_keeps_running_rcfg_6()
{
    collectd_or_skip!(
        "collectd_broken_config_fails_validation_with_its_message_old_config_keeps_running"
    );
    let w = start("1s").await;
    let (_, pid1) = w.apply("collectd", LOAD, w.pid).await;
    w.wait_rows("load", 2).await;
    let (before, mtime) = w.remote_file();
    let starts = w.layout.collectd_starts();

    // collectd -T refuses it: FAILED with collectd's own message.
    let hash = w.opampd.push("collectd", BROKEN, &w.uid).await;
    let detail = w.opampd.wait_status(&w.uid, &hash, "FAILED").await;
    let error = detail["remote_config_status"]["error_message"]
        .as_str()
        .unwrap();
    assert!(error.contains(BROKEN_MESSAGE), "error message: {error:?}");
    assert_eq!(detail["sync_state"], "failed", "{detail}");

    // The old config still runs: same daemon, same file, still writing.
    assert_eq!(collectd_daemons(w.agent.pid), vec![pid1], "{}", w.detail());
    assert_eq!(w.remote_file(), (before, mtime));
    assert_eq!(w.layout.collectd_starts(), starts, "{}", w.detail());
    let rows = w.layout.csv_rows("load");
    w.wait_rows("load", rows + 2).await;
    assert_eq!(collectd_daemons(w.agent.pid), vec![pid1]);
    assert_eq!(
        effective(&detail)["collectd.conf"]["body"],
        LOAD,
        "{detail}"
    );
    let out = w.agent.output.text();
    assert!(out.contains("config failed"), "{out}");
}

#[tokio::test]
async fn collectd_killed_is_restarted_and_reported_unhealthy_then_healthy_hlth_1_hlth_4() {
    collectd_or_skip!("collectd_killed_is_restarted_and_reported_unhealthy_then_healthy");
    // A restart backoff long enough for the unhealthy report to be seen by polling the
    // admin API every 100 ms.
    let w = start("3s").await;
    let path = format!("/api/v1/agents/{}", w.uid);
    w.opampd
        .wait_get("healthy", &path, |a| a["health"]["healthy"] == true)
        .await;

    kill(w.pid, "KILL");
    let sick = w
        .opampd
        .wait_get("unhealthy after SIGKILL", &path, |a| {
            a["health"]["healthy"] == false
        })
        .await;
    let health = sick["health"].to_string();
    assert!(
        health.contains("SIGKILL"),
        "last_error should name the signal: {health}"
    );
    let pid = wait_collectd(&w.agent, "collectd restarted after SIGKILL", &[w.pid]).await;
    w.opampd
        .wait_get("healthy again", &path, |a| a["health"]["healthy"] == true)
        .await;
    assert!(!alive(w.pid));
    assert_eq!(collectd_daemons(w.agent.pid), vec![pid]);
    wait_until(
        "the restarted collectd in its log",
        || w.layout.collectd_starts() >= 2,
        || w.detail(),
    )
    .await;
}

#[tokio::test]
async fn collectd_restart_command_restarts_it_cmd_3() {
    collectd_or_skip!("collectd_restart_command_restarts_it");
    let w = start("1s").await;
    let (status, body) = w
        .opampd
        .call(
            Method::POST,
            &format!("/api/v1/agents/{}/restart", w.uid),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let pid = wait_collectd(&w.agent, "collectd restarted by the command", &[w.pid]).await;
    assert!(!alive(w.pid));
    wait_until(
        "the restarted collectd in its log",
        || w.layout.collectd_starts() >= 2,
        || w.detail(),
    )
    .await;
    let path = format!("/api/v1/agents/{}", w.uid);
    w.opampd
        .wait_get("healthy after the restart", &path, |a| {
            a["health"]["healthy"] == true
        })
        .await;
    assert_eq!(collectd_daemons(w.agent.pid), vec![pid]);
    let timeline = w.opampd.timeline(&w.uid).await;
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "command_sent" && e["command"] == "restart"),
        "{timeline:?}"
    );
}

#[tokio::test]
async fn collectd_opamp_agent_restart_keeps_uid_and_reapplies_nothing_rcfg_5() {
    collectd_or_skip!("collectd_opamp_agent_restart_keeps_uid_and_reapplies_nothing");
    let mut w = start("1s").await;
    let (hash1, pid1) = w.apply("collectd", LOAD, w.pid).await;
    w.wait_rows("load", 2).await;
    let uid_file = std::fs::read_to_string(w.layout.state.join("instance_uid")).unwrap();
    assert_eq!(uid_file.trim(), w.uid);
    let (remote, mtime) = w.remote_file();

    // SIGTERM: collectd is stopped (it logs its normal exit), opamp-agent exits 0.
    let status = w.agent.terminate().await;
    assert!(status.success(), "exit {status}\n{}", w.agent.dump());
    assert!(!alive(pid1), "collectd {pid1} survived opamp-agent's exit");
    assert!(
        w.layout.log_text().contains("Exiting normally."),
        "collectd was not stopped with SIGTERM:\n{}",
        w.layout.log_text()
    );
    w.opampd
        .wait_get(
            "the agent disconnected",
            &format!("/api/v1/agents/{}", w.uid),
            |a| a["connected"] == false,
        )
        .await;

    // Started again: same uid, collectd started once with the files in place, nothing
    // re-applied.
    let starts = w.layout.collectd_starts();
    w.agent = Agent::start(&w.layout.config).await;
    let uid = w.opampd.wait_agent().await;
    assert_eq!(uid, w.uid, "a new instance uid after the restart");
    let pid2 = wait_collectd(&w.agent, "collectd after the restart", &[pid1]).await;
    let detail = w.opampd.wait_status(&w.uid, &hash1, "APPLIED").await;
    assert_eq!(detail["sync_state"], "in_sync", "{detail}");
    let rows = w.layout.csv_rows("load");
    w.wait_rows("load", rows + 2).await;
    assert_eq!(
        w.remote_file(),
        (remote, mtime),
        "the config file was rewritten"
    );

    // A new version after the restart is applied; nothing was applied before it (the agent
    // handles the server's messages in order, so a re-offer of the first config at
    // reconnection would have been handled first).
    let (hash2, _) = w.apply("collectd", MEMORY_UPTIME, pid2).await;
    w.wait_rows("uptime", 1).await;
    let out = w.agent.output.text();
    let applied: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("config applied"))
        .collect();
    assert_eq!(applied.len(), 1, "{out}");
    assert!(applied[0].contains(&hash2), "{out}");
    assert!(
        !out.contains(&format!("config applied hash={hash1}")),
        "{out}"
    );
    // No APPLYING either: the only apply started in this run is the new version's.
    let applying: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("applying config"))
        .collect();
    assert_eq!(applying.len(), 1, "{out}");
    assert!(applying[0].contains(&hash2), "{out}");
    // The first start after the restart, then the one for the new version.
    assert_eq!(
        w.layout.collectd_starts(),
        starts + 2,
        "collectd starts after the restart\n{}",
        w.detail()
    );
}

/// `examples/collectd.toml` as documented (only its endpoint pointed at this test's opampd):
/// collectd starts on the local part, the example remote config pushed through opampd is
/// APPLIED, and collectd writes its values under the state dir.
#[tokio::test]
async fn collectd_example_config_works_as_documented_rcfg_3_eff_2() {
    collectd_or_skip!("collectd_example_config_works_as_documented");
    const ENDPOINT: &str = "endpoint = \"ws://127.0.0.1:4320/v1/opamp\"";
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let example = std::fs::read_to_string(repo.join("examples/collectd.toml")).unwrap();
    assert!(
        example.contains(ENDPOINT),
        "the example no longer points at a local opampd on 4320"
    );
    let layout = Layout::new();
    let opampd = Opampd::start(&layout.opampd_data).await;
    let dir = layout.root.join("examples");
    std::fs::create_dir_all(dir.join("collectd")).unwrap();
    for f in ["base.conf", "collectd.conf"] {
        std::fs::copy(
            repo.join("examples/collectd").join(f),
            dir.join("collectd").join(f),
        )
        .unwrap();
    }
    let config = dir.join("collectd.toml");
    std::fs::write(
        &config,
        example.replace(ENDPOINT, &format!("endpoint = {:?}", opampd.ws_url())),
    )
    .unwrap();
    let agent = Agent::start(&config).await;
    let uid = opampd.wait_agent().await;
    let first = wait_collectd(&agent, "collectd on the local part", &[]).await;

    let body = std::fs::read_to_string(dir.join("collectd/collectd.conf")).unwrap();
    let hash = opampd.push("collectd", &body, &uid).await;
    let detail = opampd.wait_status(&uid, &hash, "APPLIED").await;
    assert_eq!(
        file_names(effective(&detail)),
        ["base.conf", "collectd.conf"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    wait_collectd(
        &agent,
        "collectd restarted with the example config",
        &[first],
    )
    .await;
    let state = dir.join("opamp-agent-state");
    assert_eq!(
        std::fs::read_to_string(state.join("config/collectd.conf")).unwrap(),
        body
    );
    let csv = state.join("collectd/csv/opamp-agent-example");
    wait_until(
        "the example's CSV output",
        || csv.join("load").is_dir() && csv.join("memory").is_dir(),
        || agent.dump(),
    )
    .await;
    // The config dir holds the config files only (collectd writes under its BaseDir).
    let mut in_config: Vec<String> = std::fs::read_dir(state.join("config"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    in_config.sort();
    assert_eq!(in_config, ["base.conf", "collectd.conf"]);
}

/// opamp-agent killed with SIGKILL leaves collectd running (its own process group); the next
/// opamp-agent stops that collectd before starting one, so two never run at once, and
/// carries on with the same instance uid and the applied config.
#[tokio::test]
async fn collectd_left_by_a_killed_opamp_agent_is_stopped_by_the_next_one_rcfg_5() {
    collectd_or_skip!("collectd_left_by_a_killed_opamp_agent_is_stopped_by_the_next_one");
    let mut w = start("1s").await;
    let (hash, pid1) = w.apply("collectd", LOAD, w.pid).await;
    w.agent.kill9().await;
    assert!(alive(pid1), "collectd {pid1} died with opamp-agent");
    let orphan = support_e2e::stat(pid1).unwrap();
    assert_ne!(orphan.ppid, w.agent.pid);
    let mark = w.layout.log_text().len();

    w.agent = Agent::start(&w.layout.config).await;
    let pid2 = wait_collectd(&w.agent, "collectd under the new opamp-agent", &[pid1]).await;
    wait_until(
        "the orphaned collectd stopped",
        || !alive(pid1),
        || w.detail(),
    )
    .await;
    assert_eq!(collectd_daemons(w.agent.pid), vec![pid2]);
    assert_eq!(w.opampd.wait_agent().await, w.uid);
    w.opampd.wait_status(&w.uid, &hash, "APPLIED").await;
    assert_eq!(w.remote_file().0, LOAD);
    let rows = w.layout.csv_rows("load");
    w.wait_rows("load", rows + 2).await;
    let out = w.agent.output.text();
    assert!(!out.contains("applying config"), "{out}");
    // In collectd's log, the orphan's exit comes before the new daemon's start.
    let log = w.layout.log_text();
    let after = &log[mark..];
    let exited = after
        .find("Exiting normally.")
        .expect("the orphan never exited");
    let started = after
        .find("Initialization complete")
        .expect("no new collectd");
    assert!(exited < started, "two collectd ran at once:\n{after}");
}
