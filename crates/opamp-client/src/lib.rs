//! Async OpAMP agent-side client for tokio.
//!
//! TODO docs
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

pub use opamp_agent_fsm::{Backoff, ConnectionTarget, TransportError};
pub use opamp_proto::{self, AgentCapabilities, InstanceUid, ServerCapabilities, v1};
