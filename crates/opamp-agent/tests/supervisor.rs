//! The real `opamp-agent` binary managing a `/bin/sh` script agent, against an
//! opamp-server library server in the test process.

#![allow(clippy::unwrap_used)]

mod support;

use opamp_proto::{AgentCapabilities, v1};
use support::*;

fn status_of(s: &v1::RemoteConfigStatus) -> v1::RemoteConfigStatuses {
    v1::RemoteConfigStatuses::try_from(s.status).unwrap()
}

async fn wait_status(
    server: &TestServer,
    layout: &Layout,
    hash: &[u8],
    want: v1::RemoteConfigStatuses,
) -> v1::RemoteConfigStatus {
    let r = &server.recorder;
    wait_until(
        &format!("{want:?} for {}", hex(hash)),
        || {
            r.last_status()
                .is_some_and(|s| s.last_remote_config_hash == hash && status_of(&s) == want)
        },
        || {
            format!(
                "last status: {:?}\nlog:\n{}",
                r.last_status(),
                layout.log_text()
            )
        },
    )
    .await;
    r.last_status().unwrap()
}

/// Offers `rc` from now on and pushes it at once (RCFG-10) instead of waiting for the
/// next heartbeat.
async fn offer(server: &TestServer, layout: &Layout, rc: &v1::AgentRemoteConfig) {
    *server.recorder.offer.lock().unwrap() = Some(rc.clone());
    let r = &server.recorder;
    wait_until(
        "a first message",
        || !r.messages().is_empty(),
        || layout.log_text(),
    )
    .await;
    let uid = opamp_proto::InstanceUid::from_bytes(&r.messages()[0].instance_uid).unwrap();
    server
        .server
        .push(
            uid,
            v1::ServerToAgent {
                remote_config: Some(rc.clone()),
                ..Default::default()
            },
        )
        .unwrap();
}

