//! `opampd serve`: the OpAMP listener, the admin listener, and an orderly shutdown.
//!
//! Start-up refuses unsafe binds unless `--insecure`: OpAMP on a non-loopback address needs
//! TLS; the admin API on a non-loopback address needs TLS too and at least one token in the
//! store.
//! After binding, it prints its URLs and writes `<data-dir>/ports.json` (the bound
//! addresses, useful with port 0).
//!
//! Shutdown (SIGINT or SIGTERM): stop accepting, close every WebSocket with 1001 (DISC-3),
//! drain HTTP requests, write the batched last-seen times, mark this replica's agents
//! disconnected, close the store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use opamp_fleet::{Fleet, FleetOptions};
use opamp_server::Server;
use opamp_store::StoreOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// The file, in the data directory, holding the bound addresses.
pub(crate) const PORTS_FILE: &str = "ports.json";

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn tls_config(s: &Settings) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) else {
        return Ok(None);
    };
    let cert = read(cert, "--tls-cert")?;
    let key = read(key, "--tls-key")?;
    let ca = s
        .client_ca
        .as_ref()
        .map(|p| read(p, "--client-ca"))
        .transpose()?;
    let config = opamp_server::tls::server_config(&cert, &key, ca.as_deref())
        .context("invalid TLS settings")?;
    Ok(Some(config))
}

/// The admin listener's TLS settings (no client certificates: admin callers present tokens).
fn admin_tls_config(s: &Settings) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (Some(cert), Some(key)) = (&s.admin_tls_cert, &s.admin_tls_key) else {
        return Ok(None);
    };
    let cert = read(cert, "--admin-tls-cert")?;
    let key = read(key, "--admin-tls-key")?;
    let config = opamp_server::tls::server_config(&cert, &key, None)
        .context("invalid admin TLS settings")?;
    Ok(Some(config))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops opampd");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn write_ports(data_dir: &Path, opamp: SocketAddr, admin: SocketAddr, tls: bool, admin_tls: bool) {
    let admin_scheme = if admin_tls { "https" } else { "http" };
    let (ws, http) = if tls {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    let body = serde_json::json!({
        "opamp": opamp.to_string(),
        "admin": admin.to_string(),
        "opamp_ws_url": format!("{ws}://{opamp}/v1/opamp"),
        "opamp_http_url": format!("{http}://{opamp}/v1/opamp"),
        "admin_url": format!("{admin_scheme}://{admin}/"),
        "pid": std::process::id(),
    });
    let tmp = data_dir.join(format!("{PORTS_FILE}.tmp"));
    let done = std::fs::write(&tmp, body.to_string())
        .and_then(|()| std::fs::rename(&tmp, data_dir.join(PORTS_FILE)));
    if let Err(e) = done {
        tracing::warn!(error = %e, "cannot write {PORTS_FILE}");
    }
}

