//! Settings: command-line flags, `OPAMP_*` environment variables and a TOML file, merged
//! with the precedence **flag > environment > file > default**.
//!
//! Every setting has the three spellings: the flag `--admin-listen`, the environment
//! variable `OPAMP_ADMIN_LISTEN`, the file key `admin_listen`. Unknown keys in the file are
//! an error (a typo must not silently fall back to a default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "opampd",
    version,
    about = "The opamp-rs fleet server: OpAMP on one port, the admin API on another.",
    long_about = "The opamp-rs fleet server.\n\n\
        With no arguments it serves OpAMP on ws://127.0.0.1:4320/v1/opamp (WebSocket and plain \
        HTTP on the same path), the admin API on http://127.0.0.1:4321/api/v1/, and stores its \
        state in SQLite under ./opamp-data/.\n\n\
        Every option is also an environment variable (OPAMP_<NAME>) and a key of the --config \
        TOML file (<name> with '_' for '-'); a flag beats the environment, which beats the file."
)]
pub(crate) struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// Settings shared by every command.
    #[command(flatten)]
    pub(crate) common: CommonFlags,
    /// Settings of `serve` (also accepted without the subcommand).
    #[command(flatten)]
    pub(crate) serve: ServeFlags,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve OpAMP and the admin API (the default).
    Serve,
    /// Manage admin API tokens (works while the server runs).
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `opampd token ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// admin, operator or viewer.
        #[arg(long)]
        role: String,
        /// A name for people (unique among active tokens).
        #[arg(long)]
        name: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id or name.
    Revoke {
        /// The token's id or name.
        token: String,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings every command uses.
#[derive(Debug, Args)]
pub(crate) struct CommonFlags {
    /// A TOML file with settings (keys as in the README's table).
    #[arg(long, env = "OPAMP_CONFIG", global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Where the SQLite database (and ports.json) live [default: ./opamp-data].
    #[arg(long, env = "OPAMP_DATA_DIR", global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://user:pass@host/db) instead of SQLite in the data dir.
    #[arg(long, env = "OPAMP_STORE", global = true, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "OPAMP_LOG_FORMAT", global = true, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `opamp_fleet=debug,info` [default: info].
    #[arg(long, env = "OPAMP_LOG_LEVEL", global = true, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,
}

/// Settings of `serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeFlags {
    /// OpAMP listen address [default: 127.0.0.1:4320].
    #[arg(long, env = "OPAMP_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Admin API listen address [default: 127.0.0.1:4321].
    #[arg(long, env = "OPAMP_ADMIN_LISTEN", value_name = "ADDR")]
    pub(crate) admin_listen: Option<SocketAddr>,
    /// PEM certificate chain: serve OpAMP over TLS (wss://, https://).
    #[arg(long, env = "OPAMP_TLS_CERT", value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "OPAMP_TLS_KEY", value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
    /// PEM CA certificates: require agent client certificates signed by them (mutual TLS).
    #[arg(long, env = "OPAMP_CLIENT_CA", value_name = "FILE")]
    pub(crate) client_ca: Option<PathBuf>,
    /// PEM certificate chain: serve the admin API and web UI over TLS (https://).
    #[arg(long, env = "OPAMP_ADMIN_TLS_CERT", value_name = "FILE")]
    pub(crate) admin_tls_cert: Option<PathBuf>,
    /// PEM private key for --admin-tls-cert.
    #[arg(long, env = "OPAMP_ADMIN_TLS_KEY", value_name = "FILE")]
    pub(crate) admin_tls_key: Option<PathBuf>,
    /// Allow non-loopback binds without TLS (OpAMP, admin API) or without any admin token
    /// (admin API).
    #[arg(long, env = "OPAMP_INSECURE")]
    pub(crate) insecure: bool,
    /// This replica's id, stable across restarts (several replicas on one PostgreSQL need
    /// distinct ids) [default: the host name].
    #[arg(long, env = "OPAMP_SERVER_ID", value_name = "ID")]
    pub(crate) server_id: Option<String>,
    /// The largest admin API request body in bytes [default: 4194304].
    #[arg(long, env = "OPAMP_MAX_BODY_BYTES", value_name = "BYTES")]
    pub(crate) max_body_bytes: Option<usize>,
    /// Seconds between batched last-seen writes [default: 5].
    #[arg(long, env = "OPAMP_LAST_SEEN_FLUSH_SECS", value_name = "SECS")]
    pub(crate) last_seen_flush_secs: Option<u64>,
    /// An OTLP/HTTP metrics URL (e.g. http://127.0.0.1:4318/v1/metrics) offered to agents
    /// that report their own metrics (OWN-1) [default: none, nothing offered].
    #[arg(long, env = "OPAMP_OWN_METRICS_ENDPOINT", value_name = "URL")]
    pub(crate) own_metrics_endpoint: Option<String>,
    /// How long a web UI sign-in lasts, in seconds [default: 43200, 12 hours].
    #[arg(long, env = "OPAMP_UI_SESSION_TTL_SECS", value_name = "SECS")]
    pub(crate) ui_session_ttl_secs: Option<u64>,
}

