//! Test support for the opamp-rs interoperability tests: run OpAMP peers we did not write as
//! child processes and read what they report.
//!
//! The peers are pinned in `interop/node/package.json` (npm `@elastic/opamp-client-node`,
//! `@elastic/mockopampserver`) and `interop/python/requirements.txt` (PyPI
//! `opentelemetry-opamp-client`). `cargo xtask test` installs them into a cache directory
//! and passes their location to the tests in two environment variables,
//! [`NODE_MODULES_VAR`] and [`PYTHON_VAR`]. Without them (a plain `cargo test`), every
//! interop test prints a "skipped" line and passes; with them, a peer that fails makes the
//! test fail, with the peer's stderr in the message.
//!
//! The driver scripts in `interop/` print one JSON object per line, each with an `"event"`
//! key ([`PeerProcess::wait_for`] reads them). Children are killed when their
//! [`PeerProcess`] is dropped, so a failing test leaves no process behind.
//!
//! ```
//! use opamp_interop::Peers;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Without the peers installed this prints a "skipped" line and stops here.
//! let Some(peers) = Peers::from_env("doc example") else { return };
//! let mut mock = peers.mock_server(&[("", r#"{"level":"debug"}"#)]).await;
//! let mut agent = peers.node_agent(mock.endpoint(), &[]);
//! agent.wait_for("connected", |e| e["event"] == "connected").await;
//! mock.wait_for("a request", |e| e["event"] == "request").await;
//! agent.stop().await;
//! mock.process().stop().await;
//! # }
//! ```

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Environment variable: the `node_modules` directory holding the pinned npm peers.
pub const NODE_MODULES_VAR: &str = "OPAMP_INTEROP_NODE_MODULES";
/// Environment variable: the Python interpreter of the venv holding the pinned PyPI peer.
pub const PYTHON_VAR: &str = "OPAMP_INTEROP_PYTHON";

/// How long one wait for a peer's event may take before the test fails. A deadlock guard
/// only: on an idle machine each step takes well under a second.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a peer's stderr is kept for failure messages.
const STDERR_KEEP: usize = 32 * 1024;

/// The installed peers, found through [`NODE_MODULES_VAR`] and [`PYTHON_VAR`].
#[derive(Clone, Debug)]
pub struct Peers {
    node_modules: PathBuf,
    python: PathBuf,
    interop_dir: PathBuf,
}

impl Peers {
    /// The peers, or `None` (after printing a "skipped" line naming `test`) when the
    /// environment variables are not set.
    ///
    /// # Panics
    /// When the variables are set but name paths that do not exist: the install is broken,
    /// and that is a failure, not a skip.
    pub fn from_env(test: &str) -> Option<Self> {
        let node_modules = std::env::var_os(NODE_MODULES_VAR).filter(|v| !v.is_empty());
        let python = std::env::var_os(PYTHON_VAR).filter(|v| !v.is_empty());
        let (Some(node_modules), Some(python)) = (node_modules, python) else {
            println!(
                "{test}: skipped: run `cargo xtask test` to install the peers \
                 ({NODE_MODULES_VAR} / {PYTHON_VAR} are not set)"
            );
            return None;
        };
        let peers = Self {
            node_modules: PathBuf::from(node_modules),
            python: PathBuf::from(python),
            interop_dir: interop_dir(),
        };
        assert!(
            peers
                .node_modules
                .join("@elastic/opamp-client-node")
                .is_dir(),
            "{NODE_MODULES_VAR}={} has no @elastic/opamp-client-node: rerun `cargo xtask peers`",
            peers.node_modules.display()
        );
        assert!(
            peers.python.is_file(),
            "{PYTHON_VAR}={} does not exist: rerun `cargo xtask peers`",
            peers.python.display()
        );
        Some(peers)
    }

    /// Starts `interop/node/agent.js` (`@elastic/opamp-client-node`) against `url`, with a
    /// 1 s heartbeat unless `args` says otherwise.
    pub fn node_agent(&self, url: &str, args: &[&str]) -> PeerProcess {
        let mut cmd = Command::new("node");
        cmd.arg(self.interop_dir.join("node/agent.js"))
            .arg(url)
            .args(args)
            .env("NODE_PATH", &self.node_modules);
        PeerProcess::spawn("node agent (@elastic/opamp-client-node)", cmd)
    }