pub(crate) async fn run(s: Settings) -> anyhow::Result<()> {
    let tls = tls_config(&s)?;
    let admin_tls = admin_tls_config(&s)?;
    if !s.listen.ip().is_loopback() && tls.is_none() && !s.insecure {
        bail!(
            "refusing to serve OpAMP on {} without TLS: agents' traffic would travel in clear. \
             Pass --tls-cert and --tls-key, bind a loopback address (--listen 127.0.0.1:4320), \
             or pass --insecure",
            s.listen
        );
    }
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("cannot create data directory {}", s.data_dir.display()))?;
    let _ = std::fs::remove_file(s.data_dir.join(PORTS_FILE));
    let store = opamp_store::open(&s.store_location(), StoreOptions::default())
        .await
        .with_context(|| format!("cannot open the store ({})", s.store_display()))?;
    let no_tokens = store
        .list_tokens()
        .await?
        .iter()
        .all(|t| t.revoked_at.is_some());
    let admin_loopback = s.admin_listen.ip().is_loopback();
    if !admin_loopback && admin_tls.is_none() && !s.insecure {
        bail!(
            "refusing to serve the admin API on {} over plain HTTP: API tokens and the web UI's \
             session cookie would travel in clear. Pass --admin-tls-cert and --admin-tls-key, \
             bind a loopback address behind an HTTPS proxy (--admin-listen 127.0.0.1:4321), \
             or pass --insecure",
            s.admin_listen
        );
    }
    if !admin_loopback && no_tokens && !s.insecure {
        bail!(
            "refusing to serve the admin API on {} with no token: anyone who reaches it could \
             change the fleet. Create one first (`opampd token create --role admin --name <you>`), \
             bind a loopback address (--admin-listen 127.0.0.1:4321), or pass --insecure",
            s.admin_listen
        );
    }
    let options = FleetOptions::new(s.server_id.clone())
        .open_without_tokens(admin_loopback || s.insecure)
        .max_body_bytes(s.max_body_bytes)
        .last_seen_flush(Duration::from_secs(s.last_seen_flush_secs.max(1)))
        .own_metrics_endpoint(s.own_metrics_endpoint.clone())
        .ui_session_ttl(Duration::from_secs(s.ui_session_ttl_secs));
    let server_config = options.server_config();
    let fleet = Fleet::start(store.clone(), options)
        .await
        .context("cannot load the fleet from the store")?;
    let server = Server::new(server_config, fleet.handler());
    fleet.attach_server(server.clone());

    let opamp_listener = TcpListener::bind(s.listen)
        .await
        .with_context(|| format!("cannot listen on {} (OpAMP)", s.listen))?;
    let admin_listener = TcpListener::bind(s.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin API)", s.admin_listen))?;
    let opamp_addr = opamp_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let (ws, http) = if tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    println!("opampd {} is serving", env!("CARGO_PKG_VERSION"));
    println!("  OpAMP      {ws}://{opamp_addr}/v1/opamp  and  {http}://{opamp_addr}/v1/opamp");
    let admin = if admin_tls.is_some() { "https" } else { "http" };
    println!(
        "  admin API  {admin}://{admin_addr}/api/v1/  (OpenAPI: {admin}://{admin_addr}/api/v1/openapi.json)"
    );
    println!("  web UI     {admin}://{admin_addr}/");
    println!("  metrics    {admin}://{admin_addr}/metrics");
    println!("  store      {}", s.store_display());
    write_ports(
        &s.data_dir,
        opamp_addr,
        admin_addr,
        tls.is_some(),
        admin_tls.is_some(),
    );
    if no_tokens && (admin_loopback || s.insecure) {
        tracing::warn!(
            admin = %admin_addr,
            "the admin API is open: no token exists yet. Create one with \
             `opampd token create --role admin --name <you>` to require tokens"
        );
    }
    tracing::info!(opamp = %opamp_addr, admin = %admin_addr, server_id = %s.server_id, "serving");

    let stop = CancellationToken::new();
    let admin_task = tokio::spawn({
        let router = fleet.admin_router();
        let stop = stop.clone();
        async move {
            match admin_tls {
                Some(tls) => {
                    crate::admin_tls::serve(admin_listener, router, tls, stop.cancelled_owned())
                        .await;
                    Ok(())
                }
                None => {
                    axum::serve(
                        admin_listener,
                        router.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                }
            }
        }
    });
    let opamp_task = tokio::spawn({
        let server = server.clone();
        let stop = stop.clone();
        async move {
            match tls {
                Some(tls) => {
                    server
                        .serve_tls(opamp_listener, tls, stop.cancelled_owned())
                        .await
                }
                None => server.serve(opamp_listener, stop.cancelled_owned()).await,
            }
        }
    });

    shutdown_signal().await;
    tracing::info!("shutting down: closing agent connections");
    stop.cancel();
    server.shutdown();
    match opamp_task.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "OpAMP listener ended with an error"),
        Err(e) => tracing::warn!(error = %e, "OpAMP listener task failed"),
        Ok(Ok(())) => {}
    }
    fleet.shutdown().await;
    if tokio::time::timeout(Duration::from_secs(5), admin_task)
        .await
        .is_err()
    {
        tracing::warn!("admin API connections still open after 5 s: closing anyway");
    }
    store.close().await?;
    tracing::info!("stopped");
    Ok(())
}
