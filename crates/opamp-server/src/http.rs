//! The plain-HTTP transport (HTTP-1..HTTP-14, HSL-1..HSL-6).
//!
//! Policies:
//! - only `POST` (405 with `Allow: POST` otherwise);
//! - `Content-Encoding`: none/`identity` or `gzip` (HTTP-10); anything else is 415;
//! - the body is read incrementally and limited **after** decompression: a gzip body is
//!   inflated chunk by chunk with [`opamp_proto::limits::GzipDecoder`], which stops at the
//!   limit, so a gzip bomb never allocates its inflated size (HSL-2). Past the limit the
//!   answer is 413 (HSL-3);
//! - an undecodable body (bad protobuf, corrupt gzip) is answered with **HTTP 400** and a
//!   `ServerToAgent` carrying a `BAD_REQUEST` `error_response` (no uid can be echoed)
//!   (ERR-1, requirements §4 item 11);
//! - a decodable body with an invalid uid gets **200** and `BAD_REQUEST` (UID-10);
//! - every other reply is **200** with `Content-Type: application/x-protobuf` exactly
//!   (HTTP-14), gzipped when `Accept-Encoding` allows it and the reply is at least
//!   `gzip_min_size` bytes (HTTP-12);
//! - a reply over the outgoing limit is not sent: 500, counted (HSL-6).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use opamp_proto::limits::GzipDecoder;
use opamp_proto::prost::Message;
use opamp_proto::v1::{AgentToServer, ServerErrorResponseType, ServerToAgent};

use crate::admission::Refusal;
use crate::handler::{Admission, ConnectionRequest, Handler, Transport};
use crate::metrics::{self, Metrics};
use crate::server::{Inner, Server};
use crate::session::Via;

/// Whether the request is plain-HTTP OpAMP: its media type is `application/x-protobuf`,
/// compared case-insensitively, parameters ignored (HTTP-8).
pub(crate) fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case(opamp_proto::CONTENT_TYPE_PROTOBUF)
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

/// Parses `Content-Encoding`: absent/`identity` or `gzip` (HTTP-10); `None` for anything
/// else (415).
fn content_encoding(headers: &HeaderMap) -> Option<Encoding> {
    let mut encoding = Encoding::Identity;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        for token in value.to_str().ok()?.split(',') {
            match token.trim().to_ascii_lowercase().as_str() {
                "" | "identity" => {}
                "gzip" | "x-gzip" if encoding == Encoding::Identity => encoding = Encoding::Gzip,
                _ => return None,
            }
        }
    }
    Some(encoding)
}

/// Whether `Accept-Encoding` allows gzip (HTTP-12): `gzip` or `*` with a non-zero q-value.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut star = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .or_else(|| p.trim().strip_prefix("Q="))
                })
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => star = Some(q > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// Builds the request description the handler sees.
pub(crate) fn connection_request(
    parts: &mut http::request::Parts,
    transport: Transport,
    connection_id: Option<crate::session::ConnectionId>,
) -> ConnectionRequest {
    let meta = parts.extensions.get::<crate::serve::ConnMeta>();
    let peer_addr = meta.map(|m| m.peer_addr).or_else(|| {
        parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0)
    });
    // hyper parses header values and the URI as slices of its whole read buffer (8-16 KiB),
    // so anything kept for the life of a WebSocket connection must be copied out of it, or
    // that buffer stays allocated per connection. A plain HTTP request is short-lived.
    let (headers, uri) = match transport {
        Transport::WebSocket => (detach_headers(&parts.headers), detach_uri(&parts.uri)),
        Transport::Http => (std::mem::take(&mut parts.headers), parts.uri.clone()),
    };
    ConnectionRequest {
        headers,
        uri,
        peer_addr,
        transport,
        connection_id,
        peer_certificates: meta.and_then(|m| m.peer_certificates.clone()),
    }
}

/// A copy of `headers` that shares no memory with hyper's read buffer.
fn detach_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        out.append(name.clone(), copy);
    }
    out
}

