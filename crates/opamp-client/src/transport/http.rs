//! Plain HTTP transport (HTTP-1..HTTP-15, HSL-4, HSL-5, HSL-7).
//!
//! One `POST` per `AgentToServer`, one `ServerToAgent` per response, at most one request in
//! flight (HTTP-6: [`HttpTransport::exchange`] takes `&mut self`). The HTTP/1.1 connection is
//! kept alive between polls (HTTP-15) and reopened when the server closed it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT,
};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use opamp_agent_fsm::TransportError;
use opamp_proto::limits::{GzipDecoder, gzip};
use opamp_proto::prost::Message as _;
use opamp_proto::{CONTENT_TYPE_PROTOBUF, INSTANCE_UID_HEADER, InstanceUid, Limits, v1};
use rustls::ClientConfig;

use super::{Endpoint, status_error};
use crate::tls;

/// The `User-Agent` of every request and WebSocket upgrade.
pub(crate) const USER_AGENT_VALUE: &str = concat!("opamp-rs/", env!("CARGO_PKG_VERSION"));

/// Options of the HTTP transport.
#[derive(Clone, Debug)]
pub(crate) struct HttpOptions {
    /// Gzip request bodies (HTTP-9).
    pub(crate) gzip_requests: bool,
    /// Size limit for both directions (HSL-1).
    pub(crate) limits: Limits,
    /// Deadline for connecting plus the whole exchange.
    pub(crate) request_timeout: Duration,
}

/// A plain-HTTP OpAMP client for one endpoint.
pub(crate) struct HttpTransport {
    endpoint: Endpoint,
    headers: HeaderMap,
    tls: Option<Arc<ClientConfig>>,
    options: HttpOptions,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("endpoint", &self.endpoint.uri)
            .field("connected", &self.sender.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport for `endpoint` (an `http` or `https` URL), sending `headers` on every
    /// POST (OPC-7).
    pub(crate) fn new(
        endpoint: Endpoint,
        headers: HeaderMap,
        tls: Option<Arc<ClientConfig>>,
        options: HttpOptions,
    ) -> Self {
        Self {
            endpoint,
            headers,
            tls,
            options,
            sender: None,
        }
    }

    /// Sends one `AgentToServer` and returns the server's reply.
    ///
    /// The body is checked against the limit before compression (HSL-7): the caller checks
    /// first; here it is a last line of defence and returns `RequestTooLarge` without
    /// sending. The `OpAMP-Instance-UID` header carries `uid` (HTTP-11, UID-6).
    pub(crate) async fn exchange(
        &mut self,
        msg: &v1::AgentToServer,
        uid: InstanceUid,
    ) -> Result<v1::ServerToAgent, TransportError> {
        let body = msg.encode_to_vec();
        if self.options.limits.check_outgoing(body.len()).is_err() {
            return Err(TransportError::RequestTooLarge);
        }
        let body = if self.options.gzip_requests {
            Bytes::from(gzip(&body))
        } else {
            Bytes::from(body)
        };
        let timeout = self.options.request_timeout;
        match tokio::time::timeout(timeout, self.exchange_inner(body, uid)).await {
            Ok(result) => result,
            Err(_) => {
                self.sender = None;
                Err(TransportError::Failed {
                    reason: format!("no response within {timeout:?}"),
                })
            }
        }
    }

    async fn exchange_inner(
        &mut self,
        body: Bytes,
        uid: InstanceUid,
    ) -> Result<v1::ServerToAgent, TransportError> {
        // A kept-alive connection may have been closed by the server since the last poll;
        // one retry on a fresh connection covers that race (ERR-5 allows the resend).
        let reused = self.sender.as_ref().is_some_and(|s| !s.is_closed());
        let response = match self.send_once(body.clone(), uid).await {
            Ok(r) => r,
            Err(e) if reused => {
                tracing::debug!("request on a kept-alive connection failed ({e:?}); retrying once");
                self.sender = None;
                self.send_once(body, uid).await?
            }
            Err(e) => return Err(e),
        };
        let (parts, body) = response.into_parts();
        if parts.status != StatusCode::OK {
            // Do not read error bodies; a fresh connection next time keeps framing simple.
            self.sender = None;
            return Err(status_error(parts.status, &parts.headers));
        }
        match read_body(&parts.headers, body, self.options.limits).await {
            Ok(bytes) => v1::ServerToAgent::decode(bytes.as_slice()).map_err(|e| {
                TransportError::MalformedResponse {
                    reason: format!("undecodable ServerToAgent: {e}"),
                }
            }),
            Err(e) => {
                // The rest of the body was not read: the connection cannot be reused.
                self.sender = None;
                Err(e)
            }
        }
    }

    async fn send_once(
        &mut self,
        body: Bytes,
        uid: InstanceUid,
    ) -> Result<hyper::Response<hyper::body::Incoming>, TransportError> {
        let sender = match self.sender.as_mut() {
            Some(s) if !s.is_closed() => s,
            _ => {
                let stream = tls::connect(
                    &self.endpoint.host,
                    self.endpoint.port,
                    self.tls.clone().filter(|_| self.endpoint.scheme.is_tls()),
                )
                .await
                .map_err(|e| TransportError::Failed {
                    reason: format!("connecting to {}: {e}", self.endpoint.uri),
                })?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| TransportError::Failed {
                        reason: format!("HTTP handshake: {e}"),
                    })?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("HTTP connection ended: {e}");
                    }
                });
                self.sender.insert(sender)
            }
        };
        sender.ready().await.map_err(|e| TransportError::Failed {
            reason: format!("HTTP connection not ready: {e}"),
        })?;
        let request = build_request(
            &self.endpoint,
            &self.headers,
            uid,
            self.options.gzip_requests,
            body,
        )?;
        sender
            .send_request(request)
            .await
            .map_err(|e| TransportError::Failed {
                reason: format!("HTTP request failed: {e}"),
            })
    }
}

