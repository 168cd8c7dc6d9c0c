//! Every scenario end to end against an in-process bench server, with a few agents.
//! Only counts and shapes are checked, never timings (the machine may be loaded).

#![allow(clippy::unwrap_used)] // tests and their helpers may unwrap

use std::time::Duration;

use opamp_loadgen::benchserver::{self, Running};
use opamp_loadgen::scenario::{self, WsCommon};

const GUARD: Duration = Duration::from_secs(60);

async fn server() -> Running {
    benchserver::start(benchserver::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        control: "127.0.0.1:0".parse().unwrap(),
        config_size: 2048,
        workers: 2,
    })
    .await
    .unwrap()
}

fn common(server: &Running, agents: usize, run_id: u32) -> WsCommon {
    WsCommon {
        control: server.control_addr,
        agents,
        connect_rate: 2000.0,
        max_connecting: 16,
        config_size: 2048,
        connect_timeout: GUARD,
        run_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_idle_connects_every_agent_and_reads_server_rss() {
    let server = server().await;
    let summary = tokio::time::timeout(
        GUARD,
        scenario::ws_idle(&common(&server, 40, 1), Duration::from_millis(100), 2),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(summary.connect.ready, 40);
    assert_eq!(summary.connect.failed, 0);
    assert_eq!(summary.connect.first_reply_latency.count, 40);
    assert_eq!(summary.server_ws_connections, 40);
    assert!(summary.server_rss_after > 0 && summary.server_rss_peak > 0);
    assert_eq!(summary.error_replies, 0);
    server.shutdown(GUARD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_push_reaches_every_agent_and_every_agent_reports_applied_rcfg_10_rcfg_11() {
    let server = server().await;
    let summary = tokio::time::timeout(
        GUARD,
        scenario::ws_push(&common(&server, 30, 2), 2, GUARD, 2),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(summary.rounds.len(), 2);
    for (i, round) in summary.rounds.iter().enumerate() {
        assert_eq!(round.generation, 2 + i as u64);
        assert_eq!(round.expected, 30);
        assert_eq!(round.sent, 30);
        assert_eq!(round.received.count, 30);
        assert_eq!(round.applied.count, 30);
        assert!(round.applied.max_ms >= round.applied.p50_ms);
    }
    assert_eq!(summary.closed_by_server, 0);
    server.shutdown(GUARD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_steady_heartbeats_are_each_answered_seq_4() {
    let server = server().await;
    let summary = tokio::time::timeout(
        GUARD,
        scenario::ws_steady(
            &common(&server, 20, 3),
            Duration::from_millis(200),
            Duration::from_millis(600),
            2,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(summary.heartbeat_latency.count > 0);
    assert!(summary.messages_per_s > 0.0);
    assert!(summary.server_cpu_percent >= 0.0);
    assert_eq!(summary.closed_by_server, 0);
    server.shutdown(GUARD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_poll_keep_alive_pollers_get_200_replies_http_14_http_15() {
    let server = server().await;
    let summary = tokio::time::timeout(
        GUARD,
        scenario::http_poll(
            server.control_addr,
            4,
            Duration::from_millis(100),
            Duration::from_millis(500),
            2048,
            4,
            2,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(summary.polls > 0);
    assert_eq!(summary.errors, 0);
    assert_eq!(
        summary.statuses.keys().copied().collect::<Vec<_>>(),
        vec![200]
    );
    assert_eq!(summary.latency.count, summary.polls);
    // Keep-alive: one connection per poller for the whole run (HTTP-15).
    assert_eq!(summary.reconnects, 0);
    server.shutdown(GUARD).await;
}
