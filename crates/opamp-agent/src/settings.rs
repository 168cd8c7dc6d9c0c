//! The TOML configuration file, resolved into [`Settings`].
//!
//! Relative paths in the file are relative to the file's own directory; `--state-dir`
//! overrides `state_dir`. Durations are strings such as `"10s"`, `"500ms"`, `"2m"`, `"1h"`.
//! Every problem names the file and the key ([`crate::Error::Config`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opamp_config::Restrictions;
use serde::Deserialize;

use crate::Error;

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    state_dir: Option<PathBuf>,
    #[serde(default)]
    allow_root: bool,
    server: RawServer,
    #[serde(default)]
    description: RawDescription,
    process: RawProcess,
    #[serde(default)]
    config: RawConfig,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    own_metrics: RawOwnMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    endpoint: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default, with = "opamp_health::duration::option")]
    heartbeat: Option<Duration>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescription {
    #[serde(default)]
    identifying: BTreeMap<String, toml::Value>,
    #[serde(default)]
    non_identifying: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    working_dir: Option<PathBuf>,
    #[serde(default, with = "opamp_health::duration::option")]
    stop_timeout: Option<Duration>,
    #[serde(default, with = "opamp_health::duration::option")]
    restart_backoff_initial: Option<Duration>,
    #[serde(default, with = "opamp_health::duration::option")]
    restart_backoff_max: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    accept_remote: bool,
    dir: Option<PathBuf>,
    apply: Option<String>,
    #[serde(default, with = "opamp_health::duration::option")]
    health_gate: Option<Duration>,
    validate: Option<RawValidate>,
    main_file: Option<String>,
    #[serde(default)]
    local: Vec<RawLocal>,
    #[serde(default)]
    restrictions: Restrictions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidate {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default, with = "opamp_health::duration::option")]
    timeout: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    name: String,
    path: Option<PathBuf>,
    body: Option<String>,
    content_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default)]
    checks: Vec<opamp_health::CheckSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOwnMetrics {
    #[serde(default, with = "opamp_health::duration::option")]
    interval: Option<Duration>,
}

// ---- resolved ----

/// The resolved configuration of one opamp-agent.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The configuration file it was read from.
    pub config_file: PathBuf,
    /// Where the agent keeps its state (`instance_uid`, `agent-state.json`, `lkg/`).
    pub state_dir: PathBuf,
    /// `allow_root = true` (or `--allow-root`): run even as root (SEC-2; refused otherwise,
    /// see [`Settings::check_privileges`]).
    pub allow_root: bool,
    /// The OpAMP server.
    pub server: ServerSettings,
    /// Agent description attributes from the file.
    pub description: DescriptionSettings,
    /// The managed process.
    pub process: ProcessSettings,
    /// Remote configuration handling.
    pub config: ConfigSettings,
    /// Health checks (opamp-health), in addition to the built-in process watcher.
    pub health_checks: Vec<opamp_health::CheckSpec>,
    /// Own metrics export interval (OWN-3).
    pub own_metrics_interval: Duration,
}

/// `[server]`.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// ws://, wss://, http:// or https:// URL.
    pub endpoint: String,
    /// Extra headers on every request.
    pub headers: Vec<(String, String)>,
    /// Heartbeat / polling interval.
    pub heartbeat: Option<Duration>,
    /// CA certificate (PEM file) to trust.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM file) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM file) for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Skip server certificate verification (testing only).
    pub insecure_skip_verify: bool,
}

/// `[description]`.
#[derive(Clone, Debug, Default)]
pub struct DescriptionSettings {
    /// Identifying attributes.
    pub identifying: Vec<(String, opamp_proto::v1::AnyValue)>,
    /// Non-identifying attributes (detected ones are added unless given here).
    pub non_identifying: Vec<(String, opamp_proto::v1::AnyValue)>,
}

/// `[process]`.
#[derive(Clone, Debug)]
pub struct ProcessSettings {
    /// Program to run.
    pub command: String,
    /// Arguments, placeholders `{config_dir}` and `{state_dir}` already expanded.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: Option<PathBuf>,
    /// SIGTERM, then SIGKILL after this.
    pub stop_timeout: Duration,
    /// First restart delay after a crash.
    pub restart_backoff_initial: Duration,
    /// Largest restart delay.
    pub restart_backoff_max: Duration,
}

