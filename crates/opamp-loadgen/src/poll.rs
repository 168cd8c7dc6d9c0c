//! Plain-HTTP polling agents: each poller is one simulated agent on one keep-alive
//! connection that polls again as soon as the previous reply arrived.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use opamp_proto::prost::Message;
use opamp_proto::v1::ServerToAgent;
use opamp_proto::{CONTENT_TYPE_PROTOBUF, INSTANCE_UID_HEADER};
use tokio::task::JoinSet;

use crate::benchserver::unix_ns;
use crate::http1::Connection;
use crate::sim::{Fleet, SimAgent, agent_uid};
use crate::{Error, net};

/// How the pollers behave.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's OpAMP address.
    pub server: SocketAddr,
    /// The endpoint path.
    pub path: String,
    /// Concurrent pollers (connections, agents).
    pub pollers: usize,
    /// Polls before this much time has passed are not counted.
    pub warmup: Duration,
    /// How long polls are counted after the warm-up.
    pub duration: Duration,
    /// Size of the agents' local effective config in bytes.
    pub config_size: usize,
    /// Distinguishes the uids of different runs.
    pub run_id: u32,
}

/// What the pollers saw during the counted window.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Successful polls (200 with a decodable ServerToAgent).
    pub polls: u64,
    /// Latencies of those polls in µs.
    pub latencies_us: Vec<u64>,
    /// Responses by status code, including 200.
    pub statuses: BTreeMap<u16, u64>,
    /// Transport failures and undecodable replies.
    pub errors: u64,
    /// Connections re-opened after a failure or `Connection: close`.
    pub reconnects: u64,
    /// The counted window's actual length.
    pub window: Duration,
}

/// Runs the pollers for `warmup + duration` and gathers what they saw.
pub async fn run(options: Options) -> Result<Outcome, Error> {
    if options.pollers == 0 {
        return Err(Error::InvalidOptions("pollers must be positive".into()));
    }
    let fleet = std::sync::Arc::new(Fleet::new(options.config_size, unix_ns()));
    let start = Instant::now();
    let window_start = start + options.warmup;
    let window_end = window_start + options.duration;
    let mut set = JoinSet::new();
    for index in 0..options.pollers {
        let options = options.clone();
        let fleet = fleet.clone();
        set.spawn(poller(options, fleet, index, window_start, window_end));
    }
    let mut total = Outcome::default();
    while let Some(joined) = set.join_next().await {
        let one = joined.map_err(|e| Error::Io(std::io::Error::other(e)))?;
        total.polls += one.polls;
        total.latencies_us.extend(one.latencies_us);
        for (status, n) in one.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.errors += one.errors;
        total.reconnects += one.reconnects;
    }
    total.window = options.duration;
    Ok(total)
}

async fn poller(
    options: Options,
    fleet: std::sync::Arc<Fleet>,
    index: usize,
    window_start: Instant,
    window_end: Instant,
) -> Outcome {
    let mut out = Outcome::default();
    let index32 = u32::try_from(index).unwrap_or(u32::MAX);
    let mut sim = SimAgent::new(index32, agent_uid(options.run_id, index32));
    let host = options.server.to_string();
    let mut conn: Option<Connection> = None;
    let mut next = Some(sim.full_report(&fleet));
    let mut body = Vec::with_capacity(256);
    let mut uid_header = (sim.uid(), sim.uid().to_string());
    while Instant::now() < window_end {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match net::connect(index, options.server).await {
                Ok(stream) => conn.insert(Connection::new(stream, host.clone())),
                Err(_) => {
                    out.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let msg = next.take().unwrap_or_else(|| sim.heartbeat());
        body.clear();
        let _ = msg.encode(&mut body);
        if uid_header.0 != sim.uid() {
            uid_header = (sim.uid(), sim.uid().to_string());
        }
        let headers = [
            ("Content-Type", CONTENT_TYPE_PROTOBUF),
            // HTTP-11: the uid in its canonical string form, as in the body.
            (INSTANCE_UID_HEADER, uid_header.1.as_str()),
        ];
        let sent = Instant::now();
        let result = c.request("POST", &options.path, &headers, &body).await;
        let done = Instant::now();
        let counted = sent >= window_start && done <= window_end;
        let response = match result {
            Ok(r) => r,
            Err(_) => {
                if counted {
                    out.errors += 1;
                }
                conn = None;
                out.reconnects += 1;
                continue;
            }
        };
        if response.close {
            conn = None;
            out.reconnects += 1;
        }
        if counted {
            *out.statuses.entry(response.status).or_default() += 1;
        }
        if response.status != 200 {
            // Refused (429/503) or worse: do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            next = Some(msg);
            continue;
        }
        match ServerToAgent::decode(response.body) {
            Ok(reply) => {
                next = sim.handle(&reply, &fleet).send;
                if counted {
                    out.polls += 1;
                    out.latencies_us
                        .push((done - sent).as_micros().max(1) as u64);
                }
            }
            Err(_) => {
                if counted {
                    out.errors += 1;
                }
            }
        }
    }
    out
}