/// A copy of `uri` that shares no memory with hyper's read buffer.
fn detach_uri(uri: &http::Uri) -> http::Uri {
    uri.to_string().parse().unwrap_or_else(|_| uri.clone())
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn with_retry_after(mut response: Response, retry_after: Option<Duration>) -> Response {
    if let Some(delay) = retry_after {
        let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// The response for a refused request (CONN-6, THR-3), counted.
pub(crate) fn admission_response(metrics: &Metrics, admission: Admission) -> Option<Response> {
    match admission {
        Admission::Accept => None,
        Admission::Unauthorized => {
            metrics::inc(&metrics.rejected_unauthorized);
            Some(text(StatusCode::UNAUTHORIZED, "unauthorized\n"))
        }
        Admission::TooManyRequests { retry_after } => {
            metrics::inc(&metrics.rejected_rate);
            Some(with_retry_after(
                text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests, retry later\n",
                ),
                retry_after,
            ))
        }
        Admission::Unavailable { retry_after } => {
            metrics::inc(&metrics.rejected_overload);
            Some(with_retry_after(
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server overloaded, retry later\n",
                ),
                retry_after,
            ))
        }
    }
}

/// The response for a request refused by built-in admission control.
pub(crate) fn refusal_response(metrics: &Metrics, refusal: Refusal) -> Response {
    let admission = match refusal {
        Refusal::Overloaded(d) => Admission::Unavailable {
            retry_after: Some(d),
        },
        Refusal::RateLimited(d) => Admission::TooManyRequests {
            retry_after: Some(d),
        },
    };
    admission_response(metrics, admission)
        .unwrap_or_else(|| text(StatusCode::SERVICE_UNAVAILABLE, "refused\n"))
}

/// Decrements the in-flight gauge on drop.
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        metrics::dec(&self.0.http_in_flight);
    }
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Malformed(String),
    Transport(String),
}

/// Serves one plain-HTTP OpAMP request.
pub(crate) async fn serve<H: Handler>(server: Server<H>, request: Request) -> Response {
    let inner = &*server.inner;
    let m = &inner.metrics;
    if request.method() != Method::POST {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "OpAMP over plain HTTP uses POST (HTTP-1)\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    metrics::inc(&m.http_requests_total);
    let _permit = match inner.admission.admit_http() {
        Ok(permit) => permit,
        Err(refusal) => return refusal_response(m, refusal),
    };
    metrics::inc(&m.http_in_flight);
    let _in_flight = InFlight(m);

    let (mut parts, mut body) = request.into_parts();
    let Some(encoding) = content_encoding(&parts.headers) else {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Encoding: use gzip or none (HTTP-10)\n",
        );
    };
    let gzip_reply = accepts_gzip(&parts.headers);
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let connection = Arc::new(connection_request(&mut parts, Transport::Http, None));
    if let Some(refused) = admission_response(m, inner.handler.on_connecting(&connection).await) {
        return refused;
    }

    let limit = inner.config.max_incoming_message_size;
    let early_too_large =
        encoding == Encoding::Identity && declared_len.is_some_and(|len| len > limit as u64);
    let read = if early_too_large {
        Err(BodyError::TooLarge)
    } else {
        match tokio::time::timeout(
            inner.config.http.body_timeout,
            read_body(&mut body, encoding, limit),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(BodyError::Transport("timed out reading the body".into())),
        }
    };
    let data = match read {
        Ok(data) => data,
        Err(BodyError::TooLarge) => {
            metrics::inc(&m.oversized_in);
            tracing::debug!(limit, "request body over the limit: 413 (HSL-3)");
            let fits_drain =
                declared_len.is_none_or(|len| len <= inner.config.http.drain_limit as u64);
            if fits_drain {
                drain(
                    &mut body,
                    inner.config.http.drain_limit,
                    inner.config.http.body_timeout,
                )
                .await;
            }
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body over the size limit after decompression (HSL-3); do not retry\n",
            );
        }
        Err(BodyError::Malformed(reason)) => {
            metrics::inc(&m.malformed);
            return bad_request(inner, &reason, gzip_reply);
        }
        Err(BodyError::Transport(reason)) => {
            tracing::debug!(%reason, "failed to read request body");
            return text(StatusCode::BAD_REQUEST, "could not read the request body\n");
        }
    };
    metrics::add(&m.bytes_in, data.len() as u64);
    let msg = match AgentToServer::decode(data.as_slice()) {
        Ok(msg) => msg,
        Err(e) => {
            metrics::inc(&m.malformed);
            return bad_request(inner, &format!("malformed AgentToServer: {e}"), gzip_reply);
        }
    };
    metrics::inc(&m.messages_in);
    let reply = inner
        .process(Via::Http, &msg, &connection)
        .await
        .into_iter()
        .next()
        .unwrap_or_default();
    protobuf_response(inner, StatusCode::OK, &reply, gzip_reply)
}

/// 400 with a `BAD_REQUEST` ServerToAgent body: the body could not be decoded, so there is
/// no uid to echo (ERR-1, requirements §4 item 11).
fn bad_request<H: Handler>(inner: &Inner<H>, reason: &str, gzip_reply: bool) -> Response {
    tracing::debug!(%reason, "malformed HTTP request");
    let reply = ServerToAgent::error(Vec::new(), ServerErrorResponseType::BadRequest, reason);
    protobuf_response(inner, StatusCode::BAD_REQUEST, &reply, gzip_reply)
}

