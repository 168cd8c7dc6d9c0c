//! Encode, decode with this crate's prost types, and check every field (OWN-3, OWN-4,
//! DESC-2, DESC-4).

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opamp_proto::Value;
use opamp_proto::v1::{AgentDescription, KeyValue};
use opamp_telemetry::otlp::{
    AggregationTemporality, ExportMetricsPartialSuccess, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse, Metric, NumberDataPoint, metric, number_data_point,
};
use opamp_telemetry::{
    DEFAULT_INTERVAL, MetricsRecorder, Number, ProcessSample, names, parse_response,
};
use prost::Message;

const T0: u64 = 1_700_000_000_000_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(T0) + Duration::from_secs(secs)
}

fn sample() -> ProcessSample {
    ProcessSample {
        cpu_time: Duration::from_millis(3250),
        memory_rss_bytes: 14_155_776,
        memory_virtual_bytes: 1_180_000_256,
        threads: 7,
    }
}

fn decode(body: &[u8]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest::decode(body).unwrap()
}

fn metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap()
}

fn sum_points(m: &Metric) -> (&[NumberDataPoint], bool, i32) {
    match &m.data {
        Some(metric::Data::Sum(s)) => (&s.data_points, s.is_monotonic, s.aggregation_temporality),
        other => panic!("{} is not a sum: {other:?}", m.name),
    }
}

#[test]
fn default_interval_is_ten_seconds_own_3() {
    assert_eq!(DEFAULT_INTERVAL, Duration::from_secs(10));
}

#[test]
fn process_metrics_follow_the_semantic_conventions_own_4() {
    let rec = MetricsRecorder::new(vec![], at(0));
    let req = decode(&rec.encode(at(10), &sample()));
    let names: Vec<&str> = req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "process.cpu.time",
            "process.memory.usage",
            "process.memory.virtual",
            "process.thread.count"
        ]
    );

    let cpu = metric(&req, "process.cpu.time");
    assert_eq!(cpu.unit, "s");
    let (points, monotonic, temporality) = sum_points(cpu);
    assert!(monotonic);
    assert_eq!(temporality, AggregationTemporality::Cumulative as i32);
    assert_eq!(points.len(), 1, "one total, no cpu.mode attribute");
    assert!(points[0].attributes.is_empty());
    assert_eq!(
        points[0].value,
        Some(number_data_point::Value::AsDouble(3.25))
    );
    assert_eq!(points[0].start_time_unix_nano, T0);
    assert_eq!(points[0].time_unix_nano, T0 + 10_000_000_000);

    for (name, unit, value) in [
        ("process.memory.usage", "By", 14_155_776),
        ("process.memory.virtual", "By", 1_180_000_256),
        ("process.thread.count", "{thread}", 7),
    ] {
        let m = metric(&req, name);
        assert_eq!(m.unit, unit, "{name}");
        assert!(!m.description.is_empty());
        let (points, monotonic, temporality) = sum_points(m);
        assert!(!monotonic, "{name} is an UpDownCounter");
        assert_eq!(temporality, AggregationTemporality::Cumulative as i32);
        assert_eq!(
            points[0].value,
            Some(number_data_point::Value::AsInt(value)),
            "{name}"
        );
    }
}

#[test]
fn process_start_restarts_the_series_and_adds_uptime_own_4() {
    let mut rec = MetricsRecorder::new(vec![], at(0));
    rec.set_process_start(Some(at(100)));
    let req = decode(&rec.encode(at(130), &sample()));
    let (points, ..) = sum_points(metric(&req, "process.cpu.time"));
    assert_eq!(points[0].start_time_unix_nano, T0 + 100_000_000_000);
    let uptime = metric(&req, "process.uptime");
    assert_eq!(uptime.unit, "s");
    match &uptime.data {
        Some(metric::Data::Gauge(g)) => {
            assert_eq!(
                g.data_points[0].value,
                Some(number_data_point::Value::AsDouble(30.0))
            );
            assert_eq!(g.data_points[0].time_unix_nano, T0 + 130_000_000_000);
        }
        other => panic!("uptime is a gauge: {other:?}"),
    }
}

