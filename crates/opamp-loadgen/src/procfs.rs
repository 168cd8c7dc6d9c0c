//! What the benchmark reads about processes and the machine from `/proc` (Linux only):
//! resident memory, CPU time, and the machine description for the report.

use std::fs;
use std::io;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// `VmRSS` of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status_field_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// `VmHWM` (peak resident set) of process `pid`, in bytes.
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    status_field_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

fn status_field_kib(pid: u32, field: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&status, field)
        .ok_or_else(|| io::Error::other(format!("no {field} in /proc/{pid}/status")))
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of process `pid` (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&stat).ok_or_else(|| io::Error::other(format!("bad /proc/{pid}/stat")))
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: fields restart after
    // the last ')'. utime and stime are fields 14 and 15, i.e. 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Measures the CPU use of one process over an interval.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: u32,
    ticks: u64,
    at: Instant,
}

impl CpuMeter {
    /// Starts measuring `pid` now.
    pub fn start(pid: u32) -> io::Result<Self> {
        Ok(Self {
            pid,
            ticks: cpu_ticks(pid)?,
            at: Instant::now(),
        })
    }

    /// CPU used since [`CpuMeter::start`], in percent of one core (200 = two cores busy).
    pub fn percent(&self) -> io::Result<f64> {
        let ticks = cpu_ticks(self.pid)?.saturating_sub(self.ticks);
        let secs = self.at.elapsed().as_secs_f64().max(1e-9);
        let hz = rustix::param::clock_ticks_per_second().max(1) as f64;
        Ok(ticks as f64 / hz / secs * 100.0)
    }
}

/// The machine the benchmark ran on, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Online CPUs (`nproc`).
    pub cpus: usize,
    /// The CPU model (`model name` in /proc/cpuinfo).
    pub cpu_model: String,
    /// Total memory in bytes (`MemTotal`).
    pub memory_bytes: u64,
    /// The kernel release.
    pub kernel: String,
    /// The hard `RLIMIT_NOFILE` of this process: the most connections one process may
    /// hold.
    #[serde(default)]
    pub nofile_hard: u64,
}

impl Machine {
    /// Reads the machine description; fields that cannot be read stay empty.
    pub fn read() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            memory_bytes: parse_status_kib(&meminfo, "MemTotal:").unwrap_or(0) * 1024,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            nofile_hard: rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .maximum
                .unwrap_or(u64::MAX),
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(12));
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(peak_rss_bytes(pid).unwrap() >= rss_bytes(pid).unwrap() / 2);
        let meter = CpuMeter::start(pid).unwrap();
        assert!(meter.percent().unwrap() >= 0.0);
        let machine = Machine::read();
        assert!(machine.cpus >= 1 && machine.memory_bytes > 0);
    }
}
