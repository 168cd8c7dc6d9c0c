//! The web UI in a real browser: Debian's chromium, headless, driven by npm
//! `playwright-core` (`interop/ui/ui_flow.mjs`) against the real `opampd` binary with admin
//! auth on, and a third-party agent (PyPI `opentelemetry-opamp-client`,
//! `interop/python/agent.py`).
//!
//! The flow: sign in with a token (a wrong one first), open the overview, start the Python
//! agent and watch it appear without a reload, open the agents list and the agent, create a
//! config in the editor (an invalid one first: inline error, text kept), assign it from the
//! agent page and watch APPLIED appear live, create a second version, view the diff, the
//! configs list with its rollout bar, and the pages at phone width. Screenshots of every
//! step go to `<repo>/target/ui-screenshots/`.
//!
//! Needs `/usr/bin/chromium` (or `OPAMP_CHROMIUM`), `OPAMP_INTEROP_NODE_MODULES` (with
//! `playwright-core`) and `OPAMP_INTEROP_PYTHON`, which `cargo xtask test` sets. Without
//! them the test prints why and passes, unless `OPAMP_REQUIRE_CHROMIUM=1` (CI), where it
//! fails.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use opamp_interop::{PeerProcess, Peers};
use serde_json::json;
use support::{Opampd, opampd_bin, uuid_from_hex};
use tokio::process::Command;

const TEST: &str = "ui_browser";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

/// Chromium, the node modules and the Python peer, or `None` after printing why.
fn prerequisites() -> Option<(PathBuf, PathBuf, Peers)> {
    let required = std::env::var("OPAMP_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(!required, "{TEST}: OPAMP_REQUIRE_CHROMIUM=1 but {why}");
        println!("{TEST}: skipped: {why}");
        None
    };
    let chromium = PathBuf::from(
        std::env::var("OPAMP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if !chromium.is_file() {
        return skip(format!(
            "{} is not installed (apt-get install chromium)",
            chromium.display()
        ));
    }
    let Some(modules) = std::env::var_os("OPAMP_INTEROP_NODE_MODULES").filter(|v| !v.is_empty())
    else {
        return skip("OPAMP_INTEROP_NODE_MODULES is not set (run `cargo xtask test`)".into());
    };
    let modules = PathBuf::from(modules);
    if !modules.join("playwright-core").is_dir() {
        return skip(format!(
            "{} has no playwright-core (rerun `cargo xtask peers`)",
            modules.display()
        ));
    }
    let Some(peers) = Peers::from_env(TEST) else {
        return skip("OPAMP_INTEROP_PYTHON is not set (run `cargo xtask test`)".into());
    };
    Some((chromium, modules, peers))
}

async fn create_token(data: &Path) -> String {
    let out = Command::new(opampd_bin())
        .args(["token", "create", "--role", "admin", "--name", "ui-test"])
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_in_chromium_login_live_agent_push_config_applied_live_and_diff() {
    let Some((chromium, modules, peers)) = prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A token exists, so the admin port wants one (the login page is exercised).
    let token = create_token(&data).await;
    let mut d = Opampd::start(&data, None, &[]).await;
    d.token = Some(token.clone());

    let shots = repo_root().join("target/ui-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let mut cmd = Command::new("node");
    cmd.arg(repo_root().join("interop/ui/ui_flow.mjs"))
        .env("OPAMP_UI_URL", format!("http://{}", d.admin))
        .env("OPAMP_UI_TOKEN", &token)
        .env("OPAMP_UI_SHOTS", &shots)
        .env("OPAMP_INTEROP_NODE_MODULES", &modules)
        .env("OPAMP_CHROMIUM", &chromium);
    let mut ui = PeerProcess::spawn("ui driver (playwright-core + chromium)", cmd);
    loop {
        let got = ui.wait_for("the next step", |_| true).await;
        match got["event"].as_str() {
            Some("error") => ui.fail("the driver failed").await,
            Some("overview_ready") => break,
            _ => {}
        }
    }

    // A third-party agent connects while the overview is open.
    let mut agent = peers.python_agent(
        &d.http_url(),
        &["--service-name", "checkout", "--heartbeat", "1"],
    );
    let started = agent
        .wait_for("the started line", |e| e["event"] == "started")
        .await;
    let uid = uuid_from_hex(started["instance_uid"].as_str().unwrap());
    ui.send_line(&json!({ "uid": uid }).to_string()).await;

    // Every step reports, so the 30 s deadline of `wait_for` applies to one step at a time.
    let mut applied = None;
    loop {
        let got = ui.wait_for("the next step", |_| true).await;
        match got["event"].as_str() {
            Some("error") => ui.fail("the driver failed").await,
            Some("applied") => applied = Some(got["live"] == true),
            Some("done") => break,
            _ => {}
        }
    }
    let live = applied.expect("the driver saw APPLIED");
    println!(
        "{TEST}: APPLIED {}",
        if live {
            "appeared live, without a reload"
        } else {
            "was already there when the page loaded (the agent was quick)"
        }
    );
    ui.stop().await;

    // The UI's actions went through the API's code: the agent runs version 1 (it was the
    // latest when assigned; the assignment follows the latest, so version 2 next), and the
    // audit log names the token that signed in.
    let agent_view = d
        .wait_get(
            "the agent in sync with v2",
            &format!("/api/v1/agents/{uid}"),
            |a| a["sync_state"] == "in_sync" && a["desired_config"]["version"] == 2,
        )
        .await;
    assert_eq!(agent_view["desired_config"]["config"], "checkout");
    let audit = d.get("/api/v1/audit").await;
    let text = audit.to_string();
    assert!(text.contains("ui-test"), "{text}");
    agent.stop().await;

    let mut names: Vec<String> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    println!("{TEST}: screenshots in {}: {names:?}", shots.display());
    assert!(names.len() >= 12, "{names:?}");
}
