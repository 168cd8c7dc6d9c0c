//! Support for the end-to-end tests with a real managed agent (Debian's collectd): the real
//! `opampd` binary on 127.0.0.1 port 0 and its admin API, the real `opamp-agent` binary as a
//! child process with its output captured, the collectd daemons it runs (found in /proc as
//! its children), and generated configs.
//!
//! Every wait has a generous deadline ([`WAIT`]) that only guards against deadlocks; no test
//! asserts on how long anything took.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Deadlock guard for every wait (never a timing assertion).
pub const WAIT: Duration = Duration::from_secs(60);

/// Where Debian installs the collectd daemon.
pub const COLLECTD: &str = "/usr/sbin/collectd";

/// Set to `1` (as `.ci/run` does) to fail instead of skip when collectd is missing.
pub const REQUIRE_COLLECTD_VAR: &str = "OPAMP_REQUIRE_COLLECTD";

/// Whether collectd is installed. When it is not: panics if [`REQUIRE_COLLECTD_VAR`] is set,
/// else prints a "skipped" line naming `test` and returns false.
pub fn collectd_available(test: &str) -> bool {
    if Path::new(COLLECTD).is_file() {
        return true;
    }
    let required = std::env::var_os(REQUIRE_COLLECTD_VAR).is_some_and(|v| !v.is_empty());
    assert!(
        !required,
        "{test}: {COLLECTD} is missing and {REQUIRE_COLLECTD_VAR} is set: \
         apt-get install collectd-core"
    );
    println!(
        "{test}: skipped: {COLLECTD} is missing (apt-get install collectd-core; \
         set {REQUIRE_COLLECTD_VAR}=1 to make this a failure)"
    );
    false
}

/// Returns from the calling test (after printing a "skipped" line) when collectd is not
/// installed, unless [`REQUIRE_COLLECTD_VAR`] is set.
#[macro_export]
macro_rules! collectd_or_skip {
    ($test:expr) => {
        if !$crate::support_e2e::collectd_available($test) {
            return;
        }
    };
}

/// The opamp-agent binary under test.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_opamp-agent"))
}

/// The opampd binary: built into the same target directory by `cargo test --workspace` (or
/// `cargo build -p opampd`).
pub fn opampd_bin() -> PathBuf {
    let bin = agent_bin().with_file_name(format!("opampd{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "build opampd first: cargo build -p opampd (looked for {})",
        bin.display()
    );
    bin
}

/// Output of a child process, captured line by line (ANSI colour codes removed).
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    fn capture(&self, stream: impl AsyncRead + Unpin + Send + 'static) {
        let into = self.0.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut s = into.lock().unwrap();
                s.push_str(&strip_ansi(&line));
                s.push('\n');
            }
        });
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Bytes captured so far (a mark for [`Output::since`]).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// What was captured after `mark`.
    pub fn since(&self, mark: usize) -> String {
        self.0.lock().unwrap()[mark..].to_owned()
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Sends `signal` (a `kill` name such as `TERM`, `KILL`) to `pid`.
pub fn kill(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{signal} {pid} failed");
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// What /proc/<pid>/stat says about a process.
#[derive(Debug, Clone)]
pub struct Stat {
    pub pid: u32,
    pub comm: String,
    pub state: char,
    pub ppid: u32,
}

/// Parses /proc/<pid>/stat (the command name may hold spaces and parentheses).
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Stat {
        pid,
        comm,
        state,
        ppid,
    })
}