/// How a new config is put into effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// Stop and start the process.
    Restart,
    /// Send this signal to the process.
    Signal(rustix::process::Signal),
    /// Nothing: the process picks up its files by itself.
    None,
}

/// `[config.validate]`.
#[derive(Clone, Debug)]
pub struct ValidateSettings {
    /// Program to run.
    pub command: String,
    /// Arguments; `{file}` and `{config_dir}` are expanded per run (staged paths).
    pub args: Vec<String>,
    /// Longest time the command may run.
    pub timeout: Duration,
}

/// One `[[config.local]]` file.
#[derive(Clone, Debug)]
pub struct LocalFile {
    /// File name in `config.dir`.
    pub name: String,
    /// Content.
    pub body: Vec<u8>,
    /// Content type reported in the effective config.
    pub content_type: String,
}

/// `[config]`.
#[derive(Clone, Debug)]
pub struct ConfigSettings {
    /// SEC-6: remote config is opt-in.
    pub accept_remote: bool,
    /// Where the managed process reads its files.
    pub dir: PathBuf,
    /// How to apply a new config.
    pub apply: ApplyMode,
    /// How long an applied config must stay healthy.
    pub health_gate: Duration,
    /// Optional validate command.
    pub validate: Option<ValidateSettings>,
    /// File name for the remote map's `""` key.
    pub main_file: String,
    /// Local files, always written.
    pub local: Vec<LocalFile>,
    /// Rules a remote config must obey.
    pub restrictions: Restrictions,
}

/// The longest duration any setting accepts.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

fn bad(file: &Path, key: &str, message: impl std::fmt::Display) -> Error {
    Error::Config {
        file: file.to_path_buf(),
        message: format!("{key}: {message}"),
    }
}

/// Parses a signal name: `SIGHUP`, `HUP` or `hup`.
pub fn parse_signal(name: &str) -> Option<rustix::process::Signal> {
    use rustix::process::Signal;
    let upper = name.trim().to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match short {
        "HUP" => Signal::HUP,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "TERM" => Signal::TERM,
        "KILL" => Signal::KILL,
        "ALRM" => Signal::ALARM,
        "CONT" => Signal::CONT,
        "WINCH" => Signal::WINCH,
        _ => return None,
    })
}

fn parse_apply(s: &str) -> Option<ApplyMode> {
    match s.trim() {
        "restart" => Some(ApplyMode::Restart),
        "none" => Some(ApplyMode::None),
        other => other
            .strip_prefix("signal:")
            .and_then(parse_signal)
            .map(ApplyMode::Signal),
    }
}

/// A plain file name: not empty, no `/` or `\`, not `.`/`..`, not hidden, no control chars.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Content type guessed from a file name's extension.
pub fn guess_content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("yaml" | "yml") => "text/yaml",
        Some("json") => "application/json",
        Some("toml") => "application/toml",
        Some("xml") => "application/xml",
        _ => "text/plain",
    }
}

fn toml_to_any(v: &toml::Value) -> opamp_proto::v1::AnyValue {
    use opamp_proto::v1::{AnyValue, any_value::Value as V};
    let value = match v {
        toml::Value::String(s) => V::StringValue(s.clone()),
        toml::Value::Integer(i) => V::IntValue(*i),
        toml::Value::Float(f) => V::DoubleValue(*f),
        toml::Value::Boolean(b) => V::BoolValue(*b),
        other => V::StringValue(other.to_string()),
    };
    AnyValue { value: Some(value) }
}

/// Expands `{config_dir}` and `{state_dir}` (and `{file}` when given).
pub fn expand(arg: &str, config_dir: &Path, state_dir: &Path, file: Option<&Path>) -> String {
    let mut s = arg
        .replace("{config_dir}", &config_dir.to_string_lossy())
        .replace("{state_dir}", &state_dir.to_string_lossy());
    if let Some(f) = file {
        s = s.replace("{file}", &f.to_string_lossy());
    }
    s
}

