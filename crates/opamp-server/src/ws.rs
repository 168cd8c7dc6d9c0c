//! The WebSocket transport (WS-1..WS-7, WSL-2..WSL-5, DISC-3): one task per connection.
//!
//! Policies:
//! - a request that is neither plain-HTTP OpAMP nor a valid upgrade gets 400 with a short
//!   text explaining both options;
//! - binary messages are decoded with [`opamp_proto::framing`]: header 0 (WS-3), legacy
//!   header-less frames accepted (WS-7), a non-zero header is malformed (WS-4);
//! - the receive limit covers header plus data (WSL-2); an oversized message closes the
//!   connection with **1009** (WSL-3);
//! - a malformed message (text frame (WS-1), non-zero header, bad protobuf) is counted and
//!   logged; when exactly one agent uid is known on the connection it is answered with a
//!   `BAD_REQUEST` error reply for that uid (ERR-1), otherwise no reply is possible (no uid
//!   to echo, requirements §4 item 11). The connection stays open either way;
//! - an outgoing message over the limit is not sent and is counted (WSL-5);
//! - pushes go through a bounded queue per connection: a connection whose queue is full,
//!   or whose write blocks past `write_timeout`, is a slow reader and is closed;
//! - a quiet connection is pinged every `ping_interval`; one that answers nothing within
//!   `pong_timeout` is closed; one that sends no OpAMP message within `idle_timeout` is
//!   closed with 1000;
//! - shutdown closes every connection with **1001** and a close frame, then waits for the
//!   peer's close frame up to `close_timeout` (DISC-3).

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant as StdInstant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use http::StatusCode;
use opamp_proto::framing;
use opamp_proto::v1::{AgentToServer, ServerErrorResponseType, ServerToAgent};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::admission::Permit;
use crate::handler::{ConnectionRequest, Handler, Transport};
use crate::http::{admission_response, connection_request, refusal_response};
use crate::metrics;
use crate::server::{ConnHandle, ConnShared, Inner, Server, close_code};
use crate::session::{ConnectionId, Via};

const USAGE: &str = "This is an OpAMP endpoint. Send each AgentToServer message either as an HTTP \
POST with Content-Type: application/x-protobuf, or over a WebSocket (an HTTP GET upgrade \
request with Connection: Upgrade and Upgrade: websocket).\n";

/// Handles a request that is not plain-HTTP OpAMP: a WebSocket upgrade, or 400.
pub(crate) async fn upgrade<H: Handler>(server: Server<H>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let Ok(upgrade) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        return (StatusCode::BAD_REQUEST, USAGE).into_response();
    };
    let inner = &*server.inner;
    let m = &inner.metrics;
    if inner.shutdown.is_cancelled() {
        return refusal_response(
            m,
            crate::admission::Refusal::Overloaded(inner.config.admission.retry_after),
        );
    }
    let permit = match inner.admission.admit_ws(StdInstant::now()) {
        Ok(permit) => permit,
        Err(refusal) => return refusal_response(m, refusal),
    };
    let id = inner.next_connection_id();
    let connection = Arc::new(connection_request(
        &mut parts,
        Transport::WebSocket,
        Some(id),
    ));
    if let Some(refused) = admission_response(m, inner.handler.on_connecting(&connection).await) {
        return refused;
    }
    let limit = inner.config.max_incoming_message_size;
    let cfg = &inner.config.ws;
    let tracker = inner.tracker.clone();
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(cfg.read_buffer_size)
        .write_buffer_size(cfg.write_buffer_size)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| tracker.track_future(run(server, socket, connection, id, permit)))
}

