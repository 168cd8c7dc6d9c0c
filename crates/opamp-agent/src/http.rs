//! A minimal HTTP/1.1 client for health checks and own metrics: one connection per request
//! (at most one every few seconds), hyper's client connection over TCP or over rustls with
//! opamp-client's TLS configuration. Nothing is pooled, so nothing is held between requests.
//!
//! Through an HTTP [`Proxy`] (own metrics, when the server offers one, OPC-11): an `http://`
//! URL is requested from the proxy in absolute form (`POST http://host:port/path`); for an
//! `https://` URL the proxy is asked for a tunnel (`CONNECT host:port` with the offered
//! `connect_headers`) and TLS with the destination runs through it.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest response body read (the rest is dropped with the connection).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https://`.
    pub tls: bool,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL.
    pub fn parse(url: &str) -> Result<Url, String> {
        let uri: http::Uri = url.trim().parse().map_err(|e| format!("{url:?}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            _ => return Err(format!("{url:?}: not an http:// or https:// URL")),
        };
        let authority = uri.authority().ok_or_else(|| format!("{url:?}: no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        Ok(Url {
            tls,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: authority.as_str().to_owned(),
            host,
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".to_owned()),
        })
    }
}

/// An HTTP proxy: `http://host[:port]` or a bare `host:port` (OPC-11), and the headers for
/// its CONNECT requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// `host[:port]` as written, for messages.
    pub authority: String,
    /// Headers sent on each CONNECT request (only there: they are meant for the proxy,
    /// and an absolute-form request would carry them on to the destination).
    pub connect_headers: Vec<(String, String)>,
}

impl Proxy {
    /// Parses a proxy URL and checks the CONNECT headers. Refused: TLS to the proxy
    /// (`https://`), other schemes (`socks5://`), credentials in the URL (send them as a
    /// `Proxy-Authorization` connect header), a path, header names or values HTTP does
    /// not allow.
    pub fn parse(url: &str, connect_headers: Vec<(String, String)>) -> Result<Proxy, String> {
        let text = url.trim();
        if text.is_empty() {
            return Err("proxy url is empty".to_owned());
        }
        let full = if text.contains("://") {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        if let Some((scheme, _)) = text.split_once("://") {
            if scheme.eq_ignore_ascii_case("https") {
                return Err(format!(
                    "proxy {url:?}: TLS to the proxy (https://) is not supported, only http://"
                ));
            }
            if !scheme.eq_ignore_ascii_case("http") {
                return Err(format!("proxy {url:?}: only http:// proxies are supported"));
            }
        }
        let u = Url::parse(&full).map_err(|e| format!("proxy {e}"))?;
        if u.authority.contains('@') {
            return Err(format!(
                "proxy {url:?}: credentials in the URL are not supported (offer a Proxy-Authorization connect header)"
            ));
        }
        if u.path != "/" {
            return Err(format!("proxy {url:?}: a proxy URL has no path"));
        }
        for (k, v) in &connect_headers {
            hyper::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("proxy connect header {k:?}: not a header name"))?;
            hyper::header::HeaderValue::from_str(v)
                .map_err(|_| format!("proxy connect header {k:?}: value not allowed"))?;
        }
        Ok(Proxy {
            host: u.host,
            port: u.port,
            authority: u.authority,
            connect_headers,
        })
    }
}

/// `host:port` for a request line or a CONNECT target (IPv6 literals in brackets).
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A request's outcome: the status code, or why there is none.
pub type Response = Result<u16, String>;

