//! A small scripted OpAMP server for the client's integration tests.
//!
//! It serves plain HTTP and WebSocket on one port (127.0.0.1:0, optionally TLS / mTLS),
//! records everything it receives, and answers from a script: a queue of replies per
//! transport, falling back to a default `ServerToAgent` that echoes the instance uid. A
//! test can also push frames to the open WebSocket at any time. It is deliberately not
//! the real `opamp-server` crate: it must be able to misbehave.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::large_enum_variant,
    clippy::type_complexity
)]

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use opamp_client::opamp_proto::limits::{gunzip, gzip};
use opamp_client::opamp_proto::prost::Message as _;
use opamp_client::opamp_proto::{ServerCapabilities, framing};
use opamp_client::v1;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

pub mod pki;

/// A deadlock guard for waits: generous, never a timing assertion.
pub const GUARD: Duration = Duration::from_secs(20);

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A `ServerToAgent` (WS: framed with 0x00; HTTP: 200 with the protobuf body).
    Message(v1::ServerToAgent),
    /// HTTP: 200 with this body gzipped and `Content-Encoding: gzip`.
    GzipMessage(v1::ServerToAgent),
    /// Raw bytes (WS: one binary message as is; HTTP: the 200 body as is).
    Raw(Vec<u8>),
    /// WS: a text frame.
    Text(String),
    /// HTTP: this status and headers, empty body. WS: ignored.
    Status(u16, Vec<(String, String)>),
    /// WS: a Close frame with this code.
    Close(u16),
    /// Drop the connection without any close handshake.
    Drop,
    /// Do not answer.
    Nothing,
}

/// What happened on a WebSocket, in order.
#[derive(Clone, Debug)]
pub enum WsEvent {
    Opened(tokio::time::Instant),
    Message {
        first_byte: Option<u8>,
        msg: v1::AgentToServer,
    },
    Close(Option<u16>),
    Ended,
}

/// One plain-HTTP request.
#[derive(Clone, Debug)]
pub struct HttpRecord {
    pub headers: HeaderMap,
    pub raw_len: usize,
    pub msg: Option<v1::AgentToServer>,
    pub at: tokio::time::Instant,
}

#[derive(Debug, Default)]
pub struct Recorded {
    pub http: Vec<HttpRecord>,
    /// Headers of every WebSocket upgrade request, refused ones included, with the time.
    pub upgrades: Vec<(HeaderMap, tokio::time::Instant)>,
    pub ws: Vec<WsEvent>,
    pub tls_failures: usize,
    /// HTTP requests being answered now, and the most ever at once (HTTP-6).
    pub http_in_flight: usize,
    pub http_max_in_flight: usize,
}