fn protobuf_response<H: Handler>(
    inner: &Inner<H>,
    status: StatusCode,
    msg: &ServerToAgent,
    gzip_reply: bool,
) -> Response {
    let encoded = msg.encode_to_vec();
    if inner
        .outgoing_limits()
        .check_outgoing(encoded.len())
        .is_err()
    {
        metrics::inc(&inner.metrics.oversized_out);
        tracing::warn!(
            size = encoded.len(),
            limit = inner.config.max_outgoing_message_size,
            "reply over the outgoing limit: not sent, answering 500 (HSL-6)"
        );
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reply over the server's outgoing size limit (HSL-6)\n",
        );
    }
    metrics::inc(&inner.metrics.messages_out);
    metrics::add(&inner.metrics.bytes_out, encoded.len() as u64);
    let mut builder = Response::builder().status(status).header(
        header::CONTENT_TYPE,
        HeaderValue::from_static(opamp_proto::CONTENT_TYPE_PROTOBUF),
    );
    let body = if gzip_reply && encoded.len() >= inner.config.http.gzip_min_size {
        builder = builder.header(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        opamp_proto::limits::gzip(&encoded)
    } else {
        encoded
    };
    builder
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Reads the body incrementally, decompressing gzip as it arrives, and stops as soon as
/// the decompressed size passes `limit` (HSL-2).
async fn read_body(
    body: &mut Body,
    encoding: Encoding,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut decoder = (encoding == Encoding::Gzip).then(|| GzipDecoder::new(limit));
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Transport(e.to_string()))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        match decoder.as_mut() {
            Some(decoder) => decoder.push(&chunk).map_err(classify)?,
            None => {
                if out.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
    match decoder {
        Some(decoder) => decoder.finish().map_err(classify),
        None => Ok(out),
    }
}

fn classify(e: opamp_proto::Error) -> BodyError {
    if e.is_too_large() {
        BodyError::TooLarge
    } else {
        BodyError::Malformed(format!("invalid gzip body: {e}"))
    }
}

/// Reads and discards up to `max` more bytes, so that the client, still sending, reads
/// the error response instead of a connection reset.
async fn drain(body: &mut Body, max: usize, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(chunk) = frame.into_data() {
                seen += chunk.len();
                if seen > max {
                    break;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn websocket_connection_request_shares_no_memory_with_the_request() {
        let buffer = bytes::Bytes::from_static(b"secret-tokenagent-1");
        let mut request = http::Request::builder()
            .uri("/v1/opamp?fleet=a")
            .body(())
            .unwrap();
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_maybe_shared(buffer.slice(0..12)).unwrap(),
        );
        request.headers_mut().append(
            "x-agent",
            HeaderValue::from_maybe_shared(buffer.slice(12..)).unwrap(),
        );
        let (mut parts, ()) = request.into_parts();
        let original = parts.headers.clone();
        let conn = connection_request(&mut parts, Transport::WebSocket, None);
        assert_eq!(conn.headers, original);
        assert_eq!(conn.uri, "/v1/opamp?fleet=a");
        let range = buffer.as_ptr_range();
        for value in conn.headers.values() {
            assert!(!range.contains(&value.as_bytes().as_ptr()));
        }
    }

    #[test]
    fn protobuf_media_type_ignores_case_and_parameters_http_8() {
        assert!(is_protobuf(&headers(&[(
            "content-type",
            "application/x-protobuf"
        )])));
        assert!(is_protobuf(&headers(&[(
            "content-type",
            "Application/X-Protobuf; charset=binary"
        )])));
        assert!(!is_protobuf(&headers(&[(
            "content-type",
            "application/json"
        )])));
        assert!(!is_protobuf(&headers(&[(
            "content-type",
            "application/x-protobuffer"
        )])));
        assert!(!is_protobuf(&HeaderMap::new()));
    }

    #[test]
    fn content_encoding_accepts_gzip_and_identity_only_http_10() {
        assert_eq!(
            content_encoding(&HeaderMap::new()),
            Some(Encoding::Identity)
        );
        assert_eq!(
            content_encoding(&headers(&[("content-encoding", "GZIP")])),
            Some(Encoding::Gzip)
        );
        assert_eq!(
            content_encoding(&headers(&[("content-encoding", "identity")])),
            Some(Encoding::Identity)
        );
        assert_eq!(
            content_encoding(&headers(&[("content-encoding", "br")])),
            None
        );
        assert_eq!(
            content_encoding(&headers(&[("content-encoding", "gzip, gzip")])),
            None
        );
    }

    #[test]
    fn accept_encoding_q_values_http_12() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip")])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br, gzip;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[(
            "accept-encoding",
            "*, gzip;q=0"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
