//! The `ComponentHealth` tree reported in `AgentToServer.health` (HLTH-1..6): the whole agent
//! at the top, one entry per check in `component_health_map`. Only conversion lives here.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use opamp_proto::v1::ComponentHealth;

use crate::{CheckPhase, HealthMonitor, Status};

impl HealthMonitor {
    /// The health tree, with `now` as the wall-clock time of the latest `Instant` the
    /// monitor was given (in [`poll_due`](Self::poll_due), [`record`](Self::record) or
    /// [`reset`](Self::reset)). Use [`component_health_at`](Self::component_health_at) when
    /// the two clocks should be paired exactly.
    ///
    /// `start_time` is when the managed process started, `None` when it is not running
    /// (then `start_time_unix_nano` is 0, HLTH-3).
    pub fn component_health(
        &self,
        now: SystemTime,
        start_time: Option<SystemTime>,
    ) -> ComponentHealth {
        self.component_health_at(self.latest(), now, start_time)
    }

    /// The health tree, with `wall_now` as the wall-clock time of `now`; instants are
    /// converted to `*_unix_nano` relative to that pair.
    ///
    /// Top level (the whole agent, HLTH-1):
    /// - `healthy`: the aggregate [`status`](Self::status) is not [`Status::Unhealthy`]
    ///   (degraded counts as healthy, a starting agent too);
    /// - `status`: `"healthy"`, `"unhealthy"`, or when degraded `"starting"` (every check
    ///   that is not healthy is starting), `"flapping"` (every such check flaps) or
    ///   `"degraded"`;
    /// - `last_error`: unless healthy, `"<check>: <error>"` of every check that is not
    ///   healthy, joined with `"; "` (HLTH-4);
    /// - `start_time_unix_nano`: `start_time`, or 0 when not running (HLTH-3);
    /// - `status_time_unix_nano`: when the aggregate status last changed;
    /// - `component_health_map`: one entry per check name (HLTH-6).
    ///
    /// Per check: `healthy` is whether its last verdict passed (a starting check is not
    /// healthy); `status` is `"starting"`, `"healthy"`, `"unhealthy"` or `"flapping"`;
    /// `last_error` is set whenever it is not healthy or flaps (the latest failure, or
    /// `"no result yet"` before the first one); `start_time_unix_nano` as at the top;
    /// `status_time_unix_nano` is when its status last changed.
    pub fn component_health_at(
        &self,
        now: Instant,
        wall_now: SystemTime,
        start_time: Option<SystemTime>,
    ) -> ComponentHealth {
        let start_time_unix_nano = start_time.map_or(0, unix_nanos);
        let mut map = BTreeMap::new();
        let mut errors = Vec::new();
        let (mut not_healthy, mut starting, mut flapping) = (0usize, 0usize, 0usize);
        for (spec, state) in self.states() {
            let check_error = state.last_error().unwrap_or("no result yet");
            if state.status() != Status::Healthy {
                not_healthy += 1;
                starting +=
                    usize::from(!state.is_flapping() && state.phase() == CheckPhase::Starting);
                flapping += usize::from(state.is_flapping());
                errors.push(format!("{}: {check_error}", spec.name));
            }
            let show_error = !state.is_healthy() || state.is_flapping();
            map.insert(
                spec.name.clone(),
                ComponentHealth {
                    healthy: state.is_healthy(),
                    start_time_unix_nano,
                    last_error: if show_error {
                        check_error.to_owned()
                    } else {
                        String::new()
                    },
                    status: state.status_str().to_owned(),
                    status_time_unix_nano: wall_nanos(now, wall_now, state.changed_at()),
                    component_health_map: BTreeMap::new(),
                    attributes: Vec::new(),
                },
            );
        }
        let status = self.status();
        let status_text = match status {
            Status::Degraded if not_healthy > 0 && starting == not_healthy => "starting",
            Status::Degraded if not_healthy > 0 && flapping == not_healthy => "flapping",
            s => s.as_str(),
        };
        ComponentHealth {
            healthy: status != Status::Unhealthy,
            start_time_unix_nano,
            last_error: if status == Status::Healthy {
                String::new()
            } else {
                errors.join("; ")
            },
            status: status_text.to_owned(),
            status_time_unix_nano: wall_nanos(now, wall_now, self.status_changed_at()),
            component_health_map: map,
            attributes: Vec::new(),
        }
    }
}

/// Nanoseconds since the Unix epoch; 0 for times before it.
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The wall-clock time of `t`, given that `now` is `wall_now`.
fn wall_nanos(now: Instant, wall_now: SystemTime, t: Instant) -> u64 {
    let wall = if t <= now {
        wall_now.checked_sub(now.duration_since(t))
    } else {
        wall_now.checked_add(t.duration_since(now))
    };
    wall.map_or(0, unix_nanos)
}
