//! A small OpAMP server: serves WebSocket and plain HTTP on one port, optionally offers a
//! remote config file to every agent that accepts remote config, and prints one JSON line
//! per agent message received:
//!
//! ```text
//! {"instance_uid":"018f3a5e-...","sequence_num":3,"transport":"ws","remote_config_status":"APPLIED"}
//! ```
//!
//! ```text
//! cargo run -p opamp-server --example server -- --listen 127.0.0.1:4320 --config agent.yaml
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use opamp_server::proto::ServerCapabilities;
use opamp_server::proto::v1::{
    AgentConfigFile, AgentConfigMap, AgentRemoteConfig, AgentToServer, RemoteConfigStatuses,
    ServerToAgent,
};
use opamp_server::{AgentContext, Handler, Server, ServerConfig};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Example OpAMP server (WebSocket and plain HTTP on one port)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4320")]
    listen: SocketAddr,
    /// A file offered as remote config to every agent with AcceptsRemoteConfig (key: the
    /// file name; content type guessed from the extension).
    #[arg(long)]
    config: Option<PathBuf>,
    /// PEM certificate chain: serve TLS (wss://, https://).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: require client certificates signed by them (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
}

/// Prints every message and offers the configured remote config.
struct Printer {
    offer: Option<AgentRemoteConfig>,
}

impl Handler for Printer {
    async fn on_message(&self, ctx: &AgentContext, msg: &AgentToServer) -> ServerToAgent {
        let status =
            msg.remote_config_status.as_ref().map(|s| {
                match RemoteConfigStatuses::try_from(s.status) {
                    Ok(RemoteConfigStatuses::Unset) => "UNSET",
                    Ok(RemoteConfigStatuses::Applied) => "APPLIED",
                    Ok(RemoteConfigStatuses::Applying) => "APPLYING",
                    Ok(RemoteConfigStatuses::Failed) => "FAILED",
                    Err(_) => "UNKNOWN",
                }
            });
        let line = serde_json::json!({
            "instance_uid": ctx.received_uid.to_string(),
            "sequence_num": msg.sequence_num,
            "transport": ctx.transport().as_str(),
            "remote_config_status": status,
        });
        println!("{line}");
        // The session sends it only to agents that accept remote config and do not run it
        // yet (RCFG-1, RCFG-4, RCFG-5).
        ServerToAgent {
            remote_config: self.offer.clone(),
            ..Default::default()
        }
    }
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("yaml" | "yml") => "text/yaml",
        Some("json") => "application/json",
        Some("toml") => "application/toml",
        Some("xml") => "application/xml",
        Some("conf" | "cfg" | "ini" | "txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

fn load_offer(path: &std::path::Path) -> anyhow::Result<AgentRemoteConfig> {
    let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = AgentConfigFile {
        body,
        content_type: content_type(path).to_string(),
    };
    let mut rc = AgentRemoteConfig {
        config: Some(AgentConfigMap {
            config_map: [(name, file)].into_iter().collect(),
        }),
        config_hash: Vec::new(),
    };
    rc.config_hash = opamp_server::session::config_hash(&rc);
    Ok(rc)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let offer = args.config.as_deref().map(load_offer).transpose()?;
    let config = ServerConfig::builder()
        .capabilities(
            ServerCapabilities::ACCEPTS_STATUS
                | ServerCapabilities::OFFERS_REMOTE_CONFIG
                | ServerCapabilities::ACCEPTS_EFFECTIVE_CONFIG,
        )
        .build();
    let server = Server::new(config, Printer { offer });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let ca = args.client_ca.as_deref().map(std::fs::read).transpose()?;
            let tls = opamp_server::tls::server_config(
                &std::fs::read(cert)?,
                &std::fs::read(key)?,
                ca.as_deref(),
            )?;
            eprintln!("OpAMP server on wss://{addr}/v1/opamp and https://{addr}/v1/opamp");
            server.serve_tls(listener, tls, shutdown).await?;
        }
        _ => {
            eprintln!("OpAMP server on ws://{addr}/v1/opamp and http://{addr}/v1/opamp");
            server.serve(listener, shutdown).await?;
        }
    }
    Ok(())
}
