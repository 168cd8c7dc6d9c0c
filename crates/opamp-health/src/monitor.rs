//! The health state machine: schedules checks, turns outcomes into verdicts with thresholds,
//! detects flapping and aggregates. Sans-IO: every input carries its `Instant`, the monitor
//! never reads a clock, never runs a probe and never sleeps.
//!
//! One check's verdict (its [`CheckPhase`]):
//!
//! ```text
//!                 first success                     failure_threshold failures
//!   Starting ─────────────────────────▶ Healthy ─────────────────────────────▶ Unhealthy
//!      │                                   ▲                                      │
//!      │ failure_threshold failures        └──────────────────────────────────────┘
//!      └──────────────────────────▶ Unhealthy     recovery_threshold successes
//!
//!   reset(now): every check back to Starting, due now, consecutive counters cleared
//! ```
//!
//! Failures below the threshold leave a healthy check healthy (they are counted); successes
//! below the recovery threshold leave an unhealthy check unhealthy. Orthogonally, a check
//! whose verdict changes more than [`FlapPolicy::max_changes`] times within
//! [`FlapPolicy::window`] is *flapping* until its verdict holds for a whole window.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::{CheckKind, CheckSpec, Error, FlapPolicy, duration};

/// Which check, as handed out by [`HealthMonitor::poll_due`] and [`HealthMonitor::id`].
///
/// An id also names the monitor's *generation*: after [`HealthMonitor::reset`], results
/// recorded under an older id are ignored (they describe the process before the reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckId {
    index: u32,
    generation: u32,
}

impl CheckId {
    /// The check's position in the spec list given to [`HealthMonitor::new`].
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A probe's result, fed to [`HealthMonitor::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The probe passed.
    Success,
    /// The probe failed; the text becomes the check's `last_error` (HLTH-4).
    Failure(String),
}

impl Outcome {
    /// The failure to record when a probe ran past its timeout:
    /// `Failure("timed out after 2s")`.
    pub fn timed_out(timeout: Duration) -> Outcome {
        Outcome::Failure(format!("timed out after {}", duration::format(timeout)))
    }

    /// A failure with the given reason.
    pub fn failure(reason: impl Into<String>) -> Outcome {
        Outcome::Failure(reason.into())
    }

    /// Whether this is [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

/// Coarse health: of one check, or of the whole agent ([`HealthMonitor::status`]).
///
/// A closed set (exhaustive on purpose): callers match on it to decide restarts and
/// rollbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Everything passes.
    Healthy,
    /// Working but not fully proven or partly failing: a check is starting, flapping, or a
    /// non-process check is unhealthy while others pass.
    Degraded,
    /// Not working.
    Unhealthy,
}

impl Status {
    /// `"healthy"`, `"degraded"` or `"unhealthy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's verdict from its recent outcomes (see the module diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckPhase {
    /// No verdict yet: no success since the start or the last reset, and fewer than
    /// `failure_threshold` failures.
    Starting,
    /// Passed (first success, or `recovery_threshold` successes after being unhealthy).
    Healthy,
    /// `failure_threshold` consecutive failures, not yet recovered.
    Unhealthy,
}

impl CheckPhase {
    /// `"starting"`, `"healthy"` or `"unhealthy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckPhase::Starting => "starting",
            CheckPhase::Healthy => "healthy",
            CheckPhase::Unhealthy => "unhealthy",
        }
    }
}

/// What the monitor tells its caller about changes; drain with [`HealthMonitor::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// A check's coarse [`Status`] changed (see [`CheckState::status`]).
    Changed {
        /// The check's name.
        check: String,
        /// Its status before.
        from: Status,
        /// Its status now.
        to: Status,
    },
    /// A check started (`flapping: true`) or stopped (`false`) flapping.
    Flapping {
        /// The check's name.
        check: String,
        /// Whether it flaps now.
        flapping: bool,
    },
}

