//! Test support: the real `opampd` binary as a child process on 127.0.0.1 port 0, an admin
//! API client, and our own agents (opamp-client in this process) that apply or refuse the
//! configs they get and count them.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opamp_client::{AgentCapabilities, Backoff, ClientEvent, ClientHandle, OpampClient, v1};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Deadlock guard for every wait (never a timing assertion).
pub const WAIT: Duration = Duration::from_secs(30);

/// A running opampd.
pub struct Opampd {
    child: Child,
    pub data_dir: PathBuf,
    pub opamp: SocketAddr,
    pub admin: SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
    pub token: Option<String>,
}

fn capture(stream: impl AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

/// The binary under test.
pub fn opampd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_opampd")
}

impl Opampd {
    /// Starts opampd on `data_dir` with both listeners on 127.0.0.1 port 0 (or `addrs`, to
    /// come back on the same ports after a restart), plus `args`; waits for `ports.json`.
    pub async fn start(
        data_dir: &Path,
        addrs: Option<(SocketAddr, SocketAddr)>,
        args: &[&str],
    ) -> Opampd {
        let (opamp, admin) = addrs.map_or(
            ("127.0.0.1:0".to_owned(), "127.0.0.1:0".to_owned()),
            |(o, a)| (o.to_string(), a.to_string()),
        );
        // A ports.json left by a killed predecessor must not be mistaken for ours.
        let _ = std::fs::remove_file(data_dir.join("ports.json"));
        let mut cmd = Command::new(opampd_bin());
        cmd.arg("--listen")
            .arg(&opamp)
            .arg("--admin-listen")
            .arg(&admin)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("OPAMP_LOG_LEVEL", "info,opamp_fleet=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !args.contains(&"--last-seen-flush-secs") {
            cmd.args(["--last-seen-flush-secs", "1"]);
        }
        if !args.contains(&"--server-id") {
            cmd.args(["--server-id", "e2e"]);
        }
        let mut child = cmd.spawn().expect("spawn opampd");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().unwrap(), stdout.clone());
        capture(child.stderr.take().unwrap(), stderr.clone());
        let ports = data_dir.join("ports.json");
        let deadline = tokio::time::Instant::now() + WAIT;
        let info: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ports)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                break v;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "opampd exited with {status} before listening:\n{}",
                    stderr.lock().unwrap()
                );
            }
            if tokio::time::Instant::now() > deadline {
                panic!("opampd wrote no ports.json:\n{}", stderr.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Opampd {
            child,
            data_dir: data_dir.to_owned(),
            opamp: info["opamp"].as_str().unwrap().parse().unwrap(),
            admin: info["admin"].as_str().unwrap().parse().unwrap(),
            stdout,
            stderr,
            http: reqwest::Client::new(),
            token: None,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/opamp", self.opamp)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}/v1/opamp", self.opamp)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then waits for the exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.terminate_start().await;
        self.wait_exit().await
    }

    /// Sends SIGTERM; returns the pid.
    pub async fn terminate_start(&mut self) -> u32 {
        let pid = self.child.id().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(ok.success());
        pid
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("opampd did not stop after SIGTERM")
            .unwrap()
    }

    /// Sends a request to the admin API; returns status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.admin));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("{path}: {e}\nopampd stderr:\n{}", self.stderr()),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, resp) = self.call(Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {resp}");
        resp
    }

    /// Waits until `GET path` satisfies `pred`.
    pub async fn wait_get(&self, what: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = self.call(Method::GET, path, None).await;
            if status.is_success() && pred(&body) {
                return body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}: last {status} {body}\nopampd stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// How one of our agents treats remote configs.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Report the files as effective config and APPLIED.
    Apply,
    /// Report FAILED with this message.
    Fail(String),
}

/// One of our agents (opamp-client in this process).
pub struct OurAgent {
    pub handle: ClientHandle,
    pub uid: String,
    /// Remote configs received.
    pub configs: Arc<AtomicUsize>,
    /// Connections made.
    pub connects: Arc<AtomicUsize>,
    /// Commands received.
    pub commands: Arc<AtomicUsize>,
}

impl OurAgent {
    pub async fn start(url: &str, service: &str, mode: Mode) -> OurAgent {
        let client = OpampClient::builder(url)
            .service_name(service)
            .service_version("1.2.3")
            .non_identifying_attribute("os.type", "linux")
            .capabilities(
                AgentCapabilities::ACCEPTS_REMOTE_CONFIG
                    | AgentCapabilities::REPORTS_REMOTE_CONFIG
                    | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
                    | AgentCapabilities::REPORTS_HEARTBEAT
                    | AgentCapabilities::ACCEPTS_RESTART_COMMAND,
            )
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
        let uid = handle.instance_uid().await.to_string();
        let configs = Arc::new(AtomicUsize::new(0));
        let connects = Arc::new(AtomicUsize::new(0));
        let commands = Arc::new(AtomicUsize::new(0));
        let h = handle.clone();
        let (c, n, k) = (configs.clone(), connects.clone(), commands.clone());
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                match e {
                    ClientEvent::Connected => {
                        n.fetch_add(1, Ordering::SeqCst);
                    }
                    ClientEvent::Command(_) => {
                        k.fetch_add(1, Ordering::SeqCst);
                    }
                    ClientEvent::RemoteConfig(rc) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        let status = match &mode {
                            Mode::Apply => {
                                let _ = h
                                    .set_effective_config(v1::EffectiveConfig {
                                        config_map: rc.config.clone(),
                                    })
                                    .await;
                                v1::RemoteConfigStatus {
                                    last_remote_config_hash: rc.config_hash.clone(),
                                    status: v1::RemoteConfigStatuses::Applied as i32,
                                    error_message: String::new(),
                                }
                            }
                            Mode::Fail(msg) => v1::RemoteConfigStatus {
                                last_remote_config_hash: rc.config_hash.clone(),
                                status: v1::RemoteConfigStatuses::Failed as i32,
                                error_message: msg.clone(),
                            },
                        };
                        let _ = h.set_remote_config_status(status).await;
                    }
                    _ => {}
                }
            }
        });
        OurAgent {
            handle,
            uid,
            configs,
            connects,
            commands,
        }
    }

    pub fn configs(&self) -> usize {
        self.configs.load(Ordering::SeqCst)
    }

    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }

    /// Waits until the agent has received `n` commands in all.
    pub async fn wait_commands(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.commands.load(Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent {} got no command",
                self.uid
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the agent has connected `n` times in all.
    pub async fn wait_connects(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.connects() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent {} did not reconnect",
                self.uid
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `0123...` (32 hex digits) → UUID text form.
pub fn uuid_from_hex(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The agent with this uid in a `GET /api/v1/agents` answer.
pub fn find<'a>(list: &'a Value, uid: &str) -> Option<&'a Value> {
    list["agents"]
        .as_array()?
        .iter()
        .find(|a| a["instance_uid"] == uid)
}