/// The TOML file: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    data_dir: Option<PathBuf>,
    store: Option<String>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    admin_tls_cert: Option<PathBuf>,
    admin_tls_key: Option<PathBuf>,
    insecure: Option<bool>,
    server_id: Option<String>,
    max_body_bytes: Option<usize>,
    last_seen_flush_secs: Option<u64>,
    own_metrics_endpoint: Option<String>,
    ui_session_ttl_secs: Option<u64>,
}

impl FileSettings {
    /// Reads and parses a settings file.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// The merged settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Data directory.
    pub(crate) data_dir: PathBuf,
    /// PostgreSQL URL, if any.
    pub(crate) store: Option<String>,
    /// Log format.
    pub(crate) log_format: LogFormat,
    /// Log filter.
    pub(crate) log_level: String,
    /// OpAMP listen address.
    pub(crate) listen: SocketAddr,
    /// Admin listen address.
    pub(crate) admin_listen: SocketAddr,
    /// TLS certificate.
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS key.
    pub(crate) tls_key: Option<PathBuf>,
    /// Client CA (mTLS).
    pub(crate) client_ca: Option<PathBuf>,
    /// Admin API TLS certificate.
    pub(crate) admin_tls_cert: Option<PathBuf>,
    /// Admin API TLS key.
    pub(crate) admin_tls_key: Option<PathBuf>,
    /// Insecure binds allowed.
    pub(crate) insecure: bool,
    /// Replica id.
    pub(crate) server_id: String,
    /// Admin body limit.
    pub(crate) max_body_bytes: usize,
    /// Last-seen flush interval, seconds.
    pub(crate) last_seen_flush_secs: u64,
    /// OTLP/HTTP metrics URL offered to agents, if any.
    pub(crate) own_metrics_endpoint: Option<String>,
    /// Web UI session lifetime, seconds.
    pub(crate) ui_session_ttl_secs: u64,
}