/// Everything the monitor knows about one check; from [`HealthMonitor::check_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    phase: CheckPhase,
    flapping: bool,
    consecutive_successes: u32,
    consecutive_failures: u32,
    last_error: Option<String>,
    changed_at: Instant,
    last_result_at: Option<Instant>,
    /// The last Healthy/Unhealthy verdict, kept across resets; a new verdict that differs
    /// from it counts as a change for flapping.
    last_verdict: Option<CheckPhase>,
    /// Times of recent verdict changes, oldest first, pruned to the flap window.
    changes: VecDeque<Instant>,
}

impl CheckState {
    fn new(now: Instant) -> Self {
        CheckState {
            phase: CheckPhase::Starting,
            flapping: false,
            consecutive_successes: 0,
            consecutive_failures: 0,
            last_error: None,
            changed_at: now,
            last_result_at: None,
            last_verdict: None,
            changes: VecDeque::new(),
        }
    }

    /// Coarse status: healthy when [`CheckPhase::Healthy`] and not flapping; unhealthy when
    /// [`CheckPhase::Unhealthy`] and not flapping; otherwise (starting, or flapping)
    /// degraded.
    pub fn status(&self) -> Status {
        match (self.flapping, self.phase) {
            (false, CheckPhase::Healthy) => Status::Healthy,
            (false, CheckPhase::Unhealthy) => Status::Unhealthy,
            _ => Status::Degraded,
        }
    }

    /// The status text reported in `ComponentHealth.status`: `"flapping"` while flapping,
    /// else the phase (`"starting"`, `"healthy"`, `"unhealthy"`).
    pub fn status_str(&self) -> &'static str {
        if self.flapping {
            "flapping"
        } else {
            self.phase.as_str()
        }
    }

    /// The verdict from recent outcomes, flapping aside.
    pub fn phase(&self) -> CheckPhase {
        self.phase
    }

    /// Whether the last verdict is a pass (`ComponentHealth.healthy` of this check). A
    /// starting check is not healthy until its first success.
    pub fn is_healthy(&self) -> bool {
        self.phase == CheckPhase::Healthy
    }

    /// Whether the check is flapping.
    pub fn is_flapping(&self) -> bool {
        self.flapping
    }

    /// Successes in a row (0 after a failure).
    pub fn consecutive_successes(&self) -> u32 {
        self.consecutive_successes
    }

    /// Failures in a row (0 after a success).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The reason of the most recent failure since the start or the last reset, if any
    /// (kept after recovery; the report shows it only while not healthy).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the phase or the flapping flag last changed (or the monitor started / reset).
    pub fn changed_at(&self) -> Instant {
        self.changed_at
    }

    /// When the last outcome was recorded.
    pub fn last_result_at(&self) -> Option<Instant> {
        self.last_result_at
    }

    /// Verdict changes counted within the current flap window.
    pub fn recent_changes(&self) -> usize {
        self.changes.len()
    }
}

#[derive(Debug)]
struct Check {
    spec: CheckSpec,
    state: CheckState,
    next_due: Instant,
    in_flight: bool,
}

/// Runs the bookkeeping for a set of health checks. See the [crate docs](crate) for an
/// example.
#[derive(Debug)]
pub struct HealthMonitor {
    checks: Vec<Check>,
    policy: FlapPolicy,
    generation: u32,
    events: VecDeque<HealthEvent>,
    aggregate: Status,
    aggregate_changed_at: Instant,
    /// The latest `Instant` seen in any input; anchors wall-clock conversion.
    latest: Instant,
}

impl HealthMonitor {
    /// A monitor with the default [`FlapPolicy`]; every check is due at `now` and starting.
    ///
    /// The specs are not validated here (call [`CheckSpec::validate_all`] or use
    /// [`HealthMonitor::try_new`]); duplicate names would collide in the report.
    pub fn new(specs: Vec<CheckSpec>, now: Instant) -> Self {
        Self::with_policy(specs, FlapPolicy::default(), now)
    }

    /// A monitor with the given flapping policy.
    pub fn with_policy(specs: Vec<CheckSpec>, policy: FlapPolicy, now: Instant) -> Self {
        let checks: Vec<Check> = specs
            .into_iter()
            .map(|spec| Check {
                spec,
                state: CheckState::new(now),
                next_due: now,
                in_flight: false,
            })
            .collect();
        let mut monitor = HealthMonitor {
            checks,
            policy,
            generation: 0,
            events: VecDeque::new(),
            aggregate: Status::Healthy,
            aggregate_changed_at: now,
            latest: now,
        };
        monitor.aggregate = monitor.compute_status();
        monitor
    }

