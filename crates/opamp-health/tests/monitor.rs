//! HealthMonitor behaviour with synthetic instants: thresholds, recovery, flapping,
//! aggregation, scheduling, reset.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::{Duration, Instant};

use opamp_health::{
    CheckId, CheckKind, CheckPhase, CheckSpec, FlapPolicy, HealthEvent, HealthMonitor, Outcome,
    Status,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn spec(name: &str, kind: CheckKind, failure_threshold: u32, recovery_threshold: u32) -> CheckSpec {
    CheckSpec {
        failure_threshold,
        recovery_threshold,
        ..CheckSpec::new(name, kind)
    }
}

fn http(name: &str, f: u32, r: u32) -> CheckSpec {
    spec(
        name,
        CheckKind::Http {
            url: format!("http://127.0.0.1/{name}"),
            expect_status: 200,
        },
        f,
        r,
    )
}

fn process(f: u32, r: u32) -> CheckSpec {
    spec("process", CheckKind::Process, f, r)
}

fn fail() -> Outcome {
    Outcome::failure("boom")
}

fn events(m: &mut HealthMonitor) -> Vec<HealthEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Records `outcome` for check `name` at `now` (out of schedule is allowed).
fn rec(m: &mut HealthMonitor, name: &str, now: Instant, outcome: Outcome) {
    let id = m.id(name).unwrap();
    assert!(m.record(id, now, outcome));
}

fn phase(m: &HealthMonitor, name: &str) -> CheckPhase {
    m.check_status(m.id(name).unwrap()).unwrap().phase()
}

#[test]
fn a_check_is_starting_until_its_first_success() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(vec![http("api", 3, 2)], t0);
    let id = m.id("api").unwrap();
    let state = m.check_status(id).unwrap();
    assert_eq!(state.phase(), CheckPhase::Starting);
    assert_eq!(state.status(), Status::Degraded);
    assert_eq!(state.status_str(), "starting");
    assert!(!state.is_healthy());
    assert_eq!(m.status(), Status::Degraded);
    rec(&mut m, "api", t0, fail());
    rec(&mut m, "api", t0 + secs(1), fail());
    assert_eq!(
        phase(&m, "api"),
        CheckPhase::Starting,
        "below the failure threshold"
    );
    rec(&mut m, "api", t0 + secs(2), Outcome::Success);
    // The first success is enough from starting, whatever the recovery threshold.
    assert_eq!(phase(&m, "api"), CheckPhase::Healthy);
    assert_eq!(m.status(), Status::Healthy);
    assert_eq!(
        events(&mut m),
        vec![HealthEvent::Changed {
            check: "api".into(),
            from: Status::Degraded,
            to: Status::Healthy
        }]
    );
}

#[test]
fn starting_check_becomes_unhealthy_at_the_failure_threshold() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(vec![http("api", 2, 1)], t0);
    rec(&mut m, "api", t0, fail());
    assert_eq!(phase(&m, "api"), CheckPhase::Starting);
    rec(&mut m, "api", t0 + secs(1), Outcome::failure("refused"));
    assert_eq!(phase(&m, "api"), CheckPhase::Unhealthy);
    let state = m.check_status(m.id("api").unwrap()).unwrap();
    assert_eq!(state.consecutive_failures(), 2);
    assert_eq!(state.last_error(), Some("refused"));
    assert_eq!(state.changed_at(), t0 + secs(1));
    assert_eq!(m.status(), Status::Unhealthy, "the only check is unhealthy");
    assert_eq!(
        events(&mut m),
        vec![HealthEvent::Changed {
            check: "api".into(),
            from: Status::Degraded,
            to: Status::Unhealthy
        }]
    );
}

#[test]
fn failures_below_the_threshold_keep_a_healthy_check_healthy() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(vec![http("api", 3, 1)], t0);
    rec(&mut m, "api", t0, Outcome::Success);
    events(&mut m);
    rec(&mut m, "api", t0 + secs(1), fail());
    rec(&mut m, "api", t0 + secs(2), fail());
    let state = m.check_status(m.id("api").unwrap()).unwrap();
    assert_eq!(
        (state.phase(), state.consecutive_failures()),
        (CheckPhase::Healthy, 2)
    );
    assert_eq!(m.status(), Status::Healthy);
    // A success in between starts the count again.
    rec(&mut m, "api", t0 + secs(3), Outcome::Success);
    rec(&mut m, "api", t0 + secs(4), fail());
    rec(&mut m, "api", t0 + secs(5), fail());
    assert_eq!(phase(&m, "api"), CheckPhase::Healthy);
    rec(&mut m, "api", t0 + secs(6), fail());
    assert_eq!(phase(&m, "api"), CheckPhase::Unhealthy);
    assert_eq!(
        events(&mut m),
        vec![HealthEvent::Changed {
            check: "api".into(),
            from: Status::Healthy,
            to: Status::Unhealthy
        }]
    );
}

