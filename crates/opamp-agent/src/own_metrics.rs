//! Own metrics (OWN-3, OWN-4, OWN-6, OWN-7): when the server offers an `own_metrics`
//! destination, every `own_metrics.interval` the managed process is sampled from
//! `/proc/<pid>/stat` and `/proc/<pid>/status`, encoded by opamp-telemetry as an OTLP/HTTP
//! protobuf request (with the restart and config-apply counters) and POSTed to the offered
//! endpoint with the offered headers, through the offered HTTP proxy if any (OPC-11).
//! Nothing is sent before an offer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opamp_proto::v1;
use opamp_telemetry::{
    ExportTarget, MetricsRecorder, ProcessSample, names, parse_proc_stat, parse_proc_status,
};
use prost::Message as _;

use crate::http::Proxy;

/// Longest wait for the OTLP receiver.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// The own-metrics exporter.
#[derive(Debug)]
pub struct OwnMetrics {
    recorder: MetricsRecorder,
    interval: Duration,
    target: Option<(ExportTarget, Option<Arc<rustls::ClientConfig>>)>,
    /// The offered proxy; kept when a later offer carries none (OPC-11: absent means
    /// unchanged), dropped with the destination.
    proxy: Option<Arc<Proxy>>,
    next: Option<Instant>,
    clk_tck: u64,
    in_flight: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
    starts: u64,
}

/// Samples a process from `/proc` (None when it is gone or not Linux).
pub fn sample(pid: u32, clk_tck: u64) -> Option<ProcessSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = parse_proc_stat(&stat, clk_tck).ok()?;
    let status = parse_proc_status(&status).ok()?;
    Some(ProcessSample::from_proc(&stat, &status))
}

impl OwnMetrics {
    /// An exporter with the agent description as Resource (DESC-2), idle until an offer.
    pub fn new(description: &v1::AgentDescription, interval: Duration) -> Self {
        let mut recorder = MetricsRecorder::from_description(description, SystemTime::now());
        recorder.set_scope("opamp-agent", env!("CARGO_PKG_VERSION"));
        Self {
            recorder,
            interval,
            target: None,
            proxy: None,
            next: None,
            clk_tck: rustix::param::clock_ticks_per_second(),
            in_flight: Arc::new(AtomicBool::new(false)),
            failing: Arc::new(AtomicBool::new(false)),
            starts: 0,
        }
    }

    /// Replaces the Resource after the instance uid changed.
    pub fn set_description(&mut self, description: &v1::AgentDescription) {
        let counters = self.recorder.clone();
        let mut recorder = MetricsRecorder::from_description(description, SystemTime::now());
        recorder.set_scope("opamp-agent", env!("CARGO_PKG_VERSION"));
        // Carry the counters over.
        for outcome in ["applied", "failed"] {
            if let Some(n) = counters.counter(names::CONFIG_APPLIES, &[("outcome", outcome)]) {
                recorder.set_counter_with(names::CONFIG_APPLIES, &[("outcome", outcome)], n);
            }
        }
        if let Some(n) = counters.counter(names::RESTARTS, &[]) {
            recorder.set_counter(names::RESTARTS, n);
        }
        self.recorder = recorder;
    }

    /// The server's `own_metrics` offer: checked (OWN-6, OWN-7), then exports start at
    /// once. An empty endpoint stops them.
    pub fn offer(
        &mut self,
        s: &v1::TelemetryConnectionSettings,
        now: Instant,
    ) -> Result<(), String> {
        if s.destination_endpoint.trim().is_empty() {
            tracing::info!("own metrics: the server withdrew the destination");
            self.target = None;
            self.proxy = None;
            self.next = None;
            return Ok(());
        }
        let target = ExportTarget::from_offer(s).map_err(|e| format!("own_metrics offer: {e}"))?;
        // TLS exactly as for the OpAMP connection: offered CA, system roots, client
        // certificate (OWN-8).
        let tls = if target.is_tls() {
            let config = opamp_client::tls_client_config(s.tls.as_ref(), s.certificate.as_ref())
                .map_err(|e| format!("own_metrics offer: {e}"))?;
            Some(config)
        } else {
            None
        };
        let proxy = match &s.proxy {
            None => self.proxy.clone(),
            Some(p) => {
                let headers = p
                    .connect_headers
                    .iter()
                    .flat_map(|h| &h.headers)
                    .map(|h| (h.key.clone(), h.value.clone()))
                    .collect();
                let proxy =
                    Proxy::parse(&p.url, headers).map_err(|e| format!("own_metrics offer: {e}"))?;
                Some(Arc::new(proxy))
            }
        };
        match &proxy {
            Some(p) => tracing::info!(
                "own metrics to {} every {:?} through proxy {}",
                target.endpoint,
                self.interval,
                p.authority
            ),
            None => tracing::info!(
                "own metrics to {} every {:?}",
                target.endpoint,
                self.interval
            ),
        }
        self.target = Some((target, tls));
        self.proxy = proxy;
        self.next = Some(now);
        Ok(())
    }