impl Recorded {
    pub fn ws_messages(&self) -> Vec<v1::AgentToServer> {
        self.ws
            .iter()
            .filter_map(|e| match e {
                WsEvent::Message { msg, .. } => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn http_messages(&self) -> Vec<v1::AgentToServer> {
        self.http.iter().filter_map(|r| r.msg.clone()).collect()
    }

    pub fn ws_opened(&self) -> usize {
        self.ws
            .iter()
            .filter(|e| matches!(e, WsEvent::Opened(_)))
            .count()
    }
}

#[derive(Debug, Default)]
struct Script {
    /// Answers to WS upgrade requests: `None` accepts, `Some` refuses with a status.
    upgrades: VecDeque<Option<(u16, Vec<(String, String)>)>>,
    /// Answers to messages (HTTP requests or WS messages), in order.
    replies: VecDeque<Reply>,
    /// When the reply queue is empty: answer with the default reply (true) or not.
    silent: bool,
    /// HTTP: wait this long before answering.
    http_delay: Option<Duration>,
}

pub struct Shared {
    rec: Mutex<Recorded>,
    script: Mutex<Script>,
    notify: Notify,
    push: Mutex<Option<mpsc::UnboundedSender<Reply>>>,
}

pub struct MockServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The default answer: echo the uid, announce the usual capabilities.
pub fn default_reply(req: Option<&v1::AgentToServer>) -> v1::ServerToAgent {
    v1::ServerToAgent {
        instance_uid: req.map(|r| r.instance_uid.clone()).unwrap_or_default(),
        capabilities: (ServerCapabilities::ACCEPTS_STATUS
            | ServerCapabilities::OFFERS_REMOTE_CONFIG
            | ServerCapabilities::ACCEPTS_EFFECTIVE_CONFIG)
            .bits(),
        ..Default::default()
    }
}

impl MockServer {
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> Self {
        Self::start_inner(Some(config)).await
    }

    async fn start_inner(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            rec: Mutex::new(Recorded::default()),
            script: Mutex::new(Script::default()),
            notify: Notify::new(),
            push: Mutex::new(None),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                // Without this, Nagle's algorithm holds a second small frame until the
                // peer's delayed ACK (real time), which a paused-clock test would overtake.
                let _ = tcp.set_nodelay(true);
                let s = s.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(TokioIo::new(tcp), s).await,
                        Some(config) => {
                            match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                                Ok(stream) => serve(TokioIo::new(stream), s).await,
                                Err(_) => {
                                    s.rec.lock().unwrap().tls_failures += 1;
                                    s.notify.notify_waiters();
                                }
                            }
                        }
                    }
                });
            }
        });
        Self { addr, shared, task }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/opamp", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}/v1/opamp", self.addr)
    }

    pub fn wss_url(&self) -> String {
        format!("wss://localhost:{}/v1/opamp", self.addr.port())
    }

    pub fn https_url(&self) -> String {
        format!("https://localhost:{}/v1/opamp", self.addr.port())
    }

    /// Queues replies to the next messages.
    pub fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().replies.extend(replies);
    }

    /// Queues answers to the next WS upgrade requests (`None` = accept).
    pub fn upgrade(&self, answers: impl IntoIterator<Item = Option<(u16, Vec<(String, String)>)>>) {
        self.shared.script.lock().unwrap().upgrades.extend(answers);
    }

    /// With `true`, messages get no answer unless one is queued.
    pub fn set_silent(&self, silent: bool) {
        self.shared.script.lock().unwrap().silent = silent;
    }

    /// HTTP: answer every request only after `delay`.
    pub fn set_http_delay(&self, delay: Duration) {
        self.shared.script.lock().unwrap().http_delay = Some(delay);
    }

    /// Sends a frame on the open WebSocket now.
    pub fn push(&self, reply: Reply) {
        let push = self.shared.push.lock().unwrap();
        push.as_ref()
            .expect("no WebSocket open")
            .send(reply)
            .unwrap();
    }

    /// A snapshot of what was received.
    pub fn with<R>(&self, f: impl FnOnce(&Recorded) -> R) -> R {
        f(&self.shared.rec.lock().unwrap())
    }

    /// Waits (at most [`GUARD`]) until `pred` holds for the recording.
    pub async fn wait(&self, what: &str, pred: impl Fn(&Recorded) -> bool) {
        self.wait_for(GUARD, what, pred).await;
    }

    /// Like [`wait`](Self::wait) with another guard (for tests on the paused clock, where
    /// the guard is virtual time and must outlast the protocol timers).
    pub async fn wait_for(&self, guard: Duration, what: &str, pred: impl Fn(&Recorded) -> bool) {
        let fut = async {
            loop {
                let notified = self.shared.notify.notified();
                if pred(&self.shared.rec.lock().unwrap()) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(guard, fut).await.is_err() {
            panic!(
                "timed out waiting for: {what}\nrecorded: {:#?}",
                self.shared.rec.lock().unwrap()
            );
        }
    }
}

fn next_reply(shared: &Shared, req: Option<&v1::AgentToServer>) -> Reply {
    let mut script = shared.script.lock().unwrap();
    match script.replies.pop_front() {
        Some(Reply::Message(mut m)) => {
            if m.instance_uid.is_empty() {
                if let Some(r) = req {
                    m.instance_uid = r.instance_uid.clone();
                }
            }
            Reply::Message(m)
        }
        Some(r) => r,
        None if script.silent => Reply::Nothing,
        None => Reply::Message(default_reply(req)),
    }
}

async fn serve<I>(io: TokioIo<I>, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(req, shared).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades()
        .await;
}

fn response(status: u16, headers: &[(String, String)], body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Response<Full<Bytes>> {
    let now = tokio::time::Instant::now();
    let is_upgrade = req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if is_upgrade {
        shared
            .rec
            .lock()
            .unwrap()
            .upgrades
            .push((req.headers().clone(), now));
        shared.notify.notify_waiters();
        let answer = shared.script.lock().unwrap().upgrades.pop_front().flatten();
        if let Some((status, headers)) = answer {
            return response(status, &headers, Vec::new());
        }
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return response(400, &[], Vec::new());
        };
        let accept = derive_accept_key(key.as_bytes());
        let s = shared.clone();
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                ws_loop(ws, s).await;
            }
        });
        return response(
            101,
            &[
                ("connection".into(), "Upgrade".into()),
                ("upgrade".into(), "websocket".into()),
                ("sec-websocket-accept".into(), accept),
            ],
            Vec::new(),
        );
    }

    {
        let mut rec = shared.rec.lock().unwrap();
        rec.http_in_flight += 1;
        rec.http_max_in_flight = rec.http_max_in_flight.max(rec.http_in_flight);
    }
    let response = handle_http(req, &shared, now).await;
    shared.rec.lock().unwrap().http_in_flight -= 1;
    response
}