impl Settings {
    /// Reads and resolves the file; `state_dir_override` is `--state-dir`.
    pub fn load(path: &Path, state_dir_override: Option<&Path>) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path, state_dir_override)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(
        text: &str,
        path: &Path,
        state_dir_override: Option<&Path>,
    ) -> Result<Self, Error> {
        let raw: RawFile = toml::from_str(text).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        // Placeholders expand to absolute paths, so they are never joined to `base` again.
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let state_dir = match (state_dir_override, &raw.state_dir) {
            (Some(o), _) => std::path::absolute(o).unwrap_or_else(|_| o.to_path_buf()),
            (None, Some(s)) => rel(s),
            (None, None) => return Err(bad(path, "state_dir", "missing (or pass --state-dir)")),
        };

        // [server]
        let s = raw.server;
        let endpoint = s.endpoint.trim().to_owned();
        if !["ws://", "wss://", "http://", "https://"]
            .iter()
            .any(|p| endpoint.starts_with(p))
        {
            return Err(bad(
                path,
                "server.endpoint",
                format!("{endpoint:?} is not a ws://, wss://, http:// or https:// URL"),
            ));
        }
        let tls = s.tls;
        let server = ServerSettings {
            endpoint,
            headers: s.headers.into_iter().collect(),
            heartbeat: s.heartbeat,
            ca_file: tls.as_ref().and_then(|t| t.ca_file.as_deref()).map(rel),
            cert_file: tls.as_ref().and_then(|t| t.cert_file.as_deref()).map(rel),
            key_file: tls.as_ref().and_then(|t| t.key_file.as_deref()).map(rel),
            insecure_skip_verify: tls.as_ref().is_some_and(|t| t.insecure_skip_verify),
        };
        if server.cert_file.is_some() != server.key_file.is_some() {
            return Err(bad(
                path,
                "server.tls",
                "cert_file and key_file go together",
            ));
        }
        if server.heartbeat == Some(Duration::ZERO) {
            return Err(bad(path, "server.heartbeat", "must be more than 0"));
        }

        // [description]
        let description = DescriptionSettings {
            identifying: raw
                .description
                .identifying
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_any(v)))
                .collect(),
            non_identifying: raw
                .description
                .non_identifying
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_any(v)))
                .collect(),
        };

        // [config]
        let c = raw.config;
        let config_dir = c
            .dir
            .as_deref()
            .map(rel)
            .unwrap_or_else(|| state_dir.join("config"));
        // opamp-agent empties staging/ and rewrites lkg/: they cannot be the process's files.
        for own in ["staging", "lkg"] {
            if config_dir == state_dir.join(own) {
                return Err(bad(
                    path,
                    "config.dir",
                    format!("{own}/ of the state directory is opamp-agent's own"),
                ));
            }
        }
        let apply = match c.apply.as_deref() {
            None => ApplyMode::Restart,
            Some(a) => parse_apply(a).ok_or_else(|| {
                bad(path, "config.apply", format!("{a:?}: expected \"restart\", \"signal:SIGHUP\" (any signal name) or \"none\""))
            })?,
        };
        let main_file = c.main_file.unwrap_or_else(|| "config".to_owned());
        if !is_plain_file_name(&main_file) {
            return Err(bad(
                path,
                "config.main_file",
                format!("{main_file:?} is not a plain file name"),
            ));
        }
        let validate = match c.validate {
            None => None,
            Some(v) if v.command.trim().is_empty() => {
                return Err(bad(path, "config.validate.command", "must not be empty"));
            }
            Some(v) => Some(ValidateSettings {
                command: v.command,
                args: v.args,
                timeout: v.timeout.unwrap_or(Duration::from_secs(60)),
            }),
        };
        let mut local = Vec::new();
        for (i, l) in c.local.into_iter().enumerate() {
            let key = format!("config.local[{i}]");
            if !is_plain_file_name(&l.name) {
                return Err(bad(
                    path,
                    &format!("{key}.name"),
                    format!("{:?} is not a plain file name", l.name),
                ));
            }
            if local.iter().any(|x: &LocalFile| x.name == l.name) {
                return Err(bad(
                    path,
                    &format!("{key}.name"),
                    format!("{:?} is given twice", l.name),
                ));
            }
            let body = match (l.path, l.body) {
                (Some(p), None) => {
                    let p = rel(&p);
                    std::fs::read(&p).map_err(|e| {
                        bad(
                            path,
                            &format!("{key}.path"),
                            format!("cannot read {}: {e}", p.display()),
                        )
                    })?
                }
                (None, Some(b)) => b.into_bytes(),
                _ => return Err(bad(path, &key, "give exactly one of `path` and `body`")),
            };
            let content_type = l
                .content_type
                .unwrap_or_else(|| guess_content_type(&l.name).to_owned());
            local.push(LocalFile {
                name: l.name,
                body,
                content_type,
            });
        }
        c.restrictions
            .validate()
            .map_err(|e| bad(path, "config.restrictions", e))?;

        // [process]
        let p = raw.process;
        if p.command.trim().is_empty() {
            return Err(bad(path, "process.command", "must not be empty"));
        }
        let initial = p.restart_backoff_initial.unwrap_or(Duration::from_secs(1));
        let max = p.restart_backoff_max.unwrap_or(Duration::from_secs(60));
        if initial.is_zero() {
            return Err(bad(
                path,
                "process.restart_backoff_initial",
                "must be more than 0",
            ));
        }
        if max < initial {
            return Err(bad(
                path,
                "process.restart_backoff_max",
                "must not be less than restart_backoff_initial",
            ));
        }
        let process = ProcessSettings {
            command: expand(&p.command, &config_dir, &state_dir, None),
            args: p
                .args
                .iter()
                .map(|a| expand(a, &config_dir, &state_dir, None))
                .collect(),
            env: p
                .env
                .into_iter()
                .map(|(k, v)| (k, expand(&v, &config_dir, &state_dir, None)))
                .collect(),
            working_dir: p.working_dir.as_deref().map(|w| {
                rel(Path::new(&expand(
                    &w.to_string_lossy(),
                    &config_dir,
                    &state_dir,
                    None,
                )))
            }),
            stop_timeout: p.stop_timeout.unwrap_or(Duration::from_secs(10)),
            restart_backoff_initial: initial,
            restart_backoff_max: max,
        };

        // [[health.checks]]
        for (i, check) in raw.health.checks.iter().enumerate() {
            check
                .validate()
                .map_err(|e| bad(path, &format!("health.checks[{i}]"), e))?;
        }
        for (i, check) in raw.health.checks.iter().enumerate() {
            if raw.health.checks[..i].iter().any(|c| c.name == check.name) {
                return Err(bad(
                    path,
                    &format!("health.checks[{i}].name"),
                    format!("{:?} is given twice", check.name),
                ));
            }
        }

        let own_metrics_interval = raw.own_metrics.interval.unwrap_or(Duration::from_secs(10));
        if own_metrics_interval.is_zero() {
            return Err(bad(path, "own_metrics.interval", "must be more than 0"));
        }

        // Deadlines are `Instant + duration`: keep them far from overflowing.
        let health_gate = c.health_gate.unwrap_or(Duration::from_secs(10));
        for (key, d) in [
            ("server.heartbeat", server.heartbeat),
            ("process.stop_timeout", Some(process.stop_timeout)),
            (
                "process.restart_backoff_max",
                Some(process.restart_backoff_max),
            ),
            ("config.health_gate", Some(health_gate)),
            (
                "config.validate.timeout",
                validate.as_ref().map(|v| v.timeout),
            ),
            ("own_metrics.interval", Some(own_metrics_interval)),
        ] {
            if d.is_some_and(|d| d > MAX_DURATION) {
                return Err(bad(path, key, "must be at most 365 days"));
            }
        }

        Ok(Self {
            config_file: path.to_path_buf(),
            state_dir,
            allow_root: raw.allow_root,
            server,
            description,
            process,
            config: ConfigSettings {
                accept_remote: c.accept_remote,
                dir: config_dir,
                apply,
                health_gate,
                validate,
                main_file,
                local,
                restrictions: c.restrictions,
            },
            health_checks: raw.health.checks,
            own_metrics_interval,
        })
    }
}

