//! Sockets for many connections from one process: the open-files limit, and source
//! addresses spread over 127.0.0.2..=127.0.0.251 so that 10^5 connections to one server
//! port do not run out of ephemeral ports (about 28,000 per source address).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};

/// The result of [`raise_nofile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NofileLimit {
    /// The soft limit in force now.
    pub soft: u64,
    /// The hard limit in force now.
    pub hard: u64,
    /// Set when the limit could not be raised to what was asked.
    pub warning: Option<String>,
}

/// Raises `RLIMIT_NOFILE` to at least `want` if possible: first soft and hard together
/// (allowed for root), else the soft limit up to the hard one.
pub fn raise_nofile(want: u64) -> NofileLimit {
    let old = getrlimit(Resource::Nofile);
    let hard = old.maximum.unwrap_or(u64::MAX);
    let soft = old.current.unwrap_or(u64::MAX);
    let mut warning = None;
    if soft < want {
        let both = Rlimit {
            current: Some(want),
            maximum: Some(hard.max(want)),
        };
        if let Err(e) = setrlimit(Resource::Nofile, both) {
            let capped = want.min(hard);
            let soft_only = Rlimit {
                current: Some(capped),
                maximum: old.maximum,
            };
            match setrlimit(Resource::Nofile, soft_only) {
                Ok(()) if capped >= want => {}
                Ok(()) => {
                    warning = Some(format!(
                        "RLIMIT_NOFILE: wanted {want}, raising the hard limit failed ({e}); soft limit is now {capped}"
                    ));
                }
                Err(e2) => {
                    warning = Some(format!(
                        "RLIMIT_NOFILE: wanted {want}, could not raise it ({e}; {e2}); it stays {soft}"
                    ));
                }
            }
        }
    }
    let now = getrlimit(Resource::Nofile);
    NofileLimit {
        soft: now.current.unwrap_or(u64::MAX),
        hard: now.maximum.unwrap_or(u64::MAX),
        warning,
    }
}

/// The source address for connection `index` when the server is on loopback.
pub fn source_ip(index: usize) -> Ipv4Addr {
    // 2..=251: 127.0.0.1 is left to the server's own traffic.
    Ipv4Addr::new(127, 0, 0, 2 + (index % 250) as u8)
}

/// Connects to `server`; on IPv4 loopback, from `127.0.0.(2 + index % 250)` with an
/// ephemeral port. Nagle is off (OpAMP messages are small and latency-sensitive).
pub async fn connect(index: usize, server: SocketAddr) -> io::Result<TcpStream> {
    let stream = match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(IpAddr::V4(source_ip(index)), 0))?;
            socket.connect(server).await?
        }
        _ => TcpStream::connect(server).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ips_cycle_over_250_loopback_addresses() {
        assert_eq!(source_ip(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_ip(249), Ipv4Addr::new(127, 0, 0, 251));
        assert_eq!(source_ip(250), Ipv4Addr::new(127, 0, 0, 2));
    }

    #[test]
    fn nofile_never_goes_down() {
        let before = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let now = raise_nofile(16);
        assert!(now.soft >= before.min(16));
        assert!(now.warning.is_none());
    }

    #[tokio::test]
    async fn connects_from_a_spread_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(connect(7, addr), listener.accept());
        let client = client.unwrap();
        let (_server_side, peer) = accepted.unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(source_ip(7)));
        assert_eq!(client.local_addr().unwrap().ip(), IpAddr::V4(source_ip(7)));
    }
}