async fn handle_http(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    now: tokio::time::Instant,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let raw = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let gzipped = parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let data = if gzipped {
        gunzip(&raw, 1 << 26).unwrap_or_default()
    } else {
        raw.to_vec()
    };
    let msg = v1::AgentToServer::decode(data.as_slice()).ok();
    shared.rec.lock().unwrap().http.push(HttpRecord {
        headers: parts.headers.clone(),
        raw_len: raw.len(),
        msg: msg.clone(),
        at: now,
    });
    shared.notify.notify_waiters();
    let delay = shared.script.lock().unwrap().http_delay;
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let ct = vec![(
        "content-type".to_owned(),
        "application/x-protobuf".to_owned(),
    )];
    match next_reply(shared, msg.as_ref()) {
        Reply::Message(m) => response(200, &ct, m.encode_to_vec()),
        Reply::GzipMessage(m) => {
            let mut h = ct.clone();
            h.push(("content-encoding".into(), "gzip".into()));
            response(200, &h, gzip(&m.encode_to_vec()))
        }
        Reply::Raw(b) => response(200, &ct, b),
        Reply::Status(code, headers) => response(code, &headers, Vec::new()),
        Reply::Text(_) | Reply::Close(_) | Reply::Drop | Reply::Nothing => {
            response(200, &ct, default_reply(msg.as_ref()).encode_to_vec())
        }
    }
}

/// Sends one scripted reply; `false` when the connection should end.
async fn send_reply<S>(ws: &mut WebSocketStream<S>, reply: Reply) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let r = match reply {
        Reply::Message(m) | Reply::GzipMessage(m) => {
            ws.send(Message::Binary(framing::encode(&m).into())).await
        }
        Reply::Raw(b) => ws.send(Message::Binary(b.into())).await,
        Reply::Text(t) => ws.send(Message::Text(t.into())).await,
        Reply::Close(code) => {
            ws.close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
            .await
        }
        Reply::Drop => return false,
        Reply::Status(..) | Reply::Nothing => Ok(()),
    };
    r.is_ok()
}

async fn ws_loop<S>(mut ws: WebSocketStream<S>, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    *shared.push.lock().unwrap() = Some(tx);
    let record = |e: WsEvent| {
        shared.rec.lock().unwrap().ws.push(e);
        shared.notify.notify_waiters();
    };
    record(WsEvent::Opened(tokio::time::Instant::now()));
    loop {
        tokio::select! {
            pushed = rx.recv() => {
                let Some(reply) = pushed else { break };
                if !send_reply(&mut ws, reply).await {
                    break;
                }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    let msg: v1::AgentToServer = match framing::decode(&data, Default::default()) {
                        Ok(m) => m,
                        Err(_) => continue,
                    };
                    let reply = next_reply(&shared, Some(&msg));
                    record(WsEvent::Message { first_byte: data.first().copied(), msg });
                    if !send_reply(&mut ws, reply).await {
                        break;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    record(WsEvent::Close(frame.map(|f| u16::from(f.code))));
                    // Let tungstenite answer the Close, then wait for the end.
                    while let Some(Ok(_)) = ws.next().await {}
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    }
    record(WsEvent::Ended);
}

/// Runs `fut` with the deadlock guard.
pub async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Waits for the first event matching `pred`, returning it (other events are skipped).
pub async fn next_event<F>(
    events: &mut mpsc::Receiver<opamp_client::ClientEvent>,
    what: &str,
    mut pred: F,
) -> opamp_client::ClientEvent
where
    F: FnMut(&opamp_client::ClientEvent) -> bool,
{
    guard(what, async {
        loop {
            let ev = events.recv().await.expect("event stream ended");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
}

/// A builder with fast, deterministic retries for tests that do not measure time.
pub fn fast(b: opamp_client::ClientBuilder) -> opamp_client::ClientBuilder {
    b.backoff(opamp_client::Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2.0,
        jitter: 0.0,
    })
    .throttle_floor(Duration::ZERO)
}

/// The capabilities most tests declare.
pub fn caps() -> opamp_client::AgentCapabilities {
    use opamp_client::AgentCapabilities as C;
    C::REPORTS_STATUS
        | C::ACCEPTS_REMOTE_CONFIG
        | C::REPORTS_REMOTE_CONFIG
        | C::REPORTS_EFFECTIVE_CONFIG
        | C::REPORTS_HEARTBEAT
        | C::REPORTS_HEALTH
}

/// A remote config with one file.
pub fn remote_config(hash: &[u8], body: &[u8]) -> v1::AgentRemoteConfig {
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "main.yaml".to_owned(),
        v1::AgentConfigFile {
            body: body.to_vec(),
            content_type: "text/yaml".into(),
        },
    );
    v1::AgentRemoteConfig {
        config: Some(v1::AgentConfigMap { config_map: files }),
        config_hash: hash.to_vec(),
    }
}

/// A ServerToAgent carrying a remote config.
pub fn config_msg(hash: &[u8], body: &[u8]) -> v1::ServerToAgent {
    v1::ServerToAgent {
        remote_config: Some(remote_config(hash, body)),
        ..Default::default()
    }
}