    /// Starts `interop/python/agent.py` (`opentelemetry-opamp-client`) against `url`, with a
    /// 1 s heartbeat unless `args` says otherwise.
    pub fn python_agent(&self, url: &str, args: &[&str]) -> PeerProcess {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.interop_dir.join("python/agent.py"))
            .arg(url)
            .args(args)
            .env("PYTHONUNBUFFERED", "1");
        PeerProcess::spawn("python agent (opentelemetry-opamp-client)", cmd)
    }

    /// Starts `interop/node/mock-server.js` (`@elastic/mockopampserver`) on 127.0.0.1, port 0,
    /// offering `files` (name, JSON text) as remote config, and waits until it listens.
    pub async fn mock_server(&self, files: &[(&str, &str)]) -> MockServer {
        let mut cmd = Command::new("node");
        cmd.arg(self.interop_dir.join("node/mock-server.js"))
            .env("NODE_PATH", &self.node_modules);
        for (name, body) in files {
            cmd.arg("--config").arg(format!("{name}={body}"));
        }
        let mut process = PeerProcess::spawn("mock server (@elastic/mockopampserver)", cmd);
        let listening = process
            .wait_for("the listening line", |e| e["event"] == "listening")
            .await;
        let Some(endpoint) = listening["endpoint"].as_str().map(str::to_owned) else {
            process.fail("the listening line has no endpoint").await
        };
        MockServer { process, endpoint }
    }
}

/// `interop/` at the workspace root.
fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Returns the [`Peers`], or prints a "skipped" line and returns from the calling test.
#[macro_export]
macro_rules! peers_or_skip {
    ($test:expr) => {
        match $crate::Peers::from_env($test) {
            Some(peers) => peers,
            None => return,
        }
    };
}

/// A peer running as a child process; killed when dropped.
#[derive(Debug)]
pub struct PeerProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    readers: Vec<JoinHandle<()>>,
    tolerate_send_failures: bool,
}

impl PeerProcess {
    /// Spawns `cmd` with piped stdio, killed on drop.
    ///
    /// # Panics
    /// When the process cannot be started.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: could not start {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, events) = mpsc::unbounded_channel();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_events(out, tx, Arc::clone(&stderr))));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_stderr(err, Arc::clone(&stderr))));
        }
        Self {
            name: name.to_owned(),
            child,
            stdin,
            events,
            seen: Vec::new(),
            stderr,
            readers,
            tolerate_send_failures: false,
        }
    }

    /// By default a `send_failed` event fails the test at once (the peer's request to our
    /// server failed: wrong status, wrong content type, ...). Tests that provoke failures
    /// turn this off.
    pub fn tolerate_send_failures(&mut self, tolerate: bool) {
        self.tolerate_send_failures = tolerate;
    }

    /// Reads events until `pred` accepts one and returns it; fails the test when the peer
    /// exits, reports a failed send (see [`tolerate_send_failures`](Self::tolerate_send_failures))
    /// or [`PEER_TIMEOUT`] passes. `what` names the awaited event in the failure message.
    pub async fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PEER_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => {
                    self.fail(&format!(
                        "timed out after {PEER_TIMEOUT:?} waiting for {what}"
                    ))
                    .await
                }
                Ok(None) => {
                    let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                        .await
                        .map(|s| s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))
                        .unwrap_or_else(|_| "still running".to_owned());
                    self.fail(&format!("exited ({status}) while waiting for {what}"))
                        .await
                }
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if event["event"] == "send_failed" && !self.tolerate_send_failures {
                        self.fail(&format!(
                            "a request failed while waiting for {what}: {event}"
                        ))
                        .await
                    }
                    if pred(&event) {
                        return event;
                    }
                }
            }
        }
    }

    /// Every event read so far by [`wait_for`](Self::wait_for), oldest first.
    pub fn seen(&self) -> &[Value] {
        &self.seen
    }

    /// Drains the events already printed, without waiting; returns how many were read.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event);
            n += 1;
        }
        n
    }

    /// Writes one line to the peer's stdin.
    pub async fn send_line(&mut self, line: &str) {
        let Some(stdin) = self.stdin.as_mut() else {
            self.fail("stdin already closed").await
        };
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        if let Err(e) = stdin.write_all(&bytes).await {
            self.fail(&format!("writing to stdin: {e}")).await
        }
        if let Err(e) = stdin.flush().await {
            self.fail(&format!("flushing stdin: {e}")).await
        }
    }

    /// Closes stdin (the drivers' signal to stop cleanly), reads the remaining events and
    /// waits for the exit; fails the test when the peer does not stop or exits non-zero.
    pub async fn stop(&mut self) -> ExitStatus {
        drop(self.stdin.take());
        let status = match tokio::time::timeout(PEER_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => self.fail(&format!("waiting for exit: {e}")).await,
            Err(_) => self.fail("did not exit after stdin closed").await,
        };
        self.join_readers().await;
        self.drain();
        if !status.success() {
            self.fail(&format!("exited with {status}")).await
        }
        status
    }

    /// The tail of what the peer wrote to stderr (and non-event stdout lines).
    pub fn stderr(&self) -> String {
        let buf = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = buf.as_slices();
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Fails the test with `msg`, the last events and the peer's stderr.
    pub async fn fail(&mut self, msg: &str) -> ! {
        // Let the readers catch up, so the message has the peer's last words.
        if tokio::time::timeout(Duration::from_millis(500), self.child.wait())
            .await
            .is_ok()
        {
            self.join_readers().await;
        }
        self.drain();
        let mut text = format!("{}: {msg}\n--- last events ---\n", self.name);
        let start = self.seen.len().saturating_sub(40);
        for event in &self.seen[start..] {
            let _ = writeln!(text, "{event}");
        }
        let _ = write!(text, "--- stderr ---\n{}", self.stderr());
        panic!("{text}");
    }

    async fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
    }
}