    /// When the next export is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }

    /// Counts a start of the managed process; every start after the first is a restart.
    pub fn process_started(&mut self) {
        self.starts += 1;
        if self.starts > 1 {
            self.recorder.add_counter(names::RESTARTS, 1);
        }
    }

    /// Counts a remote config outcome.
    pub fn config_outcome(&mut self, applied: bool) {
        let outcome = if applied { "applied" } else { "failed" };
        self.recorder
            .add_counter_with(names::CONFIG_APPLIES, &[("outcome", outcome)], 1);
    }

    /// The request body for now: the managed process sample (when it runs) and counters.
    pub fn body(&mut self, pid: Option<u32>, process_start: Option<SystemTime>) -> Vec<u8> {
        let sample = pid.and_then(|p| sample(p, self.clk_tck));
        self.recorder.set_process_start(if sample.is_some() {
            process_start
        } else {
            None
        });
        self.recorder
            .build(SystemTime::now(), sample.as_ref())
            .encode_to_vec()
    }

    /// Sends one export in the background (skipped while the previous one is in flight)
    /// and schedules the next.
    pub fn export(&mut self, now: Instant, pid: Option<u32>, process_start: Option<SystemTime>) {
        let Some((target, tls)) = &self.target else {
            self.next = None;
            return;
        };
        self.next = Some(now + self.interval);
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        let (endpoint, headers, tls, proxy) = (
            target.endpoint.clone(),
            target.request_headers(),
            tls.clone(),
            self.proxy.clone(),
        );
        let body = self.body(pid, process_start);
        let in_flight = Arc::clone(&self.in_flight);
        let failing = Arc::clone(&self.failing);
        tokio::spawn(async move {
            let post = crate::http::request_via(
                hyper::Method::POST,
                &endpoint,
                &headers,
                body,
                tls.as_ref(),
                proxy.as_deref(),
            );
            let result = match tokio::time::timeout(EXPORT_TIMEOUT, post).await {
                Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
                Ok(Ok(status)) => Err(format!("status {status}")),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {EXPORT_TIMEOUT:?}")),
            };
            match result {
                Ok(()) => {
                    if failing.swap(false, Ordering::AcqRel) {
                        tracing::info!("own metrics: {endpoint} accepts them again");
                    }
                }
                Err(e) => {
                    if !failing.swap(true, Ordering::AcqRel) {
                        tracing::warn!("own metrics: POST {endpoint}: {e}");
                    }
                }
            }
            in_flight.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use opamp_telemetry::otlp;
    use prost::Message as _;

    use super::*;

    #[test]
    fn this_process_can_be_sampled_own_4() {
        let s = sample(std::process::id(), rustix::param::clock_ticks_per_second()).unwrap();
        assert!(s.memory_rss_bytes > 0);
        assert!(s.threads >= 1);
    }

    #[test]
    fn counters_and_process_metrics_are_encoded_own_4() {
        let desc = v1::AgentDescription {
            identifying_attributes: vec![v1::KeyValue::new("service.name", "collectd")],
            non_identifying_attributes: vec![],
        };
        let mut m = OwnMetrics::new(&desc, Duration::from_secs(10));
        m.process_started();
        m.process_started();
        m.config_outcome(true);
        m.config_outcome(false);
        let body = m.body(Some(std::process::id()), Some(SystemTime::now()));
        let req = otlp::ExportMetricsServiceRequest::decode(&body[..]).unwrap();
        let rm = &req.resource_metrics[0];
        assert_eq!(
            rm.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        let names: Vec<&str> = rm.scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        for n in [
            "process.cpu.time",
            "process.memory.usage",
            names::RESTARTS,
            names::CONFIG_APPLIES,
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        let body = m.body(None, None);
        let req = otlp::ExportMetricsServiceRequest::decode(&body[..]).unwrap();
        assert!(
            !req.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .any(|m| m.name.starts_with("process.")),
            "no process metrics without a process"
        );
    }

    #[test]
    fn the_resource_repeats_the_identifying_attributes_and_follows_a_new_uid_desc_6() {
        use crate::description::{Detected, build};
        use crate::settings::DescriptionSettings;
        let settings = DescriptionSettings {
            identifying: vec![
                ("service.name".into(), "collectd".into()),
                ("service.namespace".into(), "lab".into()),
            ],
            non_identifying: vec![("deployment.environment".into(), "test".into())],
        };
        let detected = Detected {
            os_type: "linux".into(),
            host_arch: "amd64".into(),
            ..Default::default()
        };
        let resource = |m: &mut OwnMetrics| {
            let body = m.body(None, None);
            let req = otlp::ExportMetricsServiceRequest::decode(&body[..]).unwrap();
            req.resource_metrics[0].resource.clone().unwrap().attributes
        };
        let desc = build(&settings, &detected, "uid-1");
        let mut m = OwnMetrics::new(&desc, Duration::from_secs(10));
        // Identifying attributes first, with the very values of the description, then the
        // non-identifying ones: one list, so telemetry and description cannot disagree.
        let mut expected = desc.identifying_attributes.clone();
        expected.extend(desc.non_identifying_attributes.clone());
        assert_eq!(resource(&mut m), expected);
        assert!(
            expected
                .iter()
                .any(|kv| kv.key == "service.instance.id" && kv.value == Some("uid-1".into()))
        );
        // A new instance uid from the server: the Resource follows the description.
        let desc = build(&settings, &detected, "uid-2");
        m.set_description(&desc);
        let mut expected = desc.identifying_attributes.clone();
        expected.extend(desc.non_identifying_attributes.clone());
        assert_eq!(resource(&mut m), expected);
    }

    #[test]
    fn each_offer_replaces_the_client_certificate_and_none_means_none_own_8() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["agent".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let offer = |certificate: Option<v1::TlsCertificate>| v1::TelemetryConnectionSettings {
            destination_endpoint: "https://collector:4318/v1/metrics".into(),
            certificate,
            ..Default::default()
        };
        let has_client_cert = |m: &OwnMetrics| {
            let (_, tls) = m.target.as_ref().unwrap();
            tls.as_ref().unwrap().client_auth_cert_resolver.has_certs()
        };
        let mut m = OwnMetrics::new(&v1::AgentDescription::default(), Duration::from_secs(10));
        m.offer(
            &offer(Some(v1::TlsCertificate {
                cert: cert.pem().into_bytes(),
                private_key: key.serialize_pem().into_bytes(),
                ..Default::default()
            })),
            Instant::now(),
        )
        .unwrap();
        assert!(has_client_cert(&m), "the offered certificate is used");
        // The next offer has none: the earlier certificate is forgotten, none is used.
        m.offer(&offer(None), Instant::now()).unwrap();
        assert!(!has_client_cert(&m));
        // An unusable one fails the offer and keeps the current destination as it was.
        let bad = offer(Some(v1::TlsCertificate {
            cert: cert.pem().into_bytes(),
            ..Default::default()
        }));
        assert!(m.offer(&bad, Instant::now()).is_err());
        assert!(!has_client_cert(&m));
    }

    #[test]
    fn an_offer_without_a_usable_endpoint_is_refused_own_6() {
        let mut m = OwnMetrics::new(&v1::AgentDescription::default(), Duration::from_secs(10));
        let bad = v1::TelemetryConnectionSettings {
            destination_endpoint: "ftp://x".into(),
            ..Default::default()
        };
        assert!(m.offer(&bad, Instant::now()).is_err());
        assert_eq!(m.next_due(), None);
    }

    #[test]
    fn an_offered_proxy_is_kept_until_replaced_and_checked_opc_11() {
        let mut m = OwnMetrics::new(&v1::AgentDescription::default(), Duration::from_secs(10));
        let offer = |proxy: Option<&str>| v1::TelemetryConnectionSettings {
            destination_endpoint: "https://collector:4318/v1/metrics".into(),
            proxy: proxy.map(|url| v1::ProxyConnectionSettings {
                url: url.into(),
                connect_headers: Some(v1::Headers {
                    headers: vec![v1::Header {
                        key: "Proxy-Authorization".into(),
                        value: "Basic eDp5".into(),
                    }],
                }),
            }),
            ..Default::default()
        };
        m.offer(&offer(Some("proxy.lan:3128")), Instant::now())
            .unwrap();
        let p = m.proxy.clone().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.lan", 3128));
        assert_eq!(
            p.connect_headers,
            vec![("Proxy-Authorization".to_owned(), "Basic eDp5".to_owned())]
        );
        // Absent: unchanged.
        m.offer(&offer(None), Instant::now()).unwrap();
        assert_eq!(m.proxy.as_deref(), Some(&*p));
        // Refused, and the offer with it.
        for bad in [
            "https://proxy.lan:3128",
            "socks5://proxy.lan:1080",
            "",
            "http://u:p@proxy.lan",
        ] {
            let e = m.offer(&offer(Some(bad)), Instant::now()).unwrap_err();
            assert!(e.starts_with("own_metrics offer: proxy"), "{bad}: {e}");
        }
        // Withdrawing the destination forgets the proxy.
        m.offer(&v1::TelemetryConnectionSettings::default(), Instant::now())
            .unwrap();
        assert_eq!(m.proxy, None);
    }
}
