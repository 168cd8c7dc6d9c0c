//! Wire-layer costs per message: what every agent message pays on the server's hot path.
//!
//! Run: `cargo bench -p opamp-proto --bench wire`. Figures go to docs/BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opamp_proto::prost::Message;
use opamp_proto::v1::*;
use opamp_proto::{AgentCapabilities, InstanceUid, Limits, framing, limits};

/// A full status report as a collector would send on connect: description, health with a few
/// components, and an effective config of about 4 KiB.
fn full_report() -> AgentToServer {
    let yaml: String = (0..80)
        .map(|i| format!("  receiver_{i}:\n    endpoint: 0.0.0.0:{}\n", 4000 + i))
        .collect();
    let mut components = std::collections::BTreeMap::new();
    for name in ["receiver/otlp", "processor/batch", "exporter/otlphttp"] {
        components.insert(
            name.to_owned(),
            ComponentHealth {
                healthy: true,
                start_time_unix_nano: 1_700_000_000_000_000_000,
                status: "StatusOK".into(),
                status_time_unix_nano: 1_700_000_000_000_000_000,
                ..Default::default()
            },
        );
    }
    AgentToServer {
        instance_uid: InstanceUid::new_v7().to_vec(),
        sequence_num: 42,
        capabilities: 0x3807,
        agent_description: Some(AgentDescription {
            identifying_attributes: vec![
                KeyValue::new("service.name", "otelcol-contrib"),
                KeyValue::new("service.version", "0.115.0"),
                KeyValue::new(
                    "service.instance.id",
                    "c0ffee00-0000-7000-8000-000000000001",
                ),
            ],
            non_identifying_attributes: vec![
                KeyValue::new("os.type", "linux"),
                KeyValue::new("host.name", "node-17.prod.example"),
                KeyValue::new("host.arch", "amd64"),
            ],
        }),
        health: Some(ComponentHealth {
            healthy: true,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            component_health_map: components,
            ..Default::default()
        }),
        effective_config: Some(EffectiveConfig {
            config_map: Some(AgentConfigMap {
                config_map: [(
                    String::new(),
                    AgentConfigFile {
                        body: format!("receivers:\n{yaml}").into_bytes(),
                        content_type: "text/yaml".into(),
                    },
                )]
                .into(),
            }),
        }),
        remote_config_status: Some(RemoteConfigStatus {
            last_remote_config_hash: vec![7; 32],
            status: RemoteConfigStatuses::Applied as i32,
            error_message: String::new(),
        }),
        ..Default::default()
    }
}

/// A heartbeat: uid, sequence number and capabilities only.
fn heartbeat() -> AgentToServer {
    AgentToServer {
        instance_uid: InstanceUid::new_v7().to_vec(),
        sequence_num: 43,
        capabilities: (AgentCapabilities::REPORTS_STATUS | AgentCapabilities::REPORTS_HEARTBEAT)
            .bits(),
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, msg) in [("heartbeat", heartbeat()), ("full_report", full_report())] {
        let frame = framing::encode(&msg);
        let body = msg.encode_to_vec();
        let gz = limits::gzip(&body);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function("ws_encode", |b| b.iter(|| framing::encode(black_box(&msg))));
        g.bench_function("ws_decode", |b| {
            b.iter(|| framing::decode::<AgentToServer>(black_box(&frame), limits).unwrap())
        });
        g.bench_function("http_gunzip_and_decode", |b| {
            b.iter(|| {
                let raw = limits::gunzip(black_box(&gz), limits.max_message_size).unwrap();
                AgentToServer::decode(raw.as_slice()).unwrap()
            })
        });
        g.finish();
        println!(
            "{name}: {} bytes as a WS message, {} bytes gzipped",
            frame.len(),
            gz.len()
        );
    }
    let reply = ServerToAgent {
        instance_uid: vec![1; 16],
        capabilities: 0x7,
        ..Default::default()
    };
    c.bench_function("reply/ws_encode", |b| {
        b.iter(|| framing::encode(black_box(&reply)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
