//! The crate's one error type: what the server offered (peer faults), what local text did not
//! parse, and API misuse, kept apart.

/// What can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Peer fault: an offered `destination_endpoint` is not a full `http://` or `https://`
    /// URL with a host (OWN-6).
    #[error("offered telemetry endpoint {endpoint:?} is invalid: {reason} (OWN-6)")]
    InvalidEndpoint {
        /// The endpoint as offered.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Peer fault: an offered header cannot be sent as an HTTP header (OWN-7).
    #[error("offered header {name:?} is invalid: {reason} (OWN-7)")]
    InvalidHeader {
        /// The header name as offered.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Peer fault: an offered client certificate cannot be used (OWN-8).
    #[error("offered client certificate is unusable: {0} (OWN-8)")]
    InvalidCertificate(&'static str),
    /// Peer fault: an OTLP export response body does not decode.
    #[error("OTLP export response does not decode: {0}")]
    InvalidResponse(String),
    /// Local: a `/proc` file's text does not have the expected shape.
    #[error("cannot parse {file}: {reason}")]
    ProcParse {
        /// Which file: `"/proc/<pid>/stat"`, `"/proc/<pid>/status"` or `"/proc/stat"`.
        file: &'static str,
        /// What is missing or malformed.
        reason: String,
    },
    /// Misuse: a clock tick rate of zero.
    #[error("clock ticks per second must be greater than zero")]
    ZeroClockTicks,
}
