//! opampctl against the real opampd binary (see `support` for where it comes from), with
//! agents from opamp-client connected over WebSocket: configs from files, history, diff,
//! push, agents, labels, groups, restart, rollback, JSON output, and the error cases with
//! their messages and exit codes.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Agent, Opampd, closed_port, ctl, find};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_create_history_show_diff_and_rollback_from_files() {
    let d = Opampd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let otel = write(
        dir.path(),
        "otel.yaml",
        "receivers:\n  otlp:\n    endpoint: 0.0.0.0:4317\nexporters:\n  debug: {}\n",
    );
    let extra = write(dir.path(), "upload.tmp", "LoadPlugin cpu\n");

    // Version 1 from two files, one renamed in the config.
    let out = d
        .ctl(&[
            "configs",
            "create",
            "collector",
            "--file",
            &otel,
            "--file",
            &format!("{extra}:collectd.conf"),
            "--message",
            "first",
        ])
        .await;
    assert!(
        out.ok().starts_with("created collector version 1 (hash "),
        "{out:?}"
    );
    let v1 = d
        .ctl(&[
            "configs",
            "show",
            "collector",
            "--version",
            "1",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(v1["files"]["otel.yaml"]["content_type"], "text/yaml");
    assert_eq!(v1["files"]["collectd.conf"]["content_type"], "text/plain");
    assert_eq!(v1["files"]["collectd.conf"]["body"], "LoadPlugin cpu\n");
    assert_eq!(v1["message"], "first");

    // The same files again: nothing new.
    let out = d
        .ctl(&[
            "configs",
            "create",
            "collector",
            "--file",
            &otel,
            "--file",
            &format!("{extra}:collectd.conf"),
        ])
        .await;
    assert!(
        out.ok().starts_with("unchanged: collector version 1"),
        "{out:?}"
    );

    // Version 2 changes one key and adds one.
    let otel2 = write(
        dir.path(),
        "otel.yaml",
        "receivers:\n  otlp:\n    endpoint: 0.0.0.0:4318\nexporters:\n  debug: {}\n  otlp: {}\n",
    );
    let created = d
        .ctl(&[
            "configs",
            "create",
            "collector",
            "--file",
            &otel2,
            "--file",
            &format!("{extra}:collectd.conf"),
            "-m",
            "move the port",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(created["created"], true);
    assert_eq!(created["version"]["version"], 2);

    // History, newest first.
    let out = d.ctl(&["configs", "history", "collector"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[0].starts_with("VERSION"), "{out:?}");
    assert!(
        lines[1].starts_with("2 ") && lines[1].ends_with("move the port"),
        "{out:?}"
    );
    assert!(
        lines[2].starts_with("1 ") && lines[2].ends_with("first"),
        "{out:?}"
    );

    // The diff: per-key changes and the unified diff; no colour when stdout is a pipe.
    let out = d.ctl(&["configs", "diff", "collector", "1", "2"]).await;
    let text = out.ok();
    assert!(text.contains("config collector: version 1 → 2"), "{text}");
    assert!(text.contains("changed otel.yaml"), "{text}");
    assert!(
        text.contains("~ receivers.otlp.endpoint: \"0.0.0.0:4317\" → \"0.0.0.0:4318\""),
        "{text}"
    );
    assert!(text.contains("+ exporters.otlp: {}"), "{text}");
    assert!(text.contains("\n-    endpoint: 0.0.0.0:4317\n"), "{text}");
    assert!(text.contains("\n+    endpoint: 0.0.0.0:4318\n"), "{text}");
    assert!(
        !text.contains("collectd.conf"),
        "unchanged files stay out: {text}"
    );
    assert!(!text.contains('\x1b'), "{text}");
    let coloured = d
        .ctl(&[
            "configs",
            "diff",
            "collector",
            "1",
            "2",
            "--color",
            "always",
        ])
        .await;
    assert!(
        coloured
            .ok()
            .contains("\x1b[32m+    endpoint: 0.0.0.0:4318\x1b[0m"),
        "{coloured:?}"
    );
    let json = d
        .ctl(&["configs", "diff", "collector", "1", "-o", "json"])
        .await
        .json();
    assert_eq!(json["to"], 2, "TO defaults to the latest");
    assert_eq!(json["diff"]["files"][0]["name"], "otel.yaml");

    // Rollback to 1 is a new version 3 that restores 1.
    let out = d.ctl(&["configs", "rollback", "collector", "1"]).await;
    assert!(
        out.ok()
            .starts_with("rolled collector back to version 1: new version 3"),
        "{out:?}"
    );
    let v3 = d
        .ctl(&["configs", "show", "collector", "-o", "json"])
        .await
        .json();
    assert_eq!(v3["latest_version"], 3);
    assert_eq!(v3["latest"]["rollback_of"], 1);
    assert_eq!(v3["latest"]["files"], v1["files"]);
    let raw = d
        .ctl(&["configs", "show", "collector", "--file", "otel.yaml"])
        .await;
    assert_eq!(
        raw.ok(),
        "receivers:\n  otlp:\n    endpoint: 0.0.0.0:4317\nexporters:\n  debug: {}\n"
    );
    let out = d.ctl(&["configs", "diff", "collector", "1", "3"]).await;
    assert!(out.ok().contains("no differences"), "{out:?}");

    // Human show and list.
    let out = d.ctl(&["configs", "show", "collector"]).await;
    assert!(out.ok().contains("config collector version 3"), "{out:?}");
    assert!(out.ok().contains("restores version 1"), "{out:?}");
    assert!(out.ok().contains("  --- otel.yaml (text/yaml)"), "{out:?}");
    let out = d.ctl(&["configs", "list"]).await;
    assert!(
        out.ok()
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("collector  3 "),
        "{out:?}"
    );
    let list = d.ctl(&["configs", "list", "-o", "yaml"]).await;
    assert!(list.ok().contains("name: collector"), "{list:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_a_selector_reaches_a_connected_agent_and_it_shows_in_sync_rcfg_3_rcfg_4() {
    let d = Opampd::start().await;
    let agent = Agent::start(&d.ws_url(), "checkout", true).await;
    let other = Agent::start(&d.ws_url(), "billing", true).await;

    // Both agents are listed; tables show the uid's last 12 hex digits.
    d.wait_json("two agents", &["agents", "list"], |v| {
        find(v, &agent.uid).is_some() && find(v, &other.uid).is_some()
    })
    .await;
    let short: String = agent.uid.replace('-', "")[20..].to_owned();
    let out = d.ctl(&["agents", "list"]).await;
    let row = out
        .ok()
        .lines()
        .find(|l| l.starts_with(&short))
        .unwrap_or_else(|| panic!("no row for {short}: {out:?}"));
    assert!(row.contains("checkout") && row.contains("1.2.3"), "{row}");
    assert!(row.contains(" ws "), "{row}");
    assert!(row.contains("unmanaged"), "{row}");
    let wide = d.ctl(&["agents", "list", "--wide"]).await;
    assert!(wide.ok().contains(&agent.uid), "{wide:?}");
    assert!(wide.ok().contains("test-host"), "{wide:?}");

    // A config pushed to `service.name=checkout` reaches that agent only.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "otel.yaml", "exporters:\n  debug: {}\n");
    d.ctl(&["configs", "create", "web", "--file", &file])
        .await
        .ok();
    let out = d
        .ctl(&[
            "configs",
            "push",
            "web",
            "--selector",
            "service.name=checkout",
        ])
        .await;
    assert!(
        out.ok()
            .starts_with("assigned web (latest) to selector service.name=checkout: assignment "),
        "{out:?}"
    );
    let shown = d
        .wait_json("the agent in sync", &["agents", "show", &agent.uid], |v| {
            v["sync_state"] == "in_sync"
        })
        .await;
    assert_eq!(shown["desired_config"]["config"], "web");
    assert_eq!(
        shown["effective_config"]["otel.yaml"]["body"],
        "exporters:\n  debug: {}\n"
    );
    assert_eq!(
        shown["remote_config_status"]["last_remote_config_hash"],
        shown["desired_config_hash"]
    );
    assert_eq!(other.configs.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(shown["effective_config_redacted"], true);
    let revealed = d
        .ctl(&["agents", "show", &agent.uid, "--reveal", "-o", "json"])
        .await
        .json();
    assert_eq!(revealed["effective_config_redacted"], false);

    // The human views, by a shortened uid.
    let out = d.ctl(&["agents", "show", &short]).await;
    let text = out.ok();
    assert!(
        text.contains(&format!("instance uid    {}", agent.uid)),
        "{text}"
    );
    assert!(text.contains("sync state      in_sync"), "{text}");
    assert!(text.contains("desired config  web version 1"), "{text}");
    assert!(text.contains("remote config   APPLIED"), "{text}");
    assert!(
        text.contains("  --- otel.yaml (text/yaml)\n  exporters:\n"),
        "{text}"
    );
    let in_sync = d
        .ctl(&["agents", "list", "--sync-state", "in_sync", "-o", "json"])
        .await
        .json();
    assert!(find(&in_sync, &agent.uid).is_some(), "{in_sync}");
    assert!(find(&in_sync, &other.uid).is_none(), "{in_sync}");
    let selected = d
        .ctl(&["agents", "list", "-l", "service.name=billing", "-o", "json"])
        .await
        .json();
    assert_eq!(selected["agents"].as_array().unwrap().len(), 1);

    // `assign` is `configs push`; assignments list and delete.
    let out = d
        .ctl(&[
            "assign",
            "web",
            "--agent",
            &short,
            "--version",
            "1",
            "-o",
            "json",
        ])
        .await;
    let a = out.json();
    assert_eq!(a["agent"], agent.uid.as_str());
    assert_eq!(a["version"], 1);
    let out = d.ctl(&["assignments", "list"]).await;
    assert!(
        out.ok().contains("selector service.name=checkout"),
        "{out:?}"
    );
    assert!(out.ok().contains(&format!("agent {short}")), "{out:?}");
    let id = a["id"].to_string();
    let out = d.ctl(&["assignments", "delete", &id]).await;
    assert_eq!(out.ok(), format!("deleted assignment {id}\n"));
    let list = d.ctl(&["assignments", "list", "-o", "json"]).await.json();
    assert_eq!(list["assignments"].as_array().unwrap().len(), 1);

    // Events and summary.
    let out = d.ctl(&["agents", "events", &agent.uid]).await;
    assert!(out.ok().contains("connected"), "{out:?}");
    let s = d.ctl(&["summary", "-o", "json"]).await.json();
    assert_eq!(s["total"], 2);
    assert_eq!(s["by_connection"]["connected"], 2);
    let out = d.ctl(&["summary"]).await;
    assert!(out.ok().starts_with("agents      2\n"), "{out:?}");
    assert!(out.ok().contains("connected 2"), "{out:?}");

    agent.handle.stop().await.unwrap();
    other.handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_set_and_remove_and_groups_select_by_them() {
    let d = Opampd::start().await;
    let agent = Agent::start(&d.ws_url(), "checkout", false).await;
    d.wait_json("the agent", &["agents", "list"], |v| {
        find(v, &agent.uid).is_some()
    })
    .await;
    let short = &agent.uid.replace('-', "")[24..];

    let out = d
        .ctl(&["labels", "set", short, "env=prod", "tier=web"])
        .await;
    assert!(out.ok().ends_with(": env=prod,tier=web\n"), "{out:?}");
    let prod = d
        .ctl(&[
            "agents",
            "list",
            "--selector",
            "env=prod,tier in (web,db)",
            "-o",
            "json",
        ])
        .await
        .json();
    assert!(find(&prod, &agent.uid).is_some(), "{prod}");
    let out = d.ctl(&["labels", "remove", &agent.uid, "tier"]).await;
    assert!(out.ok().ends_with(": env=prod\n"), "{out:?}");
    let out = d.ctl(&["labels", "list", &agent.uid]).await;
    let text = out.ok();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.contains(&vec!["env", "prod", "operator"]), "{text}");
    assert!(
        rows.contains(&vec!["service.name", "checkout", "description"]),
        "{text}"
    );
    let json = d
        .ctl(&["labels", "list", &agent.uid, "-o", "json"])
        .await
        .json();
    assert_eq!(json["operator_labels"], serde_json::json!({"env": "prod"}));

    // Groups: create, list, push to, refuse deletion while assigned, delete.
    let out = d
        .ctl(&[
            "groups",
            "create",
            "prod",
            "--selector",
            "env=prod",
            "-d",
            "production",
        ])
        .await;
    assert_eq!(out.ok(), "created group prod: env=prod (production)\n");
    let out = d.ctl(&["groups", "list"]).await;
    assert!(
        out.ok()
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("prod  env=prod  production"),
        "{out:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "app.json", "{\"level\": \"info\"}");
    let v = d
        .ctl(&["configs", "create", "app", "--file", &file, "-o", "json"])
        .await
        .json();
    assert_eq!(
        v["version"]["files"]["app.json"]["content_type"],
        "application/json"
    );
    let a = d
        .ctl(&["configs", "push", "app", "--group", "prod", "-o", "json"])
        .await
        .json();
    assert_eq!(a["group"], "prod");
    d.wait_json("the group's config", &["agents", "show", &agent.uid], |v| {
        v["sync_state"] == "in_sync"
    })
    .await;
    let out = d.ctl(&["groups", "delete", "prod"]).await;
    out.fails(1, "(conflict)");
    d.ctl(&["assignments", "delete", &a["id"].to_string()])
        .await
        .ok();
    let out = d.ctl(&["groups", "delete", "prod"]).await;
    assert_eq!(out.ok(), "deleted group prod\n");

    agent.handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_is_queued_for_capable_agents_and_refused_for_others_cmd_1() {
    let d = Opampd::start().await;
    let capable = Agent::start(&d.ws_url(), "capable", true).await;
    let plain = Agent::start(&d.ws_url(), "plain", false).await;
    d.wait_json("two agents", &["agents", "list"], |v| {
        find(v, &capable.uid).is_some() && find(v, &plain.uid).is_some()
    })
    .await;

    let out = d.ctl(&["restart", &capable.uid]).await;
    assert!(
        out.ok().starts_with(&format!(
            "restart queued for agent {} (command ",
            capable.uid
        )),
        "{out:?}"
    );
    let json = d.ctl(&["restart", &capable.uid, "-o", "json"]).await.json();
    assert_eq!(json["command"], "restart");

    let out = d.ctl(&["restart", &plain.uid]).await;
    out.fails(1, "does not accept restart commands");
    out.fails(1, "(conflict)");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");

    capable.handle.stop().await.unwrap();
    plain.handle.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_list_follows_cursors_with_all() {
    let d = Opampd::start().await;
    let mut agents = Vec::new();
    for i in 0..3 {
        agents.push(Agent::start(&d.ws_url(), &format!("svc{i}"), false).await);
    }
    d.wait_json("three agents", &["agents", "list"], |v| {
        v["agents"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    let page = d.ctl(&["agents", "list", "--limit", "1"]).await;
    assert_eq!(page.ok().lines().count(), 2, "{page:?}");
    assert!(page.stderr.contains("more agents: add --all"), "{page:?}");
    let all = d
        .ctl(&["agents", "list", "--limit", "1", "--all", "-o", "json"])
        .await
        .json();
    let uids: Vec<&str> = all["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["instance_uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), 3, "{all}");
    for a in &agents {
        assert!(uids.contains(&a.uid.as_str()), "{all}");
    }
    assert_eq!(all["next_cursor"], Value::Null);
    let table = d.ctl(&["agents", "list", "--limit", "1", "--all"]).await;
    assert_eq!(table.ok().lines().count(), 4, "{table:?}");
    // An ambiguous short uid is refused with the candidates named.
    // (UUIDv7 uids begin with their creation time: all three start with "0".)
    let out = d.ctl(&["agents", "show", "0"]).await;
    out.fails(1, "\"0\" matches 3 agents");
    for a in agents {
        a.handle.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_to_do_and_set_the_exit_code() {
    // Nothing listening: exit 3.
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = ctl(&["summary"], &[("OPAMP_URL", &url)]).await;
    out.fails(
        3,
        &format!("error: cannot reach opampd at {url}: is it running? (set OPAMP_URL"),
    );
    let out = ctl(&["--url", &url, "agents", "list"], &[]).await;
    out.fails(3, "cannot reach opampd");
    out.fails(3, "Connection refused");
    // A listener that never answers (the kernel completes the handshake): a timeout, exit 3.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let out = ctl(
        &["--url", &silent_url, "--timeout", "300ms", "summary"],
        &[],
    )
    .await;
    out.fails(
        3,
        &format!("error: opampd at {silent_url} did not answer within 300ms"),
    );
    drop(silent);

    // Usage errors: exit 2.
    let out = ctl(&["--url", "localhost:4321", "summary"], &[]).await;
    out.fails(2, "invalid --url/OPAMP_URL");
    let out = ctl(&["assign", "web"], &[]).await;
    out.fails(2, "--selector");
    let out = ctl(
        &["configs", "create", "x", "--file", "/nonexistent/f.yaml"],
        &[],
    )
    .await;
    out.fails(2, "cannot read /nonexistent/f.yaml");
    let out = ctl(
        &[
            "--url",
            &url,
            "labels",
            "set",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "novalue",
        ],
        &[],
    )
    .await;
    out.fails(2, "\"novalue\" is not KEY=VALUE");
    let out = ctl(&["nonsense"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");

    let d = Opampd::start().await;
    // An unknown config: the API's message and code, and a hint.
    let out = d.ctl(&["configs", "history", "nope"]).await;
    out.fails(1, "(config_not_found)");
    out.fails(1, "hint: list configs with `opampctl configs list`");
    let out = d
        .ctl(&["agents", "show", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"])
        .await;
    out.fails(1, "(agent_not_found)");
    let out = d.ctl(&["agents", "list", "--selector", "a in (b"]).await;
    out.fails(1, "(invalid_selector)");
    let out = d.ctl(&["labels", "set", "ffffffffffff", "a=b"]).await;
    out.fails(1, "no agent uid starts or ends with \"ffffffffffff\"");

    // Once a token exists, the API needs one.
    let viewer = d.token("viewer", "grafana").await;
    let operator = d.token("operator", "ci").await;
    let out = d.ctl(&["summary"]).await;
    out.fails(
        1,
        "error: authentication required: set OPAMP_TOKEN (create one with `opampd token create`)",
    );
    let out = d.ctl_as("opamp_not_a_real_token", &["summary"]).await;
    out.fails(1, "the token was refused");
    let out = d.ctl_as(&viewer, &["summary", "-o", "json"]).await;
    assert_eq!(out.json()["total"], 0);

    // A viewer cannot write.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "otel.yaml", "a: 1\n");
    let out = d
        .ctl_as(&viewer, &["configs", "create", "web", "--file", &file])
        .await;
    out.fails(1, "your token's role (viewer) cannot do this");
    out.fails(1, "--role operator");
    // An operator can, but groups need an admin.
    d.ctl_as(&operator, &["configs", "create", "web", "--file", &file])
        .await
        .ok();
    let out = d
        .ctl_as(&operator, &["groups", "create", "g", "--selector", "a=b"])
        .await;
    out.fails(1, "your token's role (operator) cannot do this");
    // --token beats the environment.
    let out = ctl(
        &["--token", &viewer, "configs", "list"],
        &[
            ("OPAMP_URL", &d.admin_url()),
            ("OPAMP_TOKEN", "opamp_wrong"),
        ],
    )
    .await;
    assert!(out.ok().contains("web"), "{out:?}");
    // A YAML file that does not parse: 422 from the server, exit 1.
    let bad = write(dir.path(), "bad.yaml", "a: [1, 2\n");
    let out = d
        .ctl_as(&operator, &["configs", "create", "web", "--file", &bad])
        .await;
    out.fails(1, "(invalid_config)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_opampd_is_named_as_such() {
    // A one-shot HTTP server answering an HTML 502, like a proxy whose backend is down.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let body = "<html>502 Bad Gateway</html>";
        let _ = write!(
            s,
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let out = ctl(&["summary"], &[("OPAMP_URL", &format!("http://{addr}"))]).await;
    out.fails(1, "unexpected answer from");
    out.fails(1, "HTTP 502");
    out.fails(1, "is OPAMP_URL the opampd admin API?");
    server.join().unwrap();
}

/// opampd's admin port over TLS: opampctl trusts it with `--cacert` (or `OPAMP_CACERT`), and
/// without it says the certificate is not trusted and what to pass (exit 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_admin_port_is_trusted_with_cacert_and_explained_without() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let cert_path = write(dir.path(), "admin.crt", &cert.pem());
    let key_path = write(dir.path(), "admin.key", &key.serialize_pem());
    let ca_path = write(dir.path(), "ca.crt", &ca.pem());
    let d = Opampd::start_with(
        dir,
        &["--admin-tls-cert", &cert_path, "--admin-tls-key", &key_path],
    )
    .await;
    let url = format!("https://localhost:{}", d.admin.port());
    let out = ctl(&["summary", "-o", "json"], &[("OPAMP_URL", &url)]).await;
    out.fails(3, "cannot trust the TLS certificate");
    assert!(out.stderr.contains("--cacert"), "{out:?}");
    let out = ctl(
        &["summary", "-o", "json"],
        &[("OPAMP_URL", &url), ("OPAMP_CACERT", &ca_path)],
    )
    .await;
    assert!(
        out.json()["agents"].is_object() || out.json().is_object(),
        "{out:?}"
    );
    let out = ctl(
        &["--cacert", &ca_path, "agents", "list"],
        &[("OPAMP_URL", &url)],
    )
    .await;
    out.ok();
}
