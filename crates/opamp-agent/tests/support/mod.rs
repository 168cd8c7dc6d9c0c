//! Test harness: an opamp-server library server in the test process that records every
//! AgentToServer and offers what the test says, the real `opamp-agent` binary managing a
//! small `/bin/sh` script "agent", and wait helpers (deadlines are deadlock guards only).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opamp_proto::{AgentCapabilities, ServerCapabilities, v1};
use opamp_server::{AgentContext, Handler, Server, ServerConfig};

/// Deadlock guard for every wait.
pub const DEADLINE: Duration = Duration::from_secs(40);

/// The script agent. Args: `$1` = config dir, `$2` = output dir. It appends its pid to
/// `starts`, copies `agent.conf` to `loaded` and appends to `loads` on start and on
/// SIGHUP, ignores SIGTERM when its config says `ignore-term`, exits 3 when it says
/// `crash`, and writes its pid to `pid` once running.
pub const SCRIPT: &str = r#"
cfg="$1/agent.conf"; out="$2"
echo $$ >> "$out/starts"
load() { if [ -f "$cfg" ]; then cat "$cfg" > "$out/loaded"; else echo "<none>" > "$out/loaded"; fi; echo $$ >> "$out/loads"; }
load
trap 'load' HUP
if grep -q ignore-term "$cfg" 2>/dev/null; then trap '' TERM; fi
if grep -q crash "$cfg" 2>/dev/null; then exit 3; fi
echo $$ > "$out/pid.tmp"; mv "$out/pid.tmp" "$out/pid"
while :; do sleep 1 & wait $!; done
"#;

/// What the server records and offers.
#[derive(Default)]
pub struct Recorder {
    pub messages: Mutex<Vec<v1::AgentToServer>>,
    pub offer: Mutex<Option<v1::AgentRemoteConfig>>,
    pub connection_settings: Mutex<Option<v1::ConnectionSettingsOffers>>,
    pub command: Mutex<Option<v1::ServerToAgentCommand>>,
}

impl Handler for Recorder {
    async fn on_message(&self, _ctx: &AgentContext, msg: &v1::AgentToServer) -> v1::ServerToAgent {
        self.messages.lock().unwrap().push(msg.clone());
        v1::ServerToAgent {
            remote_config: self.offer.lock().unwrap().clone(),
            connection_settings: self.connection_settings.lock().unwrap().clone(),
            command: self.command.lock().unwrap().take(),
            ..Default::default()
        }
    }
}

impl Recorder {
    /// Every message so far.
    pub fn messages(&self) -> Vec<v1::AgentToServer> {
        self.messages.lock().unwrap().clone()
    }

    /// The latest remote config status reported (status compression: the last one sent).
    pub fn last_status(&self) -> Option<v1::RemoteConfigStatus> {
        self.messages()
            .iter()
            .rev()
            .find_map(|m| m.remote_config_status.clone())
    }

    /// The latest effective config reported.
    pub fn last_effective(&self) -> Option<v1::EffectiveConfig> {
        self.messages()
            .iter()
            .rev()
            .find_map(|m| m.effective_config.clone())
    }

    /// Every health report, in order.
    pub fn healths(&self) -> Vec<v1::ComponentHealth> {
        self.messages()
            .iter()
            .filter_map(|m| m.health.clone())
            .collect()
    }

    /// The instance uids seen.
    pub fn uids(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self
            .messages()
            .iter()
            .map(|m| m.instance_uid.clone())
            .collect();
        v.dedup();
        v
    }

    /// The capabilities last reported.
    pub fn capabilities(&self) -> AgentCapabilities {
        let caps = self
            .messages()
            .iter()
            .rev()
            .map(|m| m.capabilities)
            .find(|c| *c != 0)
            .unwrap_or(0);
        AgentCapabilities::from_bits_truncate(caps)
    }

    /// Whether an agent_disconnect arrived.
    pub fn disconnected(&self) -> bool {
        self.messages().iter().any(|m| m.agent_disconnect.is_some())
    }

    /// The agent description last reported.
    pub fn description(&self) -> Option<v1::AgentDescription> {
        self.messages()
            .iter()
            .rev()
            .find_map(|m| m.agent_description.clone())
    }
}

