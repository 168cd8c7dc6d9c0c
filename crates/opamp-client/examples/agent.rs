//! A complete, minimal OpAMP agent.
//!
//! It connects to `--server` (ws, wss, http or https), applies every remote configuration
//! it receives (it "runs" exactly what it is sent: it reports the remote config as its
//! effective config and reports APPLIED with the config hash), prints one JSON line per
//! event on stdout, and stops cleanly on SIGINT / SIGTERM (agent_disconnect, then close).
//!
//! ```text
//! cargo run -p opamp-client --example agent -- \
//!     --server http://127.0.0.1:4320/v1/opamp --service-name demo --state-dir ./state
//! ```
//!
//! Output lines look like:
//! `{"event":"remote_config","hash":"ab12..","files":{"main.yaml":{"content_type":"text/yaml","size":42}}}`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use opamp_client::{
    AgentCapabilities, ClientEvent, ClientHandle, FileStateStore, MemoryStateStore, OpampClient,
    StateStore, TransportError, v1,
};
use serde_json::{Value, json};

/// A minimal OpAMP agent that applies every remote config it receives.
#[derive(Debug, Parser)]
struct Args {
    /// OpAMP endpoint: ws://, wss://, http:// or https:// URL.
    #[arg(long)]
    server: String,
    /// The service.name identifying attribute.
    #[arg(long)]
    service_name: String,
    /// Keep the instance uid, the last remote config and connection settings here.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Trust this CA certificate (PEM file) for wss / https.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// HTTP polling / WebSocket heartbeat interval in seconds.
    #[arg(long, default_value_t = 30)]
    interval_secs: u64,
}

fn print(line: Value) {
    println!("{line}");
}

fn error_json(e: &TransportError) -> Value {
    json!(e.to_string())
}

fn event_json(event: &ClientEvent) -> Value {
    match event {
        ClientEvent::Connected => json!({"event": "connected"}),
        ClientEvent::Disconnected { error } => {
            json!({"event": "disconnected", "error": error.as_ref().map(error_json)})
        }
        ClientEvent::ConnectFailed { error, retry_in } => json!({
            "event": "connect_failed",
            "error": error_json(error),
            "retry_in_ms": u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
        }),
        ClientEvent::AuthenticationFailed => json!({"event": "authentication_failed"}),
        ClientEvent::RemoteConfig(cfg) => {
            let files: serde_json::Map<String, Value> = cfg
                .config
                .iter()
                .flat_map(|m| m.config_map.iter())
                .map(|(name, file)| {
                    (
                        name.clone(),
                        json!({"content_type": file.content_type, "size": file.body.len()}),
                    )
                })
                .collect();
            json!({"event": "remote_config", "hash": hex::encode(&cfg.config_hash), "files": files})
        }
        ClientEvent::ConnectionSettingsOffer(o) => {
            json!({"event": "connection_settings_offer", "hash": hex::encode(&o.hash)})
        }
        ClientEvent::OpampSettingsCandidate(t) => {
            json!({"event": "opamp_settings_candidate", "endpoint": t.endpoint})
        }
        ClientEvent::OpampSettingsAccepted(t) => {
            json!({"event": "opamp_settings_accepted", "endpoint": t.endpoint})
        }
        ClientEvent::OpampSettingsRejected { target, reason } => json!({
            "event": "opamp_settings_rejected", "endpoint": target.endpoint, "reason": reason,
        }),
        ClientEvent::PackagesAvailable(p) => json!({
            "event": "packages_available",
            "packages": p.packages.keys().collect::<Vec<_>>(),
            "all_packages_hash": hex::encode(&p.all_packages_hash),
        }),
        ClientEvent::Command(c) => json!({"event": "command", "type": c.r#type}),
        ClientEvent::NewInstanceUid(uid) => {
            json!({"event": "new_instance_uid", "instance_uid": uid.to_string()})
        }
        ClientEvent::CustomMessage(m) => json!({
            "event": "custom_message", "capability": m.capability, "type": m.r#type, "size": m.data.len(),
        }),
        ClientEvent::ServerError(e) => json!({
            "event": "server_error", "type": e.r#type, "message": e.error_message,
        }),
        ClientEvent::ServerCapabilitiesChanged(c) => {
            json!({"event": "server_capabilities", "capabilities": c.bits()})
        }
        ClientEvent::MessageDiscarded { reason } => {
            json!({"event": "message_discarded", "reason": reason})
        }
        ClientEvent::MalformedMessage { reason } => {
            json!({"event": "malformed_message", "reason": reason})
        }
        ClientEvent::StateStoreFailed { reason } => {
            json!({"event": "state_store_failed", "reason": reason})
        }
        ClientEvent::Stopped => json!({"event": "stopped"}),
        other => json!({"event": "other", "debug": format!("{other:?}")}),
    }
}

/// "Applies" a remote config: this agent runs exactly what it is sent.
async fn apply(handle: &ClientHandle, cfg: &v1::AgentRemoteConfig) -> anyhow::Result<()> {
    handle
        .set_effective_config(v1::EffectiveConfig {
            config_map: cfg.config.clone(),
        })
        .await?;
    handle
        .set_remote_config_status(v1::RemoteConfigStatus {
            last_remote_config_hash: cfg.config_hash.clone(),
            status: v1::RemoteConfigStatuses::Applied as i32,
            error_message: String::new(),
        })
        .await?;
    Ok(())
}

#[cfg(unix)]
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let interval = Duration::from_secs(args.interval_secs.max(1));
    let mut builder = OpampClient::builder(&args.server)
        .service_name(&args.service_name)
        .service_version(env!("CARGO_PKG_VERSION"))
        .capabilities(
            AgentCapabilities::REPORTS_STATUS
                | AgentCapabilities::ACCEPTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_REMOTE_CONFIG
                | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
                | AgentCapabilities::REPORTS_HEALTH
                | AgentCapabilities::REPORTS_HEARTBEAT,
        )
        .heartbeat_interval(Some(interval))
        .polling_interval(interval)
        .health(v1::ComponentHealth {
            healthy: true,
            start_time_unix_nano: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            status: "running".into(),
            ..Default::default()
        });
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("--header {h:?}: expected `Name: value`"))?;
        builder = builder.header(name.trim(), value.trim());
    }
    if let Some(path) = &args.ca_file {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        builder = builder.ca_pem(pem);
    }
    // After a restart, the agent runs the last remote config it applied.
    let last_config = match &args.state_dir {
        Some(dir) => {
            let store = FileStateStore::new(dir);
            let state = store.load().context("loading the agent state")?;
            builder = builder.state_store(store);
            state.remote_config
        }
        None => {
            builder = builder.state_store(MemoryStateStore::new());
            None
        }
    };
    if let Some(cfg) = &last_config {
        builder = builder.effective_config(v1::EffectiveConfig {
            config_map: cfg.config.clone(),
        });
    }

    let (handle, mut events) = builder.build()?.start().await?;
    print(json!({"event": "started", "instance_uid": handle.instance_uid().await.to_string()}));

    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            () = &mut signal => break,
            event = events.recv() => {
                let Some(event) = event else { break };
                print(event_json(&event));
                if let ClientEvent::RemoteConfig(cfg) = &event {
                    apply(&handle, cfg).await?;
                }
            }
        }
    }
    handle.stop().await?;
    while let Some(event) = events.recv().await {
        print(event_json(&event));
    }
    Ok(())
}
