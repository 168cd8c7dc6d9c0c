//! The agent's own metrics and their OTLP encoding (OWN-3, OWN-4, DESC-2, DESC-4): a
//! [`MetricsRecorder`] keeps the Resource and the agent's counters and gauges; given the
//! time and a [`ProcessSample`] it builds an `ExportMetricsServiceRequest`. No clock, no IO.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opamp_proto::Value;
use opamp_proto::v1::{AgentDescription, KeyValue};
use prost::Message;

use crate::otlp::{
    AggregationTemporality, ExportMetricsServiceRequest, Gauge, InstrumentationScope, Metric,
    NumberDataPoint, Resource, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};

/// Metric names this crate writes or describes.
pub mod names {
    /// CPU time of the process, user plus system, in seconds (Sum, monotonic, cumulative).
    pub const PROCESS_CPU_TIME: &str = "process.cpu.time";
    /// Resident memory in bytes (UpDownCounter: Sum, not monotonic, cumulative).
    pub const PROCESS_MEMORY_USAGE: &str = "process.memory.usage";
    /// Virtual memory in bytes (UpDownCounter).
    pub const PROCESS_MEMORY_VIRTUAL: &str = "process.memory.virtual";
    /// Number of threads (UpDownCounter).
    pub const PROCESS_THREAD_COUNT: &str = "process.thread.count";
    /// Seconds since the process started (Gauge, double); only when the start is known.
    pub const PROCESS_UPTIME: &str = "process.uptime";
    /// Restarts of the managed process (counter).
    pub const RESTARTS: &str = "opamp_agent.restarts";
    /// Remote configurations handled, with attribute `outcome` = `applied` | `failed`
    /// (counter).
    pub const CONFIG_APPLIES: &str = "opamp_agent.config.applies";
}

/// One sample of a process, as read from the OS by the caller (see
/// [`ProcessSample::from_proc`] for Linux).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessSample {
    /// CPU time used so far, user plus system.
    pub cpu_time: Duration,
    /// Resident set size in bytes.
    pub memory_rss_bytes: u64,
    /// Virtual memory size in bytes.
    pub memory_virtual_bytes: u64,
    /// Number of threads.
    pub threads: u64,
}

/// A gauge value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer (`as_int`).
    Int(i64),
    /// A float (`as_double`).
    Double(f64),
}

impl From<i64> for Number {
    fn from(v: i64) -> Self {
        Number::Int(v)
    }
}

impl From<u64> for Number {
    fn from(v: u64) -> Self {
        Number::Int(saturating_i64(v))
    }
}

impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number::Double(v)
    }
}