/// Sends one request and returns the response status. `tls` is used for `https://` URLs
/// (a missing config means the system roots, built on demand).
pub async fn request(
    method: hyper::Method,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Response {
    request_via(method, url, headers, body, tls, None).await
}

/// [`request`], through `proxy` when given (see the module docs).
pub async fn request_via(
    method: hyper::Method,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    proxy: Option<&Proxy>,
) -> Response {
    let u = Url::parse(url)?;
    let tcp = match proxy {
        Some(p) => TcpStream::connect((p.host.as_str(), p.port))
            .await
            .map_err(|e| format!("connect to proxy {}: {e}", p.authority))?,
        None => TcpStream::connect((u.host.as_str(), u.port))
            .await
            .map_err(|e| format!("connect {}: {e}", u.authority))?,
    };
    let _ = tcp.set_nodelay(true);
    if !u.tls {
        let target = match proxy {
            // Absolute form: the proxy forwards it.
            Some(_) => format!("http://{}{}", host_port(&u.host, u.port), u.path),
            None => u.path.clone(),
        };
        return exchange(tcp, &u, &target, method, headers, body).await;
    }
    let config = match tls {
        Some(c) => Arc::clone(c),
        None => opamp_client::tls_client_config(None, None).map_err(|e| e.to_string())?,
    };
    let name = ServerName::try_from(u.host.clone()).map_err(|e| format!("{}: {e}", u.host))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match proxy {
        None => {
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {}: {e}", u.authority))?;
            exchange(stream, &u, &u.path, method, headers, body).await
        }
        Some(p) => {
            let tunnel = connect_tunnel(tcp, &u, p).await?;
            let stream = connector.connect(name, tunnel).await.map_err(|e| {
                format!(
                    "TLS with {} through proxy {}: {e}",
                    u.authority, p.authority
                )
            })?;
            exchange(stream, &u, &u.path, method, headers, body).await
        }
    }
}

/// Asks the proxy on `tcp` for a tunnel to `u` (CONNECT with the connect headers) and
/// returns it once the proxy answered 2xx.
async fn connect_tunnel(
    tcp: TcpStream,
    u: &Url,
    p: &Proxy,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, String> {
    let target = host_port(&u.host, u.port);
    let fail = |e: &dyn std::fmt::Display| format!("proxy {}: CONNECT {target}: {e}", p.authority);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| fail(&e))?;
    let conn = tokio::spawn(conn.with_upgrades());
    let mut req = Request::builder()
        .method(hyper::Method::CONNECT)
        .uri(target.as_str())
        .header(hyper::header::HOST, target.as_str())
        .header(
            hyper::header::USER_AGENT,
            concat!("opamp-agent/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in &p.connect_headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| fail(&e))?;
    let resp = match sender.send_request(req).await {
        Ok(resp) => resp,
        Err(e) => {
            conn.abort();
            return Err(fail(&e));
        }
    };
    if !resp.status().is_success() {
        conn.abort();
        return Err(fail(&format_args!("status {}", resp.status().as_u16())));
    }
    let upgraded = hyper::upgrade::on(resp).await.map_err(|e| fail(&e))?;
    Ok(TokioIo::new(upgraded))
}

async fn exchange<S>(
    io: S,
    u: &Url,
    target: &str,
    method: hyper::Method,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Response
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header(hyper::header::HOST, u.authority.as_str())
        .header(
            hyper::header::USER_AGENT,
            concat!("opamp-agent/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    let result = match sender.send_request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read a bounded body so the server sees a complete exchange.
            let _ = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await;
            Ok(status)
        }
        Err(e) => Err(e.to_string()),
    };
    drop(sender);
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = Url::parse("http://127.0.0.1:4318/v1/metrics").unwrap();
        assert_eq!(
            u,
            Url {
                tls: false,
                host: "127.0.0.1".into(),
                port: 4318,
                authority: "127.0.0.1:4318".into(),
                path: "/v1/metrics".into(),
            }
        );
        let u = Url::parse("https://[::1]/health?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "::1", 443, "/health?x=1")
        );
        assert_eq!(Url::parse("http://example.com").unwrap().path, "/");
        for bad in ["ftp://x/", "/relative", "http://", ""] {
            assert!(Url::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn post_sends_headers_and_body_and_returns_the_status() {
        use std::sync::Mutex;
        type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route(
                "/v1/metrics",
                axum::routing::post(
                    |axum::extract::State(seen): axum::extract::State<Seen>,
                     headers: axum::http::HeaderMap,
                     body: axum::body::Bytes| async move {
                        let token = headers
                            .get("x-token")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        seen.lock().unwrap().push((token, body.to_vec()));
                        (axum::http::StatusCode::ACCEPTED, "")
                    },
                ),
            )
            .with_state(Arc::clone(&seen));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        let status = request(
            hyper::Method::POST,
            &format!("http://{addr}/v1/metrics"),
            &[("X-Token".into(), "t1".into())],
            b"payload".to_vec(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 202);
        assert_eq!(
            seen.lock().unwrap()[0],
            ("t1".to_owned(), b"payload".to_vec())
        );
        let missing = request(
            hyper::Method::GET,
            &format!("http://{addr}/nope"),
            &[],
            vec![],
            None,
        )
        .await
        .unwrap();
        assert_eq!(missing, 404);
    }

    #[test]
    fn proxy_urls_parse_opc_11() {
        let p = Proxy::parse("proxy.lan:3128", vec![]).unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.lan", 3128));
        let p = Proxy::parse("http://[::1]", vec![]).unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 80));
        assert_eq!(host_port(&p.host, 443), "[::1]:443");
        for bad in [
            "",
            "https://proxy.lan:3128",
            "socks5://proxy.lan:1080",
            "http://user:secret@proxy.lan:3128",
            "http://proxy.lan:3128/path",
        ] {
            assert!(Proxy::parse(bad, vec![]).is_err(), "{bad:?}");
        }
        let bad_header = vec![("X-A".to_owned(), "a\r\nInjected: 1".to_owned())];
        assert!(Proxy::parse("proxy.lan:3128", bad_header).is_err());
        let bad_name = vec![("bad name".to_owned(), "v".to_owned())];
        assert!(Proxy::parse("proxy.lan:3128", bad_name).is_err());
    }

    type Heads = Arc<std::sync::Mutex<Vec<String>>>;

    /// Reads an HTTP/1.1 request or response head, up to and with the blank line.
    async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
        use tokio::io::AsyncReadExt as _;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if s.read(&mut b).await.ok()? == 0 {
                return None;
            }
            head.push(b[0]);
        }
        String::from_utf8(head).ok()
    }

    /// A tiny HTTP proxy on 127.0.0.1:0 that records every request head. CONNECT: 407
    /// without `Proxy-Authorization: Basic eDp5`, else 200 and a tunnel to the target.
    /// Other methods (absolute form): the head as received, then the rest, to the host.
    async fn test_proxy() -> (std::net::SocketAddr, Heads) {
        use tokio::io::AsyncWriteExt as _;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let heads = Heads::default();
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = l.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let Some(head) = read_head(&mut client).await else {
                        return;
                    };
                    seen.lock().unwrap().push(head.clone());
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let mut parts = line.split(' ');
                    let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
                    if method == "CONNECT" {
                        let lower = head.to_ascii_lowercase();
                        if !lower.contains(
                            "\r\nproxy-authorization: basic eDp5\r\n"
                                .to_ascii_lowercase()
                                .as_str(),
                        ) {
                            let _ = client
                                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            return;
                        }
                        let mut upstream = TcpStream::connect(target).await.unwrap();
                        client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await
                            .unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    } else {
                        let rest = target.strip_prefix("http://").unwrap();
                        let authority = rest.split('/').next().unwrap();
                        let mut upstream = TcpStream::connect(authority).await.unwrap();
                        upstream.write_all(head.as_bytes()).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        (addr, heads)
    }

    fn proxy_at(addr: std::net::SocketAddr) -> Proxy {
        Proxy::parse(
            &format!("http://{addr}"),
            vec![("Proxy-Authorization".into(), "Basic eDp5".into())],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn plain_http_goes_through_the_proxy_in_absolute_form_opc_11() {
        let app = axum::Router::new().route(
            "/v1/metrics",
            axum::routing::post(
                |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let ok = headers.get("x-token").is_some_and(|v| v == "t1")
                        && &body[..] == b"payload";
                    if ok {
                        axum::http::StatusCode::ACCEPTED
                    } else {
                        axum::http::StatusCode::BAD_REQUEST
                    }
                },
            ),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        let (proxy_addr, heads) = test_proxy().await;
        let status = request_via(
            hyper::Method::POST,
            &format!("http://{target}/v1/metrics"),
            &[("X-Token".into(), "t1".into())],
            b"payload".to_vec(),
            None,
            Some(&proxy_at(proxy_addr)),
        )
        .await
        .unwrap();
        assert_eq!(status, 202);
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 1, "{heads:?}");
        let head = heads[0].to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("post http://{target}/v1/metrics http/1.1\r\n")),
            "{head}"
        );
        assert!(head.contains(&format!("\r\nhost: {target}\r\n")), "{head}");
        // The connect headers are for CONNECT only: never passed on to a destination.
        assert!(!head.contains("proxy-authorization"), "{head}");
    }

    /// A CA and a certificate for 127.0.0.1 signed by it: (CA PEM, server config).
    fn test_tls() -> (String, Arc<rustls::ServerConfig>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        (ca_cert.pem(), Arc::new(config))
    }

    #[tokio::test]
    async fn https_goes_through_a_connect_tunnel_with_the_connect_headers_opc_11() {
        use tokio::io::AsyncWriteExt as _;
        let (ca_pem, server_config) = test_tls();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        let inner = Heads::default();
        let seen = Arc::clone(&inner);
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
            while let Ok((tcp, _)) = l.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                if let Some(head) = read_head(&mut tls).await {
                    seen.lock().unwrap().push(head);
                    let _ = tls
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    let _ = tls.shutdown().await;
                }
            }
        });
        let (proxy_addr, heads) = test_proxy().await;
        let tls = opamp_client::tls_client_config(
            Some(&opamp_proto::v1::TlsConnectionSettings {
                ca_pem_contents: ca_pem,
                ..Default::default()
            }),
            None,
        )
        .unwrap();
        let url = format!("https://{target}/v1/metrics");
        let status = request_via(
            hyper::Method::POST,
            &url,
            &[("X-Token".into(), "t1".into())],
            Vec::new(),
            Some(&tls),
            Some(&proxy_at(proxy_addr)),
        )
        .await
        .unwrap();
        assert_eq!(status, 202);
        let head = heads.lock().unwrap()[0].to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("connect {target} http/1.1\r\n")),
            "{head}"
        );
        assert!(head.contains(&format!("\r\nhost: {target}\r\n")), "{head}");
        assert!(
            head.contains(
                "\r\nproxy-authorization: basic eDp5\r\n"
                    .to_ascii_lowercase()
                    .as_str()
            ),
            "{head}"
        );
        // Inside the tunnel: TLS with the destination, an origin-form request.
        let inner = inner.lock().unwrap()[0].to_ascii_lowercase();
        assert!(
            inner.starts_with("post /v1/metrics http/1.1\r\n"),
            "{inner}"
        );
        assert!(inner.contains("\r\nx-token: t1\r\n"), "{inner}");

        // Without the connect header the proxy refuses: the status is the error.
        let bare = Proxy::parse(&format!("{proxy_addr}"), vec![]).unwrap();
        let e = request_via(
            hyper::Method::POST,
            &url,
            &[],
            Vec::new(),
            Some(&tls),
            Some(&bare),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e,
            format!("proxy {proxy_addr}: CONNECT {target}: status 407")
        );
    }
}
