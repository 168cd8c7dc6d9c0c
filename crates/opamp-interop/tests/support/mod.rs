//! Fixtures shared by the interop tests: our server (the `opamp-server` library) on
//! 127.0.0.1:0 with a handler that records what agents say, and remote configs to offer.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use opamp_interop::PEER_TIMEOUT;
use opamp_proto::v1::{
    AgentConfigFile, AgentConfigMap, AgentRemoteConfig, AgentToServer, ServerToAgent,
};
use opamp_proto::{InstanceUid, v1};
use opamp_server::{AgentContext, Disconnected, Handler, Server, ServerConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One thing the server's handler saw.
#[derive(Debug, Clone)]
pub enum Record {
    /// An AgentToServer, with what the server knew about its sender.
    Message(Box<(AgentContext, AgentToServer)>),
    /// An agent was reported gone.
    Disconnected(Disconnected),
}

impl Record {
    pub fn message(&self) -> Option<(&AgentContext, &AgentToServer)> {
        match self {
            Record::Message(m) => Some((&m.0, &m.1)),
            Record::Disconnected(_) => None,
        }
    }
}

/// Records every message and disconnect; answers with nothing of its own (the server's
/// session adds uid, capabilities, flags and any pushed or desired remote config).
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
}

impl Handler for Recorder {
    async fn on_message(&self, ctx: &AgentContext, msg: &AgentToServer) -> ServerToAgent {
        let _ = self
            .tx
            .send(Record::Message(Box::new((ctx.clone(), msg.clone()))));
        ServerToAgent::default()
    }

    async fn on_disconnect(&self, event: &Disconnected) {
        let _ = self.tx.send(Record::Disconnected(event.clone()));
    }
}

/// Our server, serving on 127.0.0.1 with a [`Recorder`].
pub struct OurServer {
    pub server: Server<Recorder>,
    pub addr: SocketAddr,
    records: mpsc::UnboundedReceiver<Record>,
    seen: Vec<Record>,
    task: Option<JoinHandle<Result<(), opamp_server::Error>>>,
}