#[test]
fn resource_repeats_the_agent_description_desc_2_desc_4() {
    let description = AgentDescription {
        identifying_attributes: vec![
            KeyValue::new("service.name", "collectd"),
            KeyValue::new(
                "service.instance.id",
                "0190a5e2-0000-7000-8000-000000000001",
            ),
        ],
        non_identifying_attributes: vec![
            KeyValue::new("host.name", "web-1"),
            KeyValue::new("os.type", "linux"),
            KeyValue::new("service.name", "ignored duplicate"),
        ],
    };
    let rec = MetricsRecorder::from_description(&description, at(0));
    let req = decode(&rec.encode(at(1), &sample()));
    let resource = req.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        resource.attributes,
        vec![
            KeyValue::new("service.name", "collectd"),
            KeyValue::new(
                "service.instance.id",
                "0190a5e2-0000-7000-8000-000000000001"
            ),
            KeyValue::new("host.name", "web-1"),
            KeyValue::new("os.type", "linux"),
        ]
    );
    assert_eq!(rec.resource(), &resource.attributes[..]);
}

#[test]
fn resource_from_pairs_keeps_order_and_types() {
    let rec = MetricsRecorder::new(
        vec![
            ("service.name".into(), Value::from("a")),
            ("process.pid".into(), Value::from(42i64)),
        ],
        at(0),
    );
    assert_eq!(
        rec.resource(),
        &[
            KeyValue::new("service.name", "a"),
            KeyValue::new("process.pid", 42i64)
        ]
    );
}

#[test]
fn counters_are_cumulative_monotonic_sums_with_attributes() {
    let mut rec = MetricsRecorder::new(vec![], at(0));
    assert!(rec.add_counter(names::RESTARTS, 1));
    assert!(rec.add_counter(names::RESTARTS, 2));
    assert!(rec.add_counter_with(names::CONFIG_APPLIES, &[("outcome", "applied")], 1));
    assert!(rec.add_counter_with(names::CONFIG_APPLIES, &[("outcome", "failed")], 1));
    assert!(rec.add_counter_with(names::CONFIG_APPLIES, &[("outcome", "applied")], 1));
    assert_eq!(rec.counter(names::RESTARTS, &[]), Some(3));
    assert_eq!(
        rec.counter(names::CONFIG_APPLIES, &[("outcome", "applied")]),
        Some(2)
    );
    assert_eq!(
        rec.counter(names::CONFIG_APPLIES, &[("outcome", "rolled back")]),
        None
    );

    let req = rec.build(at(5), None);
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 2, "no process metrics without a sample");
    let restarts = metric(&req, names::RESTARTS);
    assert_eq!(restarts.unit, "{restart}");
    let (points, monotonic, temporality) = sum_points(restarts);
    assert!(monotonic);
    assert_eq!(temporality, AggregationTemporality::Cumulative as i32);
    assert_eq!(points[0].value, Some(number_data_point::Value::AsInt(3)));
    assert_eq!(points[0].start_time_unix_nano, T0);
    assert_eq!(points[0].time_unix_nano, T0 + 5_000_000_000);

    let (points, ..) = sum_points(metric(&req, names::CONFIG_APPLIES));
    let by_outcome: Vec<(String, Option<number_data_point::Value>)> = points
        .iter()
        .map(|p| {
            (
                p.attributes[0]
                    .value
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
                p.value,
            )
        })
        .collect();
    assert_eq!(
        by_outcome,
        vec![
            (
                "applied".to_owned(),
                Some(number_data_point::Value::AsInt(2))
            ),
            (
                "failed".to_owned(),
                Some(number_data_point::Value::AsInt(1))
            ),
        ]
    );
    assert!(points.iter().all(|p| p.attributes[0].key == "outcome"));
}