    /// Validates the specs and the policy, then builds the monitor.
    pub fn try_new(specs: Vec<CheckSpec>, policy: FlapPolicy, now: Instant) -> Result<Self, Error> {
        CheckSpec::validate_all(&specs)?;
        policy.validate()?;
        Ok(Self::with_policy(specs, policy, now))
    }

    /// The next check to run now, if one is due and not already running; it is marked in
    /// flight until its outcome is [recorded](Self::record). The most overdue check comes
    /// first (ties in spec order).
    pub fn poll_due(&mut self, now: Instant) -> Option<(CheckId, &CheckSpec)> {
        self.observe(now);
        let index = self
            .checks
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.in_flight && c.next_due <= now)
            .min_by_key(|(i, c)| (c.next_due, *i))
            .map(|(i, _)| i)?;
        let id = self.id_at(index);
        let check = &mut self.checks[index];
        check.in_flight = true;
        Some((id, &check.spec))
    }

    /// When the next check that is not in flight falls due; `None` without such checks.
    /// In-flight probes are the caller's to time out (with [`Outcome::timed_out`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.checks
            .iter()
            .filter(|c| !c.in_flight)
            .map(|c| c.next_due)
            .min()
    }

    /// Records a probe's outcome and schedules the check's next run at `now + interval`.
    ///
    /// Results may also arrive unasked (e.g. the caller saw the process exit and records a
    /// failure for the process check at once). Returns `false`, changing nothing, when the
    /// id is unknown or from before the last [`reset`](Self::reset).
    pub fn record(&mut self, id: CheckId, now: Instant, outcome: Outcome) -> bool {
        if id.generation != self.generation {
            return false;
        }
        let Some(check) = self.checks.get_mut(id.index()) else {
            return false;
        };
        self.latest = self.latest.max(now);
        check.in_flight = false;
        check.next_due = now.checked_add(check.spec.interval).unwrap_or(now);
        let before = check.state.status();
        let state = &mut check.state;
        state.last_result_at = Some(now);
        let new_phase = match outcome {
            Outcome::Success => {
                state.consecutive_successes = state.consecutive_successes.saturating_add(1);
                state.consecutive_failures = 0;
                match state.phase {
                    CheckPhase::Starting | CheckPhase::Healthy => CheckPhase::Healthy,
                    CheckPhase::Unhealthy
                        if state.consecutive_successes >= check.spec.recovery_threshold =>
                    {
                        CheckPhase::Healthy
                    }
                    CheckPhase::Unhealthy => CheckPhase::Unhealthy,
                }
            }
            Outcome::Failure(reason) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                state.consecutive_successes = 0;
                state.last_error = Some(reason);
                if state.consecutive_failures >= check.spec.failure_threshold {
                    CheckPhase::Unhealthy
                } else {
                    state.phase
                }
            }
        };
        if new_phase != state.phase {
            state.phase = new_phase;
            state.changed_at = now;
            if state.last_verdict.is_some_and(|v| v != new_phase) {
                state.changes.push_back(now);
            }
            state.last_verdict = Some(new_phase);
        }
        let window = self.policy.window;
        while state
            .changes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            state.changes.pop_front();
        }
        let max = usize::try_from(self.policy.max_changes).unwrap_or(usize::MAX);
        if !state.flapping && state.changes.len() > max {
            state.flapping = true;
            state.changed_at = now;
            self.events.push_back(HealthEvent::Flapping {
                check: check.spec.name.clone(),
                flapping: true,
            });
        } else if state.flapping && state.changes.is_empty() {
            state.flapping = false;
            state.changed_at = now;
            self.events.push_back(HealthEvent::Flapping {
                check: check.spec.name.clone(),
                flapping: false,
            });
        }
        let after = state.status();
        if before != after {
            self.events.push_back(HealthEvent::Changed {
                check: check.spec.name.clone(),
                from: before,
                to: after,
            });
        }
        self.update_aggregate(now);
        true
    }

    /// Starts over, e.g. after the managed process restarted: every check starting and due
    /// at `now`, consecutive counters and errors cleared, results of probes still in flight
    /// ignored. Flap history is kept: a crash loop is what it exists to catch.
    pub fn reset(&mut self, now: Instant) {
        self.observe(now);
        self.generation = self.generation.wrapping_add(1);
        for check in &mut self.checks {
            let before = check.state.status();
            let old = std::mem::replace(&mut check.state, CheckState::new(now));
            check.state.last_verdict = old.last_verdict;
            check.state.changes = old.changes;
            check.state.flapping = old.flapping;
            check.next_due = now;
            check.in_flight = false;
            let after = check.state.status();
            if before != after {
                self.events.push_back(HealthEvent::Changed {
                    check: check.spec.name.clone(),
                    from: before,
                    to: after,
                });
            }
        }
        self.update_aggregate(now);
    }

    /// The agent's overall health:
    /// - no checks, or every check healthy: [`Status::Healthy`];
    /// - a check unhealthy: [`Status::Unhealthy`] if it is a [`CheckKind::Process`] check or
    ///   every check is unhealthy, else [`Status::Degraded`];
    /// - otherwise (a check starting or flapping): [`Status::Degraded`].
    pub fn status(&self) -> Status {
        self.aggregate
    }

    /// When [`status`](Self::status) last changed (or the monitor started).
    pub fn status_changed_at(&self) -> Instant {
        self.aggregate_changed_at
    }

    /// One check's state; `None` for an id not from this monitor. Ids from before a reset
    /// still name their check here.
    pub fn check_status(&self, id: CheckId) -> Option<&CheckState> {
        self.checks.get(id.index()).map(|c| &c.state)
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<HealthEvent> {
        self.events.pop_front()
    }

    /// The current id of the check with this name.
    pub fn id(&self, name: &str) -> Option<CheckId> {
        self.checks
            .iter()
            .position(|c| c.spec.name == name)
            .map(|i| self.id_at(i))
    }

    /// A check's spec.
    pub fn spec(&self, id: CheckId) -> Option<&CheckSpec> {
        self.checks.get(id.index()).map(|c| &c.spec)
    }

    /// Every check with its current id, in spec order.
    pub fn checks(&self) -> impl Iterator<Item = (CheckId, &CheckSpec, &CheckState)> + '_ {
        self.checks
            .iter()
            .enumerate()
            .map(|(i, c)| (self.id_at(i), &c.spec, &c.state))
    }

    /// Number of checks.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether there are no checks (the agent is then always healthy).
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// The flapping policy in force.
    pub fn policy(&self) -> FlapPolicy {
        self.policy
    }

    pub(crate) fn latest(&self) -> Instant {
        self.latest
    }

    pub(crate) fn states(&self) -> impl Iterator<Item = (&CheckSpec, &CheckState)> + '_ {
        self.checks.iter().map(|c| (&c.spec, &c.state))
    }

    fn id_at(&self, index: usize) -> CheckId {
        // Indexes fit: a monitor with more than u32::MAX checks cannot be built in memory.
        CheckId {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            generation: self.generation,
        }
    }

    fn observe(&mut self, now: Instant) {
        self.latest = self.latest.max(now);
    }

    fn update_aggregate(&mut self, now: Instant) {
        let status = self.compute_status();
        if status != self.aggregate {
            self.aggregate = status;
            self.aggregate_changed_at = now;
        }
    }

    fn compute_status(&self) -> Status {
        let unhealthy: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.state.status() == Status::Unhealthy)
            .collect();
        if !unhealthy.is_empty() {
            let process_down = unhealthy.iter().any(|c| c.spec.kind == CheckKind::Process);
            if process_down || unhealthy.len() == self.checks.len() {
                Status::Unhealthy
            } else {
                Status::Degraded
            }
        } else if self
            .checks
            .iter()
            .all(|c| c.state.status() == Status::Healthy)
        {
            Status::Healthy
        } else {
            Status::Degraded
        }
    }
}
