//! A load generator for OpAMP servers, and the bench server `cargo xtask bench` measures.
//!
//! One process simulates thousands of agents that speak the wire protocol directly with
//! [`opamp_proto`] (no full client per agent: a lean task per WebSocket agent, a
//! [`sim::SimAgent`] state machine, a minimal HTTP/1.1 client for pollers). Agents send
//! what a real collector sends: a full report first (description, health, a few KiB of
//! effective config), then heartbeats; they answer ReportFullState and report a pushed
//! remote config `APPLIED` with its hash.
//!
//! Scenarios ([`scenario`]), each printed as a JSON summary by the `opamp-loadgen` binary:
//! - `ws-idle`: N WebSocket agents connect and idle; server RSS per agent, connect rate,
//!   first report → reply latency;
//! - `ws-push`: the server broadcasts a new remote config; push → received and
//!   push → APPLIED latency per agent;
//! - `ws-steady`: N agents heartbeat every H seconds; server CPU;
//! - `http-poll`: M keep-alive pollers as fast as they can; polls per second, latency.
//!
//! The server under test is [`benchserver`] (binary `bench-server`): the `opamp-server`
//! library with a handler that offers a config and a control API ([`control`]) to push
//! and to read back APPLIED times. It runs as a separate process so that its memory and
//! CPU ([`procfs`]) are its own.
//!
//! Load stays on this machine: the generator connects only where it is told (the xtask
//! gives it a loopback address), spreads its source addresses over 127.0.0.2..=251
//! ([`net`]) and stops by itself after a bounded time.
//!
//! # Example
//!
//! A bench server and ten agents in one process:
//!
//! ```
//! use std::time::Duration;
//! use opamp_loadgen::{benchserver, scenario};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), opamp_loadgen::Error> {
//! let server = benchserver::start(benchserver::Options {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     control: "127.0.0.1:0".parse().unwrap(),
//!     config_size: 2048,
//!     workers: 2,
//! })
//! .await?;
//! let common = scenario::WsCommon {
//!     control: server.control_addr,
//!     agents: 10,
//!     connect_rate: 1000.0,
//!     max_connecting: 10,
//!     config_size: 2048,
//!     connect_timeout: Duration::from_secs(30),
//!     run_id: 1,
//! };
//! let summary = scenario::ws_push(&common, 1, Duration::from_secs(30), 2).await?;
//! assert_eq!(summary.rounds[0].applied.count, 10);
//! server.shutdown(Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod benchserver;
pub mod control;
mod error;
pub mod http1;
pub mod net;
pub mod poll;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod stats;
pub mod ws;

pub use error::Error;
