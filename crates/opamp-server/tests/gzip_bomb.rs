//! The gzip bomb defence (HSL-2, HSL-3), alone in its own test binary so that the peak
//! memory of the process can be checked.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::io::Write;

use common::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use opamp_server::ServerConfig;

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test]
async fn gzip_bomb_gets_413_without_allocating_the_inflated_size_hsl_2_hsl_3() {
    const INFLATED: usize = 200 << 20;
    const LIMIT: usize = 1 << 20;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(INFLATED >> 20) {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    drop(zeros);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb is small: {} bytes",
        bomb.len()
    );

    let config = ServerConfig::builder().max_message_size(LIMIT).build();
    let srv = start(config, TestHandler::default()).await;
    let response = http_client()
        .post(srv.http_url())
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(srv.server.metrics().oversized_in, 1);
    assert!(srv.handler().seen.lock().unwrap().messages.is_empty());
    assert_still_serving(&srv.http_url(), 1).await;
    if let Some(peak) = peak_rss_bytes() {
        assert!(
            peak < (INFLATED as u64) / 2,
            "peak RSS {} MiB: the body was inflated in memory",
            peak >> 20
        );
    }
    srv.stop().await;
}