fn build_request(
    endpoint: &Endpoint,
    custom: &HeaderMap,
    uid: InstanceUid,
    gzipped: bool,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, TransportError> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(endpoint.path_and_query())
        .body(Full::new(body))
        .map_err(|e| TransportError::Failed {
            reason: format!("building the request: {e}"),
        })?;
    let headers = request.headers_mut();
    // Custom headers first, so that the protocol headers below always win (OPC-7).
    for (name, value) in custom {
        headers.append(name.clone(), value.clone());
    }
    if let Ok(host) = HeaderValue::from_str(endpoint.authority()) {
        headers.insert(HOST, host);
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE_PROTOBUF),
    );
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    if gzipped {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    } else {
        headers.remove(CONTENT_ENCODING);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    }
    if let Ok(v) = HeaderValue::from_str(&uid.to_string()) {
        headers.insert(INSTANCE_UID_HEADER, v);
    }
    Ok(request)
}

/// Reads a response body under the limit, gunzipping when `Content-Encoding: gzip`; the
/// limit applies after decompression (HSL-5). Over the limit the response is discarded.
async fn read_body(
    headers: &HeaderMap,
    mut body: hyper::body::Incoming,
    limits: Limits,
) -> Result<Vec<u8>, TransportError> {
    let limit = limits.max_message_size;
    let too_large = || TransportError::MalformedResponse {
        reason: format!("response body over the limit of {limit} bytes; discarded (HSL-5)"),
    };
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let mut decoder = match encoding.as_deref() {
        None | Some("" | "identity") => None,
        Some("gzip" | "x-gzip") => Some(GzipDecoder::new(limit)),
        Some(other) => {
            return Err(TransportError::MalformedResponse {
                reason: format!("unsupported response Content-Encoding {other:?}"),
            });
        }
    };
    if decoder.is_none() {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
    }
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| TransportError::Failed {
            reason: format!("reading the response body: {e}"),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match decoder.as_mut() {
            Some(d) => d.push(&data).map_err(|e| {
                if e.is_too_large() {
                    too_large()
                } else {
                    TransportError::MalformedResponse {
                        reason: format!("response body: {e}"),
                    }
                }
            })?,
            None => {
                if buf.len() + data.len() > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    match decoder {
        Some(d) => d.finish().map_err(|e| {
            if e.is_too_large() {
                too_large()
            } else {
                TransportError::MalformedResponse {
                    reason: format!("response body: {e}"),
                }
            }
        }),
        None => Ok(buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_protocol_headers_http_7_http_9_http_11() {
        let e = Endpoint::parse("http://127.0.0.1:1/v1/opamp").unwrap();
        let mut custom = HeaderMap::new();
        custom.insert("authorization", HeaderValue::from_static("Bearer x"));
        custom.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let uid: InstanceUid = "018f3a5e-7dec-71d0-a765-00a0c91e6bf6".parse().unwrap();
        let r = build_request(&e, &custom, uid, true, Bytes::new()).unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri(), "/v1/opamp");
        let h = r.headers();
        assert_eq!(h[CONTENT_TYPE], CONTENT_TYPE_PROTOBUF);
        assert_eq!(h[CONTENT_ENCODING], "gzip");
        assert_eq!(h[ACCEPT_ENCODING], "gzip");
        assert_eq!(h["authorization"], "Bearer x");
        assert_eq!(
            h[INSTANCE_UID_HEADER],
            "018f3a5e-7dec-71d0-a765-00a0c91e6bf6"
        );
        assert_eq!(h[HOST], "127.0.0.1:1");
        let r = build_request(&e, &custom, uid, false, Bytes::new()).unwrap();
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
    }
}
