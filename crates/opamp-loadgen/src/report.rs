//! Renders scenario summaries into docs/BENCHMARKS.md.
//!
//! Only the text between [`BEGIN`] and [`END`] is replaced (or appended when absent):
//! every other section of the file, such as the lead's "Wire layer (criterion)", and
//! any hand-written analysis below the generated block, is kept as it is.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::Error;
use crate::procfs::Machine;
use crate::scenario::{HttpPollSummary, WsIdleSummary, WsPushSummary, WsSteadySummary};
use crate::stats::Percentiles;

/// The line that opens the generated block.
pub const BEGIN: &str = "<!-- BEGIN cargo xtask bench: generated, edits inside are overwritten -->";
/// The line that closes the generated block.
pub const END: &str = "<!-- END cargo xtask bench -->";

/// Arguments of `opamp-loadgen report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Directory with ws-idle.json, ws-push.json, ws-steady.json, http-poll.json and
    /// http-poll-shared.json (any may be missing).
    #[arg(long)]
    pub results: PathBuf,
    /// The document to update.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    pub doc: PathBuf,
    /// The exact command that produced the results.
    #[arg(long)]
    pub command: String,
    /// How processes were placed on CPUs.
    #[arg(long, default_value = "")]
    pub layout: String,
    /// Extra lines for the notes (repeatable).
    #[arg(long)]
    pub note: Vec<String>,
}

/// Everything one report shows.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// `ws-idle`.
    pub ws_idle: Option<WsIdleSummary>,
    /// `ws-push`.
    pub ws_push: Option<WsPushSummary>,
    /// `ws-steady`.
    pub ws_steady: Option<WsSteadySummary>,
    /// `http-poll` with the server and the load generator on separate CPUs.
    pub http_poll: Option<HttpPollSummary>,
    /// `http-poll` with both sharing every CPU.
    pub http_poll_shared: Option<HttpPollSummary>,
}

fn load<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, Error> {
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Results {
    /// Reads the summaries found in `dir`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        Ok(Self {
            ws_idle: load(dir, "ws-idle.json")?,
            ws_push: load(dir, "ws-push.json")?,
            ws_steady: load(dir, "ws-steady.json")?,
            http_poll: load(dir, "http-poll.json")?,
            http_poll_shared: load(dir, "http-poll-shared.json")?,
        })
    }
}

/// Runs `opamp-loadgen report`: returns the path written.
pub fn run(args: &ReportArgs) -> Result<PathBuf, Error> {
    let results = Results::load(&args.results)?;
    let block = render(
        &results,
        &Meta {
            date: utc_now(),
            command: args.command.clone(),
            layout: args.layout.clone(),
            machine: Machine::read(),
            notes: args.note.clone(),
        },
    );
    let old = match std::fs::read_to_string(&args.doc) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    if let Some(parent) = args.doc.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.doc, splice(&old, &block))?;
    Ok(args.doc.clone())
}

/// Replaces the generated block of `doc` with `block`, or appends it; a new document
/// gets a title first.
pub fn splice(doc: &str, block: &str) -> String {
    if let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) {
        if b < e {
            let mut out = String::with_capacity(doc.len() + block.len());
            out.push_str(&doc[..b]);
            out.push_str(block.trim_end());
            out.push_str(&doc[e + END.len()..]);
            return out;
        }
    }
    let mut out = if doc.trim().is_empty() {
        "# Benchmarks\n\nHow fast the opamp-rs libraries are, measured on the project's own machine.\n\n"
            .to_string()
    } else {
        let mut d = doc.trim_end().to_string();
        d.push_str("\n\n");
        d
    };
    out.push_str(block.trim_end());
    out.push('\n');
    out
}

/// What the report says about the run itself.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// UTC date and time.
    pub date: String,
    /// The exact command.
    pub command: String,
    /// CPU placement of the processes.
    pub layout: String,
    /// The machine.
    pub machine: Machine,
    /// Extra notes.
    pub notes: Vec<String>,
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn pct(p: &Percentiles) -> String {
    format!(
        "p50 {} · p99 {} · max {} (n = {})",
        ms(p.p50_ms),
        ms(p.p99_ms),
        ms(p.max_ms),
        thousands(p.count as f64)
    )
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets" } else { "**misses**" }
}