#[test]
fn recovery_needs_recovery_threshold_consecutive_successes() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(vec![http("api", 1, 3)], t0);
    rec(&mut m, "api", t0, fail());
    assert_eq!(phase(&m, "api"), CheckPhase::Unhealthy);
    rec(&mut m, "api", t0 + secs(1), Outcome::Success);
    rec(&mut m, "api", t0 + secs(2), Outcome::Success);
    assert_eq!(phase(&m, "api"), CheckPhase::Unhealthy);
    rec(&mut m, "api", t0 + secs(3), fail());
    rec(&mut m, "api", t0 + secs(4), Outcome::Success);
    rec(&mut m, "api", t0 + secs(5), Outcome::Success);
    assert_eq!(
        phase(&m, "api"),
        CheckPhase::Unhealthy,
        "the failure restarted the count"
    );
    rec(&mut m, "api", t0 + secs(6), Outcome::Success);
    assert_eq!(phase(&m, "api"), CheckPhase::Healthy);
    let state = m.check_status(m.id("api").unwrap()).unwrap();
    assert_eq!(state.consecutive_successes(), 3);
    assert_eq!(
        state.last_error(),
        Some("boom"),
        "the last error is kept for history"
    );
}

#[test]
fn timed_out_outcome_names_the_timeout() {
    assert_eq!(
        Outcome::timed_out(secs(2)),
        Outcome::Failure("timed out after 2s".into())
    );
    assert_eq!(
        Outcome::timed_out(Duration::from_millis(500)),
        Outcome::Failure("timed out after 500ms".into())
    );
    assert!(Outcome::Success.is_success());
}

#[test]
fn aggregate_no_checks_is_healthy() {
    let m = HealthMonitor::new(vec![], Instant::now());
    assert_eq!(m.status(), Status::Healthy);
    assert!(m.is_empty());
}

#[test]
fn aggregate_unhealthy_process_check_makes_the_agent_unhealthy() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(
        vec![process(1, 1), http("api", 1, 1), http("metrics", 1, 1)],
        t0,
    );
    for name in ["process", "api", "metrics"] {
        rec(&mut m, name, t0, Outcome::Success);
    }
    assert_eq!(m.status(), Status::Healthy);
    rec(
        &mut m,
        "process",
        t0 + secs(1),
        Outcome::failure("process exited with status 1"),
    );
    assert_eq!(m.status(), Status::Unhealthy);
    assert_eq!(m.status_changed_at(), t0 + secs(1));
}

#[test]
fn aggregate_one_unhealthy_non_process_check_is_degraded() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(
        vec![process(1, 1), http("api", 1, 1), http("metrics", 1, 1)],
        t0,
    );
    for name in ["process", "api", "metrics"] {
        rec(&mut m, name, t0, Outcome::Success);
    }
    rec(&mut m, "api", t0 + secs(1), fail());
    assert_eq!(m.status(), Status::Degraded);
    rec(&mut m, "metrics", t0 + secs(2), fail());
    assert_eq!(
        m.status(),
        Status::Degraded,
        "the process check still passes"
    );
    rec(&mut m, "process", t0 + secs(3), fail());
    assert_eq!(m.status(), Status::Unhealthy);
}

#[test]
fn aggregate_all_non_process_checks_unhealthy_is_unhealthy() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(vec![http("api", 1, 1), http("metrics", 1, 1)], t0);
    rec(&mut m, "api", t0, fail());
    assert_eq!(m.status(), Status::Degraded, "metrics is still starting");
    rec(&mut m, "metrics", t0, fail());
    assert_eq!(m.status(), Status::Unhealthy);
    rec(&mut m, "metrics", t0 + secs(1), Outcome::Success);
    assert_eq!(m.status(), Status::Degraded);
    rec(&mut m, "api", t0 + secs(1), Outcome::Success);
    assert_eq!(m.status(), Status::Healthy);
}

#[test]
fn scheduling_every_check_due_at_start_in_spec_order() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(vec![http("a", 1, 1), http("b", 1, 1), http("c", 1, 1)], t0);
    assert_eq!(m.poll_timeout(), Some(t0));
    let order: Vec<String> =
        std::iter::from_fn(|| m.poll_due(t0).map(|(_, s)| s.name.clone())).collect();
    assert_eq!(order, ["a", "b", "c"]);
    assert_eq!(m.poll_due(t0), None, "all in flight");
    assert_eq!(
        m.poll_timeout(),
        None,
        "in-flight checks are the caller's to time out"
    );
}