#[test]
fn gauges_and_counters_do_not_share_a_name() {
    let mut rec = MetricsRecorder::new(vec![], at(0));
    rec.describe(
        "opamp_agent.connected",
        "Whether the OpAMP connection is up",
        "1",
    );
    assert!(rec.set_gauge("opamp_agent.connected", 1i64));
    assert!(rec.set_gauge("opamp_agent.connected", 0i64));
    assert!(
        !rec.add_counter("opamp_agent.connected", 1),
        "already a gauge"
    );
    assert!(rec.set_counter(names::RESTARTS, 9));
    assert!(!rec.set_gauge(names::RESTARTS, 1.5), "already a counter");
    assert!(rec.set_gauge_with("queue.fill", &[("queue", "a")], Number::Double(0.5)));
    let req = rec.build(at(1), None);
    let g = metric(&req, "opamp_agent.connected");
    assert_eq!(
        (g.description.as_str(), g.unit.as_str()),
        ("Whether the OpAMP connection is up", "1")
    );
    match &g.data {
        Some(metric::Data::Gauge(g)) => {
            assert_eq!(g.data_points.len(), 1);
            assert_eq!(
                g.data_points[0].value,
                Some(number_data_point::Value::AsInt(0))
            );
            assert_eq!(g.data_points[0].start_time_unix_nano, 0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rec.counter(names::RESTARTS, &[]), Some(9));
}

#[test]
fn scope_names_this_crate_by_default() {
    let mut rec = MetricsRecorder::new(vec![], at(0));
    let scope = rec.build(at(1), None).resource_metrics[0].scope_metrics[0]
        .scope
        .clone()
        .unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("opamp-telemetry", env!("CARGO_PKG_VERSION"))
    );
    rec.set_scope("opamp-agent", "1.2.3");
    let scope = rec.build(at(1), None).resource_metrics[0].scope_metrics[0]
        .scope
        .clone()
        .unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("opamp-agent", "1.2.3")
    );
}

#[test]
fn encode_decode_round_trip_is_identity() {
    let mut rec = MetricsRecorder::from_description(
        &AgentDescription {
            identifying_attributes: vec![KeyValue::new("service.name", "x")],
            ..Default::default()
        },
        at(0),
    );
    rec.set_process_start(Some(at(1)));
    rec.add_counter_with(names::CONFIG_APPLIES, &[("outcome", "applied")], 4);
    rec.set_gauge("g", -3i64);
    let built = rec.build(at(2), Some(&sample()));
    let body = rec.encode(at(2), &sample());
    assert_eq!(body, built.encode_to_vec());
    assert_eq!(decode(&body), built);
}

#[test]
fn int_values_are_sfixed64_on_the_wire() {
    // NumberDataPoint.as_int is field 6, sfixed64: key (6 << 3) | 1 = 0x31, then 8 bytes.
    let point = NumberDataPoint {
        value: Some(number_data_point::Value::AsInt(-3)),
        ..Default::default()
    };
    assert_eq!(
        point.encode_to_vec(),
        [&[0x31][..], &(-3i64).to_le_bytes()[..]].concat()
    );
    // as_double is field 4, double: key 0x21.
    let point = NumberDataPoint {
        value: Some(number_data_point::Value::AsDouble(1.5)),
        ..Default::default()
    };
    assert_eq!(
        point.encode_to_vec(),
        [&[0x21][..], &1.5f64.to_le_bytes()[..]].concat()
    );
    // Times are fixed64 (fields 2 and 3): keys 0x11 and 0x19.
    let point = NumberDataPoint {
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        ..Default::default()
    };
    assert_eq!(
        point.encode_to_vec(),
        [
            &[0x11][..],
            &1u64.to_le_bytes(),
            &[0x19],
            &2u64.to_le_bytes()
        ]
        .concat()
    );
}

#[test]
fn export_responses_decode() {
    assert_eq!(
        parse_response(b"").unwrap(),
        ExportMetricsServiceResponse::default()
    );
    let partial = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: 2,
            error_message: "bad".into(),
        }),
    };
    assert_eq!(parse_response(&partial.encode_to_vec()).unwrap(), partial);
    assert!(parse_response(&[0x0a, 0xff]).is_err(), "truncated");
}