impl Settings {
    /// Merges flags (clap already applied the environment) over the file over defaults.
    pub(crate) fn merge(common: &CommonFlags, serve: &ServeFlags) -> anyhow::Result<Self> {
        let file = match &common.config {
            Some(path) => FileSettings::load(path)?,
            None => FileSettings::default(),
        };
        let s = Settings {
            data_dir: common
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./opamp-data")),
            store: common.store.clone().or(file.store),
            log_format: common.log_format.or(file.log_format).unwrap_or_default(),
            log_level: common
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            listen: serve
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4320))),
            admin_listen: serve
                .admin_listen
                .or(file.admin_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4321))),
            tls_cert: serve.tls_cert.clone().or(file.tls_cert),
            tls_key: serve.tls_key.clone().or(file.tls_key),
            client_ca: serve.client_ca.clone().or(file.client_ca),
            admin_tls_cert: serve.admin_tls_cert.clone().or(file.admin_tls_cert),
            admin_tls_key: serve.admin_tls_key.clone().or(file.admin_tls_key),
            insecure: serve.insecure || file.insecure.unwrap_or(false),
            server_id: serve
                .server_id
                .clone()
                .or(file.server_id)
                .unwrap_or_else(default_server_id),
            max_body_bytes: serve
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(4 * 1024 * 1024),
            last_seen_flush_secs: serve
                .last_seen_flush_secs
                .or(file.last_seen_flush_secs)
                .unwrap_or(5),
            own_metrics_endpoint: serve
                .own_metrics_endpoint
                .clone()
                .or(file.own_metrics_endpoint),
            ui_session_ttl_secs: serve
                .ui_session_ttl_secs
                .or(file.ui_session_ttl_secs)
                .unwrap_or(12 * 3600),
        };
        if s.ui_session_ttl_secs == 0 {
            bail!(
                "--ui-session-ttl-secs must be at least 1 (a sign-in that never lasts is useless)"
            );
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            bail!("--tls-cert and --tls-key go together: give both or neither");
        }
        if s.admin_tls_cert.is_some() != s.admin_tls_key.is_some() {
            bail!("--admin-tls-cert and --admin-tls-key go together: give both or neither");
        }
        if s.client_ca.is_some() && s.tls_cert.is_none() {
            bail!("--client-ca (mutual TLS) needs --tls-cert and --tls-key");
        }
        if let Some(url) = &s.own_metrics_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!(
                "--own-metrics-endpoint must be a full OTLP/HTTP URL such as \
                 http://127.0.0.1:4318/v1/metrics (got {url:?})"
            );
        }
        if let Some(url) = &s.store
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            bail!(
                "--store must be a postgres:// URL (SQLite is the default: use --data-dir to place it)"
            );
        }
        Ok(s)
    }

    /// What to pass to `opamp_store::open`.
    pub(crate) fn store_location(&self) -> String {
        match &self.store {
            Some(url) => url.clone(),
            None => self.data_dir.to_string_lossy().into_owned(),
        }
    }

    /// The store for people: a PostgreSQL URL without its password, or the SQLite file.
    pub(crate) fn store_display(&self) -> String {
        match &self.store {
            Some(url) => redact_url_password(url),
            None => format!(
                "sqlite {}",
                self.data_dir.join(opamp_store::SQLITE_FILE_NAME).display()
            ),
        }
    }
}

fn default_server_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "opampd".into())
}

fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("opampd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_are_loopback_and_local_sqlite() {
        let cli = parse(&[]);
        let s = Settings::merge(&cli.common, &cli.serve).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:4320");
        assert_eq!(s.admin_listen.to_string(), "127.0.0.1:4321");
        assert_eq!(s.data_dir, PathBuf::from("./opamp-data"));
        assert_eq!(s.store, None);
        assert!(!s.insecure);
    }

    #[test]
    fn flag_beats_file_and_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opampd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:5000\"\nadmin_listen = \"127.0.0.1:5001\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let cli = parse(&["--config", p, "--listen", "127.0.0.1:6000"]);
        let s = Settings::merge(&cli.common, &cli.serve).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:6000");
        assert_eq!(s.admin_listen.to_string(), "127.0.0.1:5001");
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn ui_session_lifetime_defaults_to_12_hours_and_must_be_positive() {
        let cli = parse(&[]);
        let s = Settings::merge(&cli.common, &cli.serve).unwrap();
        assert_eq!(s.ui_session_ttl_secs, 43_200);
        let cli = parse(&["--ui-session-ttl-secs", "600"]);
        let s = Settings::merge(&cli.common, &cli.serve).unwrap();
        assert_eq!(s.ui_session_ttl_secs, 600);
        let cli = parse(&["--ui-session-ttl-secs", "0"]);
        let e = Settings::merge(&cli.common, &cli.serve).unwrap_err();
        assert!(format!("{e:#}").contains("at least 1"), "{e:#}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opampd.toml");
        std::fs::write(&path, "listne = \"127.0.0.1:5000\"\n").unwrap();
        let cli = parse(&["--config", path.to_str().unwrap()]);
        let e = Settings::merge(&cli.common, &cli.serve).unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `listne`"), "{e:#}");
    }

    #[test]
    fn tls_flags_go_together_and_store_must_be_postgres() {
        let cli = parse(&["--tls-cert", "a.pem"]);
        assert!(Settings::merge(&cli.common, &cli.serve).is_err());
        let cli = parse(&["--store", "mysql://x"]);
        assert!(Settings::merge(&cli.common, &cli.serve).is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url_password("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
    }
}
