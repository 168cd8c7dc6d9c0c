//! The error type of the wire layer.

/// Everything that can go wrong when turning bytes into OpAMP values or back.
///
/// Except for [`Error::OutgoingTooLarge`] (a local decision not to send), every variant
/// describes bad input from a peer: the caller treats the message as malformed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An instance uid was not exactly 16 bytes long (UID-3, UID-7, UID-10).
    #[error("instance uid must be 16 bytes, got {len}")]
    InstanceUidLength {
        /// The length that was received.
        len: usize,
    },
    /// A string is not a UUID (used for the `OpAMP-Instance-UID` header).
    #[error("invalid instance uid string {input:?}: {reason}")]
    InstanceUidString {
        /// The offending input (truncated to 64 characters).
        input: String,
        /// Why it is not a UUID.
        reason: String,
    },
    /// The WebSocket message header is a varint other than 0 (WS-4).
    #[error("WebSocket message header must be 0, got {0}")]
    NonZeroHeader(u64),
    /// The WebSocket message ends inside the varint header.
    #[error("WebSocket message ends inside its varint header")]
    TruncatedHeader,
    /// The varint header is longer than 10 bytes or overflows 64 bits.
    #[error("WebSocket message header is not a valid 64-bit varint")]
    InvalidHeader,
    /// The protobuf payload does not decode.
    #[error("malformed protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Received data is over the size limit (after decompression) (WSL-2..4, HSL-2..5).
    #[error("message too large: more than {limit} bytes")]
    TooLarge {
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// A message we were about to send is over the size limit; it was not sent
    /// (WSL-5, WSL-6, HSL-6, HSL-7).
    #[error("outgoing message of {size} bytes is over the limit of {limit} bytes; not sent")]
    OutgoingTooLarge {
        /// The encoded size of the message.
        size: usize,
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// A gzip body is corrupt or truncated.
    #[error("invalid gzip data: {0}")]
    Gzip(std::io::Error),
    /// Reading the input failed.
    #[error("reading message: {0}")]
    Io(std::io::Error),
}

impl Error {
    /// True when the error means the peer sent something over a size limit: a WebSocket
    /// receiver closes with 1009, an HTTP server answers 413.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Error::TooLarge { .. })
    }
}
