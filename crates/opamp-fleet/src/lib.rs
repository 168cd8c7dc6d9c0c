//! The OpAMP fleet: agents, labels and selectors, groups, config assignment, sync states,
//! the OpAMP [`Handler`](opamp_server::Handler) that keeps the store up to date, and the
//! admin REST API.
//!
//! - [`selector`]: Kubernetes-style label selectors (`env=prod,region in (eu,us),!canary`),
//!   parsed with errors that say where and what was expected.
//! - [`labels`]: an agent's labels are its description attributes overlaid with
//!   operator-set labels (operator labels win on a key clash).
//! - [`desired`]: which assignment decides an agent's desired config. **Precedence: an
//!   assignment to the agent itself beats one to a group, which beats one to a selector;
//!   within a level the newest assignment wins** (greatest `created_at`, then greatest id).
//!   An assignment pins a config version or follows the config's latest version.
//! - [`sync`]: `in_sync`, `pending`, `failed`, `drifted`, `unmanaged`, defined exactly.
//! - [`Fleet`]: one per replica. It loads agents and assignments from the store, computes
//!   every agent's desired config (at start, and on every change event about configs,
//!   assignments, groups or labels), and pushes changes: at once over WebSocket, with the
//!   next poll over HTTP. Only agents with `AcceptsRemoteConfig` get a desired config.
//! - [`FleetHandler`]: persists what agents report (only changed sub-messages, written
//!   behind in batches; heartbeats that change nothing only update the batched last-seen
//!   time), marks agents connected
//!   and disconnected, and answers with the desired config and queued commands.
//! - [`api`]: the admin REST API under `/api/v1` (JSON errors, bearer-token roles, OpenAPI
//!   document generated from the code at `/api/v1/openapi.json`, server-sent events),
//!   plus `/metrics`, `/healthz` and `/readyz`.
//! - [`ui`]: the web UI on the same router: server-rendered pages (overview, agents,
//!   configs with diffs and an editor), a session cookie holding an API token, live
//!   updates over the event stream.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use opamp_fleet::selector::Selector;
//!
//! let sel: Selector = "service.name=checkout,env notin (dev)".parse().unwrap();
//! let labels: BTreeMap<String, String> =
//!     [("service.name".to_owned(), "checkout".to_owned())].into();
//! assert!(sel.matches(&labels));
//! assert_eq!(sel.to_string(), "service.name=checkout,env notin (dev)");
//!
//! let err = "env in prod".parse::<Selector>().unwrap_err();
//! assert_eq!(err.to_string(), "invalid selector at column 8: expected '(' after 'in', found \"prod\"");
//! ```
//!
//! Wiring it into a server (what `opampd` does):
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn opamp_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use opamp_fleet::{Fleet, FleetOptions};
//! let fleet = Fleet::start(store, FleetOptions::new("replica-1").open_without_tokens(true)).await?;
//! let server = opamp_server::Server::new(opamp_fleet::server_config(), fleet.handler());
//! fleet.attach_server(server.clone());
//! let opamp = tokio::net::TcpListener::bind("127.0.0.1:4320").await?;
//! let admin = tokio::net::TcpListener::bind("127.0.0.1:4321").await?;
//! tokio::spawn(axum::serve(admin, fleet.admin_router()).into_future());
//! server.serve(opamp, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
mod background;
pub mod convert;
pub mod desired;
mod error;
mod fleet;
mod handler;
pub mod labels;
pub mod metrics;
pub mod redact;
pub mod selector;
pub mod sync;
pub mod ui;
mod writer;

pub use error::Error;
pub use fleet::{Fleet, FleetEvent, FleetOptions, Resolved};
pub use handler::FleetHandler;
pub use selector::{Selector, SelectorError};
pub use sync::SyncState;

/// The OpAMP server configuration the fleet expects: the defaults of
/// [`opamp_server::ServerConfig`] (it accepts status and effective config, and offers remote
/// config).
pub fn server_config() -> opamp_server::ServerConfig {
    opamp_server::ServerConfig::default()
}