/// A process's command line (arguments split).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The living children of `parent` whose command line satisfies `pred`.
pub fn children(parent: u32, pred: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(s) = stat(pid) else { continue };
        if s.ppid == parent && s.state != 'Z' && pred(&cmdline(pid)) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The collectd daemons (`collectd -f ...`, not a `-T` validation run) `agent` runs now.
pub fn collectd_daemons(agent: u32) -> Vec<u32> {
    children(agent, |args| {
        args.first().is_some_and(|a| a.ends_with("collectd")) && args.iter().any(|a| a == "-f")
    })
}

/// Waits until `agent` runs exactly one collectd daemon whose pid is not in `not`, and
/// returns its pid.
pub async fn wait_collectd(agent: &Agent, what: &str, not: &[u32]) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let pids = collectd_daemons(agent.pid);
        if let [pid] = pids[..]
            && !not.contains(&pid)
        {
            return pid;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}: collectd daemons now {pids:?} (not wanted: \
                 {not:?})\nopamp-agent output:\n{}",
                agent.output.text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `pred()` holds; `detail()` goes into the failure message.
pub async fn wait_until(what: &str, mut pred: impl FnMut() -> bool, detail: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", detail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running opampd (killed when dropped).
pub struct Opampd {
    child: Child,
    pub opamp: SocketAddr,
    pub admin: SocketAddr,
    pub output: Output,
    http: reqwest::Client,
}

impl Opampd {
    /// Starts opampd with SQLite under `data_dir`, both listeners on 127.0.0.1 port 0; waits
    /// for `ports.json`.
    pub async fn start(data_dir: &Path) -> Opampd {
        let _ = std::fs::remove_file(data_dir.join("ports.json"));
        let mut cmd = Command::new(opampd_bin());
        cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--last-seen-flush-secs", "1", "--server-id", "e2e"])
            .env("OPAMP_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn opampd");
        let output = Output::default();
        output.capture(child.stdout.take().unwrap());
        output.capture(child.stderr.take().unwrap());
        let ports = data_dir.join("ports.json");
        let deadline = Instant::now() + WAIT;
        let info: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ports)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                break v;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("opampd exited with {status}:\n{}", output.text());
            }
            assert!(
                Instant::now() < deadline,
                "opampd wrote no ports.json:\n{}",
                output.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Opampd {
            child,
            opamp: info["opamp"].as_str().unwrap().parse().unwrap(),
            admin: info["admin"].as_str().unwrap().parse().unwrap(),
            output,
            http: reqwest::Client::new(),
        }
    }

    /// `ws://127.0.0.1:PORT/v1/opamp`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/opamp", self.opamp)
    }

    /// `http://127.0.0.1:PORT/v1/opamp`.
    pub fn http_url(&self) -> String {
        format!("http://{}/v1/opamp", self.opamp)
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
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("{path}: {e}\nopampd output:\n{}", self.output.text()),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `GET path`, which must succeed.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    /// `POST path`, which must succeed.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, resp) = self.call(Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {resp}");
        resp
    }

    /// Waits until `GET path` satisfies `pred`; returns that answer.
    pub async fn wait_get(&self, what: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = self.call(Method::GET, path, None).await;
            if status.is_success() && pred(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: last {status} {body}\nopampd output:\n{}",
                self.output.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the one agent this opampd knows to be connected with its first report
    /// stored (capabilities: the restart endpoint checks them); returns its uid.
    pub async fn wait_agent(&self) -> String {
        let list = self
            .wait_get("one connected agent", "/api/v1/agents", |b| {
                b["agents"].as_array().is_some_and(|a| {
                    a.len() == 1
                        && a[0]["connected"] == true
                        && a[0]["capabilities"]
                            .as_array()
                            .is_some_and(|c| c.contains(&Value::from("AcceptsRestartCommand")))
                })
            })
            .await;
        list["agents"][0]["instance_uid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /api/v1/agents/{uid}` (status, health, effective config).
    pub async fn agent(&self, uid: &str) -> Value {
        self.get(&format!("/api/v1/agents/{uid}")).await
    }

    /// Creates a version of config `name` with one file `collectd.conf` holding `body`, and
    /// (the first time) assigns the config to the agent `uid`. Returns the version's hash.
    pub async fn push(&self, name: &str, body: &str, uid: &str) -> String {
        self.push_files(name, &[("collectd.conf", body)], uid).await
    }

    /// Like [`Opampd::push`], with several files (name, body).
    pub async fn push_files(&self, name: &str, files: &[(&str, &str)], uid: &str) -> String {
        let files: serde_json::Map<String, Value> = files
            .iter()
            .map(|(n, b)| {
                (
                    (*n).to_owned(),
                    serde_json::json!({"content_type": "text/plain", "body": b}),
                )
            })
            .collect();
        let created = self
            .post(
                "/api/v1/configs",
                serde_json::json!({"name": name, "files": files}),
            )
            .await;
        let hash = created["version"]["hash"].as_str().unwrap().to_owned();
        let assigned = self.get("/api/v1/assignments").await;
        let already = assigned["assignments"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["config"] == name && x["agent"].as_str() == Some(uid))
        });
        if !already {
            self.post(
                "/api/v1/assignments",
                serde_json::json!({"config": name, "agent": uid}),
            )
            .await;
        }
        hash
    }

    /// Waits until the agent reports `status` (APPLIED, FAILED, ...) for `hash`; returns the
    /// agent's detail.
    pub async fn wait_status(&self, uid: &str, hash: &str, status: &str) -> Value {
        self.wait_get(
            &format!("{status} for {hash}"),
            &format!("/api/v1/agents/{uid}"),
            |a| {
                a["remote_config_status"]["status"] == status
                    && a["remote_config_status"]["last_remote_config_hash"] == hash
            },
        )
        .await
    }

    /// The agent's timeline (newest first), one page of up to 500 entries.
    pub async fn timeline(&self, uid: &str) -> Vec<Value> {
        let t = self
            .get(&format!("/api/v1/agents/{uid}/events?limit=500"))
            .await;
        t["entries"].as_array().cloned().unwrap_or_default()
    }
}

/// The real opamp-agent binary (killed when dropped).
pub struct Agent {
    child: Child,
    pub pid: u32,
    pub output: Output,
}

impl Agent {
    /// Starts `opamp-agent --config <config>` with debug logging for its own crate.
    pub async fn start(config: &Path) -> Agent {
        let mut cmd = Command::new(agent_bin());
        cmd.arg("--config")
            .arg(config)
            .args([
                "--log-format",
                "text",
                "--log-level",
                "info,opamp_agent=debug",
            ])
            // Tests may run as root (CI containers): SEC-2 refuses that unless allowed.
            .env("OPAMP_AGENT_ALLOW_ROOT", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn opamp-agent");
        let pid = child.id().unwrap();
        let output = Output::default();
        output.capture(child.stdout.take().unwrap());
        output.capture(child.stderr.take().unwrap());
        Agent { child, pid, output }
    }

    /// Waits until the output after `mark` holds `needle`; returns that output.
    pub async fn wait_output(&mut self, needle: &str, mark: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.output.since(mark);
            if text.contains(needle) {
                return text;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "opamp-agent exited ({status}) while waiting for {needle:?}:\n{}",
                    self.output.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} in opamp-agent's output:\n{}",
                self.output.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: opamp-agent gets no chance to stop its process.
    pub async fn kill9(&mut self) {
        kill(self.pid, "KILL");
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }

    /// SIGTERM, then waits for the exit (a deadlock guard of [`WAIT`]).
    pub async fn terminate(&mut self) -> ExitStatus {
        kill(self.pid, "TERM");
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "opamp-agent did not exit after SIGTERM:\n{}",
                self.output.text()
            ),
        }
    }

    /// Fails with the agent's output attached.
    pub fn dump(&self) -> String {
        format!("opamp-agent output:\n{}", self.output.text())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A failed test must not leave collectd behind: kill the daemons, then the agent
        // (kill_on_drop).
        for pid in collectd_daemons(self.pid) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Where one test's agent keeps everything (all under a temp dir).
pub struct Layout {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    /// opampd's data dir.
    pub opampd_data: PathBuf,
    /// The opamp-agent config file.
    pub config: PathBuf,
    /// opamp-agent's state dir.
    pub state: PathBuf,
    /// The dir collectd reads its files from (`{state}/config`).
    pub config_dir: PathBuf,
    /// collectd's BaseDir: its log file and CSV output.
    pub collectd: PathBuf,
}

/// The Hostname collectd reports (the CSV dir's name).
pub const HOST: &str = "e2e";

impl Layout {
    pub fn new() -> Layout {
        // No leading dot: collectd's csv plugin refuses to create directories under one.
        let tmp = tempfile::Builder::new()
            .prefix("opamp-agent-e2e-")
            .tempdir()
            .unwrap();
        // Canonical: collectd and opamp-agent see the same absolute paths.
        let root = tmp.path().canonicalize().unwrap();
        let l = Layout {
            opampd_data: root.join("opampd"),
            config: root.join("agent.toml"),
            state: root.join("state"),
            config_dir: root.join("state").join("config"),
            collectd: root.join("collectd"),
            root,
            _tmp: tmp,
        };
        std::fs::create_dir_all(&l.opampd_data).unwrap();
        std::fs::create_dir_all(&l.collectd).unwrap();
        l
    }

    /// collectd's log file (the logfile plugin; one "entering read-loop" line per start).
    pub fn log(&self) -> PathBuf {
        self.collectd.join("collectd.log")
    }

    /// collectd's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// How many times a collectd daemon got through its initialisation.
    pub fn collectd_starts(&self) -> usize {
        self.log_text()
            .matches("Initialization complete, entering read-loop.")
            .count()
    }

    /// The CSV files `plugin` wrote (any type instance, any day).
    pub fn csv_files(&self, plugin: &str) -> Vec<PathBuf> {
        let dir = self.collectd.join("csv").join(HOST).join(plugin);
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Data rows (not the header) in the CSV files of `plugin`, summed.
    pub fn csv_rows(&self, plugin: &str) -> usize {
        self.csv_files(plugin)
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
                    .count()
            })
            .sum()
    }

    /// The local part of collectd's configuration, with absolute paths: global options,
    /// the log file, CSV output, and the remote file included from the config dir.
    pub fn base_conf(&self) -> String {
        let c = self.collectd.display();
        let remote = self.config_dir.join("collectd.conf");
        format!(
            "Hostname \"{HOST}\"\n\
             FQDNLookup false\n\
             BaseDir \"{c}\"\n\
             TypesDB \"/usr/share/collectd/types.db\"\n\
             Interval 1\n\
             LoadPlugin logfile\n\
             <Plugin logfile>\n  LogLevel info\n  File \"{c}/collectd.log\"\n  Timestamp true\n  PrintSeverity true\n</Plugin>\n\
             LoadPlugin csv\n\
             <Plugin csv>\n  DataDir \"{c}/csv\"\n  StoreRates false\n</Plugin>\n\
             Include \"{}\"\n",
            remote.display()
        )
    }

    /// Writes the opamp-agent config: collectd managed for `endpoint`, remote config
    /// accepted and validated with `collectd -T`, a short health gate, a process health
    /// check, restarts after `backoff`. `extra` is appended as is (more TOML tables).
    pub fn write_agent_config(&self, endpoint: &str, backoff: &str, extra: &str) {
        let mut toml = String::new();
        let _ = write!(
            toml,
            r#"state_dir = {state:?}

[server]
endpoint = {endpoint:?}
heartbeat = "1s"

[description]
identifying = {{ "service.name" = "collectd", "service.version" = "5.12" }}
non_identifying = {{ "deployment.environment" = "e2e" }}

[process]
command = {COLLECTD:?}
args = ["-f", "-C", "{{config_dir}}/base.conf"]
env = {{ LC_ALL = "C" }}
stop_timeout = "10s"
restart_backoff_initial = {backoff:?}
restart_backoff_max = "10s"

[config]
accept_remote = true
apply = "restart"
health_gate = "2s"
main_file = "collectd.conf"
validate = {{ command = {COLLECTD:?}, args = ["-T", "-C", "{{file}}"] }}

[[config.local]]
name = "base.conf"
body = {base:?}

[[health.checks]]
name = "process"
type = "process"
interval = "1s"
timeout = "1s"
failure_threshold = 1
recovery_threshold = 1
"#,
            state = self.state.display().to_string(),
            base = self.base_conf(),
        );
        toml.push_str(extra);
        std::fs::write(&self.config, toml).unwrap();
    }
}

/// The names of the files in a `effective_config` object of the admin API.
pub fn file_names(effective: &Value) -> BTreeSet<String> {
    effective
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}
