//! Many simulated agents over WebSocket from one process: one lean task per agent (a
//! tungstenite stream with small buffers and a [`SimAgent`]), started at a controlled rate.
//!
//! Every agent writes what it measured into per-agent slots ([`AtomicU64`]s indexed by
//! agent number) so that the scenario can read them at any time without stopping anyone.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use opamp_proto::v1::{AgentToServer, ServerToAgent};
use opamp_proto::{Limits, framing};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::sleep_until;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::benchserver::unix_ns;
use crate::sim::{Fleet, SimAgent, agent_uid};
use crate::{Error, net};

/// How a WebSocket fleet behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's OpAMP address.
    pub server: SocketAddr,
    /// The endpoint path.
    pub path: String,
    /// How many agents.
    pub agents: usize,
    /// New connections started per second.
    pub connect_rate: f64,
    /// At most this many connection attempts (TCP + upgrade) at once.
    pub max_connecting: usize,
    /// Heartbeat interval (`None`: no heartbeats). The first one is at a random point in
    /// the first interval so heartbeats spread evenly.
    pub heartbeat: Option<Duration>,
    /// Size of the agents' local effective config in bytes.
    pub config_size: usize,
    /// Distinguishes the uids of different runs.
    pub run_id: u32,
}

/// Counters shared by all agents of a fleet.
#[derive(Debug, Default)]
pub struct Counters {
    /// Agents with an open WebSocket.
    pub connected: AtomicUsize,
    /// Agents whose first exchange (full report, reply, APPLIED of the offered config,
    /// reply) is complete.
    pub ready: AtomicUsize,
    /// Agents that gave up connecting.
    pub failed: AtomicUsize,
    /// Upgrade attempts refused with 429 / 503 and retried.
    pub retries: AtomicUsize,
    /// Connections the server closed (or that broke) while the run went on.
    pub closed: AtomicUsize,
    /// Error responses received.
    pub errors: AtomicUsize,
    /// ReportFullState requests received.
    pub full_state_requests: AtomicUsize,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
}

struct Shared {
    options: Options,
    fleet: Fleet,
    counters: Counters,
    started: Instant,
    /// Per agent: µs from the start of its connection attempt to the upgrade completing.
    connect_us: Vec<AtomicU64>,
    /// Per agent: µs from sending the first full report to receiving the reply.
    first_reply_us: Vec<AtomicU64>,
    /// Per agent: µs since `started` when it became ready.
    ready_at_us: Vec<AtomicU64>,
    /// Per agent: Unix ns when the last new remote config arrived (0: none since reset).
    config_at_unix_ns: Vec<AtomicU64>,
    /// Heartbeat → reply latencies in µs, while recording is on.
    heartbeat_us: Mutex<Vec<u64>>,
    record_heartbeats: std::sync::atomic::AtomicBool,
    stop: CancellationToken,
    connecting: Semaphore,
}

/// A running fleet of WebSocket agents.
pub struct WsFleet {
    shared: Arc<Shared>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for WsFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsFleet")
            .field("agents", &self.shared.options.agents)
            .finish_non_exhaustive()
    }
}

