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
//!   peer's close frame up to `close_timeout` (DISC-3);
//! - a frame that breaks RFC 6455 (unmasked, reserved bits, bad fragmentation, oversized or
//!   fragmented control frame, bad close code) closes with **1002**, a close reason that is
//!   not UTF-8 with **1007**.
//!
//! Memory: the upgrade is done here (`hyper::upgrade::on`) and the upgraded IO is driven by
//! the sans-IO codec in [`frame`], not by a WebSocket library with per-connection read and
//! write buffers. Reads go through a buffer on the stack of the read call; a message's
//! buffer exists only while that message is in flight; each outgoing frame is written
//! straight from the encoded message, which is dropped after the write. An idle connection
//! therefore holds no message buffer at all, whatever the size of the last message.

mod frame;

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant as StdInstant;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use opamp_proto::framing;
use opamp_proto::v1::{AgentToServer, ServerErrorResponseType, ServerToAgent};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, sleep_until};

use self::frame::{Decoder, Event as Frame, opcode};
use crate::admission::Permit;
use crate::handler::{ConnectionRequest, Handler, Transport};
use crate::http::{admission_response, connection_request, refusal_response};
use crate::metrics;
use crate::server::{ConnHandle, ConnShared, Inner, Server, Wake, close_code};
use crate::session::{ConnectionId, Via};

const USAGE: &str = "This is an OpAMP endpoint. Send each AgentToServer message either as an HTTP \
POST with Content-Type: application/x-protobuf, or over a WebSocket (an HTTP GET upgrade \
request with Connection: Upgrade and Upgrade: websocket).\n";

/// The most read from the socket at once: the size of a buffer on the stack of each read
/// call, never kept per connection.
const MAX_READ: usize = 16 * 1024;

/// A valid WebSocket upgrade request (RFC 6455 §4.2.1; RFC 8441 for HTTP/2).
struct Handshake {
    /// `Sec-WebSocket-Key` over HTTP/1.1; `None` over HTTP/2 (extended CONNECT).
    key: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
}

impl Handshake {
    /// Checks the request the way a WebSocket server must: over HTTP/1.1 a `GET` with
    /// `Connection: upgrade`, `Upgrade: websocket` and a `Sec-WebSocket-Key`; over HTTP/2 a
    /// `CONNECT` with the `websocket` protocol; `Sec-WebSocket-Version: 13` in both.
    fn from_parts(parts: &mut http::request::Parts) -> Option<Self> {
        let key = if parts.version <= Version::HTTP_11 {
            if parts.method != Method::GET
                || !header_has_token(&parts.headers, header::CONNECTION, "upgrade")
                || !header_is(&parts.headers, header::UPGRADE, "websocket")
            {
                return None;
            }
            Some(parts.headers.get(header::SEC_WEBSOCKET_KEY)?.clone())
        } else {
            let protocol = parts.extensions.get::<hyper::ext::Protocol>()?;
            if parts.method != Method::CONNECT || protocol.as_str() != "websocket" {
                return None;
            }
            None
        };
        if !header_is(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return None;
        }
        let on_upgrade = parts.extensions.remove::<OnUpgrade>()?;
        Some(Self { key, on_upgrade })
    }