impl From<Number> for number_data_point::Value {
    fn from(n: Number) -> Self {
        match n {
            Number::Int(i) => number_data_point::Value::AsInt(i),
            Number::Double(d) => number_data_point::Value::AsDouble(d),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

type Attributes = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct Instrument {
    kind: Kind,
    points: BTreeMap<Attributes, Number>,
}

/// The agent's own metrics: a Resource, an instrumentation scope, counters and gauges.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use opamp_proto::Value;
/// use opamp_telemetry::{MetricsRecorder, ProcessSample, names};
///
/// let start = SystemTime::now();
/// let mut rec = MetricsRecorder::new(vec![("service.name".into(), Value::from("collectd"))], start);
/// rec.add_counter(names::RESTARTS, 1);
/// rec.add_counter_with(names::CONFIG_APPLIES, &[("outcome", "applied")], 1);
/// let sample = ProcessSample { cpu_time: Duration::from_millis(1500), memory_rss_bytes: 10 << 20, ..Default::default() };
/// let body: Vec<u8> = rec.encode(start + Duration::from_secs(10), &sample);
/// assert!(!body.is_empty()); // POST it with Content-Type: application/x-protobuf
/// ```
#[derive(Debug, Clone)]
pub struct MetricsRecorder {
    resource: Vec<KeyValue>,
    start: SystemTime,
    process_start: Option<SystemTime>,
    scope: InstrumentationScope,
    descriptions: BTreeMap<String, (String, String)>,
    instruments: BTreeMap<String, Instrument>,
}

impl MetricsRecorder {
    /// A recorder whose Resource holds `resource` (in order) and whose counters start
    /// counting at `start` (their `start_time_unix_nano`).
    pub fn new(resource: Vec<(String, Value)>, start: SystemTime) -> Self {
        let resource = resource
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        Self::with_resource(resource, start)
    }

    /// A recorder whose Resource is the agent's description: every identifying attribute,
    /// then every non-identifying one with exactly the value reported to the server
    /// (DESC-2, DESC-4). A non-identifying key that repeats an identifying one is left out.
    pub fn from_description(description: &AgentDescription, start: SystemTime) -> Self {
        let mut resource = description.identifying_attributes.clone();
        for kv in &description.non_identifying_attributes {
            if !resource.iter().any(|r| r.key == kv.key) {
                resource.push(kv.clone());
            }
        }
        Self::with_resource(resource, start)
    }

    fn with_resource(resource: Vec<KeyValue>, start: SystemTime) -> Self {
        let mut descriptions = BTreeMap::new();
        for (name, description, unit) in [
            (
                names::RESTARTS,
                "Restarts of the managed process",
                "{restart}",
            ),
            (
                names::CONFIG_APPLIES,
                "Remote configurations handled, by outcome (applied, failed)",
                "{config}",
            ),
        ] {
            descriptions.insert(name.to_owned(), (description.to_owned(), unit.to_owned()));
        }
        MetricsRecorder {
            resource,
            start,
            process_start: None,
            scope: InstrumentationScope {
                name: env!("CARGO_PKG_NAME").to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Default::default()
            },
            descriptions,
            instruments: BTreeMap::new(),
        }
    }

    /// The Resource attributes, as exported.
    pub fn resource(&self) -> &[KeyValue] {
        &self.resource
    }

    /// Names the instrumentation scope (default: this crate's name and version).
    pub fn set_scope(&mut self, name: impl Into<String>, version: impl Into<String>) {
        self.scope.name = name.into();
        self.scope.version = version.into();
    }

    /// When the sampled process started, or `None` when unknown. Process sums then start
    /// at that time instead of the recorder's start (a restarted process resets its CPU
    /// time, so the cumulative series must restart too), and `process.uptime` is reported.
    pub fn set_process_start(&mut self, start: Option<SystemTime>) {
        self.process_start = start;
    }

    /// Sets a metric's description and unit (UCUM, e.g. `"s"`, `"By"`, `"{restart}"`).
    pub fn describe(&mut self, name: &str, description: &str, unit: &str) {
        self.descriptions
            .insert(name.to_owned(), (description.to_owned(), unit.to_owned()));
    }

    /// Adds `value` to a counter without attributes. See [`add_counter_with`](Self::add_counter_with).
    pub fn add_counter(&mut self, name: &str, value: u64) -> bool {
        self.add_counter_with(name, &[], value)
    }

    /// Adds `value` to the counter `name` for this attribute set (created at 0). Exported as
    /// a monotonic cumulative Sum of integers since the recorder's start. Returns `false`,
    /// changing nothing, if `name` is already a gauge.
    pub fn add_counter_with(
        &mut self,
        name: &str,
        attributes: &[(&str, &str)],
        value: u64,
    ) -> bool {
        self.update(name, Kind::Counter, attributes, |old| {
            let old = match old {
                Some(Number::Int(i)) => i,
                _ => 0,
            };
            Number::Int(old.saturating_add(saturating_i64(value)))
        })
    }

    /// Sets a counter without attributes to an absolute total. See
    /// [`set_counter_with`](Self::set_counter_with).
    pub fn set_counter(&mut self, name: &str, total: u64) -> bool {
        self.set_counter_with(name, &[], total)
    }

    /// Sets a counter to an absolute total (when the caller keeps the count). A counter
    /// should never go down; that is the caller's to ensure.
    pub fn set_counter_with(
        &mut self,
        name: &str,
        attributes: &[(&str, &str)],
        total: u64,
    ) -> bool {
        self.update(name, Kind::Counter, attributes, |_| {
            Number::Int(saturating_i64(total))
        })
    }

    /// Sets a gauge without attributes. See [`set_gauge_with`](Self::set_gauge_with).
    pub fn set_gauge(&mut self, name: &str, value: impl Into<Number>) -> bool {
        self.set_gauge_with(name, &[], value)
    }

    /// Sets the gauge `name` for this attribute set; exported as a Gauge with the latest
    /// value. Returns `false`, changing nothing, if `name` is already a counter.
    pub fn set_gauge_with(
        &mut self,
        name: &str,
        attributes: &[(&str, &str)],
        value: impl Into<Number>,
    ) -> bool {
        let value = value.into();
        self.update(name, Kind::Gauge, attributes, |_| value)
    }

    /// A counter's current total for this attribute set.
    pub fn counter(&self, name: &str, attributes: &[(&str, &str)]) -> Option<u64> {
        let instrument = self
            .instruments
            .get(name)
            .filter(|i| i.kind == Kind::Counter)?;
        match instrument.points.get(&owned(attributes))? {
            Number::Int(i) => u64::try_from(*i).ok(),
            Number::Double(_) => None,
        }
    }

    fn update(
        &mut self,
        name: &str,
        kind: Kind,
        attributes: &[(&str, &str)],
        f: impl FnOnce(Option<Number>) -> Number,
    ) -> bool {
        let instrument = self
            .instruments
            .entry(name.to_owned())
            .or_insert_with(|| Instrument {
                kind,
                points: BTreeMap::new(),
            });
        if instrument.kind != kind {
            return false;
        }
        let key = owned(attributes);
        let old = instrument.points.get(&key).copied();
        instrument.points.insert(key, f(old));
        true
    }

    /// The request body for an export at `now`: process metrics from `process` (OWN-4),
    /// then the recorder's counters and gauges by name. Encoded as protobuf for
    /// `Content-Type: application/x-protobuf`.
    pub fn encode(&self, now: SystemTime, process: &ProcessSample) -> Vec<u8> {
        self.build(now, Some(process)).encode_to_vec()
    }

    /// The export request as a message (`process: None` leaves out the process metrics).
    ///
    /// Process metrics follow the OTel process semantic conventions (OWN-4):
    /// `process.cpu.time` (Sum, monotonic, cumulative, `s`, double; one total without a
    /// `cpu.mode` attribute, which the conventions allow), `process.memory.usage` and
    /// `process.memory.virtual` (UpDownCounter, i.e. non-monotonic cumulative Sum, `By`),
    /// `process.thread.count` (UpDownCounter, `{thread}`) and, when the process start is
    /// known, `process.uptime` (Gauge, `s`, double).
    pub fn build(
        &self,
        now: SystemTime,
        process: Option<&ProcessSample>,
    ) -> ExportMetricsServiceRequest {
        let now_ns = unix_nanos(now);
        let start_ns = unix_nanos(self.start);
        let mut metrics = Vec::new();
        if let Some(p) = process {
            let process_start_ns = self.process_start.map_or(start_ns, unix_nanos);
            let point = |value: number_data_point::Value| NumberDataPoint {
                start_time_unix_nano: process_start_ns,
                time_unix_nano: now_ns,
                value: Some(value),
                ..Default::default()
            };
            metrics.push(sum(
                names::PROCESS_CPU_TIME,
                "CPU time used by the process, user plus system",
                "s",
                true,
                vec![point(number_data_point::Value::AsDouble(
                    p.cpu_time.as_secs_f64(),
                ))],
            ));
            metrics.push(sum(
                names::PROCESS_MEMORY_USAGE,
                "Resident (physical) memory of the process",
                "By",
                false,
                vec![point(number_data_point::Value::AsInt(saturating_i64(
                    p.memory_rss_bytes,
                )))],
            ));
            metrics.push(sum(
                names::PROCESS_MEMORY_VIRTUAL,
                "Virtual memory of the process",
                "By",
                false,
                vec![point(number_data_point::Value::AsInt(saturating_i64(
                    p.memory_virtual_bytes,
                )))],
            ));
            metrics.push(sum(
                names::PROCESS_THREAD_COUNT,
                "Threads of the process",
                "{thread}",
                false,
                vec![point(number_data_point::Value::AsInt(saturating_i64(
                    p.threads,
                )))],
            ));
            if let Some(started) = self.process_start {
                let uptime = now.duration_since(started).unwrap_or(Duration::ZERO);
                metrics.push(Metric {
                    name: names::PROCESS_UPTIME.to_owned(),
                    description: "Time since the process started".to_owned(),
                    unit: "s".to_owned(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: now_ns,
                            value: Some(number_data_point::Value::AsDouble(uptime.as_secs_f64())),
                            ..Default::default()
                        }],
                    })),
                    metadata: Vec::new(),
                });
            }
        }
        for (name, instrument) in &self.instruments {
            if instrument.points.is_empty() {
                continue;
            }
            let (description, unit) = self.descriptions.get(name).cloned().unwrap_or_default();
            let points = instrument
                .points
                .iter()
                .map(|(attributes, value)| NumberDataPoint {
                    start_time_unix_nano: if instrument.kind == Kind::Counter {
                        start_ns
                    } else {
                        0
                    },
                    time_unix_nano: now_ns,
                    value: Some((*value).into()),
                    attributes: attributes
                        .iter()
                        .map(|(k, v)| KeyValue::new(k.as_str(), v.as_str()))
                        .collect(),
                    flags: 0,
                })
                .collect();
            metrics.push(match instrument.kind {
                Kind::Counter => sum(name, &description, &unit, true, points),
                Kind::Gauge => Metric {
                    name: name.clone(),
                    description,
                    unit,
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    metadata: Vec::new(),
                },
            });
        }
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: self.resource.clone(),
                    dropped_attributes_count: 0,
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(self.scope.clone()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}

fn sum(
    name: &str,
    description: &str,
    unit: &str,
    monotonic: bool,
    data_points: Vec<NumberDataPoint>,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: monotonic,
        })),
        metadata: Vec::new(),
    }
}

fn owned(attributes: &[(&str, &str)]) -> Attributes {
    let mut v: Attributes = attributes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
