//! Pure parsers for the Linux `/proc` files the agent reads to sample a process. The agent
//! does the reading; this module only turns text into numbers, and never panics on odd text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, ProcessSample};

const STAT: &str = "/proc/<pid>/stat";
const STATUS: &str = "/proc/<pid>/status";
const SYS_STAT: &str = "/proc/stat";

/// The fields of `/proc/<pid>/stat` this crate uses (see `proc_pid_stat(5)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 1: the process id.
    pub pid: u32,
    /// Field 2: the command name, without parentheses (may contain spaces).
    pub comm: String,
    /// Field 3: the state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Field 14: CPU time in user mode.
    pub utime: Duration,
    /// Field 15: CPU time in kernel mode.
    pub stime: Duration,
    /// Field 20: number of threads.
    pub num_threads: u64,
    /// Field 22: start time, in clock ticks after boot.
    pub start_ticks: u64,
    /// Field 23: virtual memory size in bytes.
    pub vsize_bytes: u64,
    /// Field 24: resident set size in pages.
    pub rss_pages: u64,
    clk_tck: u64,
}

impl ProcStat {
    /// User plus system CPU time.
    pub fn cpu_time(&self) -> Duration {
        self.utime.saturating_add(self.stime)
    }

    /// When the process started, given the boot time ([`parse_boot_time`]).
    pub fn start_time(&self, boot_time: SystemTime) -> SystemTime {
        boot_time
            .checked_add(ticks(self.start_ticks, self.clk_tck))
            .unwrap_or(boot_time)
    }
}

/// The fields of `/proc/<pid>/status` this crate uses; `None` when the line is absent (as
/// for kernel threads and zombies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// `Name:`.
    pub name: Option<String>,
    /// `Threads:`.
    pub threads: Option<u64>,
    /// `VmRSS:` in bytes (the file says kB, meaning KiB).
    pub vm_rss_bytes: Option<u64>,
    /// `VmSize:` in bytes.
    pub vm_size_bytes: Option<u64>,
}