fn slots(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn load_all(slots: &[AtomicU64]) -> Vec<u64> {
    slots.iter().map(|s| s.load(Ordering::Relaxed)).collect()
}

impl WsFleet {
    /// Starts connecting the agents (in the background, at the configured rate).
    pub fn start(options: Options) -> Result<Self, Error> {
        if options.agents == 0 || options.connect_rate <= 0.0 {
            return Err(Error::InvalidOptions(
                "agents and connect rate must be positive".into(),
            ));
        }
        let n = options.agents;
        let shared = Arc::new(Shared {
            fleet: Fleet::new(options.config_size, unix_ns()),
            counters: Counters::default(),
            started: Instant::now(),
            connect_us: slots(n),
            first_reply_us: slots(n),
            ready_at_us: slots(n),
            config_at_unix_ns: slots(n),
            heartbeat_us: Mutex::new(Vec::new()),
            record_heartbeats: false.into(),
            stop: CancellationToken::new(),
            connecting: Semaphore::new(options.max_connecting.max(1)),
            options,
        });
        let tracker = TaskTracker::new();
        let spawner = {
            let shared = shared.clone();
            let tracker = tracker.clone();
            async move {
                let period = Duration::from_secs_f64(1.0 / shared.options.connect_rate);
                let start = tokio::time::Instant::now();
                for index in 0..shared.options.agents {
                    // Paced by a schedule, not by sleeps: no drift when the loop is late.
                    let at = start + period.mul_f64(index as f64);
                    tokio::select! {
                        () = shared.stop.cancelled() => return,
                        () = sleep_until(at) => {}
                    }
                    let permit = tokio::select! {
                        () = shared.stop.cancelled() => return,
                        permit = shared.connecting.acquire() => permit,
                    };
                    let Ok(permit) = permit else { return };
                    permit.forget();
                    tracker.spawn(agent(shared.clone(), index));
                }
            }
        };
        tracker.spawn(spawner);
        Ok(Self { shared, tracker })
    }

    /// The shared counters.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Waits until every agent is ready or failed, or `timeout` passes. Returns the time
    /// from the start to the last agent becoming ready.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Duration, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let n = self.shared.options.agents;
        loop {
            let c = &self.shared.counters;
            let done = c.ready.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed);
            if done >= n {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "{} of {n} agents ready, {} failed, {} connected after {timeout:?}",
                    c.ready.load(Ordering::Relaxed),
                    c.failed.load(Ordering::Relaxed),
                    c.connected.load(Ordering::Relaxed),
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last = self
            .shared
            .ready_at_us
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        Ok(Duration::from_micros(last))
    }

    /// Per agent: connection (TCP + upgrade) times in µs; 0 for agents that never
    /// connected.
    pub fn connect_us(&self) -> Vec<u64> {
        load_all(&self.shared.connect_us)
    }

    /// Per agent: first report → reply times in µs; 0 when not answered.
    pub fn first_reply_us(&self) -> Vec<u64> {
        load_all(&self.shared.first_reply_us)
    }

    /// Per agent: Unix ns when the last new remote config arrived since
    /// [`WsFleet::reset_config_receipts`]; 0 when none did.
    pub fn config_receipts(&self) -> Vec<u64> {
        load_all(&self.shared.config_at_unix_ns)
    }

    /// Forgets the remote config arrival times (before a push).
    pub fn reset_config_receipts(&self) {
        for s in &self.shared.config_at_unix_ns {
            s.store(0, Ordering::Relaxed);
        }
    }

    /// Starts or stops recording heartbeat latencies; stopping returns what was recorded.
    pub fn record_heartbeats(&self, on: bool) -> Vec<u64> {
        self.shared.record_heartbeats.store(on, Ordering::Relaxed);
        std::mem::take(
            &mut *self
                .shared
                .heartbeat_us
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Closes every connection (close frame, bounded wait) and waits for the tasks.
    pub async fn stop(self, timeout: Duration) {
        self.shared.stop.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(timeout, self.tracker.wait()).await;
    }
}

type Ws = WebSocketStream<TcpStream>;

fn ws_config() -> WebSocketConfig {
    // Small buffers: the load generator holds tens of thousands of these.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn connect(shared: &Shared, index: usize) -> Result<Ws, Error> {
    let url = format!("ws://{}{}", shared.options.server, shared.options.path);
    let mut attempts = 0;
    loop {
        let tcp = net::connect(index, shared.options.server).await?;
        let request = url.as_str().into_client_request()?;
        match tokio_tungstenite::client_async_with_config(request, tcp, Some(ws_config())).await {
            Ok((ws, _response)) => return Ok(ws),
            Err(tungstenite::Error::Http(response))
                if (response.status() == 429 || response.status() == 503) && attempts < 20 =>
            {
                attempts += 1;
                shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                // Honour the hint, capped: a benchmark run is bounded in time.
                tokio::time::sleep(Duration::from_secs(retry_after.min(2))).await;
            }
            Err(tungstenite::Error::Http(response)) => {
                return Err(Error::Refused {
                    status: response.status().as_u16(),
                    retry_after: None,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn send(ws: &mut Ws, shared: &Shared, msg: &AgentToServer) -> Result<(), Error> {
    ws.send(Message::Binary(Bytes::from(framing::encode(msg))))
        .await?;
    shared.counters.sent.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// One agent's life: connect, report, react, heartbeat, close.
async fn agent(shared: Arc<Shared>, index: usize) {
    let c = &shared.counters;
    let t0 = Instant::now();
    let ws = tokio::select! {
        () = shared.stop.cancelled() => None,
        ws = connect(&shared, index) => Some(ws),
    };
    shared.connecting.add_permits(1);
    let mut ws = match ws {
        Some(Ok(ws)) => ws,
        Some(Err(e)) => {
            if c.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("agent {index}: connect failed: {e}");
            }
            return;
        }
        None => return,
    };
    shared.connect_us[index].store(micros(t0.elapsed()), Ordering::Relaxed);
    c.connected.fetch_add(1, Ordering::Relaxed);
    let end = run_agent(&shared, index, &mut ws).await;
    c.connected.fetch_sub(1, Ordering::Relaxed);
    match end {
        Ok(()) => {
            let close = async {
                let _ = ws.close(None).await;
                // Read until the server's close frame answers ours.
                while let Some(Ok(_)) = ws.next().await {}
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
        }
        Err(_) => {
            c.closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run_agent(shared: &Shared, index: usize, ws: &mut Ws) -> Result<(), Error> {
    let c = &shared.counters;
    let fleet = &shared.fleet;
    let index32 = u32::try_from(index).unwrap_or(u32::MAX);
    let mut sim = SimAgent::new(index32, agent_uid(shared.options.run_id, index32));
    let sent_first = Instant::now();
    send(ws, shared, &sim.full_report(fleet)).await?;
    let mut outstanding: u32 = 1;
    let mut first_reply = true;
    let mut ready = false;
    let mut heartbeat_sent: Option<Instant> = None;
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let mut next_heartbeat = far;
    let limits = Limits::default();
    loop {
        let msg = tokio::select! {
            () = shared.stop.cancelled() => return Ok(()),
            () = sleep_until(next_heartbeat) => {
                if let Some(period) = shared.options.heartbeat {
                    next_heartbeat += period;
                }
                send(ws, shared, &sim.heartbeat()).await?;
                outstanding += 1;
                heartbeat_sent = Some(Instant::now());
                continue;
            }
            msg = ws.next() => msg,
        };
        let data = match msg {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Close(_))) | None => {
                return Err(Error::PeerMisbehaved(
                    "connection closed by the server".into(),
                ));
            }
            Some(Ok(_)) => continue, // ping (answered by tungstenite), pong, text
            Some(Err(e)) => return Err(e.into()),
        };
        let now = Instant::now();
        c.received.fetch_add(1, Ordering::Relaxed);
        outstanding = outstanding.saturating_sub(1);
        if first_reply {
            first_reply = false;
            shared.first_reply_us[index].store(micros(now - sent_first), Ordering::Relaxed);
        }
        if let Some(sent) = heartbeat_sent.take() {
            if shared.record_heartbeats.load(Ordering::Relaxed) {
                shared
                    .heartbeat_us
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(micros(now - sent));
            }
        }
        let reply: ServerToAgent = match framing::decode(&data, limits) {
            Ok(reply) => reply,
            Err(e) => return Err(e.into()),
        };
        let reaction = sim.handle(&reply, fleet);
        if reaction.error.is_some() {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        if reaction.full_state_requested {
            c.full_state_requests.fetch_add(1, Ordering::Relaxed);
        }
        if reaction.new_config {
            shared.config_at_unix_ns[index].store(unix_ns(), Ordering::Relaxed);
        }
        if let Some(out) = reaction.send {
            send(ws, shared, &out).await?;
            outstanding += 1;
        }
        if !ready && outstanding == 0 {
            ready = true;
            let at = micros(shared.started.elapsed());
            shared.ready_at_us[index].store(at, Ordering::Relaxed);
            c.ready.fetch_add(1, Ordering::Relaxed);
            if let Some(period) = shared.options.heartbeat {
                let offset = period.mul_f64(rand::rng().random::<f64>());
                next_heartbeat = tokio::time::Instant::now() + offset;
            }
        }
    }
}
