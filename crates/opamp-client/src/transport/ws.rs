//! WebSocket transport (WS-1..WS-7, WSL-4, WSL-6, DISC-2).
//!
//! Every message sent is `0x00` + protobuf (WS-3). Received binary messages are decoded with
//! [`opamp_proto::framing`], which also accepts legacy header-less frames (WS-7). A text
//! frame, a non-zero header or undecodable protobuf is malformed: that message is dropped
//! and the connection stays up. A message over the limit closes the connection with 1009
//! (WSL-4). permessage-deflate is not offered: tungstenite does not implement it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use http::header::{HOST, USER_AGENT};
use opamp_agent_fsm::TransportError;
use opamp_proto::{Limits, framing, v1};
use rustls::ClientConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use super::http::USER_AGENT_VALUE;
use super::{Endpoint, status_error};
use crate::tls::{self, Stream};

/// What one read from the WebSocket produced.
#[derive(Debug)]
pub(crate) enum WsIncoming {
    /// A well-formed `ServerToAgent`.
    Message(Box<v1::ServerToAgent>),
    /// A malformed message that was dropped; the connection stays up (WS-1, WS-4).
    Malformed(String),
    /// A message over the receive limit: the caller closes with 1009 (WSL-4).
    TooLarge(String),
    /// The connection ended (closed by the server, or broken).
    Closed(TransportError),
}

/// An open OpAMP WebSocket connection.
pub(crate) struct WsConnection {
    ws: WebSocketStream<Stream>,
    limits: Limits,
}

impl std::fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnection").finish_non_exhaustive()
    }
}

/// Opens a WebSocket to `endpoint` (a `ws` or `wss` URL), sending `headers` on the upgrade
/// request (OPC-7). A refused upgrade maps its HTTP status like plain HTTP does (401, 429 /
/// 503 with Retry-After, CONN-6, THR-3).
pub(crate) async fn connect(
    endpoint: &Endpoint,
    headers: &HeaderMap,
    tls_config: Option<Arc<ClientConfig>>,
    limits: Limits,
    timeout: Duration,
) -> Result<WsConnection, TransportError> {
    let fut = async {
        let stream = tls::connect(
            &endpoint.host,
            endpoint.port,
            tls_config.filter(|_| endpoint.scheme.is_tls()),
        )
        .await
        .map_err(|e| TransportError::Failed {
            reason: format!("connecting to {}: {e}", endpoint.uri),
        })?;
        let mut request = http::Request::builder()
            .method(http::Method::GET)
            .uri(endpoint.uri.clone())
            .body(())
            .map_err(|e| TransportError::Failed {
                reason: format!("building the upgrade request: {e}"),
            })?;
        let h = request.headers_mut();
        for (name, value) in headers {
            h.append(name.clone(), value.clone());
        }
        if let Ok(host) = http::HeaderValue::from_str(endpoint.authority()) {
            h.insert(HOST, host);
        }
        if !h.contains_key(USER_AGENT) {
            h.insert(USER_AGENT, http::HeaderValue::from_static(USER_AGENT_VALUE));
        }
        for (name, value) in [
            ("connection", "Upgrade".to_owned()),
            ("upgrade", "websocket".to_owned()),
            ("sec-websocket-version", "13".to_owned()),
            ("sec-websocket-key", generate_key()),
        ] {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        // The limit covers header plus data (WSL-1); tungstenite enforces it while reading,
        // before a too-large message is buffered.
        let config = WebSocketConfig::default()
            .max_message_size(Some(limits.max_message_size))
            .max_frame_size(Some(limits.max_message_size));
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map_err(handshake_error)?;
        Ok(WsConnection { ws, limits })
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(TransportError::Failed {
            reason: format!("WebSocket connect timed out after {timeout:?}"),
        }),
    }
}

fn handshake_error(e: WsError) -> TransportError {
    match e {
        WsError::Http(response) => status_error(response.status(), response.headers()),
        other => TransportError::Failed {
            reason: format!("WebSocket handshake failed: {other}"),
        },
    }
}

impl WsConnection {
    /// Sends one `AgentToServer` as `0x00` + protobuf (WS-2, WS-3). The caller has checked
    /// the size limit (WSL-6).
    pub(crate) async fn send(&mut self, msg: &v1::AgentToServer) -> Result<(), TransportError> {
        let frame = framing::encode(msg);
        self.ws
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|e| TransportError::ConnectionLost {
                reason: format!("WebSocket send failed: {e}"),
            })
    }

    /// Waits for the next OpAMP message or the end of the connection. Cancel-safe: nothing
    /// is lost if the future is dropped before it completes.
    pub(crate) async fn recv(&mut self) -> WsIncoming {
        loop {
            let Some(item) = self.ws.next().await else {
                return WsIncoming::Closed(TransportError::ConnectionLost {
                    reason: "connection closed".into(),
                });
            };
            match item {
                Ok(Message::Binary(data)) => {
                    return match framing::decode::<v1::ServerToAgent>(&data, self.limits) {
                        Ok(msg) => WsIncoming::Message(Box::new(msg)),
                        Err(e) if e.is_too_large() => WsIncoming::TooLarge(e.to_string()),
                        Err(e) => WsIncoming::Malformed(e.to_string()),
                    };
                }
                Ok(Message::Text(_)) => {
                    return WsIncoming::Malformed(
                        "text frame (OpAMP uses binary only, WS-1)".into(),
                    );
                }
                Ok(Message::Close(frame)) => {
                    let reason = match frame {
                        Some(f) => {
                            format!("closed by the server: {} {}", u16::from(f.code), f.reason)
                        }
                        None => "closed by the server".to_owned(),
                    };
                    return WsIncoming::Closed(TransportError::ConnectionLost { reason });
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                    return WsIncoming::TooLarge(format!(
                        "message of {size} bytes over the limit of {max_size} bytes"
                    ));
                }
                Err(e) => {
                    return WsIncoming::Closed(TransportError::ConnectionLost {
                        reason: format!("WebSocket error: {e}"),
                    });
                }
            }
        }
    }

    /// Closes with 1009 "message too big" after an oversized message (WSL-4). Best effort:
    /// the read side is already unusable, so the server's Close is not awaited.
    pub(crate) async fn close_too_big(mut self) {
        let frame = CloseFrame {
            code: CloseCode::Size,
            reason: "message too big".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ws.close(Some(frame))).await;
    }

    /// The client-initiated close handshake (DISC-2, RFC 6455 §7): send Close 1000, then
    /// read until the server's Close (or `wait` elapses), then drop the TCP connection.
    pub(crate) async fn close(mut self, wait: Duration) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let handshake = async {
            if self.ws.close(Some(frame)).await.is_err() {
                return;
            }
            while let Some(Ok(_)) = self.ws.next().await {}
        };
        let _ = tokio::time::timeout(wait, handshake).await;
    }
}