impl OurServer {
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> Self {
        let (tx, records) = mpsc::unbounded_channel();
        let server = Server::new(config, Recorder { tx });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn({
            let server = server.clone();
            async move { server.serve(listener, std::future::pending()).await }
        });
        Self {
            server,
            addr,
            records,
            seen: Vec::new(),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT/v1/opamp`.
    pub fn http_url(&self) -> String {
        format!("http://{}/v1/opamp", self.addr)
    }

    /// `ws://127.0.0.1:PORT/v1/opamp`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/opamp", self.addr)
    }

    /// Moves what the handler recorded so far into [`seen`](Self::seen).
    pub fn drain(&mut self) -> &[Record] {
        while let Ok(r) = self.records.try_recv() {
            self.seen.push(r);
        }
        &self.seen
    }

    /// Every message recorded so far (after [`drain`](Self::drain)).
    pub fn messages(&mut self) -> Vec<(AgentContext, AgentToServer)> {
        self.drain()
            .iter()
            .filter_map(|r| r.message().map(|(c, m)| (c.clone(), m.clone())))
            .collect()
    }

    /// Waits for a record `pred` accepts (also looking at the ones already seen).
    pub async fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Record) -> bool) -> Record {
        if let Some(r) = self.drain().iter().find(|r| pred(r)) {
            return r.clone();
        }
        let deadline = Instant::now() + PEER_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.records.recv()).await {
                Ok(Some(r)) => {
                    self.seen.push(r.clone());
                    if pred(&r) {
                        return r;
                    }
                }
                Ok(None) => panic!("server handler gone while waiting for {what}"),
                Err(_) => panic!(
                    "server: timed out after {PEER_TIMEOUT:?} waiting for {what}; seen:\n{:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for an AgentToServer `pred` accepts.
    pub async fn wait_message(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&AgentContext, &AgentToServer) -> bool,
    ) -> (AgentContext, AgentToServer) {
        let r = self
            .wait_for(what, |r| r.message().is_some_and(|(c, m)| pred(c, m)))
            .await;
        let (c, m) = r.message().unwrap();
        (c.clone(), m.clone())
    }

    /// Graceful shutdown (WebSockets get close code 1001).
    pub async fn shutdown(mut self) {
        self.server.shutdown();
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server shut down in time")
                .expect("server task did not panic");
            result.expect("server ran without error");
        }
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A remote config with one JSON file. The hash only has to be unique per test: RCFG-2
/// leaves the function to the server, and the agent just echoes the bytes (RCFG-3).
pub fn remote_config(name: &str, body: &str) -> AgentRemoteConfig {
    let mut config_map = std::collections::BTreeMap::new();
    config_map.insert(
        name.to_owned(),
        AgentConfigFile {
            body: body.as_bytes().to_vec(),
            content_type: "application/json".to_owned(),
        },
    );
    AgentRemoteConfig {
        config: Some(AgentConfigMap { config_map }),
        config_hash: config_hash(name, body),
    }
}

/// A 32-byte hash of one config file (FNV-1a spread over four lanes; unique enough for a
/// test, and the wire only needs "bytes the agent echoes back").
pub fn config_hash(name: &str, body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    for lane in 0u64..4 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ lane;
        for &b in name
            .as_bytes()
            .iter()
            .chain([0u8].iter())
            .chain(body.as_bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        out.extend_from_slice(&h.to_be_bytes());
    }
    out
}

/// The string value of `key` among `attrs`.
pub fn attr(attrs: &[v1::KeyValue], key: &str) -> Option<String> {
    let value = opamp_proto::find_attribute(attrs, key)?.clone();
    opamp_proto::Value::from(value).as_str().map(str::to_owned)
}

/// Parses the lower-case hex uid a driver script prints.
pub fn uid_from_hex(hex_uid: &str) -> InstanceUid {
    let bytes: [u8; 16] = hex::decode(hex_uid)
        .expect("hex uid")
        .try_into()
        .expect("16 bytes");
    InstanceUid::from_array(bytes)
}

/// The event stream of one of our clients, with a history for failure messages.
pub struct ClientEvents {
    rx: mpsc::Receiver<opamp_client::ClientEvent>,
    pub seen: Vec<opamp_client::ClientEvent>,
}

impl ClientEvents {
    pub fn new(rx: mpsc::Receiver<opamp_client::ClientEvent>) -> Self {
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for an event `pred` accepts; fails the test after [`PEER_TIMEOUT`] or when the
    /// client stops first, listing every event seen.
    pub async fn wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&opamp_client::ClientEvent) -> bool,
    ) -> opamp_client::ClientEvent {
        let deadline = Instant::now() + PEER_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Ok(None) => panic!(
                    "our client: event stream ended while waiting for {what}; seen:\n{:#?}",
                    self.seen
                ),
                Err(_) => panic!(
                    "our client: timed out after {PEER_TIMEOUT:?} waiting for {what}; seen:\n{:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for a remote config offer and returns it.
    pub async fn remote_config(&mut self) -> AgentRemoteConfig {
        match self
            .wait_for("a remote config", |e| {
                matches!(e, opamp_client::ClientEvent::RemoteConfig(_))
            })
            .await
        {
            opamp_client::ClientEvent::RemoteConfig(config) => config,
            _ => unreachable!(),
        }
    }
}

/// What our example agent does with a remote config: run it as is, and say so (RCFG-11).
pub async fn apply(handle: &opamp_client::ClientHandle, config: &AgentRemoteConfig) {
    handle
        .set_effective_config(v1::EffectiveConfig {
            config_map: config.config.clone(),
        })
        .await
        .unwrap();
    handle
        .set_remote_config_status(v1::RemoteConfigStatus {
            last_remote_config_hash: config.config_hash.clone(),
            status: v1::RemoteConfigStatuses::Applied as i32,
            error_message: String::new(),
        })
        .await
        .unwrap();
}