/// How a connection loop ended.
enum End {
    /// Send a close frame with this code, then wait for the peer's.
    Close(u16, &'static str),
    /// The peer sent a close frame: flush our answer.
    PeerClosed,
    /// The connection is unusable.
    Broken,
}

enum Event {
    Shutdown,
    Killed,
    Push(Option<Bytes>),
    Recv(Option<Result<Message, axum::Error>>),
    Timer,
}

async fn run<H: Handler>(
    server: Server<H>,
    mut socket: WebSocket,
    connection: Arc<ConnectionRequest>,
    id: ConnectionId,
    permit: Permit,
) {
    let inner = &*server.inner;
    let cfg = &inner.config.ws;
    let (tx, mut rx) = mpsc::channel(cfg.send_queue.max(1));
    let shared = Arc::new(ConnShared {
        kill: CancellationToken::new(),
        close_code: AtomicU16::new(0),
    });
    inner.register_connection(
        id,
        ConnHandle {
            tx,
            shared: shared.clone(),
        },
    );
    metrics::inc(&inner.metrics.ws_connections);
    metrics::inc(&inner.metrics.ws_connections_total);
    tracing::debug!(%id, peer = ?connection.peer_addr, "WebSocket connected");

    let end = connection_loop(inner, &mut socket, &connection, id, &shared, &mut rx).await;
    match end {
        End::Close(code, reason) => {
            let _ = tokio::time::timeout(cfg.close_timeout, async {
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                };
                if socket.send(Message::Close(Some(frame))).await.is_err() {
                    return;
                }
                // RFC 6455 closing handshake: wait for the peer's close frame (DISC-3).
                while let Some(Ok(msg)) = socket.recv().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        End::PeerClosed => {
            let _ = tokio::time::timeout(cfg.close_timeout, socket.close()).await;
        }
        End::Broken => {}
    }
    drop(socket);
    inner.unregister_connection(id).await;
    metrics::dec(&inner.metrics.ws_connections);
    drop(permit);
    tracing::debug!(%id, "WebSocket closed");
}

async fn connection_loop<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WebSocket,
    connection: &Arc<ConnectionRequest>,
    id: ConnectionId,
    shared: &ConnShared,
    rx: &mut mpsc::Receiver<Bytes>,
) -> End {
    let cfg = &inner.config.ws;
    let now = Instant::now();
    let mut last_message = now;
    let mut ping_sent: Option<Instant> = None;
    let mut next_ping = now + cfg.ping_interval;
    loop {
        let idle_deadline = cfg.idle_timeout.map(|t| last_message + t);
        let liveness_deadline = ping_sent.map_or(next_ping, |t| t + cfg.pong_timeout);
        let deadline = idle_deadline.map_or(liveness_deadline, |d| d.min(liveness_deadline));
        let event = tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => Event::Shutdown,
            () = shared.kill.cancelled() => Event::Killed,
            frame = rx.recv() => Event::Push(frame),
            msg = socket.recv() => Event::Recv(msg),
            () = sleep_until(deadline) => Event::Timer,
        };
        match event {
            Event::Shutdown => return End::Close(close_code::GOING_AWAY, "server shutting down"),
            Event::Killed => return killed(shared),
            Event::Push(None) => {}
            Event::Push(Some(frame)) => {
                if let Err(end) = send_frame(inner, socket, shared, frame).await {
                    return end;
                }
            }
            Event::Recv(None) => return End::Broken,
            Event::Recv(Some(Err(e))) => {
                if is_too_big(e) {
                    metrics::inc(&inner.metrics.oversized_in);
                    tracing::debug!(%id, "message over the size limit: closing with 1009 (WSL-3)");
                    return End::Close(close_code::TOO_BIG, "message too big");
                }
                return End::Broken;
            }
            Event::Recv(Some(Ok(msg))) => {
                let now = Instant::now();
                ping_sent = None;
                next_ping = now + cfg.ping_interval;
                match msg {
                    Message::Binary(data) => {
                        last_message = now;
                        // Boxed: an idle connection's task stays small; the message path
                        // (decode, handler, reply) only takes memory while it runs.
                        let handling =
                            Box::pin(handle_binary(inner, socket, connection, id, shared, &data));
                        if let Err(end) = handling.await {
                            return end;
                        }
                    }
                    Message::Text(_) => {
                        last_message = now;
                        let reason = "text frames are not OpAMP messages (WS-1)";
                        if let Err(end) =
                            Box::pin(malformed(inner, socket, id, shared, reason)).await
                        {
                            return end;
                        }
                    }
                    Message::Close(_) => return End::PeerClosed,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            Event::Timer => {
                let now = Instant::now();
                if idle_deadline.is_some_and(|d| now >= d) {
                    return End::Close(close_code::NORMAL, "idle timeout");
                }
                match ping_sent {
                    Some(sent) if now >= sent + cfg.pong_timeout => {
                        tracing::debug!(%id, "no answer to ping: closing");
                        return End::Close(close_code::GOING_AWAY, "no pong");
                    }
                    Some(_) => {}
                    None if now >= next_ping => {
                        if let Err(end) =
                            send(inner, socket, shared, Message::Ping(Bytes::new())).await
                        {
                            return end;
                        }
                        ping_sent = Some(now);
                    }
                    None => {}
                }
            }
        }
    }
}

fn killed(shared: &ConnShared) -> End {
    match shared.close_code.load(Ordering::Acquire) {
        close_code::POLICY => End::Close(close_code::POLICY, "disconnected by the server"),
        close_code::TRY_AGAIN_LATER => End::Close(close_code::TRY_AGAIN_LATER, "slow reader"),
        _ => End::Close(close_code::GOING_AWAY, "closed by the server"),
    }
}

fn is_too_big(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

async fn handle_binary<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WebSocket,
    connection: &Arc<ConnectionRequest>,
    id: ConnectionId,
    shared: &ConnShared,
    data: &[u8],
) -> Result<(), End> {
    metrics::add(&inner.metrics.bytes_in, data.len() as u64);
    let msg: AgentToServer = match framing::decode(data, inner.incoming_limits()) {
        Ok(msg) => msg,
        Err(e) if e.is_too_large() => {
            metrics::inc(&inner.metrics.oversized_in);
            return Err(End::Close(close_code::TOO_BIG, "message too big"));
        }
        Err(e) => {
            let reason = format!("malformed message: {e}");
            return malformed(inner, socket, id, shared, &reason).await;
        }
    };
    metrics::inc(&inner.metrics.messages_in);
    for reply in inner.process(Via::Ws(id), &msg, connection).await {
        send_message(inner, socket, shared, &reply).await?;
    }
    Ok(())
}

/// A message that cannot be decoded: counted, answered with BAD_REQUEST when the agent on
/// this connection is unambiguous, never a reason to close (see the module docs).
async fn malformed<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WebSocket,
    id: ConnectionId,
    shared: &ConnShared,
    reason: &str,
) -> Result<(), End> {
    metrics::inc(&inner.metrics.malformed);
    let uid = match inner.lock_session().connection_agents(id) {
        [uid] => Some(*uid),
        _ => None,
    };
    match uid {
        Some(uid) => {
            tracing::debug!(%id, %uid, %reason, "malformed message: BAD_REQUEST");
            let reply =
                ServerToAgent::error(uid.to_vec(), ServerErrorResponseType::BadRequest, reason);
            send_message(inner, socket, shared, &reply).await
        }
        None => {
            tracing::debug!(%id, %reason, "malformed message from a connection with no known uid: not answered");
            Ok(())
        }
    }
}

async fn send_message<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WebSocket,
    shared: &ConnShared,
    msg: &ServerToAgent,
) -> Result<(), End> {
    match inner.encode_ws(msg) {
        Ok(frame) => send_frame(inner, socket, shared, frame).await,
        // Over the limit: not sent, already counted and logged (WSL-5).
        Err(_) => Ok(()),
    }
}

async fn send_frame<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WebSocket,
    shared: &ConnShared,
    frame: Bytes,
) -> Result<(), End> {
    let len = frame.len() as u64;
    send(inner, socket, shared, Message::Binary(frame)).await?;
    metrics::inc(&inner.metrics.messages_out);
    metrics::add(&inner.metrics.bytes_out, len);
    Ok(())
}

/// Sends one frame, giving up when the write blocks past `write_timeout` (a slow reader),
/// the connection is killed or the server shuts down.
async fn send<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WebSocket,
    shared: &ConnShared,
    msg: Message,
) -> Result<(), End> {
    let timeout = inner.config.ws.write_timeout;
    tokio::select! {
        biased;
        () = shared.kill.cancelled() => Err(killed(shared)),
        () = inner.shutdown.cancelled() => Err(End::Broken),
        result = tokio::time::timeout(timeout, socket.send(msg)) => match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Broken),
            Err(_) => {
                metrics::inc(&inner.metrics.dropped_slow_reader);
                tracing::warn!("write blocked past the timeout: closing slow reader");
                Err(End::Broken)
            }
        },
    }
}
