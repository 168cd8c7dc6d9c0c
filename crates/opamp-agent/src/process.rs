//! The managed process: spawn, watch, signal, stop (SIGTERM, then SIGKILL after a
//! timeout), and the restart backoff.

use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};

use crate::Error;
use crate::settings::ProcessSettings;

/// The name of a signal number (`SIGKILL`), or `signal N`.
pub fn signal_name(raw: i32) -> String {
    const NAMES: &[(Signal, &str)] = &[
        (Signal::HUP, "SIGHUP"),
        (Signal::INT, "SIGINT"),
        (Signal::QUIT, "SIGQUIT"),
        (Signal::ILL, "SIGILL"),
        (Signal::TRAP, "SIGTRAP"),
        (Signal::ABORT, "SIGABRT"),
        (Signal::BUS, "SIGBUS"),
        (Signal::FPE, "SIGFPE"),
        (Signal::KILL, "SIGKILL"),
        (Signal::USR1, "SIGUSR1"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::USR2, "SIGUSR2"),
        (Signal::PIPE, "SIGPIPE"),
        (Signal::ALARM, "SIGALRM"),
        (Signal::TERM, "SIGTERM"),
    ];
    NAMES
        .iter()
        .find(|(s, _)| s.as_raw() == raw)
        .map(|(_, n)| (*n).to_owned())
        .unwrap_or_else(|| format!("signal {raw}"))
}

/// How an exit reads in logs and in health `last_error`:
/// `process exited with status N` or `killed by signal SIGKILL`.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("process exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {}", signal_name(sig)),
        (None, None) => "process exited".to_owned(),
    }
}

/// The short form for log lines: the exit code (`3`) or the signal name (`SIGKILL`).
pub fn exit_short(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(sig)) => signal_name(sig),
        (None, None) => "unknown".to_owned(),
    }
}

/// Exponential restart backoff: `initial`, doubling up to `max`; back to `initial` after
/// the process ran `stable_after` without exiting.
#[derive(Clone, Debug)]
pub struct RestartBackoff {
    initial: Duration,
    max: Duration,
    stable_after: Duration,
    next: Duration,
}

