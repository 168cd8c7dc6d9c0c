//! Arbitrary outcome sequences never panic, and each check's verdict always follows the
//! threshold rule.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::{Duration, Instant, SystemTime};

use opamp_health::{CheckKind, CheckPhase, CheckSpec, FlapPolicy, HealthMonitor, Outcome, Status};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Record an outcome for check `index % len` after `advance_ms`.
    Record {
        index: usize,
        success: bool,
        advance_ms: u64,
    },
    /// Poll for due checks and record every one as given.
    PollAll {
        success: bool,
        advance_ms: u64,
    },
    Reset {
        advance_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..8usize, any::<bool>(), 0..20_000u64)
            .prop_map(|(index, success, advance_ms)| Op::Record { index, success, advance_ms }),
        2 => (any::<bool>(), 0..20_000u64).prop_map(|(success, advance_ms)| Op::PollAll { success, advance_ms }),
        1 => (0..20_000u64).prop_map(|advance_ms| Op::Reset { advance_ms }),
    ]
}

fn specs() -> impl Strategy<Value = Vec<CheckSpec>> {
    prop::collection::vec((1..5u32, 1..5u32, any::<bool>(), 1..30u64), 1..5).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (f, r, is_process, interval))| CheckSpec {
                failure_threshold: f,
                recovery_threshold: r,
                interval: Duration::from_secs(interval),
                timeout: Duration::from_secs(1),
                ..CheckSpec::new(
                    format!("check{i}"),
                    if is_process {
                        CheckKind::Process
                    } else {
                        CheckKind::Tcp {
                            address: "127.0.0.1:1".into(),
                        }
                    },
                )
            })
            .collect()
    })
}

/// The reference model of one check: its outcomes since the last reset.
fn expected_phase(outcomes: &[bool], f: u32, r: u32) -> CheckPhase {
    let mut phase = CheckPhase::Starting;
    let (mut ok, mut bad) = (0u32, 0u32);
    for &success in outcomes {
        if success {
            ok += 1;
            bad = 0;
            if phase == CheckPhase::Starting || ok >= r {
                phase = CheckPhase::Healthy;
            }
        } else {
            bad += 1;
            ok = 0;
            if bad >= f {
                phase = CheckPhase::Unhealthy;
            }
        }
    }
    phase
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_outcomes_follow_the_threshold_rule(specs in specs(), ops in prop::collection::vec(op(), 0..200), max_changes in 1..6u32) {
        let t0 = Instant::now();
        let mut now = t0;
        let policy = FlapPolicy { max_changes, window: Duration::from_secs(60) };
        let mut m = HealthMonitor::with_policy(specs.clone(), policy, t0);
        let mut history: Vec<Vec<bool>> = vec![Vec::new(); specs.len()];
        for op in ops {
            match op {
                Op::Record { index, success, advance_ms } => {
                    now += Duration::from_millis(advance_ms);
                    let index = index % specs.len();
                    let id = m.id(&specs[index].name).unwrap();
                    let outcome = if success { Outcome::Success } else { Outcome::failure("x") };
                    prop_assert!(m.record(id, now, outcome));
                    history[index].push(success);
                }
                Op::PollAll { success, advance_ms } => {
                    now += Duration::from_millis(advance_ms);
                    let mut due = Vec::new();
                    while let Some((id, _)) = m.poll_due(now) {
                        due.push(id);
                    }
                    if let Some(next) = m.poll_timeout() {
                        prop_assert!(next > now, "nothing left due");
                    }
                    for id in due {
                        let outcome = if success { Outcome::Success } else { Outcome::timed_out(Duration::from_secs(1)) };
                        prop_assert!(m.record(id, now, outcome));
                        history[id.index()].push(success);
                    }
                }
                Op::Reset { advance_ms } => {
                    now += Duration::from_millis(advance_ms);
                    m.reset(now);
                    history.iter_mut().for_each(Vec::clear);
                    prop_assert_eq!(m.poll_timeout(), Some(now));
                }
            }
            while m.poll_event().is_some() {}
            for (i, spec) in specs.iter().enumerate() {
                let state = m.check_status(m.id(&spec.name).unwrap()).unwrap();
                let h = &history[i];
                let (f, r) = (spec.failure_threshold as usize, spec.recovery_threshold as usize);
                prop_assert_eq!(state.phase(), expected_phase(h, spec.failure_threshold, spec.recovery_threshold));
                // The rule stated directly on the last outcomes:
                if h.len() >= f && h[h.len() - f..].iter().all(|s| !s) {
                    prop_assert_eq!(state.phase(), CheckPhase::Unhealthy);
                }
                if h.len() >= r && h[h.len() - r..].iter().all(|s| *s) && !h.is_empty() {
                    prop_assert_eq!(state.phase(), CheckPhase::Healthy);
                }
                if !h.contains(&true) && h.len() < f {
                    prop_assert_eq!(state.phase(), CheckPhase::Starting);
                }
                prop_assert_eq!(state.is_healthy(), state.phase() == CheckPhase::Healthy);
                if state.is_flapping() {
                    prop_assert_eq!(state.status(), Status::Degraded);
                }
            }
            // Aggregate consistency.
            let statuses: Vec<Status> = m.checks().map(|(_, _, s)| s.status()).collect();
            let process_down = m.checks().any(|(_, spec, s)| spec.kind == CheckKind::Process && s.status() == Status::Unhealthy);
            let expected = if process_down || statuses.iter().all(|s| *s == Status::Unhealthy) {
                Status::Unhealthy
            } else if statuses.iter().all(|s| *s == Status::Healthy) {
                Status::Healthy
            } else {
                Status::Degraded
            };
            prop_assert_eq!(m.status(), expected);
            let report = m.component_health(SystemTime::now(), None);
            prop_assert_eq!(report.healthy, expected != Status::Unhealthy);
            prop_assert_eq!(report.component_health_map.len(), specs.len());
            prop_assert_eq!(report.last_error.is_empty(), expected == Status::Healthy);
            for check in report.component_health_map.values() {
                prop_assert!(check.healthy || !check.last_error.is_empty(), "HLTH-4");
            }
        }
    }
}
