//! `cargo xtask bench`: load benchmarks of the `opamp-server` library (DESIGN.md §6).
//!
//! Builds `opamp-loadgen` in release mode, then runs each scenario against a fresh
//! `bench-server` process (so every figure starts from a clean server), and renders the
//! JSON summaries into docs/BENCHMARKS.md (`opamp-loadgen report`).
//!
//! CPU layout on a machine with two or more CPUs and `taskset`: the bench server runs on
//! CPU 0 and the load generator on CPU 1, one tokio worker each, so that /proc figures
//! of the server are its own and the two do not steal each other's time. The HTTP poll
//! scenario runs a second time with both processes free on every CPU ("shared"), the
//! setting of the budget's "120,000 polls/s on these 2 cores".
//!
//! Everything runs on loopback, every scenario is bounded in time (the load generator
//! has its own timeouts, and this task kills what outlives its allowance), and the bench
//! server exits when this task closes its standard input.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub(crate) const USAGE: &str = "\
usage: cargo xtask bench [--agents N] [--quick] [--pollers M] [--duration SECS] [--doc PATH]

  --agents N       WebSocket agents per scenario (default 10000; 500 with --quick)
  --quick          a short development run (500 agents, 3 s windows); writes its report
                   next to the results instead of docs/BENCHMARKS.md unless --doc is given
  --pollers M      concurrent HTTP pollers (default 64)
  --duration SECS  counted seconds of http-poll and ws-steady (default 10 / 20; 3 with --quick)
  --doc PATH       the document to write (default docs/BENCHMARKS.md)
";

struct Options {
    agents: usize,
    quick: bool,
    pollers: usize,
    duration: Option<f64>,
    doc: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        agents: 0,
        quick: false,
        pollers: 64,
        duration: None,
        doc: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--agents" => o.agents = value("--agents")?.parse().context("--agents")?,
            "--quick" => o.quick = true,
            "--pollers" => o.pollers = value("--pollers")?.parse().context("--pollers")?,
            "--duration" => o.duration = Some(value("--duration")?.parse().context("--duration")?),
            "--doc" => o.doc = Some(PathBuf::from(value("--doc")?)),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown bench flag {other:?}\n\n{USAGE}"),
        }
    }
    if o.agents == 0 {
        o.agents = if o.quick { 500 } else { 10_000 };
    }
    Ok(o)
}

/// Where a process may run.
#[derive(Clone, Copy)]
enum Cpu {
    /// `taskset -c N`, one tokio worker.
    Pinned(usize),
    /// Anywhere, one worker per CPU.
    Free,
}

struct Layout {
    server: Cpu,
    loadgen: Cpu,
    description: String,
}

fn layout() -> Layout {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if cpus >= 2 && taskset {
        Layout {
            server: Cpu::Pinned(0),
            loadgen: Cpu::Pinned(1),
            description: "bench-server pinned to CPU 0 (`taskset -c 0`, 1 tokio worker), \
                          opamp-loadgen pinned to CPU 1 (1 worker); the \"shared\" HTTP run \
                          leaves both unpinned with one worker per CPU each"
                .to_string(),
        }
    } else {
        Layout {
            server: Cpu::Free,
            loadgen: Cpu::Free,
            description: format!(
                "no pinning ({cpus} CPU(s){}): server and load generator share every CPU",
                if taskset { "" } else { ", no taskset" }
            ),
        }
    }
}

/// `binary args...`, under `taskset` with one tokio worker when pinned.
fn command(binary: &Path, args: &[String], cpu: Cpu) -> Command {
    match cpu {
        Cpu::Pinned(n) => {
            let mut c = Command::new("taskset");
            c.arg("-c")
                .arg(n.to_string())
                .arg(binary)
                .args(args)
                .args(["--workers", "1"]);
            c
        }
        Cpu::Free => {
            let mut c = Command::new(binary);
            c.args(args);
            c
        }
    }
}

struct BenchServer {
    child: Child,
    control: String,
}

