//! The bytes decode with the official OTLP bindings: Python's `opentelemetry-proto` package
//! (tested with opentelemetry-proto 1.45.2, protobuf 7.36.2). Set `OPAMP_OTLP_PYTHON` to a
//! Python interpreter that has it installed, e.g.
//!
//! ```text
//! python3 -m venv /tmp/otlp-venv && /tmp/otlp-venv/bin/pip install 'opentelemetry-proto==1.*'
//! OPAMP_OTLP_PYTHON=/tmp/otlp-venv/bin/python cargo test -p opamp-telemetry --test python_decode
//! ```
//!
//! Without the variable the test prints a line and passes.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use opamp_proto::v1::{AgentDescription, KeyValue};
use opamp_telemetry::{MetricsRecorder, ProcessSample, names};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
import json, sys
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
data = open(sys.argv[1], "rb").read()
msg = ExportMetricsServiceRequest()
msg.ParseFromString(data)
print(json.dumps({
    "reencoded_equal": msg.SerializeToString(deterministic=True) == data,
    "request": MessageToDict(msg, preserving_proto_field_name=True),
}))
"#;

#[test]
fn official_python_bindings_decode_the_request_own_4() {
    let Ok(python) = std::env::var("OPAMP_OTLP_PYTHON") else {
        println!("skipped: set OPAMP_OTLP_PYTHON to a python with opentelemetry-proto installed");
        return;
    };
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut rec = MetricsRecorder::from_description(
        &AgentDescription {
            identifying_attributes: vec![
                KeyValue::new("service.name", "collectd"),
                KeyValue::new("service.version", "5.12"),
            ],
            non_identifying_attributes: vec![
                KeyValue::new("host.name", "web-1"),
                KeyValue::new("process.pid", 42i64),
            ],
        },
        start,
    );
    rec.set_process_start(Some(start + Duration::from_secs(5)));
    rec.add_counter(names::RESTARTS, 2);
    rec.add_counter_with(names::CONFIG_APPLIES, &[("outcome", "failed")], 1);
    rec.set_gauge("opamp_agent.negative", -5i64);
    let sample = ProcessSample {
        cpu_time: Duration::from_millis(1250),
        memory_rss_bytes: 4096,
        memory_virtual_bytes: 1 << 30,
        threads: 3,
    };
    let body = rec.encode(start + Duration::from_secs(15), &sample);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.bin");
    std::fs::write(&path, &body).unwrap();

    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        result["reencoded_equal"],
        json!(true),
        "no unknown or misnumbered fields"
    );

    let rm = &result["request"]["resource_metrics"][0];
    assert_eq!(
        rm["resource"]["attributes"],
        json!([
            {"key": "service.name", "value": {"string_value": "collectd"}},
            {"key": "service.version", "value": {"string_value": "5.12"}},
            {"key": "host.name", "value": {"string_value": "web-1"}},
            {"key": "process.pid", "value": {"int_value": "42"}},
        ])
    );
    let sm = &rm["scope_metrics"][0];
    assert_eq!(sm["scope"]["name"], json!("opamp-telemetry"));
    let metric = |name: &str| -> Value {
        sm["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == json!(name))
            .cloned()
            .unwrap()
    };
    let start_ns = "1700000005000000000";
    let now_ns = "1700000015000000000";
    assert_eq!(
        metric("process.cpu.time"),
        json!({
            "name": "process.cpu.time",
            "description": "CPU time used by the process, user plus system",
            "unit": "s",
            "sum": {
                "data_points": [{"start_time_unix_nano": start_ns, "time_unix_nano": now_ns, "as_double": 1.25}],
                "aggregation_temporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                "is_monotonic": true,
            },
        })
    );
    for (name, unit, value) in [
        ("process.memory.usage", "By", "4096"),
        ("process.memory.virtual", "By", "1073741824"),
        ("process.thread.count", "{thread}", "3"),
    ] {
        let m = metric(name);
        assert_eq!(m["unit"], json!(unit));
        assert_eq!(m["sum"]["data_points"][0]["as_int"], json!(value), "{name}");
        assert_eq!(
            m["sum"]["aggregation_temporality"],
            json!("AGGREGATION_TEMPORALITY_CUMULATIVE")
        );
        assert_eq!(
            m["sum"].get("is_monotonic"),
            None,
            "false is the default and not shown"
        );
    }
    assert_eq!(
        metric("process.uptime")["gauge"]["data_points"][0]["as_double"],
        json!(10.0)
    );
    let applies = metric(names::CONFIG_APPLIES);
    assert_eq!(
        applies["sum"]["data_points"][0]["attributes"],
        json!([{"key": "outcome", "value": {"string_value": "failed"}}])
    );
    assert_eq!(applies["sum"]["data_points"][0]["as_int"], json!("1"));
    assert_eq!(
        applies["sum"]["data_points"][0]["start_time_unix_nano"],
        json!("1700000000000000000")
    );
    assert_eq!(
        metric(names::RESTARTS)["sum"]["data_points"][0]["as_int"],
        json!("2")
    );
    assert_eq!(
        metric("opamp_agent.negative")["gauge"]["data_points"][0]["as_int"],
        json!("-5")
    );
}
