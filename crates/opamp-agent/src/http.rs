//! A minimal HTTP/1.1 client for health checks and own metrics: one connection per request
//! (at most one every few seconds), hyper's client connection over TCP or over rustls with
//! opamp-client's TLS configuration. Nothing is pooled, so nothing is held between requests.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
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
    let u = Url::parse(url)?;
    let tcp = TcpStream::connect((u.host.as_str(), u.port))
        .await
        .map_err(|e| format!("connect {}: {e}", u.authority))?;
    let _ = tcp.set_nodelay(true);
    if !u.tls {
        return exchange(tcp, &u, method, headers, body).await;
    }
    let config = match tls {
        Some(c) => Arc::clone(c),
        None => opamp_client::tls_client_config(None, None).map_err(|e| e.to_string())?,
    };
    let name = ServerName::try_from(u.host.clone()).map_err(|e| format!("{}: {e}", u.host))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {}: {e}", u.authority))?;
    exchange(stream, &u, method, headers, body).await
}

async fn exchange<S>(
    io: S,
    u: &Url,
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
        .uri(u.path.as_str())
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
}
