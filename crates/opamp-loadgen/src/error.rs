//! The crate's one error type.

use std::io;

/// What can go wrong while generating load or serving a benchmark.
///
/// The peer's faults (a server that answers something we cannot read) are kept apart from
/// local misuse (bad options) and from IO.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server sent something this load generator cannot read (a malformed HTTP
    /// response, an undecodable OpAMP message, an unexpected status code).
    #[error("server misbehaved: {0}")]
    PeerMisbehaved(String),
    /// The server refused the request (HTTP status, WebSocket upgrade refused).
    #[error("server refused: HTTP {status}")]
    Refused {
        /// The HTTP status code.
        status: u16,
        /// The `Retry-After` delay in seconds, when the server sent one.
        retry_after: Option<u64>,
    },
    /// The options do not make sense (zero agents, a bad address).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A run did not reach its goal in the time allowed (e.g. not every agent connected).
    #[error("timed out: {0}")]
    Timeout(String),
    /// An OpAMP wire-layer error.
    #[error("wire: {0}")]
    Wire(#[from] opamp_proto::Error),
    /// A WebSocket error.
    #[error("websocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// JSON (de)serialization of a summary or control answer.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Socket or file IO.
    #[error("io: {0}")]
    Io(#[from] io::Error),
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Error::WebSocket(Box::new(e))
    }
}