/// A remote config with one file per (name, body); hash as opamp-server computes it.
pub fn remote_config(files: &[(&str, &str)]) -> v1::AgentRemoteConfig {
    let mut rc = v1::AgentRemoteConfig {
        config: Some(v1::AgentConfigMap {
            config_map: files
                .iter()
                .map(|(n, b)| {
                    (
                        (*n).to_owned(),
                        v1::AgentConfigFile {
                            body: b.as_bytes().to_vec(),
                            content_type: "text/plain".into(),
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

/// A running opamp-server on 127.0.0.1:0.
pub struct TestServer {
    pub recorder: Arc<Recorder>,
    pub server: Server<Arc<Recorder>>,
    pub addr: std::net::SocketAddr,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let recorder = Arc::new(Recorder::default());
        let config = ServerConfig::builder()
            .capabilities(
                ServerCapabilities::ACCEPTS_STATUS
                    | ServerCapabilities::OFFERS_REMOTE_CONFIG
                    | ServerCapabilities::ACCEPTS_EFFECTIVE_CONFIG
                    | ServerCapabilities::OFFERS_CONNECTION_SETTINGS,
            )
            .build();
        let server = Server::new(config, Arc::clone(&recorder));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = server.clone();
        tokio::spawn(async move {
            let _ = s.serve(listener, std::future::pending::<()>()).await;
        });
        TestServer {
            recorder,
            server,
            addr,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/opamp", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}/v1/opamp", self.addr)
    }
}

/// Waits until `pred` holds; panics with `detail()` after [`DEADLINE`].
pub async fn wait_until(what: &str, mut pred: impl FnMut() -> bool, detail: impl Fn() -> String) {
    let start = Instant::now();
    while !pred() {
        if start.elapsed() > DEADLINE {
            panic!("timed out waiting for {what}\n{}", detail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The directories of one test.
pub struct Layout {
    pub tmp: tempfile::TempDir,
}

impl Layout {
    pub fn new() -> Layout {
        // A prefix without a leading dot: some agents refuse hidden directories.
        let tmp = tempfile::Builder::new()
            .prefix("opamp-agent-test")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(tmp.path().join("out")).unwrap();
        Layout { tmp }
    }
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }
    pub fn out(&self) -> PathBuf {
        self.root().join("out")
    }
    pub fn state(&self) -> PathBuf {
        self.root().join("state")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.state().join("config")
    }
    pub fn config_file(&self) -> PathBuf {
        self.root().join("agent.toml")
    }
    pub fn log(&self) -> PathBuf {
        self.root().join("agent.log")
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.out().join(name)).unwrap_or_default()
    }
    /// Pids of every start of the script.
    pub fn starts(&self) -> Vec<u32> {
        self.read("starts")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
    /// How many times a config was loaded (start or SIGHUP).
    pub fn loads(&self) -> usize {
        self.read("loads").lines().count()
    }
    /// The config the script loaded last.
    pub fn loaded(&self) -> String {
        self.read("loaded")
    }
    /// The pid of the running script (once it is up).
    pub fn pid(&self) -> Option<u32> {
        self.read("pid").trim().parse().ok()
    }
    /// A file in the config dir.
    pub fn config(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.config_dir().join(name)).ok()
    }
    /// Writes the agent config: `server` endpoint and `extra` TOML appended to a base
    /// that runs the script with main_file `agent.conf`.
    pub fn write_config(
        &self,
        endpoint: &str,
        accept_remote: bool,
        extra_config: &str,
        extra: &str,
    ) {
        let script = SCRIPT
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        // Plain HTTP polls: poll often so offers arrive without a push.
        let heartbeat = if endpoint.starts_with("http") {
            "1s"
        } else {
            "30s"
        };
        let text = format!(
            r#"state_dir = "state"

[server]
endpoint = "{endpoint}"
heartbeat = "{heartbeat}"

[description]
identifying = {{ "service.name" = "script-agent" }}

[process]
command = "/bin/sh"
args = ["-c", "{script}", "script-agent", "{{config_dir}}", "{out}"]
stop_timeout = "2s"
restart_backoff_initial = "1s"
restart_backoff_max = "2s"

[config]
accept_remote = {accept_remote}
main_file = "agent.conf"
health_gate = "2s"
{extra_config}

[[config.local]]
name = "local.conf"
body = "local settings\n"

{extra}
"#,
            out = self.out().display(),
        );
        std::fs::write(self.config_file(), text).unwrap();
    }
    /// Puts an initial agent.conf into the config dir (as an operator would).
    pub fn seed(&self, body: &str) {
        std::fs::create_dir_all(self.config_dir()).unwrap();
        std::fs::write(self.config_dir().join("agent.conf"), body).unwrap();
    }
}

/// The opamp-agent binary, running.
pub struct Agent {
    pub child: tokio::process::Child,
}

impl Agent {
    pub fn start(layout: &Layout) -> Agent {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(layout.log())
            .unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opamp-agent"))
            .arg("--config")
            .arg(layout.config_file())
            .arg("--log-level")
            .arg("debug")
            .env("NO_COLOR", "1")
            // Tests may run as root (CI containers): SEC-2 refuses that unless allowed.
            // The refusal itself: `started_as_root_without_allow_root_it_refuses_sec_2`.
            .env("OPAMP_AGENT_ALLOW_ROOT", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Agent { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// SIGTERM, then wait for the exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        signal(self.pid(), "TERM");
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("opamp-agent did not exit after SIGTERM")
            .unwrap()
    }
}

/// Sends a signal with kill(1).
pub fn signal(pid: u32, name: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}
