//! Message size limits and size-limited decompression.
//!
//! The specification recommends 64 MiB for every limit (WSL-1, HSL-1). Limits on received
//! data apply **after** decompression, so a small gzip body that inflates past the limit
//! (a "gzip bomb") is rejected as soon as the limit is crossed, without allocating the
//! inflated size (HSL-2). Limits on sent data apply before compression (WSL-5, HSL-6).

use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::write::{GzDecoder, GzEncoder};

use crate::Error;

/// The recommended default for every OpAMP size limit: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Size limits for one direction or both directions of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest message accepted or sent, in bytes after decompression (WebSocket:
    /// header plus data; HTTP: the body).
    pub max_message_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl Limits {
    /// Limits with the given maximum message size.
    pub const fn new(max_message_size: usize) -> Self {
        Self { max_message_size }
    }

    /// `Ok` when `size` bytes of received data are within the limit, else
    /// [`Error::TooLarge`].
    pub fn check_incoming(&self, size: usize) -> Result<(), Error> {
        if size > self.max_message_size {
            Err(Error::TooLarge {
                limit: self.max_message_size,
            })
        } else {
            Ok(())
        }
    }

    /// `Ok` when an outgoing message of `size` bytes may be sent, else
    /// [`Error::OutgoingTooLarge`].
    pub fn check_outgoing(&self, size: usize) -> Result<(), Error> {
        if size > self.max_message_size {
            Err(Error::OutgoingTooLarge {
                size,
                limit: self.max_message_size,
            })
        } else {
            Ok(())
        }
    }
}

/// A `Vec` sink that refuses to grow past a limit.
#[derive(Debug)]
struct LimitedSink {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Write for LimitedSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("size limit exceeded"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A push-style gzip decoder that stops at a size limit.
///
/// Feed compressed chunks as they arrive with [`GzipDecoder::push`] (for example the
/// frames of an HTTP body) and collect the result with [`GzipDecoder::finish`]. Memory
/// stays bounded by the limit whatever the compression ratio.
///
/// ```
/// use opamp_proto::limits::{GzipDecoder, gzip};
/// let compressed = gzip(b"hello");
/// let mut decoder = GzipDecoder::new(1024);
/// decoder.push(&compressed).unwrap();
/// assert_eq!(decoder.finish().unwrap(), b"hello");
///
/// let bomb = gzip(&vec![0u8; 1 << 20]); // 1 MiB of zeros, about 1 KiB compressed
/// let mut decoder = GzipDecoder::new(64 * 1024);
/// assert!(decoder.push(&bomb).unwrap_err().is_too_large());
/// ```
#[derive(Debug)]
pub struct GzipDecoder {
    inner: GzDecoder<LimitedSink>,
    limit: usize,
}

impl GzipDecoder {
    /// A decoder whose output may not exceed `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: GzDecoder::new(LimitedSink {
                buf: Vec::new(),
                limit,
                exceeded: false,
            }),
            limit,
        }
    }

    /// Decompresses one chunk of input.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        let limit = self.limit;
        self.inner
            .write_all(chunk)
            .map_err(|e| self.classify(e, limit))
    }

    /// Ends the input and returns the decompressed bytes. Fails on a truncated stream.
    pub fn finish(self) -> Result<Vec<u8>, Error> {
        let limit = self.limit;
        let mut inner = self.inner;
        if let Err(e) = inner.try_finish() {
            return Err(if inner.get_ref().exceeded {
                Error::TooLarge { limit }
            } else {
                Error::Gzip(e)
            });
        }
        let sink = inner.finish().map_err(Error::Gzip)?;
        Ok(sink.buf)
    }

    fn classify(&self, e: io::Error, limit: usize) -> Error {
        if self.inner.get_ref().exceeded {
            Error::TooLarge { limit }
        } else {
            Error::Gzip(e)
        }
    }
}

/// Decompresses a whole gzip buffer, failing with [`Error::TooLarge`] past `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let mut decoder = GzipDecoder::new(limit);
    decoder.push(data)?;
    decoder.finish()
}

/// Reads at most `limit` bytes from `reader`; more is [`Error::TooLarge`].
pub fn read_limited(reader: impl Read, limit: usize) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    let max = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(max).read_to_end(&mut buf).map_err(Error::Io)?;
    if buf.len() > limit {
        return Err(Error::TooLarge { limit });
    }
    Ok(buf)
}

/// Gzip-compresses `data` (default compression level).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limit_is_64_mib_wsl_1_hsl_1() {
        assert_eq!(Limits::default().max_message_size, 64 * 1024 * 1024);
        assert_eq!(DEFAULT_MAX_MESSAGE_SIZE, 67_108_864);
    }

    #[test]
    fn incoming_and_outgoing_checks() {
        let l = Limits::new(10);
        assert!(l.check_incoming(10).is_ok());
        assert!(l.check_incoming(11).unwrap_err().is_too_large());
        assert!(l.check_outgoing(10).is_ok());
        assert!(matches!(
            l.check_outgoing(11),
            Err(Error::OutgoingTooLarge {
                size: 11,
                limit: 10
            })
        ));
    }

    #[test]
    fn gzip_round_trip_in_small_chunks() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let compressed = gzip(&data);
        let mut decoder = GzipDecoder::new(data.len());
        for chunk in compressed.chunks(7) {
            decoder.push(chunk).unwrap();
        }
        assert_eq!(decoder.finish().unwrap(), data);
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit_hsl_2() {
        // 256 MiB of zeros compresses to about 256 KiB; the decoder must stop at 1 MiB
        // without inflating the rest.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let err = gunzip(&bomb, 1 << 20).unwrap_err();
        assert!(err.is_too_large(), "{err}");
        assert!(err.to_string().contains("1048576"));
    }

    #[test]
    fn exactly_at_the_limit_is_accepted() {
        let data = vec![b'a'; 4096];
        assert_eq!(gunzip(&gzip(&data), 4096).unwrap(), data);
        assert!(gunzip(&gzip(&data), 4095).unwrap_err().is_too_large());
    }

    #[test]
    fn corrupt_and_truncated_gzip_are_errors_not_panics() {
        let good = gzip(b"hello world, hello world");
        let truncated = &good[..good.len() - 6];
        assert!(matches!(gunzip(truncated, 1024), Err(Error::Gzip(_))));
        assert!(matches!(
            gunzip(b"definitely not gzip", 1024),
            Err(Error::Gzip(_))
        ));
        let mut flipped = good.clone();
        flipped[12] ^= 0xFF;
        assert!(gunzip(&flipped, 1024).is_err());
    }

    #[test]
    fn read_limited_enforces_the_limit() {
        assert_eq!(read_limited(&b"12345"[..], 5).unwrap(), b"12345");
        assert!(read_limited(&b"123456"[..], 5).unwrap_err().is_too_large());
    }
}
