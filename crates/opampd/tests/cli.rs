//! The `opampd` command line: tokens, unsafe binds, settings precedence (flag > env > file),
//! `--help`, JSON logs.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Opampd, opampd_bin};
use tokio::process::Command;

async fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(opampd_bin())
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_prints_a_secret_once_and_tokens_gate_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let mut d = Opampd::start(&data, None, &[]).await;
    // First use on loopback: open, with a warning in the log.
    let (status, _) = d.call(Method::GET, "/api/v1/agents", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        d.stderr().contains("the admin API is open"),
        "{}",
        d.stderr()
    );

    // Tokens made by the CLI while the server runs.
    let (ok, viewer, err) = run(
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "grafana",
            "--data-dir",
            data_s,
        ],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    let viewer = viewer.trim().to_owned();
    assert!(viewer.starts_with("opamp_"), "{viewer}");
    assert!(err.contains("shown only now"), "{err}");
    let (ok, operator, err) = run(
        &[
            "token",
            "create",
            "--role",
            "operator",
            "--name",
            "ci",
            "--data-dir",
            data_s,
        ],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, list, _) = run(&["token", "list", "--data-dir", data_s], &[]).await;
    assert!(
        ok && list.contains("grafana") && list.contains("viewer"),
        "{list}"
    );
    assert!(!list.contains(&viewer), "secrets are never listed");

    // Missing token: 401. Viewer on a write: 403, and nothing written.
    let r = d.call(Method::GET, "/api/v1/agents", None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    d.token = Some(viewer.clone());
    let body = json!({"name": "web", "files": {"a.yaml": {"content_type": "text/yaml", "body": "a: 1\n"}}});
    let r = d
        .call(Method::POST, "/api/v1/configs", Some(body.clone()))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let (status, configs) = d.call(Method::GET, "/api/v1/configs", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(configs["configs"], json!([]));
    d.token = Some(operator.trim().to_owned());
    let (status, _) = d.call(Method::POST, "/api/v1/configs", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);

    // Revoke by name.
    let (ok, out, err) = run(&["token", "revoke", "grafana", "--data-dir", data_s], &[]).await;
    assert!(ok && out.contains("revoked"), "{out}{err}");
    d.token = Some(viewer);
    let r = d.call(Method::GET, "/api/v1/agents", None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(d.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_binds_without_tls_or_tokens_are_refused_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (ok, _, err) = run(
        &[
            "--listen",
            "0.0.0.0:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_s,
        ],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("without TLS") && err.contains("--insecure"),
        "{err}"
    );
    let (ok, _, err) = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
            "--data-dir",
            data_s,
        ],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("over plain HTTP") && err.contains("--admin-tls-cert"),
        "{err}"
    );
    // With TLS on the admin port, a token is still needed.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.path().join("admin.crt");
    let key_path = dir.path().join("admin.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (ok, _, err) = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
            "--admin-tls-cert",
            cert_path.to_str().unwrap(),
            "--admin-tls-key",
            key_path.to_str().unwrap(),
            "--data-dir",
            data_s,
        ],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("with no token") && err.contains("token create"),
        "{err}"
    );
    // Half of the pair is refused with a clear message.
    let (ok, _, err) = run(
        &[
            "--admin-tls-cert",
            cert_path.to_str().unwrap(),
            "--data-dir",
            data_s,
        ],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("go together"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_flags_then_env_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("opampd.toml");
    // The file asks for text logs and a listen address the env var overrides.
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\nlog_format = \"text\"\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:0\"\nserver_id = \"from-file\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let child = Command::new(opampd_bin())
        .args(["--config", file.to_str().unwrap(), "--log-format", "json"])
        .env("OPAMP_LISTEN", "127.0.0.1:0")
        .env("OPAMP_LOG_FORMAT", "text")
        .env("OPAMP_SERVER_ID", "from-env")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // ports.json appears in the data dir named by the file; the OpAMP port is the env's
    // (port 0, not the file's port 1).
    let ports = data.join("ports.json");
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let info: Value = loop {
        if let Ok(t) = std::fs::read_to_string(&ports)
            && let Ok(v) = serde_json::from_str(&t)
        {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "no ports.json");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_ne!(info["opamp"], "127.0.0.1:1");
    let pid = info["pid"].as_u64().unwrap().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The flag's JSON format beat the env's text; the env's server id beat the file's.
    let serving = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "serving")
        .unwrap_or_else(|| panic!("no JSON 'serving' log line in:\n{stderr}"));
    assert_eq!(serving["fields"]["server_id"], "from-env");

    // Unknown keys in the file are an error.
    std::fs::write(&file, "listne = \"127.0.0.1:0\"\n").unwrap();
    let (ok, _, err) = run(&["--config", file.to_str().unwrap()], &[]).await;
    assert!(!ok);
    assert!(err.contains("listne"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_setting() {
    let (ok, out, _) = run(&["--help"], &[]).await;
    assert!(ok);
    for flag in [
        "--listen",
        "--admin-listen",
        "--data-dir",
        "--store",
        "--config",
        "--tls-cert",
        "--tls-key",
        "--client-ca",
        "--insecure",
        "--log-format",
        "OPAMP_LISTEN",
        "token",
    ] {
        assert!(out.contains(flag), "{flag} missing from --help:\n{out}");
    }
}