/// Renders the generated block.
pub fn render(r: &Results, meta: &Meta) -> String {
    let mut s = String::new();
    let m = &meta.machine;
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "## Server library under load (`cargo xtask bench`)\n");
    let _ = writeln!(s, "- Date: {}", meta.date);
    let _ = writeln!(s, "- Command: `{}`", meta.command);
    let _ = writeln!(
        s,
        "- Machine: {} CPUs (`nproc`), {}, {:.1} GiB memory, Linux {}",
        m.cpus,
        if m.cpu_model.is_empty() {
            "unknown CPU"
        } else {
            &m.cpu_model
        },
        m.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0),
        m.kernel
    );
    if m.nofile_hard > 0 && m.nofile_hard < 200_000 {
        let _ = writeln!(
            s,
            "- Open-files hard limit (RLIMIT_NOFILE): {}; this sandbox may not raise it, so one \
             process holds at most that many connections and the budget's 100,000-agent figures \
             cannot be measured here directly",
            thousands(m.nofile_hard as f64)
        );
    }
    if !meta.layout.is_empty() {
        let _ = writeln!(s, "- Layout: {}", meta.layout);
    }
    for note in &meta.notes {
        let _ = writeln!(s, "- {note}");
    }
    s.push_str(
        "\nThe server under test is `bench-server` (crates/opamp-loadgen): the `opamp-server` \
         library with library defaults (WebSocket read buffer 1 KiB, send queue 64, ping every \
         30 s), except that admission control does not pace new connections (the load generator \
         sets the pace). Its handler offers a ~3 KiB remote config, stores nothing per agent, and \
         notes when each agent reports a pushed config APPLIED. `opamp-loadgen` simulates the \
         agents from one process (first message a full report with description, health and a \
         ~3 KiB effective config; then heartbeats; APPLIED with the hash and the new effective \
         config when a config arrives). Memory and CPU are read from /proc of the server process \
         alone. References: opamp-go's server library and mbrigl/opamp-fleet as measured on this \
         machine (DESIGN.md §6).\n\n",
    );
    if let Some(w) = &r.ws_idle {
        let agents = w.connect.ready;
        let _ = writeln!(s, "### Idle WebSocket agents (`ws-idle`)\n");
        let _ = writeln!(
            s,
            "| metric | opamp-rs | budget (DESIGN.md §6) | opamp-go | verdict |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| server RSS per idle agent | {} at {} agents ({} → {}) | ≤ 8 KiB at 100,000 | 30 KiB at 10,000 (opamp-fleet: 138 KiB) | {} |",
            kib(w.bytes_per_agent),
            thousands(agents as f64),
            mib(w.server_rss_before),
            mib(w.server_rss_after),
            verdict(w.bytes_per_agent <= 8.0 * 1024.0)
        );
        let _ = writeln!(
            s,
            "| connect rate (TCP + upgrade + first exchange) | {}/s ({} in {:.1} s, {} failed, {} retried) | — | — | |",
            thousands(w.connect.rate_per_s),
            thousands(agents as f64),
            w.connect.seconds,
            w.connect.failed,
            w.connect.retries
        );
        let _ = writeln!(
            s,
            "| TCP connect + upgrade | {} | — | — | |",
            pct(&w.connect.connect_latency)
        );
        let _ = writeln!(
            s,
            "| first full report → reply | {} | — | — | |",
            pct(&w.connect.first_reply_latency)
        );
        let _ = writeln!(
            s,
            "| server peak RSS · load generator RSS | {} · {} | — | — | |\n",
            mib(w.server_rss_peak),
            mib(w.loadgen_rss)
        );
    }
    if let Some(p) = &r.ws_push {
        let _ = writeln!(s, "### Push a new config to every agent (`ws-push`)\n");
        let worst = p
            .rounds
            .iter()
            .max_by(|a, b| a.applied.p99_ms.total_cmp(&b.applied.p99_ms));
        if let Some(worst) = worst {
            let complete = worst.applied.count as usize >= worst.expected;
            let _ = writeln!(
                s,
                "| metric (worst of {} pushes) | opamp-rs | budget (DESIGN.md §6) | opamp-go | verdict |",
                p.rounds.len()
            );
            let _ = writeln!(s, "|---|---|---|---|---|");
            let _ = writeln!(
                s,
                "| push → APPLIED seen by the server, p99 | {} at {} agents ({} of {} APPLIED) | ≤ 1 s at 10,000 | 2.1 s at 10,000 (delivery; opamp-fleet 2.2 s) | {} |",
                ms(worst.applied.p99_ms),
                thousands(worst.expected as f64),
                thousands(worst.applied.count as f64),
                thousands(worst.expected as f64),
                verdict(complete && worst.applied.p99_ms <= 1000.0)
            );
            let _ = writeln!(
                s,
                "| push → agent has the config, p99 | {} | — | 2.1 s | |\n",
                ms(worst.received.p99_ms)
            );
        }
        let _ = writeln!(
            s,
            "| push | broadcast call | push → received | push → APPLIED at the server |"
        );
        let _ = writeln!(s, "|---|---|---|---|");
        for round in &p.rounds {
            let _ = writeln!(
                s,
                "| generation {} ({} queued, {} failed) | {} | {} | {} |",
                round.generation,
                thousands(round.sent as f64),
                round.failed,
                ms(round.broadcast_ms),
                pct(&round.received),
                pct(&round.applied)
            );
        }
        let _ = writeln!(
            s,
            "\nConnections the server closed during the run: {}.\n",
            p.closed_by_server
        );
    }
    if let Some(st) = &r.ws_steady {
        let agents = st.connect.ready as f64;
        let rate = agents / st.heartbeat_seconds.max(1e-9);
        let _ = writeln!(s, "### Steady heartbeats (`ws-steady`)\n");
        let _ = writeln!(
            s,
            "| metric | opamp-rs | budget (DESIGN.md §6) | opamp-go | verdict |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| server CPU | {:.1} % of one core: {} agents, heartbeat every {} s ({}/s expected, {}/s received), {:.0} s window | ≤ 25 % of one core at 100,000 agents every 30 s (3,333/s) | — | {} |",
            st.server_cpu_percent,
            thousands(agents),
            st.heartbeat_seconds,
            thousands(rate),
            thousands(st.messages_per_s),
            st.window_seconds,
            verdict(st.server_cpu_percent <= 25.0)
        );
        let _ = writeln!(
            s,
            "| heartbeat → reply | {} | — | — | |",
            pct(&st.heartbeat_latency)
        );
        let _ = writeln!(
            s,
            "| server RSS · load generator CPU | {} · {:.1} % | — | — | |\n",
            mib(st.server_rss),
            st.loadgen_cpu_percent
        );
    }
    let polls: Vec<(&str, &HttpPollSummary)> = [
        (
            "server and load generator on separate CPUs",
            r.http_poll.as_ref(),
        ),
        ("both on both CPUs", r.http_poll_shared.as_ref()),
    ]
    .into_iter()
    .filter_map(|(label, p)| p.map(|p| (label, p)))
    .collect();
    if !polls.is_empty() {
        let _ = writeln!(s, "### HTTP polling (`http-poll`)\n");
        let _ = writeln!(
            s,
            "| run | polls/s | budget (DESIGN.md §6) | opamp-go | verdict | latency | server CPU | load generator CPU | non-200 / errors |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for (label, p) in polls {
            let non_200: u64 = p
                .statuses
                .iter()
                .filter(|(code, _)| **code != 200)
                .map(|(_, n)| n)
                .sum();
            let _ = writeln!(
                s,
                "| {label}: {} keep-alive pollers, {:.0} s | {} | ≥ 120,000 on 2 cores | 55,000 (wrk, 64 connections; opamp-fleet 92,000) | {} | {} | {:.0} % | {:.0} % | {} / {} |",
                p.pollers,
                p.window_seconds,
                thousands(p.polls_per_s),
                verdict(p.polls_per_s >= 120_000.0),
                pct(&p.latency),
                p.server_cpu_percent,
                p.loadgen_cpu_percent,
                non_200,
                p.errors
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "{END}");
    s
}

/// The current UTC date and time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31 23:59 UTC");
    }

    #[test]
    fn splice_keeps_other_sections() {
        let doc = format!(
            "# Benchmarks\n\n## Wire layer (criterion)\n\nkeep me\n\n{BEGIN}\nold\n{END}\n\n## Analysis\n\nmine\n"
        );
        let block = format!("{BEGIN}\nnew\n{END}\n");
        let out = splice(&doc, &block);
        assert!(out.contains("keep me") && out.contains("## Analysis\n\nmine"));
        assert!(out.contains("new") && !out.contains("old"));
        assert_eq!(splice(&out, &block), out);
    }

    #[test]
    fn splice_appends_or_creates() {
        let block = format!("{BEGIN}\nnew\n{END}\n");
        let created = splice("", &block);
        assert!(created.starts_with("# Benchmarks"));
        let appended = splice("# B\n\n## Wire layer (criterion)\nx\n", &block);
        assert!(appended.starts_with("# B\n\n## Wire layer (criterion)\nx\n\n"));
        assert!(appended.ends_with(&format!("{END}\n")));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(123_456.4), "123,456");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(1500.0), "1.50 s");
        assert_eq!(ms(12.3), "12 ms");
        assert_eq!(ms(0.456), "0.46 ms");
        assert_eq!(kib(8192.0), "8.0 KiB");
    }

    #[test]
    fn renders_every_section_with_verdicts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let results = Results::load(&dir).unwrap();
        let meta = Meta {
            date: "2026-01-01 00:00 UTC".into(),
            command: "cargo xtask bench".into(),
            layout: "test".into(),
            machine: Machine::default(),
            notes: vec!["a note".into()],
        };
        let text = render(&results, &meta);
        assert!(text.starts_with(BEGIN) && text.trim_end().ends_with(END));
        for needle in ["ws-idle", "ws-push", "ws-steady", "http-poll", "a note"] {
            assert!(text.contains(needle), "missing {needle}");
        }
        assert!(text.contains("meets") || text.contains("misses"));
    }
}