#[test]
fn scheduling_next_run_is_interval_after_the_result() {
    let t0 = Instant::now();
    let fast = CheckSpec {
        interval: secs(2),
        timeout: secs(1),
        ..http("fast", 1, 1)
    };
    let slow = CheckSpec {
        interval: secs(5),
        timeout: secs(1),
        ..http("slow", 1, 1)
    };
    let mut m = HealthMonitor::new(vec![slow, fast], t0);
    let (slow_id, _) = m.poll_due(t0).unwrap();
    let (fast_id, _) = m.poll_due(t0).unwrap();
    assert_eq!(m.spec(fast_id).unwrap().name, "fast");
    m.record(fast_id, t0 + Duration::from_millis(300), Outcome::Success);
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_millis(2300)));
    m.record(slow_id, t0 + secs(1), Outcome::Success);
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_millis(2300)));
    assert_eq!(m.poll_due(t0 + secs(2)), None, "nothing due yet");
    // Later, both are overdue: the most overdue runs first.
    let late = t0 + secs(10);
    assert_eq!(m.poll_due(late).unwrap().1.name, "fast");
    assert_eq!(m.poll_due(late).unwrap().1.name, "slow");
}

#[test]
fn scheduling_a_long_run_of_polls_keeps_each_interval() {
    let t0 = Instant::now();
    let a = CheckSpec {
        interval: secs(3),
        timeout: secs(1),
        ..http("a", 1, 1)
    };
    let b = CheckSpec {
        interval: secs(7),
        timeout: secs(1),
        ..http("b", 1, 1)
    };
    let mut m = HealthMonitor::new(vec![a, b], t0);
    let mut runs = Vec::new();
    let mut now = t0;
    while now <= t0 + secs(21) {
        while let Some((id, spec)) = m.poll_due(now) {
            runs.push((spec.name.clone(), now.duration_since(t0).as_secs()));
            m.record(id, now, Outcome::Success);
        }
        now = m.poll_timeout().unwrap();
    }
    let times = |n: &str| {
        runs.iter()
            .filter(|(name, _)| name == n)
            .map(|(_, t)| *t)
            .collect::<Vec<_>>()
    };
    assert_eq!(times("a"), [0, 3, 6, 9, 12, 15, 18, 21]);
    assert_eq!(times("b"), [0, 7, 14, 21]);
}

#[test]
fn reset_makes_every_check_starting_and_due_and_ignores_stale_results() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::new(vec![process(1, 1), http("api", 2, 1)], t0);
    let (p_old, _) = m.poll_due(t0).unwrap();
    m.record(p_old, t0, Outcome::Success);
    let (api_old, _) = m.poll_due(t0).unwrap(); // still in flight at the reset
    rec(&mut m, "api", t0, fail());
    assert_eq!(m.status(), Status::Degraded);
    events(&mut m);

    let t1 = t0 + secs(3);
    m.reset(t1);
    for (_, _, state) in m.checks() {
        assert_eq!(state.phase(), CheckPhase::Starting);
        assert_eq!(
            (state.consecutive_failures(), state.consecutive_successes()),
            (0, 0)
        );
        assert_eq!(state.last_error(), None);
    }
    assert_eq!(m.poll_timeout(), Some(t1));
    assert_eq!(
        events(&mut m),
        vec![HealthEvent::Changed {
            check: "process".into(),
            from: Status::Healthy,
            to: Status::Degraded
        }]
    );
    // A result of a probe started before the reset describes the old process: ignored.
    assert!(!m.record(api_old, t1, fail()));
    assert_eq!(m.check_status(api_old).unwrap().consecutive_failures(), 0);
    assert_ne!(m.id("api"), Some(api_old));
    let due: Vec<CheckId> = std::iter::from_fn(|| m.poll_due(t1).map(|(id, _)| id)).collect();
    assert_eq!(due.len(), 2);
    assert!(m.record(due[0], t1, Outcome::Success));
}

#[test]
fn record_with_an_unknown_id_changes_nothing() {
    let t0 = Instant::now();
    let mut other = HealthMonitor::new(vec![http("a", 1, 1), http("b", 1, 1)], t0);
    let foreign = other.id("b").unwrap();
    let mut m = HealthMonitor::new(vec![http("a", 1, 1)], t0);
    assert!(!m.record(foreign, t0, fail()));
    assert_eq!(m.check_status(foreign), None);
    assert_eq!(phase(&m, "a"), CheckPhase::Starting);
    assert!(other.record(foreign, t0, fail()));
}

fn flappy() -> HealthMonitor {
    let policy = FlapPolicy {
        max_changes: 4,
        window: secs(300),
    };
    HealthMonitor::with_policy(
        vec![process(1, 1), http("api", 1, 1)],
        policy,
        Instant::now(),
    )
}