impl BenchServer {
    fn start(binary: &Path, cpu: Cpu) -> Result<Self> {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--exit-on-stdin-eof",
        ]
        .map(String::from);
        let mut child = command(binary, &args, cpu)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let stdout = child.stdout.take().context("bench-server stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("bench-server did not report its addresses within 30 s");
            }
        };
        let Some(control) = json_str(&line, "control") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("bench-server printed {line:?}, expected its addresses as JSON");
        };
        Ok(Self { child, control })
    }

    /// Closes its stdin (it shuts down gracefully), kills it if it takes too long.
    fn stop(mut self) {
        drop(self.child.stdin.take());
        if wait_timeout(&mut self.child, Duration::from_secs(20)).is_none() {
            eprintln!("bench: bench-server did not exit in 20 s: killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The string value of `"key":"value"` in one line of compact JSON.
fn json_str(line: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = line.find(&pattern)? + pattern.len();
    let len = line[start..].find('"')?;
    Some(line[start..start + len].to_string())
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => return None,
        }
    }
}

struct Scenario {
    /// Result file name (without `.json`) and scenario title.
    name: &'static str,
    /// The load generator subcommand and its arguments.
    args: Vec<String>,
    server: Cpu,
    loadgen: Cpu,
    /// Wall-clock allowance before the run is killed.
    limit: Duration,
}

fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let command_line = if args.is_empty() {
        "cargo xtask bench".to_string()
    } else {
        format!("cargo xtask bench {}", args.join(" "))
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("bench: building opamp-loadgen (release)");
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "opamp-loadgen", "--bins"])
        .current_dir(root)
        .status()
        .with_context(|| format!("could not start {cargo}"))?;
    if !status.success() {
        bail!("cargo build --release -p opamp-loadgen failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"));
    let server_bin = target.join("release/bench-server");
    let loadgen_bin = target.join("release/opamp-loadgen");
    let results = target.join(if o.quick {
        "opamp-bench-quick"
    } else {
        "opamp-bench"
    });
    fs::create_dir_all(&results)?;
    for entry in fs::read_dir(&results)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            fs::remove_file(path)?;
        }
    }

    let layout = layout();
    let n = o.agents;
    let window = o.duration.unwrap_or(if o.quick { 3.0 } else { 20.0 });
    let poll_secs = o.duration.unwrap_or(if o.quick { 3.0 } else { 10.0 });
    let warmup = if o.quick { 1.0 } else { 2.0 };
    // The budget's steady state is 100,000 agents every 30 s (3,333 messages/s); with
    // fewer agents the interval shrinks to keep that message rate.
    let heartbeat = (30.0 * n as f64 / 100_000.0).max(1.0);
    let connect_timeout = (n / 500).max(60);
    let fleet = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--agents".into(),
            n.to_string(),
            "--connect-timeout".into(),
            connect_timeout.to_string(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_string()));
        v
    };
    let ws_limit = Duration::from_secs(connect_timeout as u64 + 240);
    let poll_args = |shared: bool| -> Vec<String> {
        let _ = shared;
        vec![
            "--pollers".into(),
            o.pollers.to_string(),
            "--duration".into(),
            poll_secs.to_string(),
            "--warmup".into(),
            warmup.to_string(),
        ]
    };
    let settle = if o.quick { "2" } else { "5" };
    let rounds = if o.quick { "2" } else { "3" };
    let heartbeat_s = format!("{heartbeat}");
    let window_s = format!("{window}");
    let scenarios = vec![
        Scenario {
            name: "ws-idle",
            args: [vec!["ws-idle".to_string()], fleet(&["--settle", settle])].concat(),
            server: layout.server,
            loadgen: layout.loadgen,
            limit: ws_limit,
        },
        Scenario {
            name: "ws-push",
            args: [vec!["ws-push".to_string()], fleet(&["--rounds", rounds])].concat(),
            server: layout.server,
            loadgen: layout.loadgen,
            limit: ws_limit,
        },
        Scenario {
            name: "ws-steady",
            args: [
                vec!["ws-steady".to_string()],
                fleet(&["--heartbeat", &heartbeat_s, "--window", &window_s]),
            ]
            .concat(),
            server: layout.server,
            loadgen: layout.loadgen,
            limit: ws_limit + Duration::from_secs_f64(heartbeat + window),
        },
        Scenario {
            name: "http-poll",
            args: [vec!["http-poll".to_string()], poll_args(false)].concat(),
            server: layout.server,
            loadgen: layout.loadgen,
            limit: Duration::from_secs_f64(poll_secs + warmup + 120.0),
        },
        Scenario {
            name: "http-poll-shared",
            args: [vec!["http-poll".to_string()], poll_args(true)].concat(),
            server: Cpu::Free,
            loadgen: Cpu::Free,
            limit: Duration::from_secs_f64(poll_secs + warmup + 120.0),
        },
    ];

    let mut notes = Vec::new();
    let load_before = load_average();
    if let Some(load) = load_before {
        println!("bench: 1-minute load average {load:.2}");
        if load > 1.5 {
            notes.push(format!(
                "The 1-minute load average was {load:.2} when the run started: other work shared \
                 the machine, so the figures are pessimistic."
            ));
        }
    }
    let mut failed = Vec::new();
    for s in &scenarios {
        println!("bench: {} ({})", s.name, s.args.join(" "));
        let server = BenchServer::start(&server_bin, s.server)?;
        let out_path = results.join(format!("{}.json", s.name));
        let out = fs::File::create(&out_path)?;
        let mut args = s.args.clone();
        args.extend(["--control".to_string(), server.control.clone()]);
        let mut child = command(&loadgen_bin, &args, s.loadgen)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("could not start {}", loadgen_bin.display()))?;
        let status = wait_timeout(&mut child, s.limit);
        let ok = match status {
            Some(status) if status.success() => true,
            Some(status) => {
                eprintln!("bench: {} failed ({status})", s.name);
                false
            }
            None => {
                eprintln!("bench: {} ran past {:?}: killed", s.name, s.limit);
                let _ = child.kill();
                let _ = child.wait();
                false
            }
        };
        server.stop();
        if ok {
            println!("bench: {} → {}", s.name, out_path.display());
        } else {
            let _ = fs::remove_file(&out_path);
            failed.push(s.name);
            notes.push(format!(
                "Scenario `{}` failed in this run: no figures.",
                s.name
            ));
        }
    }
    if let Some(load) = load_average() {
        if load > 1.5 && load_before.is_some_and(|l| l <= 1.5) {
            notes.push(format!(
                "The 1-minute load average rose to {load:.2} during the run (the benchmark itself \
                 loads both CPUs)."
            ));
        }
    }

    let doc = match (&o.doc, o.quick) {
        (Some(doc), _) => root.join(doc),
        (None, true) => results.join("BENCHMARKS.md"),
        (None, false) => root.join("docs/BENCHMARKS.md"),
    };
    let mut report = Command::new(&loadgen_bin);
    report
        .arg("report")
        .arg("--results")
        .arg(&results)
        .arg("--doc")
        .arg(&doc)
        .args(["--command", &command_line])
        .args(["--layout", &layout.description]);
    for note in &notes {
        report.args(["--note", note]);
    }
    let status = report.status().context("opamp-loadgen report")?;
    if !status.success() {
        bail!("opamp-loadgen report failed ({status})");
    }
    println!("bench: wrote {}", doc.display());
    if !failed.is_empty() {
        bail!("scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ready_line() {
        let line = r#"{"control":"127.0.0.1:4399","opamp":"127.0.0.1:1","pid":7}"#;
        assert_eq!(json_str(line, "control").as_deref(), Some("127.0.0.1:4399"));
        assert_eq!(json_str(line, "nope"), None);
    }

    #[test]
    fn quick_defaults_to_500_agents() {
        let o = parse(&["--quick".to_string()]).unwrap();
        assert_eq!((o.agents, o.quick), (500, true));
        let o = parse(&["--agents".to_string(), "2000".to_string()]).unwrap();
        assert_eq!((o.agents, o.quick), (2000, false));
        assert!(parse(&["--bogus".to_string()]).is_err());
    }
}