    /// The response that completes the handshake: 101 with `Sec-WebSocket-Accept` over
    /// HTTP/1.1, 200 over HTTP/2. No subprotocol or extension is selected.
    fn response(key: Option<&HeaderValue>) -> Response {
        let Some(key) = key else {
            return Response::new(Body::empty());
        };
        let accept = frame::accept_key(key.as_bytes());
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

fn header_is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Handles a request that is not plain-HTTP OpAMP: a WebSocket upgrade, or 400.
pub(crate) async fn upgrade<H: Handler>(server: Server<H>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let Some(handshake) = Handshake::from_parts(&mut parts) else {
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
    let response = Handshake::response(handshake.key.as_ref());
    let on_upgrade = handshake.on_upgrade;
    let tracker = inner.tracker.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = Socket::new(
                    TokioIo::new(upgraded),
                    server.inner.config.max_incoming_message_size,
                    server.inner.config.ws.read_buffer_size,
                );
                tracker
                    .track_future(run(server, socket, connection, id, permit))
                    .await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    response
}

/// The WebSocket connection: the upgraded IO and the frame decoder. It keeps no read or
/// write buffer: reads go through a stack buffer into the [`Decoder`] (which holds a
/// message only while it is in flight), and each frame is written from the caller's bytes.
struct Socket<S> {
    io: S,
    decoder: Decoder,
    /// Decoded events not yet handed out (one read may carry several frames).
    events: VecDeque<Frame>,
    read_size: usize,
    /// A write was interrupted mid-frame: nothing more may be written.
    torn: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    fn new(io: S, max_message: usize, read_size: usize) -> Self {
        Self {
            io,
            decoder: Decoder::new(max_message),
            events: VecDeque::new(),
            read_size: read_size.clamp(1, MAX_READ),
            torn: false,
        }
    }

    /// The next event from the peer; `None` at the end of the stream. Cancel-safe: a read
    /// and its decoding happen within one poll.
    async fn recv(&mut self) -> Option<io::Result<Frame>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                if self.events.is_empty() {
                    self.events = VecDeque::new();
                }
                return Some(Ok(event));
            }
            match std::future::poll_fn(|cx| self.poll_read(cx)).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Reads once into a stack buffer and decodes what arrived. `false` at end of stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut storage = [MaybeUninit::<u8>::uninit(); MAX_READ];
        let mut buf = ReadBuf::uninit(&mut storage[..self.read_size]);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        if buf.filled().is_empty() {
            return Poll::Ready(Ok(false));
        }
        self.decoder.decode(buf.filled(), &mut self.events);
        Poll::Ready(Ok(true))
    }

    /// Writes one unfragmented frame and flushes it.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        if self.torn {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let (header, len) = frame::header(opcode, payload.len());
        let mut bytes = (&header[..len]).chain(payload);
        self.torn = true;
        self.io.write_all_buf(&mut bytes).await?;
        self.io.flush().await?;
        self.torn = false;
        Ok(())
    }

    /// Sends a close frame (RFC 6455 §5.5.1).
    async fn send_close(&mut self, code: Option<u16>, reason: &str) -> io::Result<()> {
        let payload = code.map_or_else(Vec::new, |code| frame::close_payload(code, reason));
        self.send(opcode::CLOSE, &payload).await
    }
}

/// How a connection loop ended.
enum End {
    /// Send a close frame with this code, then wait for the peer's.
    Close(u16, &'static str),
    /// The peer sent a close frame (with this code): answer it and close.
    PeerClosed(Option<u16>),
    /// The connection is unusable.
    Broken,
}

enum Event {
    Shutdown,
    Killed(u16),
    Push(Bytes),
    Recv(Option<io::Result<Frame>>),
    Timer,
}

type WsSocket = Socket<TokioIo<Upgraded>>;

async fn run<H: Handler>(
    server: Server<H>,
    mut socket: WsSocket,
    connection: Arc<ConnectionRequest>,
    id: ConnectionId,
    permit: Permit,
) {
    let inner = &*server.inner;
    let cfg = &inner.config.ws;
    let shared = Arc::new(ConnShared::default());
    inner.register_connection(
        id,
        ConnHandle {
            shared: shared.clone(),
        },
    );
    metrics::inc(&inner.metrics.ws_connections);
    metrics::inc(&inner.metrics.ws_connections_total);
    tracing::debug!(%id, peer = ?connection.peer_addr, "WebSocket connected");

    let end = connection_loop(inner, &mut socket, &connection, id, &shared).await;
    shared.close();
    Box::pin(close(&mut socket, end, cfg.close_timeout)).await;
    drop(socket);
    // Boxed, like every path an idle connection is not waiting in: the task's future is
    // as large as its largest state, and it lives as long as the connection.
    Box::pin(inner.unregister_connection(id)).await;
    metrics::dec(&inner.metrics.ws_connections);
    drop(permit);
    tracing::debug!(%id, "WebSocket closed");
}

/// The closing handshake (RFC 6455 §7, DISC-3), bounded by `timeout`.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut Socket<S>,
    end: End,
    timeout: std::time::Duration,
) {
    let _ = tokio::time::timeout(timeout, async {
        match end {
            End::Close(code, reason) => {
                if socket.send_close(Some(code), reason).await.is_err() {
                    return;
                }
                // Wait for the peer's close frame (or the end of the stream); anything
                // else is dropped.
                while let Some(Ok(event)) = socket.recv().await {
                    if matches!(event, Frame::Close(_)) {
                        break;
                    }
                }
            }
            End::PeerClosed(code) => {
                // Echo the peer's status code (RFC 6455 §5.5.1).
                if socket.send_close(code, "").await.is_err() {
                    return;
                }
            }
            End::Broken => return,
        }
        // The server closes the TCP connection first (RFC 6455 §7.1.1).
        let _ = socket.io.shutdown().await;
    })
    .await;
}