/// The files left in `state/staging/` (none after an apply, whatever its outcome).
fn staged_leftovers(layout: &Layout) -> Vec<String> {
    match std::fs::read_dir(layout.state().join("staging")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn effective_files(e: &v1::EffectiveConfig) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = e
        .config_map
        .as_ref()
        .map(|m| {
            m.config_map
                .iter()
                .map(|(k, f)| (k.clone(), String::from_utf8_lossy(&f.body).into_owned()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn wait_running(layout: &Layout, not: &[u32]) -> u32 {
    let mut pid = 0;
    wait_until(
        "the script to run",
        || {
            pid = layout.pid().unwrap_or(0);
            pid != 0 && !not.contains(&pid) && alive(pid)
        },
        || layout.log_text(),
    )
    .await;
    pid
}

/// Starts a server, writes the config, seeds agent.conf with "v0", starts the agent and
/// waits for the script.
async fn setup(extra_config: &str, extra: &str) -> (TestServer, Layout, Agent, u32) {
    let server = TestServer::start().await;
    let layout = Layout::new();
    layout.write_config(&server.ws_url(), true, extra_config, extra);
    layout.seed("v0\n");
    let agent = Agent::start(&layout);
    let pid = wait_running(&layout, &[]).await;
    (server, layout, agent, pid)
}

#[tokio::test]
async fn remote_config_is_applied_and_effective_config_reported_rcfg_3_eff_2_eff_5() {
    let (server, layout, mut agent, first) = setup("", "").await;
    let rc = remote_config(&[("", "v1\n")]);
    offer(&server, &layout, &rc).await;
    wait_status(
        &server,
        &layout,
        &rc.config_hash,
        v1::RemoteConfigStatuses::Applied,
    )
    .await;
    // Restarted with the new file (apply = "restart").
    let pid = wait_running(&layout, &[first]).await;
    assert_ne!(pid, first);
    assert_eq!(layout.loaded(), "v1\n");
    assert_eq!(layout.config("agent.conf").as_deref(), Some("v1\n"));
    // Effective config = the files in config.dir: the local file and the remote one under
    // main_file.
    let r = &server.recorder;
    wait_until(
        "the effective config",
        || {
            r.last_effective()
                .is_some_and(|e| effective_files(&e).iter().any(|(_, b)| b == "v1\n"))
        },
        || format!("{:?}", r.last_effective()),
    )
    .await;
    assert_eq!(
        effective_files(&r.last_effective().unwrap()),
        vec![
            ("agent.conf".to_owned(), "v1\n".to_owned()),
            ("local.conf".to_owned(), "local settings\n".to_owned()),
        ]
    );
    // The last known good is the new config.
    let lkg = std::fs::read_to_string(layout.state().join("lkg/agent.conf")).unwrap();
    assert_eq!(lkg, "v1\n");
    assert!(layout.log_text().contains("config applied hash="));
    assert_eq!(staged_leftovers(&layout), Vec::<String>::new());
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn validate_failure_reports_the_validator_message_and_keeps_old_files_rcfg_6() {
    let validate = r#"validate = { command = "/bin/sh", args = ["-c", "if grep -q bad \"$1\"; then echo \"line 1: syntax error near bad\" >&2; exit 1; fi", "validate", "{file}"] }"#;
    let (server, layout, mut agent, first) = setup(validate, "").await;
    let rc = remote_config(&[("", "bad\n")]);
    offer(&server, &layout, &rc).await;
    let s = wait_status(
        &server,
        &layout,
        &rc.config_hash,
        v1::RemoteConfigStatuses::Failed,
    )
    .await;
    assert!(
        s.error_message.contains("line 1: syntax error near bad"),
        "{}",
        s.error_message
    );
    assert_eq!(layout.config("agent.conf").as_deref(), Some("v0\n"));
    assert_eq!(layout.starts(), vec![first], "not restarted");
    assert!(alive(first));
    assert!(
        layout
            .log_text()
            .contains("config failed: validation failed")
    );
    assert_eq!(staged_leftovers(&layout), Vec::<String>::new());

    // A good one after it is applied.
    let rc2 = remote_config(&[("", "good\n")]);
    offer(&server, &layout, &rc2).await;
    wait_status(
        &server,
        &layout,
        &rc2.config_hash,
        v1::RemoteConfigStatuses::Applied,
    )
    .await;
    assert_eq!(layout.config("agent.conf").as_deref(), Some("good\n"));
    assert_eq!(staged_leftovers(&layout), Vec::<String>::new());
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn crash_within_the_health_gate_rolls_back_to_last_known_good_rcfg_6() {
    let (server, layout, mut agent, first) = setup("", "").await;
    let good = remote_config(&[("", "v1\n")]);
    offer(&server, &layout, &good).await;
    wait_status(
        &server,
        &layout,
        &good.config_hash,
        v1::RemoteConfigStatuses::Applied,
    )
    .await;
    let v1_pid = wait_running(&layout, &[first]).await;

    let bad = remote_config(&[("", "crash\n")]);
    offer(&server, &layout, &bad).await;
    let s = wait_status(
        &server,
        &layout,
        &bad.config_hash,
        v1::RemoteConfigStatuses::Failed,
    )
    .await;
    assert!(
        s.error_message
            .contains("process exited with status 3 within the health gate"),
        "{}",
        s.error_message
    );
    assert!(
        s.error_message.contains("rolled back to last known good"),
        "{}",
        s.error_message
    );
    // The last known good files are back and running; the LKG copy is unchanged.
    let pid = wait_running(&layout, &[first, v1_pid]).await;
    assert!(alive(pid));
    assert_eq!(layout.config("agent.conf").as_deref(), Some("v1\n"));
    assert_eq!(layout.loaded(), "v1\n");
    let lkg = std::fs::read_to_string(layout.state().join("lkg/agent.conf")).unwrap();
    assert_eq!(lkg, "v1\n");
    let state = std::fs::read_to_string(layout.state().join("agent-state.json")).unwrap();
    assert!(state.contains("\"failed\""), "{state}");
    assert!(layout.log_text().contains("rolled back to last known good"));
    assert_eq!(staged_leftovers(&layout), Vec::<String>::new());
    // The effective config reports what runs: v1.
    let e = server.recorder.last_effective().unwrap();
    assert!(effective_files(&e).contains(&("agent.conf".to_owned(), "v1\n".to_owned())));
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn crash_in_steady_state_restarts_and_reports_unhealthy_then_healthy_hlth_1_hlth_3_hlth_4() {
    let checks = r#"
[[health.checks]]
name = "process"
type = "process"
interval = "1s"
timeout = "1s"
failure_threshold = 1
recovery_threshold = 1
"#;
    let (server, layout, mut agent, first) = setup("", checks).await;
    let r = &server.recorder;
    wait_until(
        "healthy",
        || r.healths().last().is_some_and(|h| h.healthy),
        || format!("{:?}", r.healths()),
    )
    .await;
    signal(first, "KILL");
    wait_until(
        "unhealthy, the exit as last_error, start time 0",
        || {
            r.healths().iter().any(|h| {
                !h.healthy
                    && h.last_error.contains("killed by signal SIGKILL")
                    && h.start_time_unix_nano == 0
            })
        },
        || format!("{:?}\n{}", r.healths(), layout.log_text()),
    )
    .await;
    let second = wait_running(&layout, &[first]).await;
    assert_ne!(second, first);
    wait_until(
        "healthy again",
        || {
            let hs = r.healths();
            let down = hs.iter().rposition(|h| !h.healthy).unwrap_or(0);
            hs[down..].iter().any(|h| {
                h.healthy
                    && h.component_health_map
                        .get("process")
                        .is_some_and(|c| c.healthy)
            })
        },
        || format!("{:?}", r.healths()),
    )
    .await;
    let log = layout.log_text();
    assert!(log.contains("process exited status=SIGKILL"));
    // Readable health lines with structured fields, no Rust Debug forms.
    assert!(
        log.contains(r#"health check "process": healthy → unhealthy"#),
        "{log}"
    );
    assert!(
        log.contains("check=process from=healthy to=unhealthy"),
        "{log}"
    );
    assert!(log.contains("last_error=killed by signal SIGKILL"), "{log}");
    assert!(!log.contains("Changed {"), "{log}");
    assert!(!log.contains("Unhealthy"), "{log}");
    assert!(!log.contains("last_error=\""), "{log}");
    assert!(agent.terminate().await.success());
}

/// Sends the restart command over the WebSocket (CMD-1).
fn push_restart(server: &TestServer) {
    let r = &server.recorder;
    let uid = opamp_proto::InstanceUid::from_bytes(&r.messages()[0].instance_uid).unwrap();
    server
        .server
        .push(
            uid,
            v1::ServerToAgent {
                command: Some(v1::ServerToAgentCommand {
                    r#type: v1::CommandType::Restart as i32,
                }),
                ..Default::default()
            },
        )
        .unwrap();
}

#[tokio::test]
async fn deliberate_restarts_are_no_failure_and_never_flap_but_a_kill_is_hlth_1_hlth_4_cmd_3() {
    // Strict checks: one failure makes a check unhealthy. The command check answers
    // asynchronously, so a reset to "starting" would be visible in the reports.
    let checks = r#"
[[health.checks]]
name = "process"
type = "process"
interval = "1s"
failure_threshold = 1
recovery_threshold = 1

[[health.checks]]
name = "probe"
type = "command"
command = "/bin/true"
interval = "5s"
timeout = "5s"
failure_threshold = 1
recovery_threshold = 1
"#;
    let (server, layout, mut agent, first) = setup("", checks).await;
    let r = &server.recorder;
    let all_healthy = |h: &v1::ComponentHealth| {
        h.healthy
            && h.status == "healthy"
            && h.last_error.is_empty()
            && h.component_health_map.len() == 2
            && h.component_health_map
                .values()
                .all(|c| c.healthy && c.status == "healthy")
    };
    wait_until(
        "healthy",
        || r.healths().last().is_some_and(all_healthy),
        || format!("{:?}", r.healths()),
    )
    .await;
    let reports_before = r.healths().len();
    let log_before = layout.log_text().len();

    // Five config applies (apply = "restart") and two restart commands in a row: more
    // changes than the flap policy tolerates (4), were they counted.
    let mut pids = vec![first];
    for i in 0..5 {
        let rc = remote_config(&[("", &format!("v{i}\n"))]);
        offer(&server, &layout, &rc).await;
        wait_status(
            &server,
            &layout,
            &rc.config_hash,
            v1::RemoteConfigStatuses::Applied,
        )
        .await;
        pids.push(wait_running(&layout, &pids).await);
        if i % 2 == 1 {
            push_restart(&server);
            pids.push(wait_running(&layout, &pids).await);
        }
    }
    assert_eq!(
        layout.starts().len(),
        8,
        "1 + 5 applies + 2 restart commands"
    );
    // Let the checks run against the last process.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let healths = r.healths();
    for h in &healths[reports_before..] {
        assert!(all_healthy(h), "a deliberate restart reported as {h:?}");
    }
    let log = layout.log_text()[log_before..].to_owned();
    for bad in [
        "→ degraded",
        "→ unhealthy",
        "flapping",
        "process exited status=SIGKILL",
    ] {
        assert!(!log.contains(bad), "{bad:?} in\n{log}");
    }

    // A real crash still counts.
    let last = *pids.last().unwrap();
    signal(last, "KILL");
    wait_until(
        "unhealthy after SIGKILL",
        || {
            r.healths()[reports_before..]
                .iter()
                .any(|h| !h.healthy && h.last_error.contains("killed by signal SIGKILL"))
        },
        || format!("{:?}\n{}", r.healths(), layout.log_text()),
    )
    .await;
    assert!(
        layout
            .log_text()
            .contains(r#"health check "process": healthy → unhealthy"#),
        "{}",
        layout.log_text()
    );
    wait_running(&layout, &pids).await;
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn restart_command_restarts_the_process_cmd_3() {
    let (server, layout, mut agent, first) = setup("", "").await;
    let r = &server.recorder;
    wait_until(
        "AcceptsRestartCommand",
        || {
            r.capabilities()
                .contains(AgentCapabilities::ACCEPTS_RESTART_COMMAND)
        },
        || format!("{:?}", r.capabilities()),
    )
    .await;
    let before = r.messages().len();
    // Pushed over the WebSocket (CMD-1).
    let uid = opamp_proto::InstanceUid::from_bytes(&r.messages()[0].instance_uid).unwrap();
    server
        .server
        .push(
            uid,
            v1::ServerToAgent {
                command: Some(v1::ServerToAgentCommand {
                    r#type: v1::CommandType::Restart as i32,
                }),
                ..Default::default()
            },
        )
        .unwrap();
    let second = wait_running(&layout, &[first]).await;
    assert_ne!(second, first);
    assert!(!alive(first));
    assert!(r.messages().len() >= before);
    assert!(layout.log_text().contains("restart command received"));
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn restarted_opamp_agent_keeps_its_uid_and_reapplies_nothing_uid_2_rcfg_3() {
    let (server, layout, mut agent, first) = setup("", "").await;
    let rc = remote_config(&[("", "v1\n")]);
    offer(&server, &layout, &rc).await;
    wait_status(
        &server,
        &layout,
        &rc.config_hash,
        v1::RemoteConfigStatuses::Applied,
    )
    .await;
    let applied_pid = wait_running(&layout, &[first]).await;
    assert!(agent.terminate().await.success());
    let uid = server.recorder.messages()[0].instance_uid.clone();
    let loads_before = layout.loads();
    let starts_before = layout.starts().len();
    let messages_before = server.recorder.messages().len();

    // Again, same state dir; the server still offers the same config.
    let mut agent = Agent::start(&layout);
    let pid = wait_running(&layout, &[first, applied_pid]).await;
    let r = &server.recorder;
    wait_until(
        "the second run's status report",
        || {
            r.messages()[messages_before..].iter().any(|m| {
                m.remote_config_status
                    .as_ref()
                    .is_some_and(|s| s.last_remote_config_hash == rc.config_hash)
            })
        },
        || layout.log_text(),
    )
    .await;
    // The server does not resend a config the agent reports (RCFG-5); wait until the
    // second run reported a healthy process, well after the first reply was handled.
    wait_until(
        "a healthy report from the second run",
        || {
            r.messages()[messages_before..]
                .iter()
                .filter(|m| m.health.as_ref().is_some_and(|h| h.healthy))
                .count()
                >= 1
                && r.messages().len() >= messages_before + 3
        },
        || layout.log_text(),
    )
    .await;
    assert_eq!(
        r.uids().iter().filter(|u| **u != uid).count(),
        0,
        "same instance uid"
    );
    assert_eq!(
        layout.starts().len(),
        starts_before + 1,
        "one start, no restart"
    );
    assert_eq!(layout.loads(), loads_before + 1);
    assert_eq!(layout.pid(), Some(pid));
    assert_eq!(
        status_of(&r.last_status().unwrap()),
        v1::RemoteConfigStatuses::Applied
    );
    assert_eq!(layout.loaded(), "v1\n");
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn sigterm_stops_the_child_sigkill_after_timeout_then_disconnects_exit_0_disc_1_disc_2() {
    let server = TestServer::start().await;
    let layout = Layout::new();
    layout.write_config(&server.ws_url(), true, "", "");
    layout.seed("ignore-term\n");
    let mut agent = Agent::start(&layout);
    let pid = wait_running(&layout, &[]).await;
    let r = &server.recorder;
    wait_until(
        "a first message",
        || !r.messages().is_empty(),
        || layout.log_text(),
    )
    .await;
    let status = agent.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", layout.log_text());
    assert!(!alive(pid), "the child is gone");
    let log = layout.log_text();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("SIGKILL"), "{log}");
    wait_until(
        "agent_disconnect",
        || r.disconnected(),
        || layout.log_text(),
    )
    .await;
}

#[tokio::test]
async fn sigterm_during_validation_kills_the_validator_applies_nothing_and_exits_0_disc_1() {
    // A validator that starts a helper and waits for it far longer than the test runs.
    let validate = r#"validate = { command = "/bin/sh", args = ["-c", "sleep 300 & echo $! > \"$1/validator.pid\"; wait", "validate", "{state_dir}"], timeout = "600s" }"#;
    let (server, layout, mut agent, first) = setup(validate, "").await;
    let rc = remote_config(&[("", "v1\n")]);
    offer(&server, &layout, &rc).await;
    let helper_file = layout.state().join("validator.pid");
    let mut helper = 0;
    wait_until(
        "the validator's helper to run",
        || {
            helper = std::fs::read_to_string(&helper_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            helper != 0 && alive(helper)
        },
        || layout.log_text(),
    )
    .await;
    let asked = std::time::Instant::now();
    let status = agent.terminate().await;
    // The validator sleeps 300 s and may run 600 s: not waited for.
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{}", layout.log_text());
    wait_until(
        "the validator's process group to be gone",
        || !alive(helper) && !alive(first),
        || layout.log_text(),
    )
    .await;
    // The last known good config stays; nothing was reported APPLIED (or FAILED).
    assert_eq!(layout.config("agent.conf").as_deref(), Some("v0\n"));
    assert_eq!(layout.loaded(), "v0\n");
    assert_eq!(layout.starts(), vec![first]);
    assert!(
        server.recorder.messages().iter().all(|m| m
            .remote_config_status
            .as_ref()
            .is_none_or(|s| s.last_remote_config_hash != rc.config_hash
                || status_of(s) == v1::RemoteConfigStatuses::Applying)),
        "{:?}",
        server.recorder.last_status()
    );
    assert_eq!(staged_leftovers(&layout), Vec::<String>::new());
    let state = std::fs::read_to_string(layout.state().join("agent-state.json")).unwrap();
    assert!(!state.contains(&hex(&rc.config_hash)), "{state}");
    let log = layout.log_text();
    assert!(log.contains("SIGTERM received: stopping"), "{log}");
    assert!(log.contains("nothing applied"), "{log}");
    wait_until(
        "agent_disconnect",
        || server.recorder.disconnected(),
        || layout.log_text(),
    )
    .await;
}

#[tokio::test]
async fn signal_apply_mode_sends_the_signal_without_restart_rcfg_3() {
    let (server, layout, mut agent, first) = setup("apply = \"signal:SIGHUP\"", "").await;
    let rc = remote_config(&[("", "v1\n")]);
    offer(&server, &layout, &rc).await;
    wait_status(
        &server,
        &layout,
        &rc.config_hash,
        v1::RemoteConfigStatuses::Applied,
    )
    .await;
    assert_eq!(layout.starts(), vec![first]);
    assert_eq!(layout.loaded(), "v1\n");
    assert_eq!(layout.loads(), 2);
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn remote_file_may_not_override_a_local_file_rcfg_12() {
    let (server, layout, mut agent, first) = setup("", "").await;
    let rc = remote_config(&[("local.conf", "evil\n")]);
    offer(&server, &layout, &rc).await;
    let s = wait_status(
        &server,
        &layout,
        &rc.config_hash,
        v1::RemoteConfigStatuses::Failed,
    )
    .await;
    assert_eq!(
        s.error_message,
        "local file local.conf cannot be overridden"
    );
    assert_eq!(
        layout.config("local.conf").as_deref(),
        Some("local settings\n")
    );
    let rc = remote_config(&[("../escape.conf", "x\n")]);
    offer(&server, &layout, &rc).await;
    let s = wait_status(
        &server,
        &layout,
        &rc.config_hash,
        v1::RemoteConfigStatuses::Failed,
    )
    .await;
    assert!(
        s.error_message.starts_with("invalid file name"),
        "{}",
        s.error_message
    );
    assert!(!layout.state().join("escape.conf").exists());
    assert_eq!(layout.starts(), vec![first]);
    assert!(agent.terminate().await.success());
}

/// A remote config with one file per (name, content type, body).
fn typed_config(files: &[(&str, &str, &str)]) -> v1::AgentRemoteConfig {
    let mut rc = v1::AgentRemoteConfig {
        config: Some(v1::AgentConfigMap {
            config_map: files
                .iter()
                .map(|(n, ct, b)| {
                    (
                        (*n).to_owned(),
                        v1::AgentConfigFile {
                            body: b.as_bytes().to_vec(),
                            content_type: (*ct).to_owned(),
                        },
                    )
                })
                .collect(),
        }),
        config_hash: Vec::new(),
    };
    rc.config_hash = opamp_server::session::config_hash(&rc);
    rc
}

/// The files in the config dir, by name.
fn config_dir_files(layout: &Layout) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(layout.config_dir())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn restricted_offers_are_failed_before_anything_is_written_sec_1_sec_3_sec_4_sec_5() {
    // The validate command records every run: a refused offer must never get that far.
    let validated = "{state_dir}/../out/validated";
    let restrictions = format!(
        r#"validate = {{ command = "/bin/sh", args = ["-c", "echo ran >> \"$1\"", "validate", "{validated}"] }}

[config.restrictions]
allowed_files = ["agent.conf", "*.yaml"]
max_file_bytes = 1024
denied_keys = ["exporters.*.command"]
path_rules = [
  {{ keys = "receivers.filelog.include[*]", allowed_prefixes = ["/var/log/"] }},
  {{ keys = "**.exec", allowed_prefixes = ["/opt/agent/bin/"] }},
]
denied_text = ["LoadPlugin exec"]
"#
    );
    let (server, layout, mut agent, first) = setup(&restrictions, "").await;
    let before = config_dir_files(&layout);
    assert_eq!(
        before,
        vec![
            ("agent.conf".to_owned(), "v0\n".to_owned()),
            ("local.conf".to_owned(), "local settings\n".to_owned()),
        ]
    );
    let big = "x".repeat(2000);
    for (files, why) in [
        // SEC-5: only allow-listed file names.
        (
            vec![("notes.txt", "text/plain", "hello\n")],
            "not in the local allow list of files",
        ),
        (
            vec![("", "text/plain", big.as_str())],
            "more than the local limit of 1024",
        ),
        // SEC-3: file collection only under the local directories.
        (
            vec![(
                "pipeline.yaml",
                "text/yaml",
                "receivers:\n  filelog:\n    include: [/var/log/app.log, /etc/shadow]\n",
            )],
            "\"/etc/shadow\" is outside the allowed locations",
        ),
        // SEC-4: executables only from the local location; no command keys at all.
        (
            vec![(
                "pipeline.yaml",
                "text/yaml",
                "processors:\n  run:\n    exec: /tmp/evil.sh\n",
            )],
            "\"/tmp/evil.sh\" is outside the allowed locations",
        ),
        (
            vec![(
                "pipeline.yaml",
                "text/yaml",
                "exporters:\n  script:\n    command: /bin/sh\n",
            )],
            "sets exporters.script.command, which is not allowed locally",
        ),
        (
            vec![("", "text/plain", "LoadPlugin exec\n")],
            "contains \"LoadPlugin exec\"",
        ),
        // SEC-1: a file the agent cannot parse cannot be checked, so it is refused.
        (
            vec![("pipeline.yaml", "text/yaml", "receivers: [unclosed\n")],
            "cannot be checked against the local restrictions",
        ),
    ] {
        let rc = typed_config(&files);
        offer(&server, &layout, &rc).await;
        let s = wait_status(
            &server,
            &layout,
            &rc.config_hash,
            v1::RemoteConfigStatuses::Failed,
        )
        .await;
        assert!(
            s.error_message.starts_with("restricted: ") && s.error_message.contains(why),
            "{why}: {}",
            s.error_message
        );
        // Nothing written, staged, validated or restarted.
        assert_eq!(config_dir_files(&layout), before, "{why}");
        assert_eq!(staged_leftovers(&layout), Vec::<String>::new(), "{why}");
        assert!(!layout.out().join("validated").exists(), "{why}");
        assert_eq!(layout.starts(), vec![first], "{why}");
    }

    // Within the rules: validated once, applied, and the effective config carries each
    // file's content type (EFF-6).
    let good = typed_config(&[
        ("", "text/plain", "v1\n"),
        (
            "pipeline.yaml",
            "text/yaml",
            "receivers:\n  filelog:\n    include: [/var/log/app.log]\n",
        ),
    ]);
    offer(&server, &layout, &good).await;
    wait_status(
        &server,
        &layout,
        &good.config_hash,
        v1::RemoteConfigStatuses::Applied,
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(layout.out().join("validated")).unwrap(),
        "ran\n"
    );
    assert_eq!(layout.config("agent.conf").as_deref(), Some("v1\n"));
    let r = &server.recorder;
    wait_until(
        "the effective config with pipeline.yaml",
        || {
            r.last_effective().is_some_and(|e| {
                e.config_map
                    .is_some_and(|m| m.config_map.contains_key("pipeline.yaml"))
            })
        },
        || format!("{:?}", r.last_effective()),
    )
    .await;
    let eff = r.last_effective().unwrap().config_map.unwrap().config_map;
    let types: Vec<(&str, &str)> = eff
        .iter()
        .map(|(n, f)| (n.as_str(), f.content_type.as_str()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    assert_eq!(
        types,
        [
            ("agent.conf", "text/plain"),
            ("local.conf", "text/plain"),
            ("pipeline.yaml", "text/yaml"),
        ]
    );
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn accept_remote_false_neither_advertises_nor_applies_sec_6() {
    let server = TestServer::start().await;
    let layout = Layout::new();
    layout.write_config(&server.ws_url(), false, "", "");
    layout.seed("v0\n");
    let rc = remote_config(&[("", "v1\n")]);
    *server.recorder.offer.lock().unwrap() = Some(rc.clone());
    let mut agent = Agent::start(&layout);
    let first = wait_running(&layout, &[]).await;
    let r = &server.recorder;
    // Wait for a health report after the process started: the agent has been talking for
    // a while with the offer in every reply.
    wait_until(
        "a healthy report",
        || r.healths().iter().any(|h| h.healthy),
        || layout.log_text(),
    )
    .await;
    assert!(
        r.capabilities()
            .contains(AgentCapabilities::REPORTS_REMOTE_CONFIG)
    );
    assert!(
        !r.capabilities()
            .contains(AgentCapabilities::ACCEPTS_REMOTE_CONFIG)
    );
    assert!(
        r.messages()
            .iter()
            .filter_map(|m| m.remote_config_status.as_ref())
            .all(|s| s.last_remote_config_hash != rc.config_hash)
    );
    assert_eq!(layout.config("agent.conf").as_deref(), Some("v0\n"));
    assert_eq!(layout.starts(), vec![first]);
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn description_has_configured_and_detected_attributes_desc_1() {
    let (server, layout, mut agent, _) = setup("", "").await;
    let r = &server.recorder;
    wait_until(
        "a description",
        || r.description().is_some(),
        || layout.log_text(),
    )
    .await;
    let d = r.description().unwrap();
    let get = |list: &[v1::KeyValue], k: &str| {
        list.iter().find(|kv| kv.key == k).and_then(|kv| {
            match kv.value.as_ref()?.value.as_ref()? {
                v1::any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            }
        })
    };
    assert_eq!(
        get(&d.identifying_attributes, "service.name").as_deref(),
        Some("script-agent")
    );
    let uid = opamp_proto::InstanceUid::from_bytes(&r.messages()[0].instance_uid).unwrap();
    assert_eq!(
        get(&d.identifying_attributes, "service.instance.id"),
        Some(uid.to_string())
    );
    for key in ["os.type", "os.version", "host.name", "host.arch"] {
        assert!(
            get(&d.non_identifying_attributes, key).is_some(),
            "{key}: {d:?}"
        );
    }
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn bad_config_file_exits_2_naming_the_key_and_the_file() {
    let layout = Layout::new();
    std::fs::write(
        layout.config_file(),
        "state_dir = \"s\"\n[server]\nendpoint = \"ws://127.0.0.1:1/v1/opamp\"\n[process]\ncommand = \"/bin/true\"\nstop_timeout = \"soon\"\n",
    )
    .unwrap();
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_opamp-agent"))
            .arg("--config")
            .arg(layout.config_file())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&layout.config_file().display().to_string()),
        "{err}"
    );
    assert!(err.contains("stop_timeout"), "{err}");

    std::fs::write(
        layout.config_file(),
        "state_dir = \"s\"\n[server]\nendpoint = \"ftp://x\"\n[process]\ncommand = \"/bin/true\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opamp-agent"))
        .arg("--config")
        .arg(layout.config_file())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.endpoint"));
}

#[tokio::test]
async fn started_as_root_without_allow_root_it_refuses_sec_2() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: not running as root (the refusal needs euid 0)");
        return;
    }
    let layout = Layout::new();
    layout.write_config("ws://127.0.0.1:9/v1/opamp", true, "", "");
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_opamp-agent"))
            .arg("--config")
            .arg(layout.config_file())
            .env_remove("OPAMP_AGENT_ALLOW_ROOT")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to run as root"), "{err}");
    assert!(err.contains("allow_root = true"), "{err}");
    assert!(
        err.contains(&layout.config_file().display().to_string()),
        "{err}"
    );
    // Refused before anything happened: no process, no state directory.
    assert_eq!(layout.starts(), Vec::<u32>::new());
    assert!(!layout.state().exists());
}

/// The connection settings statuses reported for `hash`, in order.
fn settings_statuses(server: &TestServer, hash: &[u8]) -> Vec<v1::ConnectionSettingsStatus> {
    server
        .recorder
        .messages()
        .iter()
        .filter_map(|m| m.connection_settings_status.clone())
        .filter(|s| s.last_connection_settings_hash == hash)
        .collect()
}

#[tokio::test]
async fn connection_settings_statuses_use_the_enum_and_failed_carries_the_reason_css_7() {
    let own_metrics = |endpoint: &str| v1::TelemetryConnectionSettings {
        destination_endpoint: endpoint.to_owned(),
        ..Default::default()
    };
    let server = TestServer::start().await;
    // Not an OTLP/HTTP URL (OWN-6): refused.
    let bad = v1::ConnectionSettingsOffers {
        hash: vec![1; 32],
        own_metrics: Some(own_metrics("ftp://127.0.0.1/v1/metrics")),
        ..Default::default()
    };
    *server.recorder.connection_settings.lock().unwrap() = Some(bad);
    let layout = Layout::new();
    layout.write_config(&server.ws_url(), true, "", "");
    layout.seed("v0\n");
    let mut agent = Agent::start(&layout);
    wait_running(&layout, &[]).await;
    wait_until(
        "FAILED for the first offer",
        || !settings_statuses(&server, &[1; 32]).is_empty(),
        || layout.log_text(),
    )
    .await;
    let failed = settings_statuses(&server, &[1; 32]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    // FAILED is 3 on the wire, with the reason.
    assert_eq!(failed[0].status, 3);
    assert_eq!(
        failed[0].status,
        v1::ConnectionSettingsStatuses::Failed as i32
    );
    assert!(
        failed[0].error_message.starts_with("own_metrics offer:")
            && failed[0].error_message.contains("ftp://"),
        "{}",
        failed[0].error_message
    );

    // A usable one (nothing listens there: the exports fail, the offer does not).
    let good = v1::ConnectionSettingsOffers {
        hash: vec![2; 32],
        own_metrics: Some(own_metrics("http://127.0.0.1:9/v1/metrics")),
        ..Default::default()
    };
    *server.recorder.connection_settings.lock().unwrap() = Some(good.clone());
    let uid =
        opamp_proto::InstanceUid::from_bytes(&server.recorder.messages()[0].instance_uid).unwrap();
    server
        .server
        .push(
            uid,
            v1::ServerToAgent {
                connection_settings: Some(good),
                ..Default::default()
            },
        )
        .unwrap();
    wait_until(
        "APPLIED for the second offer",
        || !settings_statuses(&server, &[2; 32]).is_empty(),
        || layout.log_text(),
    )
    .await;
    let applied = settings_statuses(&server, &[2; 32]);
    // APPLIED is 1 on the wire, without an error message.
    assert_eq!(applied[0].status, 1);
    assert_eq!(
        applied[0].status,
        v1::ConnectionSettingsStatuses::Applied as i32
    );
    assert_eq!(applied[0].error_message, "");
    // Own-telemetry offers take effect at once: never UNSET (0) or APPLYING (2).
    for s in server
        .recorder
        .messages()
        .iter()
        .filter_map(|m| m.connection_settings_status.as_ref())
    {
        assert!(s.status == 1 || s.status == 3, "{s:?}");
    }
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn the_binary_advertises_exactly_what_it_does_oth_2_own_5_avc_8_cus_4() {
    let (server, layout, mut agent, _) = setup("", "").await;
    let r = &server.recorder;
    wait_until(
        "a healthy report",
        || r.healths().iter().any(|h| h.healthy),
        || layout.log_text(),
    )
    .await;
    // What the binary reports is `capabilities()`, whose unit test lists what is left out.
    assert_eq!(
        r.capabilities(),
        opamp_agent::supervisor::capabilities(true)
    );
    for absent in [
        AgentCapabilities::ACCEPTS_OTHER_CONNECTION_SETTINGS,
        AgentCapabilities::REPORTS_OWN_TRACES,
        AgentCapabilities::REPORTS_OWN_LOGS,
        AgentCapabilities::REPORTS_AVAILABLE_COMPONENTS,
        AgentCapabilities::ACCEPTS_PACKAGES,
        AgentCapabilities::REPORTS_PACKAGE_STATUSES,
    ] {
        assert!(!r.capabilities().contains(absent), "{absent:?}");
    }
    // No custom capabilities, components or packages are ever reported.
    for m in r.messages() {
        assert!(m.custom_capabilities.is_none(), "{m:?}");
        assert!(m.available_components.is_none(), "{m:?}");
        assert!(m.package_statuses.is_none(), "{m:?}");
    }
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn own_metrics_are_posted_to_the_offered_endpoint_own_3_own_4_own_7_desc_2_css_5() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use opamp_telemetry::otlp;
    use prost::Message as _;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/metrics",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    seen.lock().unwrap().push((headers, body));
                    ""
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let server = TestServer::start().await;
    *server.recorder.connection_settings.lock().unwrap() = Some(v1::ConnectionSettingsOffers {
        hash: vec![7; 32],
        own_metrics: Some(v1::TelemetryConnectionSettings {
            destination_endpoint: format!("http://{otlp_addr}/v1/metrics"),
            headers: Some(v1::Headers {
                headers: vec![v1::Header {
                    key: "X-Token".into(),
                    value: "secret-1".into(),
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let layout = Layout::new();
    layout.write_config(
        &server.ws_url(),
        true,
        "",
        "[own_metrics]\ninterval = \"1s\"\n",
    );
    layout.seed("v0\n");
    let mut agent = Agent::start(&layout);
    wait_running(&layout, &[]).await;
    // A POST that carries process metrics (the first one may precede the process start).
    wait_until(
        "an OTLP POST with process metrics",
        || {
            seen.lock().unwrap().iter().any(|(_, body)| {
                otlp::ExportMetricsServiceRequest::decode(&body[..]).is_ok_and(|r| {
                    r.resource_metrics
                        .iter()
                        .flat_map(|rm| &rm.scope_metrics)
                        .flat_map(|s| &s.metrics)
                        .any(|m| m.name == "process.cpu.time")
                })
            })
        },
        || layout.log_text(),
    )
    .await;
    let (headers, body) = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/x-protobuf"
    );
    assert_eq!(headers.get("x-token").unwrap(), "secret-1");
    let req = otlp::ExportMetricsServiceRequest::decode(&body[..]).unwrap();
    let rm = &req.resource_metrics[0];
    let attrs = &rm.resource.as_ref().unwrap().attributes;
    assert!(attrs.iter().any(|kv| kv.key == "service.name"));
    let names: Vec<&str> = rm
        .scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    for n in [
        "process.cpu.time",
        "process.memory.usage",
        "process.thread.count",
    ] {
        assert!(names.contains(&n), "{n}: {names:?}");
    }
    // The offer's status is reported (CSS-*).
    let r = &server.recorder;
    wait_until(
        "connection settings status",
        || {
            r.messages().iter().any(|m| {
                m.connection_settings_status.as_ref().is_some_and(|s| {
                    s.last_connection_settings_hash == vec![7; 32]
                        && s.status == v1::ConnectionSettingsStatuses::Applied as i32
                })
            })
        },
        || layout.log_text(),
    )
    .await;
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn own_metrics_go_through_the_offered_http_proxy_opc_11_own_3() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    // The OTLP receiver counts POSTs.
    let posts = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&posts);
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(move || {
            let counter = Arc::clone(&counter);
            async move {
                *counter.lock().unwrap() += 1;
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // A forwarding proxy that records each request head (absolute form expected).
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = proxy.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut b = [0u8; 1];
                    if client.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let Ok(mut upstream) = tokio::net::TcpStream::connect(otlp_addr).await else {
                    return;
                };
                if upstream.write_all(&head).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });

    let server = TestServer::start().await;
    *server.recorder.connection_settings.lock().unwrap() = Some(v1::ConnectionSettingsOffers {
        hash: vec![9; 32],
        own_metrics: Some(v1::TelemetryConnectionSettings {
            destination_endpoint: format!("http://{otlp_addr}/v1/metrics"),
            proxy: Some(v1::ProxyConnectionSettings {
                url: format!("http://{proxy_addr}"),
                connect_headers: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let layout = Layout::new();
    layout.write_config(
        &server.ws_url(),
        true,
        "",
        "[own_metrics]\ninterval = \"1s\"\n",
    );
    layout.seed("v0\n");
    let mut agent = Agent::start(&layout);
    wait_running(&layout, &[]).await;
    wait_until(
        "an OTLP POST through the proxy",
        || *posts.lock().unwrap() > 0,
        || format!("{:?}\n{}", heads.lock().unwrap(), layout.log_text()),
    )
    .await;
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        head.starts_with(&format!("post http://{otlp_addr}/v1/metrics http/1.1\r\n")),
        "{head}"
    );
    assert!(
        layout
            .log_text()
            .contains(&format!("through proxy {proxy_addr}")),
        "{}",
        layout.log_text()
    );
    let r = &server.recorder;
    wait_until(
        "connection settings status APPLIED",
        || {
            r.messages().iter().any(|m| {
                m.connection_settings_status.as_ref().is_some_and(|s| {
                    s.last_connection_settings_hash == vec![9; 32]
                        && s.status == v1::ConnectionSettingsStatuses::Applied as i32
                })
            })
        },
        || layout.log_text(),
    )
    .await;
    assert!(agent.terminate().await.success());
}

#[tokio::test]
async fn a_process_left_by_a_killed_opamp_agent_is_stopped_by_the_next_run() {
    let (_server, layout, mut agent, first) = setup("", "").await;
    // SIGKILL: opamp-agent cannot stop its process, which runs in its own process group.
    agent.child.kill().await.unwrap();
    assert!(alive(first));
    let mut agent = Agent::start(&layout);
    let second = wait_running(&layout, &[first]).await;
    assert_ne!(second, first);
    wait_until(
        "the leftover to be gone",
        || !alive(first),
        || layout.log_text(),
    )
    .await;
    assert!(layout.log_text().contains(&format!(
        "a process of an earlier run is still running pid={first}"
    )));
    assert!(agent.terminate().await.success());
    assert!(!layout.state().join("process.pid").exists());
}

#[tokio::test]
async fn over_plain_http_a_config_is_applied_and_stop_sends_agent_disconnect_http_1_disc_4() {
    let server = TestServer::start().await;
    let layout = Layout::new();
    layout.write_config(&server.http_url(), true, "", "");
    layout.seed("v0\n");
    let mut agent = Agent::start(&layout);
    let first = wait_running(&layout, &[]).await;
    let rc = remote_config(&[("", "over http\n")]);
    // Offered in the reply to the next poll.
    *server.recorder.offer.lock().unwrap() = Some(rc.clone());
    wait_status(
        &server,
        &layout,
        &rc.config_hash,
        v1::RemoteConfigStatuses::Applied,
    )
    .await;
    wait_running(&layout, &[first]).await;
    assert_eq!(layout.loaded(), "over http\n");
    assert!(agent.terminate().await.success());
    assert!(
        server.recorder.disconnected(),
        "the last POST carries agent_disconnect"
    );
}