impl RestartBackoff {
    /// A backoff starting at `initial`, capped at `max`, reset after 60 s of stable running.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            stable_after: Duration::from_secs(60),
            next: initial,
        }
    }

    /// The delay before restarting a process that ran for `ran`.
    pub fn on_exit(&mut self, ran: Duration) -> Duration {
        if ran >= self.stable_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Forgets earlier crashes (e.g. after a deliberate restart).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// A running child.
#[derive(Debug)]
struct Running {
    child: Child,
    pid: u32,
    started: Instant,
    started_wall: SystemTime,
}

/// The managed process (at most one at a time).
#[derive(Debug)]
pub struct ManagedProcess {
    settings: ProcessSettings,
    running: Option<Running>,
    pid_file: Option<PathBuf>,
}

/// The start time of a process in clock ticks after boot (`/proc/<pid>/stat` field 22),
/// which tells a process apart from a later one that reuses its pid.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    opamp_telemetry::parse_proc_stat(&stat, 100)
        .ok()
        .map(|s| s.start_ticks)
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

impl ManagedProcess {
    /// Not started yet.
    pub fn new(settings: ProcessSettings) -> Self {
        Self {
            settings,
            running: None,
            pid_file: None,
        }
    }

    /// Records the running process's pid (and start time) in `path`, so that a process
    /// left behind by an opamp-agent that was killed can be stopped by the next one.
    pub fn with_pid_file(mut self, path: PathBuf) -> Self {
        self.pid_file = Some(path);
        self
    }

    fn forget_pid(&self) {
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Stops a process recorded in the pid file by an earlier run (opamp-agent killed with
    /// SIGKILL leaves its process running in its own process group): SIGTERM, then SIGKILL
    /// after `stop_timeout`. Only a process with the recorded start time is touched.
    pub async fn stop_leftover(&self) {
        let Some(path) = &self.pid_file else { return };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(ticks))) = (parts.next(), parts.next()) else {
            self.forget_pid();
            return;
        };
        let Ok(pid) = u32::try_from(pid) else {
            self.forget_pid();
            return;
        };
        if start_ticks(pid) == Some(ticks) && alive(pid) {
            tracing::warn!("a process of an earlier run is still running pid={pid}: stopping it");
            let raw = i32::try_from(pid).ok().and_then(Pid::from_raw);
            if let Some(p) = raw {
                let _ = kill_process(p, Signal::TERM);
                let deadline = Instant::now() + self.settings.stop_timeout;
                while alive(pid) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if alive(pid) {
                    let _ = kill_process(p, Signal::KILL);
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while alive(pid) && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        self.forget_pid();
    }

    /// The pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.pid)
    }

    /// When it started (monotonic), while running.
    pub fn started(&self) -> Option<Instant> {
        self.running.as_ref().map(|r| r.started)
    }

    /// When it started (wall clock), while running.
    pub fn started_wall(&self) -> Option<SystemTime> {
        self.running.as_ref().map(|r| r.started_wall)
    }

    /// Starts the process. It gets its own process group, so a terminal's Ctrl-C reaches
    /// only opamp-agent, which then stops it in order.
    pub fn start(&mut self) -> Result<u32, Error> {
        if let Some(pid) = self.pid() {
            return Ok(pid);
        }
        let s = &self.settings;
        let mut cmd = Command::new(&s.command);
        cmd.args(&s.args)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &s.working_dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|source| Error::Process {
            command: s.command.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        tracing::info!("process started pid={pid}");
        if let (Some(path), Some(ticks)) = (&self.pid_file, start_ticks(pid)) {
            if let Err(e) = crate::files::write_atomic(path, format!("{pid} {ticks}\n").as_bytes())
            {
                tracing::warn!("{e}");
            }
        }
        self.running = Some(Running {
            child,
            pid,
            started: Instant::now(),
            started_wall: SystemTime::now(),
        });
        Ok(pid)
    }

    /// Waits until the process exits (forever when none runs). Cancel-safe; after it
    /// returns, the process is gone. Returns the status and how long it ran.
    pub async fn wait(&mut self) -> (std::io::Result<ExitStatus>, Duration) {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let result = running.child.wait().await;
        let ran = running.started.elapsed();
        self.running = None;
        self.forget_pid();
        (result, ran)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        let Some(pid) = self.pid() else {
            return Err(Error::Process {
                command: self.settings.command.clone(),
                source: std::io::Error::other("the process is not running"),
            });
        };
        let pid = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| Error::Process {
                command: self.settings.command.clone(),
                source: std::io::Error::other("invalid pid"),
            })?;
        kill_process(pid, signal).map_err(|e| Error::Process {
            command: self.settings.command.clone(),
            source: e.into(),
        })
    }

    /// Stops the process: SIGTERM, then SIGKILL after `stop_timeout`. Returns its exit
    /// status (None when nothing ran).
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let pid = self.pid()?;
        let _ = self.signal(Signal::TERM);
        let timeout = self.settings.stop_timeout;
        let running = self.running.as_mut()?;
        let status = match tokio::time::timeout(timeout, running.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                tracing::warn!(
                    "process pid={pid} still running {timeout:?} after SIGTERM: SIGKILL"
                );
                let _ = running.child.start_kill();
                running.child.wait().await.ok()
            }
        };
        self.running = None;
        self.forget_pid();
        if let Some(status) = status {
            tracing::info!("process exited status={} pid={pid}", exit_short(status));
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_max_and_resets_after_stable_run() {
        let mut b = RestartBackoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let short = Duration::from_secs(1);
        assert_eq!(b.on_exit(short), Duration::from_secs(1));
        assert_eq!(b.on_exit(short), Duration::from_secs(2));
        assert_eq!(b.on_exit(short), Duration::from_secs(4));
        assert_eq!(b.on_exit(short), Duration::from_secs(5));
        assert_eq!(b.on_exit(short), Duration::from_secs(5));
        assert_eq!(b.on_exit(Duration::from_secs(61)), Duration::from_secs(1));
        assert_eq!(b.on_exit(short), Duration::from_secs(2));
        b.reset();
        assert_eq!(b.on_exit(short), Duration::from_secs(1));
    }

    #[test]
    fn exit_descriptions() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "process exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "killed by signal SIGKILL"
        );
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(exit_short(ExitStatus::from_raw(9)), "SIGKILL");
        assert_eq!(exit_short(ExitStatus::from_raw(3 << 8)), "3");
        assert_eq!(signal_name(64), "signal 64");
    }

    fn settings(script: &str, stop_timeout: Duration) -> ProcessSettings {
        ProcessSettings {
            command: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![],
            working_dir: None,
            stop_timeout,
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn exit_status_is_reported() {
        let mut p = ManagedProcess::new(settings("exit 7", Duration::from_secs(5)));
        p.start().unwrap();
        let (status, _) = p.wait().await;
        assert_eq!(
            describe_exit(status.unwrap()),
            "process exited with status 7"
        );
        assert_eq!(p.pid(), None);
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_for_a_child_ignoring_term() {
        let d = tempfile::tempdir().unwrap();
        let ready = d.path().join("ready");
        let script = format!(
            "trap '' TERM; touch {}; while :; do sleep 0.1; done",
            ready.display()
        );
        let mut p = ManagedProcess::new(settings(&script, Duration::from_millis(500)));
        p.start().unwrap();
        // Wait until the trap is installed (the deadline is only a deadlock guard).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the script never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = tokio::time::timeout(Duration::from_secs(20), p.stop())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.signal(), Some(9));
    }
}