#[test]
fn flapping_after_more_than_max_changes_within_the_window() {
    let mut m = flappy();
    let t0 = m.checks().next().unwrap().2.changed_at();
    rec(&mut m, "process", t0, Outcome::Success);
    rec(&mut m, "api", t0, Outcome::Success); // first verdict: not a change
    events(&mut m);
    let mut t = t0;
    for i in 0..4 {
        t += secs(10);
        rec(
            &mut m,
            "api",
            t,
            if i % 2 == 0 { fail() } else { Outcome::Success },
        );
    }
    let state = m.check_status(m.id("api").unwrap()).unwrap();
    assert_eq!(state.recent_changes(), 4);
    assert!(!state.is_flapping(), "4 changes are tolerated");
    events(&mut m);
    t += secs(10);
    rec(&mut m, "api", t, fail()); // the 5th change
    let state = m.check_status(m.id("api").unwrap()).unwrap();
    assert!(state.is_flapping());
    assert_eq!(state.status(), Status::Degraded);
    assert_eq!(state.status_str(), "flapping");
    assert_eq!(m.status(), Status::Degraded);
    assert_eq!(
        events(&mut m),
        vec![
            HealthEvent::Flapping {
                check: "api".into(),
                flapping: true
            },
            HealthEvent::Changed {
                check: "api".into(),
                from: Status::Healthy,
                to: Status::Degraded
            },
        ]
    );
    // While flapping, verdict changes do not change the coarse status.
    t += secs(10);
    rec(&mut m, "api", t, Outcome::Success);
    assert_eq!(events(&mut m), vec![]);
    assert_eq!(m.status(), Status::Degraded);

    // Stable for less than a window: still flapping; a whole window: stops.
    let last_change = t;
    t = last_change + secs(299);
    rec(&mut m, "api", t, Outcome::Success);
    assert!(m.check_status(m.id("api").unwrap()).unwrap().is_flapping());
    t = last_change + secs(300);
    rec(&mut m, "api", t, Outcome::Success);
    assert!(!m.check_status(m.id("api").unwrap()).unwrap().is_flapping());
    assert_eq!(m.status(), Status::Healthy);
    assert_eq!(
        events(&mut m),
        vec![
            HealthEvent::Flapping {
                check: "api".into(),
                flapping: false
            },
            HealthEvent::Changed {
                check: "api".into(),
                from: Status::Degraded,
                to: Status::Healthy
            },
        ]
    );
}

#[test]
fn flapping_changes_spread_over_more_than_the_window_do_not_count() {
    let mut m = flappy();
    let t0 = m.checks().next().unwrap().2.changed_at();
    rec(&mut m, "api", t0, Outcome::Success);
    let mut t = t0;
    for i in 0..20 {
        t += secs(100); // 3 changes per 300 s window at most
        rec(
            &mut m,
            "api",
            t,
            if i % 2 == 0 { fail() } else { Outcome::Success },
        );
        assert!(
            !m.check_status(m.id("api").unwrap()).unwrap().is_flapping(),
            "change {i}"
        );
    }
}

#[test]
fn flapping_process_crash_loop_is_detected_across_resets() {
    let mut m = flappy();
    let t0 = m.checks().next().unwrap().2.changed_at();
    let mut t = t0;
    for _ in 0..3 {
        rec(&mut m, "process", t, Outcome::Success);
        t += secs(5);
        rec(
            &mut m,
            "process",
            t,
            Outcome::failure("process exited with status 1"),
        );
        t += secs(1);
        m.reset(t);
    }
    // healthy → unhealthy → (reset) → healthy → unhealthy ...: 5 changes after the first verdict
    let state = m.check_status(m.id("process").unwrap()).unwrap();
    assert!(state.is_flapping());
    assert_eq!(state.status_str(), "flapping");
}

#[test]
fn flapping_disabled_policy_never_flaps() {
    let t0 = Instant::now();
    let mut m = HealthMonitor::with_policy(vec![http("api", 1, 1)], FlapPolicy::DISABLED, t0);
    for i in 0..100u64 {
        rec(
            &mut m,
            "api",
            t0 + secs(i),
            if i % 2 == 0 { fail() } else { Outcome::Success },
        );
    }
    assert!(!m.check_status(m.id("api").unwrap()).unwrap().is_flapping());
}

#[test]
fn try_new_validates_specs_and_policy() {
    let t0 = Instant::now();
    assert!(
        HealthMonitor::try_new(
            vec![process(1, 1), process(1, 1)],
            FlapPolicy::default(),
            t0
        )
        .is_err()
    );
    assert!(HealthMonitor::try_new(vec![process(0, 1)], FlapPolicy::default(), t0).is_err());
    let bad_policy = FlapPolicy {
        max_changes: 0,
        ..FlapPolicy::default()
    };
    assert!(HealthMonitor::try_new(vec![process(1, 1)], bad_policy, t0).is_err());
    let m = HealthMonitor::try_new(vec![process(1, 1)], FlapPolicy::default(), t0).unwrap();
    assert_eq!((m.len(), m.policy()), (1, FlapPolicy::default()));
}