fn ticks(n: u64, clk_tck: u64) -> Duration {
    let nanos = u128::from(n) * 1_000_000_000 / u128::from(clk_tck.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Parses `/proc/<pid>/stat`. `clk_tck` is the kernel's clock ticks per second
/// (`sysconf(_SC_CLK_TCK)`, 100 on nearly every Linux system).
pub fn parse_proc_stat(stat: &str, clk_tck: u64) -> Result<ProcStat, Error> {
    if clk_tck == 0 {
        return Err(Error::ZeroClockTicks);
    }
    let err = |reason: &str| Error::ProcParse {
        file: STAT,
        reason: reason.to_owned(),
    };
    let stat = stat.trim();
    // The command name is in parentheses and may itself contain spaces and parentheses:
    // it runs from the first '(' to the last ')'.
    let open = stat
        .find('(')
        .ok_or_else(|| err("no '(' before the command name"))?;
    let close = stat
        .rfind(')')
        .filter(|c| *c > open)
        .ok_or_else(|| err("no ')' after the command name"))?;
    let pid = stat[..open]
        .trim()
        .parse()
        .map_err(|_| err("field 1 (pid) is not a number"))?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 1..].split_ascii_whitespace().collect();
    // fields[0] is field 3 of the man page.
    let field = |n: usize| -> Result<u64, Error> {
        let text = fields
            .get(n - 3)
            .ok_or_else(|| err(&format!("field {n} is missing")))?;
        text.parse().map_err(|_| {
            err(&format!(
                "field {n} ({text:?}) is not a non-negative number"
            ))
        })
    };
    let state = fields
        .first()
        .and_then(|s| s.chars().next())
        .ok_or_else(|| err("field 3 (state) is missing"))?;
    Ok(ProcStat {
        pid,
        comm,
        state,
        utime: ticks(field(14)?, clk_tck),
        stime: ticks(field(15)?, clk_tck),
        num_threads: field(20)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
        clk_tck,
    })
}

/// Parses `/proc/<pid>/status`. Unknown lines are ignored; a known line with a malformed
/// value is an error.
pub fn parse_proc_status(status: &str) -> Result<ProcStatus, Error> {
    let err = |key: &str, value: &str| Error::ProcParse {
        file: STATUS,
        reason: format!("{key}: {value:?} is not a number"),
    };
    let mut out = ProcStatus::default();
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Name" => out.name = Some(value.to_owned()),
            "Threads" => out.threads = Some(value.parse().map_err(|_| err(key, value))?),
            "VmRSS" | "VmSize" => {
                let number = value.strip_suffix("kB").unwrap_or(value).trim();
                let kib: u64 = number.parse().map_err(|_| err(key, value))?;
                let bytes = Some(kib.saturating_mul(1024));
                if key == "VmRSS" {
                    out.vm_rss_bytes = bytes;
                } else {
                    out.vm_size_bytes = bytes;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The system boot time from `/proc/stat` (its `btime` line, seconds since the epoch).
pub fn parse_boot_time(proc_stat: &str) -> Result<SystemTime, Error> {
    let err = |reason: &str| Error::ProcParse {
        file: SYS_STAT,
        reason: reason.to_owned(),
    };
    let line = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .ok_or_else(|| err("no btime line"))?;
    let secs: u64 = line
        .trim()
        .parse()
        .map_err(|_| err("btime is not a number"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

impl ProcessSample {
    /// A sample from parsed `/proc/<pid>/stat` and `/proc/<pid>/status`: CPU time from
    /// `stat`; memory and threads from `status`, falling back to `stat` (resident memory
    /// then 0, since page size is not known here).
    pub fn from_proc(stat: &ProcStat, status: &ProcStatus) -> ProcessSample {
        ProcessSample {
            cpu_time: stat.cpu_time(),
            memory_rss_bytes: status.vm_rss_bytes.unwrap_or(0),
            memory_virtual_bytes: status.vm_size_bytes.unwrap_or(stat.vsize_bytes),
            threads: status.threads.unwrap_or(stat.num_threads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on Linux 6.x from a running collectd (one line).
    const STAT_TEXT: &str = "4242 (collectd) S 1 4242 4242 0 -1 4194560 1783 0 0 0 250 75 0 0 20 0 7 0 123456 1180000256 3456 18446744073709551615 94 95 96 0 0 0 0 4096 2 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    const STATUS_TEXT: &str = "Name:\tcollectd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t1\nVmPeak:\t 1180000 kB\nVmSize:\t 1152344 kB\nVmRSS:\t   13824 kB\nRssAnon:\t    9000 kB\nThreads:\t7\nSigQ:\t0/63333\n";

    #[test]
    fn parses_a_captured_stat_line() {
        let s = parse_proc_stat(STAT_TEXT, 100).unwrap();
        assert_eq!((s.pid, s.comm.as_str(), s.state), (4242, "collectd", 'S'));
        assert_eq!(s.utime, Duration::from_millis(2500));
        assert_eq!(s.stime, Duration::from_millis(750));
        assert_eq!(s.cpu_time(), Duration::from_millis(3250));
        assert_eq!(s.num_threads, 7);
        assert_eq!(s.start_ticks, 123_456);
        assert_eq!(s.vsize_bytes, 1_180_000_256);
        assert_eq!(s.rss_pages, 3456);
        let boot = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(s.start_time(boot), boot + Duration::from_millis(1_234_560));
    }

    #[test]
    fn command_names_with_spaces_and_parentheses() {
        let line = STAT_TEXT.replace("(collectd)", "(my (odd) name)");
        let s = parse_proc_stat(&line, 100).unwrap();
        assert_eq!(s.comm, "my (odd) name");
        assert_eq!(s.num_threads, 7);
    }

    #[test]
    fn other_tick_rates() {
        let s = parse_proc_stat(STAT_TEXT, 1000).unwrap();
        assert_eq!(s.utime, Duration::from_millis(250));
        assert_eq!(parse_proc_stat(STAT_TEXT, 0), Err(Error::ZeroClockTicks));
    }

    #[test]
    fn malformed_stat_is_an_error_not_a_panic() {
        for bad in [
            "",
            "4242",
            "4242 (x",
            "x (c) S 1",
            "4242 (c) S 1 2 3",
            &STAT_TEXT.replace(" 250 ", " -5 "),
            "(c) S",
        ] {
            assert!(
                matches!(parse_proc_stat(bad, 100), Err(Error::ProcParse { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parses_a_captured_status_file() {
        let s = parse_proc_status(STATUS_TEXT).unwrap();
        assert_eq!(
            s,
            ProcStatus {
                name: Some("collectd".into()),
                threads: Some(7),
                vm_rss_bytes: Some(13_824 * 1024),
                vm_size_bytes: Some(1_152_344 * 1024),
            }
        );
        // A kernel thread has no Vm* lines.
        let kthread = parse_proc_status("Name:\tkworker/0:1\nThreads:\t1\n").unwrap();
        assert_eq!((kthread.vm_rss_bytes, kthread.threads), (None, Some(1)));
        assert!(parse_proc_status("VmRSS:\tlots kB\n").is_err());
        assert_eq!(parse_proc_status("").unwrap(), ProcStatus::default());
    }

    #[test]
    fn sample_from_stat_and_status() {
        let stat = parse_proc_stat(STAT_TEXT, 100).unwrap();
        let status = parse_proc_status(STATUS_TEXT).unwrap();
        assert_eq!(
            ProcessSample::from_proc(&stat, &status),
            ProcessSample {
                cpu_time: Duration::from_millis(3250),
                memory_rss_bytes: 13_824 * 1024,
                memory_virtual_bytes: 1_152_344 * 1024,
                threads: 7,
            }
        );
        let fallback = ProcessSample::from_proc(&stat, &ProcStatus::default());
        assert_eq!(
            (fallback.memory_virtual_bytes, fallback.threads),
            (1_180_000_256, 7)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}", tck in 0..2000u64) {
            let _ = parse_proc_stat(&text, tck);
            let _ = parse_proc_status(&text);
            let _ = parse_boot_time(&text);
        }

        #[test]
        fn mangled_stat_lines_never_panic(cut in 0..STAT_TEXT.len(), junk in "[ ()0-9a-z-]{0,20}") {
            let mut line = STAT_TEXT.as_bytes()[..cut].to_vec();
            line.extend_from_slice(junk.as_bytes());
            let _ = parse_proc_stat(&String::from_utf8_lossy(&line), 100);
        }
    }

    #[test]
    fn boot_time_from_proc_stat() {
        let text = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1700000000\nprocesses 7\n";
        assert_eq!(
            parse_boot_time(text).unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert!(parse_boot_time("cpu 1\n").is_err());
        assert!(parse_boot_time("btime soon\n").is_err());
    }
}
