//! Test support: the real `opampd` binary on 127.0.0.1 port 0, our `opampctl` binary run
//! against it, and agents (opamp-client in this process) that apply the configs they get.
//!
//! Where opampd comes from: it is a binary-only crate, so it cannot be a dev-dependency
//! and Cargo sets `CARGO_BIN_EXE_opampd` only for opampd's own tests. We use, in order:
//! 1. `OPAMPD_BIN`, when set (a binary built elsewhere);
//! 2. `opampd` beside our own binary (`cargo test --workspace` builds it there), when it
//!    is newer than every source file of the workspace's other crates;
//! 3. otherwise `cargo build -p opampd` into the same target dir and profile, once per
//!    test binary, then 2.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use opamp_client::{AgentCapabilities, Backoff, ClientEvent, ClientHandle, OpampClient, v1};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Deadlock guard for every wait (never a timing assertion).
pub const WAIT: Duration = Duration::from_secs(30);

/// The opampctl binary under test.
pub fn opampctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_opampctl")
}

/// The opampd binary (see the module docs for where it comes from).
pub fn opampd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("OPAMPD_BIN") {
            return PathBuf::from(p);
        }
        let ours = Path::new(opampctl_bin());
        let profile_dir = ours.parent().unwrap();
        let bin = profile_dir.join(format!("opampd{}", std::env::consts::EXE_SUFFIX));
        if !is_fresh(&bin) {
            build_opampd(profile_dir);
        }
        assert!(bin.exists(), "no opampd at {}", bin.display());
        bin
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

/// True when `bin` exists and no source of the other workspace crates is newer.
fn is_fresh(bin: &Path) -> bool {
    let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    fn newest(dir: &Path, acc: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                newest(&path, acc);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                *acc = (*acc).max(t);
            }
        }
    }
    let root = workspace_root();
    let mut latest = SystemTime::UNIX_EPOCH;
    if let Ok(t) = root
        .join("Cargo.lock")
        .metadata()
        .and_then(|m| m.modified())
    {
        latest = t;
    }
    for krate in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        if krate.file_name() == "opampctl" {
            continue;
        }
        newest(&krate.path().join("src"), &mut latest);
        if let Ok(t) = krate
            .path()
            .join("Cargo.toml")
            .metadata()
            .and_then(|m| m.modified())
        {
            latest = latest.max(t);
        }
    }
    latest <= built
}

fn build_opampd(profile_dir: &Path) {
    let target_dir = profile_dir.parent().unwrap();
    let profile = profile_dir.file_name().unwrap().to_str().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "opampd", "--bin", "opampd", "--target-dir"])
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output().expect("run cargo build -p opampd");
    assert!(
        out.status.success(),
        "cargo build -p opampd failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A running opampd with its own data dir.
pub struct Opampd {
    child: Child,
    _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub opamp: SocketAddr,
    pub admin: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Opampd {
    /// Starts opampd with both listeners on 127.0.0.1 port 0; waits for `ports.json`.
    pub async fn start() -> Opampd {
        Self::start_with(tempfile::tempdir().unwrap(), &[]).await
    }

    /// Like [`Opampd::start`] in `dir`, with extra opampd arguments.
    pub async fn start_with(dir: tempfile::TempDir, args: &[&str]) -> Opampd {
        let data_dir = dir.path().join("data");
        let mut child = Command::new(opampd_bin())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--server-id", "ctl-test", "--last-seen-flush-secs", "1"])
            .args(args)
            .env("OPAMP_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn opampd");
        let stderr = Arc::new(Mutex::new(String::new()));
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
            assert!(
                tokio::time::Instant::now() < deadline,
                "opampd wrote no ports.json:\n{}",
                stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Opampd {
            child,
            _dir: dir,
            data_dir,
            opamp: info["opamp"].as_str().unwrap().parse().unwrap(),
            admin: info["admin"].as_str().unwrap().parse().unwrap(),
            stderr,
        }
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/opamp", self.opamp)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `opampd token create --role ROLE --name NAME` on this server's data dir: the secret.
    pub async fn token(&self, role: &str, name: &str) -> String {
        let out = Command::new(opampd_bin())
            .args(["token", "create", "--role", role, "--name", name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Runs opampctl against this server (OPAMP_URL set, no token unless given in `args`).
    pub async fn ctl(&self, args: &[&str]) -> Ctl {
        ctl(args, &[("OPAMP_URL", &self.admin_url())]).await
    }

    /// Runs opampctl with a token.
    pub async fn ctl_as(&self, token: &str, args: &[&str]) -> Ctl {
        ctl(
            args,
            &[("OPAMP_URL", &self.admin_url()), ("OPAMP_TOKEN", token)],
        )
        .await
    }

    /// Runs `opampctl ... -o json` until `pred` holds for its output.
    pub async fn wait_json(
        &self,
        what: &str,
        args: &[&str],
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        loop {
            let out = self.ctl(&args).await;
            if out.code == 0 {
                let v = out.json();
                if pred(&v) {
                    return v;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: last {out:?}\nopampd stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Opampd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What one opampctl run did.
#[derive(Debug)]
pub struct Ctl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "opampctl failed: {self:?}");
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts this exit code and that stderr contains `text`.
    #[track_caller]
    pub fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}: {self:?}"
        );
    }
}

/// Runs opampctl with exactly these `OPAMP_*` variables (the caller's are removed).
pub async fn ctl(args: &[&str], envs: &[(&str, &str)]) -> Ctl {
    let mut cmd = Command::new(opampctl_bin());
    for var in [
        "OPAMP_URL",
        "OPAMP_TOKEN",
        "OPAMP_OUTPUT",
        "OPAMP_TIMEOUT",
        "OPAMP_CACERT",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    Ctl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One of our agents: reports the configs it gets as effective and APPLIED.
pub struct Agent {
    pub handle: ClientHandle,
    pub uid: String,
    pub configs: Arc<AtomicUsize>,
}

impl Agent {
    /// An agent over WebSocket; `restartable` adds AcceptsRestartCommand.
    pub async fn start(url: &str, service: &str, restartable: bool) -> Agent {
        let mut caps = AgentCapabilities::ACCEPTS_REMOTE_CONFIG
            | AgentCapabilities::REPORTS_REMOTE_CONFIG
            | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
            | AgentCapabilities::REPORTS_HEARTBEAT;
        if restartable {
            caps |= AgentCapabilities::ACCEPTS_RESTART_COMMAND;
        }
        let client = OpampClient::builder(url)
            .service_name(service)
            .service_version("1.2.3")
            .non_identifying_attribute("host.name", "test-host")
            .capabilities(caps)
            .heartbeat_interval(Some(Duration::from_secs(1)))
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
        let (h, c) = (handle.clone(), configs.clone());
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let ClientEvent::RemoteConfig(rc) = e {
                    c.fetch_add(1, Ordering::SeqCst);
                    let _ = h
                        .set_effective_config(v1::EffectiveConfig {
                            config_map: rc.config.clone(),
                        })
                        .await;
                    let _ = h
                        .set_remote_config_status(v1::RemoteConfigStatus {
                            last_remote_config_hash: rc.config_hash.clone(),
                            status: v1::RemoteConfigStatuses::Applied as i32,
                            error_message: String::new(),
                        })
                        .await;
                }
            }
        });
        Agent {
            handle,
            uid,
            configs,
        }
    }
}

/// The agent with this uid in an `agents list -o json` answer.
pub fn find<'a>(list: &'a Value, uid: &str) -> Option<&'a Value> {
    list["agents"]
        .as_array()?
        .iter()
        .find(|a| a["instance_uid"] == uid)
}

/// A free port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
