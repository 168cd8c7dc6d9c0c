//! A fleet in this process over real sockets: SQLite in a temp dir, the OpAMP server on
//! 127.0.0.1:0, the admin router on another 127.0.0.1:0, and a small JSON client.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use opamp_fleet::{Fleet, FleetHandler, FleetOptions};
use opamp_server::Server;
use opamp_store::{Actor, NewToken, Role, Store, StoreOptions, generate_secret};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Deadlock guard for waits (never a timing assertion).
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Env {
    pub fleet: Fleet,
    pub server: Server<FleetHandler>,
    pub store: Arc<dyn Store>,
    pub admin: String,
    pub ws_url: String,
    pub http_url: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
    _dir: tempfile::TempDir,
}

impl Env {
    pub async fn start(options: FleetOptions) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = opamp_store::open(
            dir.path().join("data").to_str().unwrap(),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        let fleet = Fleet::start(store.clone(), options).await.unwrap();
        let server = Server::new(opamp_fleet::server_config(), fleet.handler());
        fleet.attach_server(server.clone());
        let opamp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let opamp_addr = opamp.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        tokio::spawn({
            let server = server.clone();
            async move { server.serve(opamp, std::future::pending()).await }
        });
        tokio::spawn(axum::serve(admin, fleet.admin_router()).into_future());
        Env {
            fleet,
            server,
            store,
            admin: format!("http://{admin_addr}"),
            ws_url: format!("ws://{opamp_addr}/v1/opamp"),
            http_url: format!("http://{opamp_addr}/v1/opamp"),
            http: reqwest::Client::new(),
            token: None,
            _dir: dir,
        }
    }

    /// An open fleet (no token needed while none exists), as on a loopback bind.
    pub async fn open() -> Env {
        Env::start(FleetOptions::new("test").open_without_tokens(true)).await
    }

    pub async fn token(&self, role: Role, name: &str) -> String {
        let (secret, hash) = generate_secret();
        self.store
            .create_token(
                &Actor::system("test"),
                NewToken {
                    name: name.into(),
                    role,
                    hash,
                },
            )
            .await
            .unwrap();
        secret
    }

    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.admin));
        if let Some(t) = token.or(self.token.as_deref()) {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body), None).await
    }

    /// Waits until `GET path` satisfies `pred`; returns that body.
    pub async fn wait_get(&self, what: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = self.get(path).await;
            if status.is_success() && pred(&body) {
                return body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}: last {status} {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Asserts a JSON error with this status and code.
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body: {}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without a message: {}",
        got.1
    );
}
