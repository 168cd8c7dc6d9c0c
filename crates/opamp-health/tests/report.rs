//! The ComponentHealth tree, field by field (HLTH-1, HLTH-3, HLTH-4, HLTH-5, HLTH-6).

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opamp_health::{CheckKind, CheckSpec, FlapPolicy, HealthMonitor, Outcome};
use opamp_proto::v1::ComponentHealth;
use prost::Message;

const WALL_T0: u64 = 1_700_000_000_000_000_000;

fn wall(offset: Duration) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(WALL_T0) + offset
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn specs() -> Vec<CheckSpec> {
    vec![
        CheckSpec {
            failure_threshold: 1,
            ..CheckSpec::new("process", CheckKind::Process)
        },
        CheckSpec {
            failure_threshold: 1,
            ..CheckSpec::new(
                "api",
                CheckKind::Http {
                    url: "http://127.0.0.1/healthz".into(),
                    expect_status: 200,
                },
            )
        },
    ]
}

fn rec(m: &mut HealthMonitor, name: &str, now: Instant, outcome: Outcome) {
    let id = m.id(name).unwrap();
    m.record(id, now, outcome);
}

#[test]
fn starting_agent_reports_starting_checks_not_yet_healthy_hlth_4_hlth_6() {
    let t0 = Instant::now();
    let m = HealthMonitor::new(specs(), t0);
    let h = m.component_health_at(t0, wall(Duration::ZERO), Some(wall(Duration::ZERO)));
    assert!(h.healthy, "starting is not unhealthy at the top");
    assert_eq!(h.status, "starting");
    assert_eq!(
        h.last_error, "process: no result yet; api: no result yet",
        "checks in spec order"
    );
    assert_eq!(h.start_time_unix_nano, WALL_T0);
    assert_eq!(h.status_time_unix_nano, WALL_T0);
    assert_eq!(h.component_health_map.len(), 2);
    let api = &h.component_health_map["api"];
    assert!(
        !api.healthy,
        "a check is not healthy before its first success"
    );
    assert_eq!(api.status, "starting");
    assert_eq!(
        api.last_error, "no result yet",
        "HLTH-4: last_error set when healthy == false"
    );
    assert_eq!(api.start_time_unix_nano, WALL_T0);
    assert_eq!(api.status_time_unix_nano, WALL_T0);
    assert!(api.component_health_map.is_empty());
    assert!(api.attributes.is_empty());
}

#[test]
fn healthy_agent_tree_field_by_field_hlth_1_hlth_6() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(specs(), t0);
    rec(&mut m, "process", t0 + secs(1), Outcome::Success);
    rec(&mut m, "api", t0 + secs(2), Outcome::Success);
    let started = wall(Duration::from_millis(500));
    let h = m.component_health_at(t0 + secs(5), wall(secs(5)), Some(started));
    let expected_check = |changed: u64| ComponentHealth {
        healthy: true,
        start_time_unix_nano: WALL_T0 + 500_000_000,
        last_error: String::new(),
        status: "healthy".into(),
        status_time_unix_nano: WALL_T0 + changed * 1_000_000_000,
        component_health_map: Default::default(),
        attributes: vec![],
    };
    assert_eq!(
        h,
        ComponentHealth {
            healthy: true,
            start_time_unix_nano: WALL_T0 + 500_000_000,
            last_error: String::new(),
            status: "healthy".into(),
            // The aggregate turned healthy with the api check's first success.
            status_time_unix_nano: WALL_T0 + 2_000_000_000,
            component_health_map: [
                ("process".to_owned(), expected_check(1)),
                ("api".to_owned(), expected_check(2))
            ]
            .into_iter()
            .collect(),
            attributes: vec![],
        }
    );
}

#[test]
fn not_running_agent_has_zero_start_time_hlth_3() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(specs(), t0);
    rec(
        &mut m,
        "process",
        t0 + secs(1),
        Outcome::failure("process exited with status 2"),
    );
    let h = m.component_health_at(t0 + secs(1), wall(secs(1)), None);
    assert_eq!(h.start_time_unix_nano, 0);
    assert!(
        h.component_health_map
            .values()
            .all(|c| c.start_time_unix_nano == 0)
    );
    assert!(!h.healthy);
    assert_eq!(h.status, "unhealthy");
    assert_eq!(
        h.last_error,
        "process: process exited with status 2; api: no result yet"
    );
    let p = &h.component_health_map["process"];
    assert!(!p.healthy);
    assert_eq!(
        (p.status.as_str(), p.last_error.as_str()),
        ("unhealthy", "process exited with status 2")
    );
    assert_eq!(p.status_time_unix_nano, WALL_T0 + 1_000_000_000);
}

