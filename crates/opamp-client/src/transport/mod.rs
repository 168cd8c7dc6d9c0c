//! The two OpAMP transports (WebSocket and plain HTTP), chosen by URL scheme.
//!
//! Each transport turns sockets into the driver inputs of `opamp-agent-fsm`: a decoded
//! `ServerToAgent`, or a [`TransportError`] (HTTP statuses and WebSocket close codes are
//! mapped here, once). They never decide *when* to send or reconnect: that is the FSM's job.

pub(crate) mod http;
pub(crate) mod ws;

use std::time::{Duration, SystemTime};

use ::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use opamp_agent_fsm::TransportError;

use crate::Error;

/// The URL scheme of an OpAMP endpoint, which selects the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Ws,
    Wss,
    Http,
    Https,
}

impl Scheme {
    pub(crate) fn is_tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Https)
    }

    pub(crate) fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }
}

/// A parsed OpAMP endpoint URL.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) uri: Uri,
}

impl Endpoint {
    /// Parses `ws://`, `wss://`, `http://` or `https://` URLs; a missing path becomes `/`.
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|e| Error::InvalidEndpoint(format!("{url:?}: {e}")))?;
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("ws") => Scheme::Ws,
            Some("wss") => Scheme::Wss,
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => {
                return Err(Error::InvalidEndpoint(format!(
                    "{url:?}: the scheme must be ws, wss, http or https"
                )));
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::InvalidEndpoint(format!("{url:?}: no host")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme.is_tls() { 443 } else { 80 });
        Ok(Self {
            scheme,
            host,
            port,
            uri,
        })
    }

    /// The `Host` header value (`host[:port]` as written in the URL).
    pub(crate) fn authority(&self) -> &str {
        self.uri
            .authority()
            .map_or(self.host.as_str(), |a| a.as_str())
    }

    /// The request target (path and query), `/` when empty.
    pub(crate) fn path_and_query(&self) -> &str {
        self.uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
    }
}

/// Converts configured headers into a header map; invalid names or values are an error.
pub(crate) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| Error::InvalidHeader(format!("{name:?}: {e}")))?;
        let v = HeaderValue::from_str(value)
            .map_err(|e| Error::InvalidHeader(format!("{name:?}: {e}")))?;
        map.append(n, v);
    }
    Ok(map)
}

/// Maps an HTTP status that is not a success to the FSM's error (for plain HTTP and for a
/// refused WebSocket upgrade alike):
/// 401 → Unauthorized (CONN-6); 413 → RequestTooLarge (HSL-4); 429 / 503 → Throttled with
/// the `Retry-After` delay, both delta-seconds and HTTP-date (THR-3); anything else → Failed.
pub(crate) fn status_error(status: StatusCode, headers: &HeaderMap) -> TransportError {
    match status {
        StatusCode::UNAUTHORIZED => TransportError::Unauthorized,
        StatusCode::PAYLOAD_TOO_LARGE => TransportError::RequestTooLarge,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            TransportError::Throttled {
                retry_after: retry_after(headers),
            }
        }
        other => TransportError::Failed {
            reason: format!("server answered HTTP {other}"),
        },
    }
}

/// The `Retry-After` header as a delay from now, if present and valid.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(::http::header::RETRY_AFTER)?.to_str().ok()?;
    opamp_agent_fsm::parse_retry_after(value, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_by_scheme() {
        let e = Endpoint::parse("ws://127.0.0.1:4320/v1/opamp").unwrap();
        assert_eq!(e.scheme, Scheme::Ws);
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 4320));
        assert_eq!(e.path_and_query(), "/v1/opamp");
        let e = Endpoint::parse("https://example.com").unwrap();
        assert_eq!(
            (e.scheme, e.port, e.path_and_query()),
            (Scheme::Https, 443, "/")
        );
        let e = Endpoint::parse("WSS://[::1]:9/x?y=1").unwrap();
        assert_eq!((e.scheme, e.host.as_str()), (Scheme::Wss, "::1"));
        assert_eq!(e.path_and_query(), "/x?y=1");
        assert_eq!(e.authority(), "[::1]:9");
        assert!(Endpoint::parse("ftp://x/").is_err());
        assert!(Endpoint::parse("/v1/opamp").is_err());
        assert!(Endpoint::parse("").is_err());
    }

    #[test]
    fn statuses_map_to_transport_errors() {
        let mut h = HeaderMap::new();
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, &h),
            TransportError::Unauthorized
        ));
        assert!(matches!(
            status_error(StatusCode::PAYLOAD_TOO_LARGE, &h),
            TransportError::RequestTooLarge
        ));
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert!(matches!(
            status_error(StatusCode::SERVICE_UNAVAILABLE, &h),
            TransportError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            status_error(StatusCode::INTERNAL_SERVER_ERROR, &h),
            TransportError::Failed { .. }
        ));
    }

    #[test]
    fn bad_header_names_are_rejected() {
        assert!(header_map(&[("bad name".into(), "v".into())]).is_err());
        assert!(header_map(&[("x-ok".into(), "bad\nvalue".into())]).is_err());
        assert_eq!(header_map(&[("x-ok".into(), "v".into())]).unwrap().len(), 1);
    }
}
