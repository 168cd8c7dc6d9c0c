//! Standalone serving over plain TCP or TLS, with graceful shutdown.
//!
//! The accept loop hands each connection to hyper (HTTP/1.1 with upgrades, and HTTP/2),
//! after attaching the peer address and, over mutual TLS, the client certificate chain
//! (see [`ConnMeta`]) so the [`Handler`] can see them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::Error;
use crate::handler::Handler;
use crate::server::Server;

/// Per-connection facts attached to every request as an extension.
#[derive(Debug, Clone)]
pub(crate) struct ConnMeta {
    pub(crate) peer_addr: SocketAddr,
    pub(crate) peer_certificates: Option<Arc<[CertificateDer<'static>]>>,
}

impl<H: Handler> Server<H> {
    /// Serves plain TCP on `listener` until `shutdown` completes or [`Server::shutdown`]
    /// is called; then closes every WebSocket with 1001 (DISC-3), drains in-flight HTTP
    /// requests and waits up to `shutdown_grace`.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        self.accept_loop(listener, None, shutdown).await
    }

    /// Like [`Server::serve`], over TLS (`wss://`, `https://`). With a client certificate
    /// verifier in `tls` (mutual TLS, see [`crate::tls`]), the handler sees the peer's
    /// certificate chain in [`crate::ConnectionRequest::peer_certificates`].
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        self.accept_loop(
            listener,
            Some(tokio_rustls::TlsAcceptor::from(tls)),
            shutdown,
        )
        .await
    }

    /// Binds `addr` and serves plain TCP on it (see [`Server::serve`]).
    pub async fn listen(
        &self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        self.serve(TcpListener::bind(addr).await?, shutdown).await
    }

    /// Binds `addr` and serves TLS on it (see [`Server::serve_tls`]).
    pub async fn listen_tls(
        &self,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        self.serve_tls(TcpListener::bind(addr).await?, tls, shutdown)
            .await
    }

    async fn accept_loop(
        &self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let router = self.router();
        let graceful = GracefulShutdown::new();
        let token = self.shutdown_token();
        let handshake_timeout = self.config().tls_handshake_timeout;
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                () = token.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer_addr) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let router = router.clone();
            let header_read_timeout = self.config().http.header_read_timeout;
            let watcher = graceful.watcher();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => {
                        let meta = ConnMeta {
                            peer_addr,
                            peer_certificates: None,
                        };
                        serve_connection(tcp, router, meta, header_read_timeout, watcher).await;
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer_addr, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer_addr, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let peer_certificates = stream.get_ref().1.peer_certificates().map(
                            |chain| -> Arc<[CertificateDer<'static>]> {
                                chain.iter().map(|c| c.clone().into_owned()).collect()
                            },
                        );
                        let meta = ConnMeta {
                            peer_addr,
                            peer_certificates,
                        };
                        serve_connection(stream, router, meta, header_read_timeout, watcher).await;
                    }
                }
            });
        }
        drop(listener);
        self.shutdown();
        let grace = self.config().shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            graceful.shutdown().await;
            self.wait_connections_closed().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?grace,
                "shutdown grace period over with connections still open"
            );
        }
        Ok(())
    }
}

async fn serve_connection<S>(
    stream: S,
    router: axum::Router,
    meta: ConnMeta,
    header_read_timeout: Option<Duration>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(meta.clone());
        request
    });
    let service = TowerToHyperService::new(service);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