#[test]
fn degraded_agent_is_healthy_at_the_top_with_last_error_hlth_4() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(specs(), t0);
    rec(&mut m, "process", t0, Outcome::Success);
    rec(&mut m, "api", t0, Outcome::Success);
    rec(&mut m, "api", t0 + secs(3), Outcome::failure("status 503"));
    let h = m.component_health_at(t0 + secs(4), wall(secs(4)), Some(wall(Duration::ZERO)));
    assert!(h.healthy);
    assert_eq!(h.status, "degraded");
    assert_eq!(h.last_error, "api: status 503");
    assert_eq!(h.status_time_unix_nano, WALL_T0 + 3_000_000_000);
    let api = &h.component_health_map["api"];
    assert_eq!(
        (api.healthy, api.status.as_str(), api.last_error.as_str()),
        (false, "unhealthy", "status 503")
    );
    let process = &h.component_health_map["process"];
    assert_eq!(
        (
            process.healthy,
            process.status.as_str(),
            process.last_error.as_str()
        ),
        (true, "healthy", "")
    );
    // Recovered: last_error cleared from the report, kept in the state.
    rec(&mut m, "api", t0 + secs(5), Outcome::Success);
    let h = m.component_health_at(t0 + secs(5), wall(secs(5)), None);
    assert_eq!((h.status.as_str(), h.last_error.as_str()), ("healthy", ""));
    assert_eq!(h.component_health_map["api"].last_error, "");
}

#[test]
fn flapping_check_reports_flapping_with_its_last_error() {
    let t0 = Instant::now();
    let policy = FlapPolicy {
        max_changes: 1,
        window: secs(60),
    };
    let mut m = HealthMonitor::with_policy(specs(), policy, t0);
    rec(&mut m, "process", t0, Outcome::Success);
    rec(&mut m, "api", t0, Outcome::Success);
    rec(&mut m, "api", t0 + secs(1), Outcome::failure("refused"));
    rec(&mut m, "api", t0 + secs(2), Outcome::Success);
    let h = m.component_health_at(t0 + secs(2), wall(secs(2)), None);
    assert!(h.healthy);
    assert_eq!(h.status, "flapping");
    assert_eq!(h.last_error, "api: refused");
    let api = &h.component_health_map["api"];
    assert_eq!(
        (api.healthy, api.status.as_str(), api.last_error.as_str()),
        (true, "flapping", "refused")
    );
}

#[test]
fn component_health_anchors_wall_time_at_the_latest_instant() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(specs(), t0);
    rec(&mut m, "process", t0 + secs(10), Outcome::Success);
    let _ = m.poll_due(t0 + secs(20));
    let h = m.component_health(wall(secs(20)), None);
    // The process check changed 10 s before the latest instant seen (t0 + 20 s).
    assert_eq!(
        h.component_health_map["process"].status_time_unix_nano,
        WALL_T0 + 10_000_000_000
    );
}

#[test]
fn no_checks_report_healthy_with_an_empty_map() {
    let t0 = Instant::now();
    let h = HealthMonitor::new(vec![], t0).component_health_at(t0, wall(Duration::ZERO), None);
    assert!(h.healthy);
    assert_eq!(h.status, "healthy");
    assert!(h.last_error.is_empty());
    assert!(h.component_health_map.is_empty());
}

#[test]
fn times_are_fixed64_on_the_wire_hlth_5() {
    let t0 = Instant::now();
    let m = HealthMonitor::new(vec![], t0);
    let h = m.component_health_at(t0, wall(Duration::ZERO), Some(wall(Duration::ZERO)));
    let bytes = h.encode_to_vec();
    // field 2 (start_time_unix_nano), wire type 1 (64-bit): key 0x11, then 8 little-endian bytes.
    let at = bytes.iter().position(|b| *b == 0x11).unwrap();
    assert_eq!(bytes[at + 1..at + 9], WALL_T0.to_le_bytes());
    // field 5 (status_time_unix_nano), wire type 1: key 0x29.
    let at = bytes.iter().position(|b| *b == 0x29).unwrap();
    assert_eq!(bytes[at + 1..at + 9], WALL_T0.to_le_bytes());
    assert_eq!(ComponentHealth::decode(&bytes[..]).unwrap(), h);
}
