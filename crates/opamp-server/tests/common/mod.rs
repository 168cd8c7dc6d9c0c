//! Shared fixtures for the integration tests: a recording handler, a server on
//! 127.0.0.1:0, and small WebSocket / HTTP clients.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use opamp_proto::prost::Message as _;
use opamp_proto::v1::{
    AgentConfigFile, AgentConfigMap, AgentDescription, AgentRemoteConfig, AgentToServer, KeyValue,
    ServerToAgent,
};
use opamp_proto::{AgentCapabilities, InstanceUid, framing};
use opamp_server::{
    Admission, AgentContext, ConnectionRequest, Disconnected, Handler, Server, ServerConfig,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A generous guard against deadlocks; never a timing assertion.
pub const GUARD: Duration = Duration::from_secs(20);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the test handler saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub messages: Vec<(AgentContextLite, AgentToServer)>,
    pub disconnects: Vec<Disconnected>,
    pub connecting: Vec<ConnectionRequest>,
}

#[derive(Debug, Clone)]
pub struct AgentContextLite {
    pub instance_uid: InstanceUid,
    pub transport: opamp_server::Transport,
    pub peer_certificates: usize,
}

/// A handler that records everything, optionally requires a bearer token and offers a
/// remote config in every reply.
#[derive(Default)]
pub struct TestHandler {
    pub seen: Mutex<Seen>,
    pub token: Option<String>,
    pub offer: Mutex<Option<AgentRemoteConfig>>,
    pub reply_error: Mutex<Option<ServerToAgent>>,
}

impl TestHandler {
    pub fn with_token(token: &str) -> Self {
        Self {
            token: Some(token.to_string()),
            ..Default::default()
        }
    }

    pub fn offering(config: AgentRemoteConfig) -> Self {
        Self {
            offer: Mutex::new(Some(config)),
            ..Default::default()
        }
    }
}

impl Handler for TestHandler {
    async fn on_connecting(&self, request: &ConnectionRequest) -> Admission {
        self.seen.lock().unwrap().connecting.push(request.clone());
        match &self.token {
            None => Admission::Accept,
            Some(token) => {
                let expected = format!("Bearer {token}");
                let ok = request
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes() == expected.as_bytes());
                if ok {
                    Admission::Accept
                } else {
                    Admission::Unauthorized
                }
            }
        }
    }

    async fn on_message(&self, ctx: &AgentContext, msg: &AgentToServer) -> ServerToAgent {
        self.seen.lock().unwrap().messages.push((
            AgentContextLite {
                instance_uid: ctx.instance_uid,
                transport: ctx.transport(),
                peer_certificates: ctx
                    .connection
                    .peer_certificates
                    .as_ref()
                    .map_or(0, |c| c.len()),
            },
            msg.clone(),
        ));
        if let Some(err) = self.reply_error.lock().unwrap().clone() {
            return err;
        }
        ServerToAgent {
            remote_config: self.offer.lock().unwrap().clone(),
            ..Default::default()
        }
    }

    async fn on_disconnect(&self, event: &Disconnected) {
        self.seen.lock().unwrap().disconnects.push(event.clone());
    }
}

pub struct TestServer<H: Handler> {
    pub server: Server<H>,
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<Result<(), opamp_server::Error>>,
}

impl<H: Handler> TestServer<H> {
    pub fn http_url(&self) -> String {
        format!("http://{}/v1/opamp", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/opamp", self.addr)
    }

    pub fn handler(&self) -> &H {
        self.server.handler()
    }

    /// Shuts down and waits for `serve` to return.
    pub async fn stop(self) {
        self.server.shutdown();
        tokio::time::timeout(GUARD, self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("join")
            .expect("serve ok");
    }
}

pub async fn start<H: Handler>(config: ServerConfig, handler: H) -> TestServer<H> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(config, handler);
    let task = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener, std::future::pending()).await }
    });
    TestServer { server, addr, task }
}

/// The default configuration, with a short close timeout so that clients that are not
/// reading do not hold up `stop()`.
pub fn test_config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.ws.close_timeout = Duration::from_millis(300);
    config
}

