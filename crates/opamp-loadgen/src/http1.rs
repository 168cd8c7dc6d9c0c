//! A minimal HTTP/1.1 keep-alive client: one request at a time on one connection,
//! `Content-Length` bodies only.
//!
//! The HTTP poll benchmark must measure the server, not the client, and the load
//! generator gets one core: a general client (hyper's) costs several times more per
//! request than this. The framing is the same on the wire; what is left out (chunked
//! bodies, pipelining, redirects) an OpAMP server does not need to send to a poller.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The largest response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `Retry-After` in seconds, if present and numeric.
    pub retry_after: Option<u64>,
    /// The server will close the connection after this response.
    pub close: bool,
    /// The body.
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    status: u16,
    retry_after: Option<u64>,
    close: bool,
    content_length: usize,
    head_len: usize,
}

/// Parses a response head from the start of `buf`: `Ok(None)` when more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Error> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(Error::PeerMisbehaved("HTTP response head too large".into()));
        }
        return Ok(None);
    };
    let bad = |what: &str| Error::PeerMisbehaved(format!("bad HTTP response: {what}"));
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not HTTP/1.x"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status code"))?;
    let mut close = version == "HTTP/1.0";
    let mut content_length = None;
    let mut retry_after = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("header line without ':'"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| bad("content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("transfer-encoding is not supported by this client"));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("retry-after") {
            retry_after = value.parse().ok();
        }
    }
    // 1xx, 204 and 304 have no body; otherwise a length is required (no read-to-close).
    let content_length = match (status, content_length) {
        (100..=199 | 204 | 304, _) => 0,
        (_, Some(n)) if n <= MAX_BODY => n,
        (_, Some(_)) => return Err(bad("body too large")),
        (_, None) => return Err(bad("no content-length")),
    };
    Ok(Some(Head {
        status,
        retry_after,
        close,
        content_length,
        head_len: end + 4,
    }))
}

/// Writes a request head and body into `out` (cleared first).
fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    use std::io::Write as _;
    out.clear();
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

/// A keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    host: String,
    read: BytesMut,
    write: Vec<u8>,
}

impl Connection {
    /// Wraps a connected stream; `host` goes in the `Host` header.
    pub fn new(stream: TcpStream, host: impl Into<String>) -> Self {
        Self {
            stream,
            host: host.into(),
            read: BytesMut::with_capacity(4096),
            write: Vec::with_capacity(512),
        }
    }

    /// Sends one request with these extra headers and reads its response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        write_request(&mut self.write, method, &self.host, path, headers, body);
        self.stream.write_all(&self.write).await?;
        let head = loop {
            if let Some(head) = parse_head(&self.read)? {
                break head;
            }
            self.fill().await?;
        };
        self.read.advance(head.head_len);
        while self.read.len() < head.content_length {
            self.fill().await?;
        }
        let body = self.read.split_to(head.content_length).freeze();
        Ok(Response {
            status: head.status,
            retry_after: head.retry_after,
            close: head.close,
            body,
        })
    }

    async fn fill(&mut self) -> Result<(), Error> {
        self.read.reserve(4096);
        let n = self.stream.read_buf(&mut self.read).await?;
        if n == 0 {
            return Err(Error::PeerMisbehaved(
                "connection closed in the middle of a response".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_head() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 5\r\n\r\nhello";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length, 5);
        assert!(!head.close);
        assert_eq!(&raw[head.head_len..], b"hello");
    }

    #[test]
    fn needs_more_bytes_for_a_partial_head() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
    }

    #[test]
    fn reads_retry_after_and_close() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(
            (head.status, head.retry_after, head.close),
            (503, Some(30), true)
        );
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(parse_head(&vec![b'a'; MAX_HEAD + 1]).is_err());
        assert_eq!(
            parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
                .unwrap()
                .unwrap()
                .content_length,
            0
        );
    }

    #[test]
    fn writes_a_request() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "POST",
            "h:1",
            "/v1/opamp",
            &[("Content-Type", "application/x-protobuf")],
            b"ab",
        );
        assert_eq!(
            out,
            b"POST /v1/opamp HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/x-protobuf\r\nContent-Length: 2\r\n\r\nab"
        );
    }

    #[tokio::test]
    async fn round_trip_over_a_socket_with_split_reads() {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for _ in 0..2 {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-").await.unwrap();
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
                s.write_all(b"Length: 3\r\n\r\nab").await.unwrap();
                s.write_all(b"c").await.unwrap();
            }
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut conn = Connection::new(stream, addr.to_string());
        for _ in 0..2 {
            let r = conn.request("POST", "/", &[], b"x").await.unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"abc"[..]));
        }
        server.await.unwrap();
    }
}
