//! `opamp-agent`: an OpAMP supervisor for agents that do not speak OpAMP themselves.
//!
//! It runs one process (any command), speaks OpAMP for it through [`opamp_client`], and
//! never leaves it broken: a remote config is mapped onto files, checked against local
//! restrictions, validated in a staging directory, swapped in atomically, applied
//! (restart, signal or nothing) and health-gated; a config that fails is rolled back to the
//! last known good one and reported FAILED. Crashes are restarted with exponential backoff
//! and reported through the agent's health. The binary's configuration is described in
//! the crate README; [`settings::Settings`] is its resolved form.
//!
//! The library exists so the pieces can be tested on their own; the binary is a thin
//! `main` around [`run`].
//!
//! ```
//! use opamp_agent::settings::Settings;
//! let toml = r#"
//! state_dir = "/var/lib/opamp-agent"
//! [server]
//! endpoint = "ws://127.0.0.1:4320/v1/opamp"
//! [process]
//! command = "/usr/sbin/collectd"
//! args = ["-f", "-C", "{config_dir}/collectd.conf"]
//! [config]
//! accept_remote = true
//! main_file = "collectd.conf"
//! "#;
//! let s = Settings::parse(toml, "/etc/opamp-agent/agent.toml".as_ref(), None).unwrap();
//! assert_eq!(s.process.args[2], "/var/lib/opamp-agent/config/collectd.conf");
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod description;
mod error;
pub mod files;
pub mod health;
pub mod http;
pub mod own_metrics;
pub mod process;
pub mod settings;
pub mod state;
pub mod supervisor;

pub use error::Error;

/// Runs opamp-agent with resolved settings until SIGTERM / SIGINT. Call inside a tokio
/// runtime with IO and time enabled (the binary uses a current-thread runtime).
///
/// Refuses to run as root unless `allow_root` is set (SEC-2,
/// [`Settings::check_privileges`](settings::Settings::check_privileges)).
pub async fn run(settings: settings::Settings) -> Result<(), Error> {
    settings.check_privileges(rustix::process::geteuid().as_raw())?;
    if settings.allow_root && rustix::process::geteuid().is_root() {
        tracing::warn!(
            "running as root (allow_root = true): the managed process runs as root too (SEC-2)"
        );
    }
    supervisor::Supervisor::start(settings).await?.run().await
}