pub async fn start_default() -> TestServer<TestHandler> {
    start(test_config(), TestHandler::default()).await
}

pub fn uid(n: u8) -> InstanceUid {
    let mut bytes = [n; 16];
    bytes[6] = 0x70 | (n & 0x0F);
    InstanceUid::from_array(bytes)
}

pub const BASIC: AgentCapabilities = AgentCapabilities::REPORTS_STATUS;

pub fn rcfg_caps() -> AgentCapabilities {
    AgentCapabilities::REPORTS_STATUS
        | AgentCapabilities::ACCEPTS_REMOTE_CONFIG
        | AgentCapabilities::REPORTS_REMOTE_CONFIG
}

pub fn description() -> AgentDescription {
    AgentDescription {
        identifying_attributes: vec![KeyValue::new("service.name", "it")],
        non_identifying_attributes: vec![KeyValue::new("host.name", "localhost")],
    }
}

/// A full status report (nothing missing for `caps` among description and remote config
/// status).
pub fn full(u: InstanceUid, seq: u64, caps: AgentCapabilities) -> AgentToServer {
    AgentToServer {
        instance_uid: u.to_vec(),
        sequence_num: seq,
        capabilities: caps.bits(),
        agent_description: Some(description()),
        remote_config_status: caps
            .contains(AgentCapabilities::REPORTS_REMOTE_CONFIG)
            .then(Default::default),
        ..Default::default()
    }
}

/// A compressed message (heartbeat).
pub fn heartbeat(u: InstanceUid, seq: u64, caps: AgentCapabilities) -> AgentToServer {
    AgentToServer {
        instance_uid: u.to_vec(),
        sequence_num: seq,
        capabilities: caps.bits(),
        ..Default::default()
    }
}

pub fn remote_config(body: &[u8]) -> AgentRemoteConfig {
    AgentRemoteConfig {
        config: Some(AgentConfigMap {
            config_map: [(
                "agent.yaml".to_string(),
                AgentConfigFile {
                    body: body.to_vec(),
                    content_type: "text/yaml".into(),
                },
            )]
            .into_iter()
            .collect(),
        }),
        config_hash: Vec::new(),
    }
}

// ----------------------------------------------------------------------------- WebSocket

pub async fn ws_connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(GUARD, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

pub async fn ws_send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    msg: &AgentToServer,
) {
    ws.send(Message::Binary(framing::encode(msg).into()))
        .await
        .unwrap();
}

/// The next binary message, decoded. Answers pings on the way.
pub async fn ws_recv<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> ServerToAgent {
    loop {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("no error");
        match msg {
            Message::Binary(data) => {
                assert_eq!(data[0], 0, "WS-3: header 0");
                return framing::decode(&data, Default::default()).unwrap();
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

pub async fn ws_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    msg: &AgentToServer,
) -> ServerToAgent {
    ws_send(ws, msg).await;
    ws_recv(ws).await
}

/// Reads until the server closes; returns the close code (None: closed without a frame).
pub async fn ws_close_code<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> Option<u16> {
    loop {
        let next = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("close in time");
        match next {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

// ---------------------------------------------------------------------------------- HTTP

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

pub async fn http_post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Response {
    tokio::time::timeout(
        GUARD,
        client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send(),
    )
    .await
    .expect("response in time")
    .expect("response")
}

pub async fn http_exchange(
    client: &reqwest::Client,
    url: &str,
    msg: &AgentToServer,
) -> ServerToAgent {
    let response = http_post(client, url, msg.encode_to_vec()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-protobuf",
        "HTTP-14"
    );
    let body = response.bytes().await.unwrap();
    ServerToAgent::decode(body).unwrap()
}

/// Proves the server still serves a fresh agent over HTTP.
pub async fn assert_still_serving(url: &str, n: u8) {
    let client = http_client();
    let reply = http_exchange(&client, url, &full(uid(n), 0, BASIC)).await;
    assert_eq!(reply.instance_uid, uid(n).to_vec());
    assert!(reply.error_response.is_none());
}

pub fn shared<T>(value: T) -> Arc<T> {
    Arc::new(value)
}
