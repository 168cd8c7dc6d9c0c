//! Async OpAMP agent-side client for tokio.
//!
//! An agent (or a supervisor acting for one) uses this crate to talk to an OpAMP server:
//! report who it is and what it runs, receive remote configuration, connection settings,
//! packages and commands. The protocol logic lives in the sans-IO
//! [`opamp_agent_fsm::AgentSession`]; this crate is the thin tokio driver around it:
//!
//! - **Transports by URL scheme**: `ws://` / `wss://` (WebSocket, tokio-tungstenite) and
//!   `http://` / `https://` (plain HTTP polling, hyper), TLS with rustls (system roots or a
//!   given CA, optional client certificate for mTLS). No OpenSSL.
//! - **Wire rules**: `0x00` header on every WebSocket message (WS-3), legacy header-less
//!   frames accepted (WS-7); `POST` with `Content-Type: application/x-protobuf` (HTTP-1,
//!   HTTP-7), `OpAMP-Instance-UID` (HTTP-11), optional gzip request bodies (HTTP-9), gzip
//!   responses decoded under the size limit; one HTTP request in flight (HTTP-6); custom
//!   headers on every POST and on the WebSocket upgrade (OPC-7).
//! - **Failures**: 401 → [`ClientEvent::AuthenticationFailed`] (CONN-6); 413 → the message
//!   is dropped, not retried (HSL-4); 429 / 503 with `Retry-After` (seconds or HTTP-date)
//!   → throttled (THR-3); size limits both ways (WSL-4: close 1009; HSL-5: response
//!   discarded; WSL-6, HSL-7: oversized messages not sent); reconnect with backoff and
//!   jitter, immediately once after a dropped WebSocket (CONN-2, CONN-4).
//! - **Graceful stop**: `agent_disconnect`, then the WebSocket closing handshake (DISC-2);
//!   over HTTP the last POST carries `agent_disconnect` (DISC-4).
//! - **Persistence** through a [`StateStore`]: instance uid (generated once as a UUIDv7),
//!   last remote config and its status, and OpAMP connection settings (valid, and a
//!   candidate with its offer hash, OPC-5) survive restarts. [`FileStateStore`] writes
//!   atomically. A candidate left by a crash is resumed by the session
//!   ([`opamp_agent_fsm::Settings::candidate`]): tried first, then accepted or reverted with
//!   APPLIED / FAILED reported for its offer (OPC-5 step 3, CSS-4).
//!
//! WebSocket `permessage-deflate` is not offered: tungstenite does not implement it (it is
//! optional in OpAMP). HTTP `Content-Encoding: gzip` is supported in both directions.
//!
//! # Usage: an event stream
//!
//! Build a client, [`start`](OpampClient::start) it, and read [`ClientEvent`]s from the
//! returned channel. Report state through the cloneable [`ClientHandle`]; the client sends
//! only what changed (SEQ-8). The example below runs as is: nothing listens on its port, so
//! the first event is a failed connection attempt.
//!
//! ```
//! use opamp_client::{AgentCapabilities, ClientEvent, MemoryStateStore, OpampClient, v1};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), opamp_client::Error> {
//! let client = OpampClient::builder("ws://127.0.0.1:9/v1/opamp") // or http://, wss://, https://
//!     .service_name("my-agent") // AgentDescription identifying attributes
//!     .capabilities(
//!         AgentCapabilities::ACCEPTS_REMOTE_CONFIG
//!             | AgentCapabilities::REPORTS_REMOTE_CONFIG
//!             | AgentCapabilities::REPORTS_EFFECTIVE_CONFIG
//!             | AgentCapabilities::REPORTS_HEARTBEAT,
//!     )
//!     .header("Authorization", "Bearer my-token") // on every request (OPC-7)
//!     .state_store(MemoryStateStore::new()) // FileStateStore::new("./state") in real life
//!     .build()?;
//! let (handle, mut events) = client.start().await?;
//!
//! while let Some(event) = events.recv().await {
//!     match event {
//!         ClientEvent::RemoteConfig(remote) => {
//!             // Apply remote.config here, then report what runs now and the outcome.
//!             handle
//!                 .set_effective_config(v1::EffectiveConfig { config_map: remote.config.clone() })
//!                 .await?;
//!             handle
//!                 .set_remote_config_status(v1::RemoteConfigStatus {
//!                     last_remote_config_hash: remote.config_hash.clone(),
//!                     status: v1::RemoteConfigStatuses::Applied as i32,
//!                     error_message: String::new(),
//!                 })
//!                 .await?;
//!         }
//!         ClientEvent::Connected => println!("connected"),
//!         ClientEvent::ConnectFailed { error, retry_in } => {
//!             println!("{error}; next attempt in {retry_in:?}");
//!             break; // a real agent keeps going: the client retries by itself
//!         }
//!         _ => {}
//!     }
//! }
//! handle.stop().await?; // agent_disconnect, then close
//! # Ok(())
//! # }
//! ```
//!
//! `examples/agent.rs` is a complete agent that applies every remote config it receives
//! and prints one JSON line per event.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod driver;
mod error;
mod event;
pub mod store;
mod tls;
mod transport;

pub use client::{ClientBuilder, ClientHandle, OpampClient};
pub use error::Error;
pub use event::ClientEvent;
pub use store::{FileStateStore, MemoryStateStore, PersistedState, StateStore, StoreError};

pub use opamp_agent_fsm::{Backoff, ConnectionTarget, PendingCandidate, TransportError};

pub use opamp_proto::{self, AgentCapabilities, InstanceUid, ServerCapabilities, v1};

/// The rustls client configuration this crate uses for its own connections, built from
/// OpAMP `TlsConnectionSettings` and an optional client certificate (system roots unless a
/// CA is given, `insecure_skip_verify`, TLS version range, mTLS, ALPN `http/1.1`). An agent
/// uses it for its other connections, e.g. the own-telemetry destination a server offers
/// with the same message types (OWN-8).
pub fn tls_client_config(
    tls: Option<&v1::TlsConnectionSettings>,
    certificate: Option<&v1::TlsCertificate>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, Error> {
    tls::client_config(tls, certificate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_tls_client_config_checks_its_input() {
        let config = tls_client_config(None, None).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let bad = v1::TlsConnectionSettings {
            ca_pem_contents: "not a pem".into(),
            ..Default::default()
        };
        assert!(matches!(
            tls_client_config(Some(&bad), None),
            Err(Error::Tls(_))
        ));
    }
}