impl Settings {
    /// SEC-2, least privilege: refuses to run as root (effective uid `euid` 0) unless
    /// `allow_root` is set. The managed process and the validate command inherit
    /// opamp-agent's user, so running opamp-agent unprivileged runs them unprivileged too.
    pub fn check_privileges(&self, euid: u32) -> Result<(), Error> {
        if euid == 0 && !self.allow_root {
            return Err(Error::RunningAsRoot {
                file: self.config_file.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
state_dir = "state"
[server]
endpoint = "ws://127.0.0.1:4320/v1/opamp"
[process]
command = "/bin/true"
args = ["-C", "{config_dir}/x.conf"]
"#;

    #[test]
    fn minimal_file_gets_defaults_and_relative_paths() {
        let s = Settings::parse(MINIMAL, Path::new("/etc/oa/agent.toml"), None).unwrap();
        assert_eq!(s.state_dir, PathBuf::from("/etc/oa/state"));
        assert_eq!(s.config.dir, PathBuf::from("/etc/oa/state/config"));
        assert_eq!(s.process.args, vec!["-C", "/etc/oa/state/config/x.conf"]);
        assert!(!s.config.accept_remote, "SEC-6: remote config is opt-in");
        assert_eq!(s.config.apply, ApplyMode::Restart);
        assert_eq!(s.process.stop_timeout, Duration::from_secs(10));
        assert_eq!(s.own_metrics_interval, Duration::from_secs(10));
    }

    #[test]
    fn root_is_refused_unless_allowed_sec_2() {
        let path = Path::new("/etc/oa/agent.toml");
        let s = Settings::parse(MINIMAL, path, None).unwrap();
        assert!(!s.allow_root, "refused by default");
        assert!(s.check_privileges(1000).is_ok());
        let msg = s.check_privileges(0).unwrap_err().to_string();
        assert!(msg.contains("refusing to run as root"), "{msg}");
        assert!(msg.contains("allow_root = true"), "{msg}");
        assert!(msg.contains("/etc/oa/agent.toml"), "{msg}");
        let text = format!("allow_root = true\n{MINIMAL}");
        let s = Settings::parse(&text, path, None).unwrap();
        assert!(s.allow_root);
        assert!(s.check_privileges(0).is_ok());
        assert!(s.check_privileges(1000).is_ok());
    }

    #[test]
    fn state_dir_override_wins() {
        let s = Settings::parse(
            MINIMAL,
            Path::new("/etc/oa/agent.toml"),
            Some(Path::new("/tmp/x")),
        )
        .unwrap();
        assert_eq!(s.state_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_key_names_the_key_and_the_file() {
        let text = format!("{MINIMAL}\n[own_metrics]\nintervall = \"1s\"\n");
        let e = Settings::parse(&text, Path::new("/etc/oa/agent.toml"), None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/etc/oa/agent.toml"), "{msg}");
        assert!(msg.contains("intervall"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (extra, key) in [
            ("[config]\napply = \"reload\"\n", "config.apply"),
            ("[config]\nmain_file = \"../x\"\n", "config.main_file"),
            ("[config]\nhealth_gate = \"ten\"\n", "health_gate"),
            (
                "[config]\nhealth_gate = \"9000000h\"\n",
                "config.health_gate",
            ),
            ("[[config.local]]\nname = \"a.conf\"\n", "config.local[0]"),
            ("[config]\ndir = \"state/staging\"\n", "config.dir"),
            ("[config]\ndir = \"state/lkg/\"\n", "config.dir"),
        ] {
            let text = format!("{MINIMAL}\n{extra}");
            let msg = Settings::parse(&text, Path::new("a.toml"), None)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(key), "{key}: {msg}");
        }
    }

    #[test]
    fn apply_modes_and_signals() {
        assert_eq!(parse_apply("restart"), Some(ApplyMode::Restart));
        assert_eq!(parse_apply("none"), Some(ApplyMode::None));
        assert_eq!(
            parse_apply("signal:SIGHUP"),
            Some(ApplyMode::Signal(rustix::process::Signal::HUP))
        );
        assert_eq!(
            parse_apply("signal:usr1"),
            Some(ApplyMode::Signal(rustix::process::Signal::USR1))
        );
        assert_eq!(parse_apply("signal:NOPE"), None);
    }

    #[test]
    fn plain_file_names() {
        assert!(is_plain_file_name("collectd.conf"));
        for bad in ["", ".hidden", "a/b", "..", "../x", "a\\b", "a\nb"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