async fn connection_loop<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WsSocket,
    connection: &Arc<ConnectionRequest>,
    id: ConnectionId,
    shared: &ConnShared,
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
            wake = shared.next() => match wake {
                Wake::Killed(code) => Event::Killed(code),
                Wake::Push(frame) => Event::Push(frame),
            },
            event = socket.recv() => Event::Recv(event),
            () = sleep_until(deadline) => Event::Timer,
        };
        match event {
            Event::Shutdown => return End::Close(close_code::GOING_AWAY, "server shutting down"),
            Event::Killed(code) => return killed(code),
            Event::Push(frame) => {
                if let Err(end) = Box::pin(send_frame(inner, socket, shared, &frame)).await {
                    return end;
                }
            }
            Event::Recv(None | Some(Err(_))) => return End::Broken,
            Event::Recv(Some(Ok(event))) => {
                let now = Instant::now();
                ping_sent = None;
                next_ping = now + cfg.ping_interval;
                match event {
                    Frame::Binary(data) => {
                        last_message = now;
                        // Boxed: an idle connection's task stays small; the message path
                        // (decode, handler, reply) only takes memory while it runs.
                        let handling =
                            Box::pin(handle_binary(inner, socket, connection, id, shared, &data));
                        if let Err(end) = handling.await {
                            return end;
                        }
                    }
                    Frame::Text => {
                        last_message = now;
                        let reason = "text frames are not OpAMP messages (WS-1)";
                        if let Err(end) =
                            Box::pin(malformed(inner, socket, id, shared, reason)).await
                        {
                            return end;
                        }
                    }
                    Frame::Ping(payload) => {
                        let pong = Box::pin(send(inner, socket, shared, opcode::PONG, &payload));
                        if let Err(end) = pong.await {
                            return end;
                        }
                    }
                    Frame::Pong => {}
                    Frame::Close(code) => return End::PeerClosed(code),
                    Frame::Fault(fault) => {
                        if fault == frame::Fault::TooBig {
                            metrics::inc(&inner.metrics.oversized_in);
                            tracing::debug!(%id, "message over the size limit: closing with 1009 (WSL-3)");
                        } else {
                            tracing::debug!(%id, reason = fault.reason(), "WebSocket protocol error");
                        }
                        return End::Close(fault.close_code(), fault.reason());
                    }
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
                        let ping = Box::pin(send(inner, socket, shared, opcode::PING, &[]));
                        if let Err(end) = ping.await {
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

fn killed(code: u16) -> End {
    match code {
        close_code::POLICY => End::Close(close_code::POLICY, "disconnected by the server"),
        close_code::TRY_AGAIN_LATER => End::Close(close_code::TRY_AGAIN_LATER, "slow reader"),
        _ => End::Close(close_code::GOING_AWAY, "closed by the server"),
    }
}

async fn handle_binary<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WsSocket,
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
    socket: &mut WsSocket,
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
    socket: &mut WsSocket,
    shared: &ConnShared,
    msg: &ServerToAgent,
) -> Result<(), End> {
    match inner.encode_ws(msg) {
        Ok(frame) => send_frame(inner, socket, shared, &frame).await,
        // Over the limit: not sent, already counted and logged (WSL-5).
        Err(_) => Ok(()),
    }
}

async fn send_frame<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WsSocket,
    shared: &ConnShared,
    frame: &[u8],
) -> Result<(), End> {
    let len = frame.len() as u64;
    send(inner, socket, shared, opcode::BINARY, frame).await?;
    metrics::inc(&inner.metrics.messages_out);
    metrics::add(&inner.metrics.bytes_out, len);
    Ok(())
}

/// Sends one frame, giving up when the write blocks past `write_timeout` (a slow reader),
/// the connection is killed or the server shuts down.
async fn send<H: Handler>(
    inner: &Inner<H>,
    socket: &mut WsSocket,
    shared: &ConnShared,
    opcode: u8,
    payload: &[u8],
) -> Result<(), End> {
    let timeout = inner.config.ws.write_timeout;
    tokio::select! {
        biased;
        code = shared.until_killed() => Err(killed(code)),
        () = inner.shutdown.cancelled() => Err(End::Broken),
        result = tokio::time::timeout(timeout, socket.send(opcode, payload)) => match result {
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::frame::client_frame;
    use super::*;

    const MASK: [u8; 4] = [9, 8, 7, 6];

    #[tokio::test]
    async fn idle_socket_holds_no_message_buffers_after_a_large_exchange() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut socket = Socket::new(server, 1 << 20, 1024);
        let report = vec![0x5A; 4600];
        // Two messages in one write: the second waits in the event queue.
        let mut input = client_frame(true, opcode::BINARY, &report, MASK);
        input.extend(client_frame(true, opcode::BINARY, b"hb", MASK));
        client.write_all(&input).await.unwrap();
        assert_eq!(socket.recv().await.unwrap().unwrap(), Frame::Binary(report));
        assert_eq!(
            socket.recv().await.unwrap().unwrap(),
            Frame::Binary(b"hb".to_vec())
        );
        assert_eq!(socket.decoder.buffered_capacity(), 0);
        assert_eq!(socket.events.capacity(), 0);

        socket.send(opcode::BINARY, &[7; 3000]).await.unwrap();
        let mut head = [0u8; 4];
        client.read_exact(&mut head).await.unwrap();
        assert_eq!(
            head,
            [0x82, 126, 0x0B, 0xB8],
            "unmasked, FIN, 16-bit length"
        );
        let mut body = vec![0u8; 3000];
        client.read_exact(&mut body).await.unwrap();
        assert!(body.iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn close_echoes_the_peer_code_then_shuts_down_disc_3() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut socket = Socket::new(server, 1024, 1024);
        let bye = frame::close_payload(1001, "going");
        client
            .write_all(&client_frame(true, opcode::CLOSE, &bye, MASK))
            .await
            .unwrap();
        let Frame::Close(code) = socket.recv().await.unwrap().unwrap() else {
            panic!("close expected");
        };
        assert_eq!(code, Some(1001));
        close(
            &mut socket,
            End::PeerClosed(code),
            std::time::Duration::from_secs(10),
        )
        .await;
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, [0x88, 2, 0x03, 0xE9]);
    }

    #[tokio::test]
    async fn server_close_waits_for_the_peer_close_and_skips_oversized_input_wsl_3() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut socket = Socket::new(server, 100, 1024);
        client
            .write_all(&client_frame(true, opcode::BINARY, &[1; 500], MASK))
            .await
            .unwrap();
        let Frame::Fault(fault) = socket.recv().await.unwrap().unwrap() else {
            panic!("fault expected");
        };
        assert_eq!(fault.close_code(), 1009);
        let peer = tokio::spawn(async move {
            let mut head = [0u8; 4];
            client.read_exact(&mut head).await.unwrap();
            assert_eq!(head, [0x88, 17, 0x03, 0xF1]);
            let mut reason = [0u8; 15];
            client.read_exact(&mut reason).await.unwrap();
            assert_eq!(&reason, b"message too big");
            client
                .write_all(&client_frame(true, opcode::CLOSE, &[0x03, 0xF1], MASK))
                .await
                .unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            rest
        });
        close(
            &mut socket,
            End::Close(fault.close_code(), fault.reason()),
            std::time::Duration::from_secs(10),
        )
        .await;
        drop(socket);
        assert!(peer.await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn upgrade_answer_carries_the_accept_key() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let response = Handshake::response(Some(&key));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()[header::UPGRADE], "websocket");
        assert!(
            response
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .is_none()
        );
    }

    #[test]
    fn handshake_checks_method_headers_and_version() {
        let request = |method: &str, headers: &[(&str, &str)], upgradable: bool| {
            let mut builder = http::Request::builder().method(method).uri("/v1/opamp");
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            let mut request = builder.body(()).unwrap();
            if upgradable {
                let on_upgrade = hyper::upgrade::on(http::Request::new(()));
                request.extensions_mut().insert(on_upgrade);
            }
            request.into_parts().0
        };
        let good = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert!(Handshake::from_parts(&mut request("GET", &good, true)).is_some());
        assert!(Handshake::from_parts(&mut request("POST", &good, true)).is_none());
        assert!(Handshake::from_parts(&mut request("GET", &good, false)).is_none());
        for skip in 0..good.len() {
            let fewer: Vec<_> = good
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, h)| *h)
                .collect();
            assert!(Handshake::from_parts(&mut request("GET", &fewer, true)).is_none());
        }
        let mut old = good;
        old[2] = ("sec-websocket-version", "8");
        assert!(Handshake::from_parts(&mut request("GET", &old, true)).is_none());
    }
}