async fn read_events(
    out: impl AsyncRead + Unpin,
    tx: mpsc::UnboundedSender<Value>,
    log: Arc<Mutex<VecDeque<u8>>>,
) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<Value>(&line) {
            Ok(event) if event.get("event").is_some() => {
                if tx.send(event).is_err() {
                    return;
                }
            }
            // Anything else (a library's own log line) goes with stderr.
            _ => append(&log, format!("[stdout] {line}\n").as_bytes()),
        }
    }
}

async fn read_stderr(err: impl AsyncRead + Unpin, log: Arc<Mutex<VecDeque<u8>>>) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        append(&log, format!("{line}\n").as_bytes());
    }
}

fn append(log: &Mutex<VecDeque<u8>>, bytes: &[u8]) {
    let mut buf = log.lock().unwrap_or_else(|p| p.into_inner());
    buf.extend(bytes);
    let excess = buf.len().saturating_sub(STDERR_KEEP);
    buf.drain(..excess);
}

/// `@elastic/mockopampserver` running in `interop/node/mock-server.js`.
#[derive(Debug)]
pub struct MockServer {
    process: PeerProcess,
    endpoint: String,
}

impl MockServer {
    /// `http://127.0.0.1:PORT/v1/opamp`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Replaces the offered remote config with `files` (name, body, content type); agents
    /// get it on their next poll.
    pub async fn set_config(&mut self, files: &[(&str, &str, &str)]) {
        let mut map = serde_json::Map::new();
        for (name, body, content_type) in files {
            map.insert(
                (*name).to_owned(),
                serde_json::json!({ "body": body, "content_type": content_type }),
            );
        }
        let cmd = serde_json::json!({ "cmd": "set_config", "files": map });
        self.process.send_line(&cmd.to_string()).await;
        self.process
            .wait_for("config_set", |e| e["event"] == "config_set")
            .await;
    }

    /// Reads the mock's events (one `"request"` per OpAMP request it answered) until `pred`
    /// accepts one; see [`PeerProcess::wait_for`].
    pub async fn wait_for(&mut self, what: &str, pred: impl FnMut(&Value) -> bool) -> Value {
        self.process.wait_for(what, pred).await
    }

    /// The underlying process (for [`PeerProcess::seen`], [`PeerProcess::fail`], ...).
    pub fn process(&mut self) -> &mut PeerProcess {
        &mut self.process
    }
}

/// Lower-case hex of `bytes`, the form the driver scripts print hashes and uids in.
pub fn to_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_buffer_keeps_only_the_tail() {
        let log = Mutex::new(VecDeque::new());
        append(&log, &vec![b'a'; STDERR_KEEP]);
        append(&log, b"end");
        let buf = log.lock().unwrap();
        assert_eq!(buf.len(), STDERR_KEEP);
        assert_eq!(
            buf.iter().rev().take(3).copied().collect::<Vec<_>>(),
            b"dne"
        );
    }

    #[test]
    fn interop_dir_holds_the_driver_scripts() {
        let dir = interop_dir();
        assert!(dir.join("node/agent.js").is_file());
        assert!(dir.join("node/mock-server.js").is_file());
        assert!(dir.join("python/agent.py").is_file());
    }
}
