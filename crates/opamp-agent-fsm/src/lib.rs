//! Sans-IO OpAMP agent session (skeleton).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod event;
pub mod lifecycle;
mod retry_after;
mod session;
mod settings;

pub use error::Error;
pub use event::{Action, Event, TransportError};
pub use retry_after::parse_retry_after;
pub use session::AgentSession;
pub use settings::{
    Backoff, ConnectionTarget, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_POLLING_INTERVAL,
    DEFAULT_THROTTLE_FLOOR, Settings, Transport,
};
