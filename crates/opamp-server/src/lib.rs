//! An OpAMP (Open Agent Management Protocol) server library.
//!
//! Mount one router and get a specification-exact, hardened OpAMP endpoint:
//!
//! - **one route, both transports** (GEN-1, GEN-3): `Content-Type:
//!   application/x-protobuf` is plain HTTP, anything else a WebSocket upgrade (HTTP-8);
//! - **every protocol rule applied for you** by a sans-IO [`session`]: instance uid echo
//!   (MSG-5), capabilities in the first reply (CAP-8, CAP-9), capability gating of every
//!   offer (CAP-6, CAP-12..CAP-16), error exclusivity (MSG-7), command isolation (CMD-2),
//!   ReportFullState on sequence gaps without loops (SEQ-11, SEQ-13), remote-config resend
//!   rules (RCFG-2, RCFG-4, RCFG-5), new and duplicate instance uids (UID-5..UID-10),
//!   disconnect bookkeeping and HTTP liveness (DISC-5, DISC-6);
//! - **hardened transports**: size limits after decompression with a streaming gzip
//!   decoder (HSL-2, HSL-3, WSL-2, WSL-3), 413 / 415 / 400 / 1009 for bad input, bounded
//!   per-connection send queues (slow readers are disconnected), ping/pong liveness and
//!   idle eviction, admission control (503 / 429 with `Retry-After`), graceful shutdown
//!   with close code 1001 (DISC-3), TLS and mutual TLS;
//! - **a push registry**: [`Server::push`] and [`Server::broadcast`] deliver immediately
//!   over WebSocket and on the next poll over HTTP (HTTP-13, one merged pending message
//!   per agent, ERR-7);
//! - **metrics**: [`Server::metrics`] returns a cheap [`MetricsSnapshot`].
//!
//! The application implements [`Handler`]: authenticate in
//! [`Handler::on_connecting`], answer messages in [`Handler::on_message`], learn about
//! disconnects in [`Handler::on_disconnect`].
//!
//! # Example
//!
//! ```
//! use opamp_server::{AgentContext, Handler, Server, ServerConfig};
//! use opamp_server::proto::v1::{AgentToServer, ServerToAgent};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     async fn on_message(&self, ctx: &AgentContext, msg: &AgentToServer) -> ServerToAgent {
//!         println!("{} seq {}", ctx.instance_uid, msg.sequence_num);
//!         ServerToAgent::default() // the session fills in uid, capabilities, flags
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), opamp_server::Error> {
//! let server = Server::new(ServerConfig::default(), Hello);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}/v1/opamp", listener.local_addr()?);
//! let task = tokio::spawn({
//!     let server = server.clone();
//!     async move { server.serve(listener, std::future::pending()).await }
//! });
//! // ... agents connect to `url` ...
//! # let _ = url;
//! server.shutdown(); // WebSockets get close code 1001, HTTP requests drain
//! task.await.expect("join")?;
//! # Ok(()) }
//! ```
//!
//! To mount the endpoint in an existing axum application instead, merge
//! [`Server::router`] into it and call [`Server::shutdown`] when stopping.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admission;
mod config;
mod error;
mod handler;
mod http;
mod metrics;
mod serve;
mod server;
pub mod session;
pub mod tls;
mod ws;

pub use admission::AdmissionConfig;
pub use config::{HttpConfig, ServerConfig, ServerConfigBuilder, WsConfig};
pub use error::Error;
pub use handler::{Admission, AgentContext, ConnectionRequest, Disconnected, Handler, Transport};
pub use metrics::MetricsSnapshot;
pub use server::{BroadcastReport, Delivery, Server};
pub use session::{ConnectionId, DisconnectReason, DuplicatePolicy, UidAssignment};

/// The wire types this crate speaks (re-export of `opamp-proto`).
pub use opamp_proto as proto;
