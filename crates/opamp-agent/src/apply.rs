//! The pieces of the apply pipeline that need no process: what to do with an offer, how a
//! remote config map becomes files, restrictions, and the validate command.
//!
//! The pipeline itself (APPLYING → restrictions → staging → validate → swap → apply →
//! health gate → APPLIED / rollback) is driven by [`crate::supervisor`].

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use opamp_config::{ConfigFile, ConfigMap, Restrictions};
use opamp_proto::v1;

use crate::settings::{ValidateSettings, expand, is_plain_file_name};
use crate::state::{AgentState, RemoteOutcome};

/// Largest error message taken from a validate command's output.
pub const MAX_VALIDATE_OUTPUT: usize = 4096;

/// What to do with a remote config offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfferDecision {
    /// New: run the pipeline.
    Apply,
    /// Already handled: report this status again, apply nothing (RCFG-5, no retry after
    /// FAILED).
    Report(v1::RemoteConfigStatus),
    /// It is the config being applied right now: nothing to do.
    InProgress,
}

/// Decides what to do with an offer of `hash` given the persisted state and the hash
/// being applied now (if any).
pub fn decide(state: &AgentState, in_progress: Option<&[u8]>, hash: &[u8]) -> OfferDecision {
    if in_progress == Some(hash) {
        return OfferDecision::InProgress;
    }
    match &state.remote {
        Some(r) if r.hash == hex::encode(hash) => match r.status {
            RemoteOutcome::Applied => OfferDecision::Report(v1::RemoteConfigStatus {
                last_remote_config_hash: hash.to_vec(),
                status: v1::RemoteConfigStatuses::Applied as i32,
                error_message: String::new(),
            }),
            RemoteOutcome::Failed => OfferDecision::Report(v1::RemoteConfigStatus {
                last_remote_config_hash: hash.to_vec(),
                status: v1::RemoteConfigStatuses::Failed as i32,
                error_message: r.error.clone(),
            }),
            RemoteOutcome::Applying => OfferDecision::Apply,
        },
        _ => OfferDecision::Apply,
    }
}

/// Where a config in its health gate stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateVerdict {
    /// Still in the gate.
    Wait,
    /// It stayed up and healthy for the whole gate: APPLIED, last known good.
    Passed,
    /// Roll back, for this reason.
    Failed(String),
}

/// Judges a config in its health gate (sans-IO): the process must be running and the
/// checks must not be unhealthy until `deadline`. `why` gives the detail of a failure
/// (the exit, or the failing checks). An exit during the gate is reported by the process
/// watcher as soon as it happens; this also catches a process that could not be started.
pub fn gate_verdict(
    running: bool,
    health: opamp_health::Status,
    deadline: Instant,
    now: Instant,
    why: impl FnOnce() -> String,
) -> GateVerdict {
    if !running {
        GateVerdict::Failed(format!("{} within the health gate", why()))
    } else if health == opamp_health::Status::Unhealthy {
        GateVerdict::Failed(format!("unhealthy within the health gate: {}", why()))
    } else if now >= deadline {
        GateVerdict::Passed
    } else {
        GateVerdict::Wait
    }
}

/// A status message.
pub fn status(hash: &[u8], s: v1::RemoteConfigStatuses, error: &str) -> v1::RemoteConfigStatus {
    v1::RemoteConfigStatus {
        last_remote_config_hash: hash.to_vec(),
        status: s as i32,
        error_message: error.to_owned(),
    }
}

/// Maps a remote config map onto file names in `config.dir`: key `""` → `main_file`,
/// others must be plain file names and must not name a local file. Then checks the
/// local restrictions (RCFG-12) against the resulting names.
pub fn map_remote(
    remote: Option<&v1::AgentConfigMap>,
    main_file: &str,
    local_names: &[&str],
    restrictions: &Restrictions,
) -> Result<ConfigMap, String> {
    let mut out = ConfigMap::new();
    let Some(remote) = remote else {
        return Ok(out);
    };
    for (key, file) in &remote.config_map {
        let name = if key.is_empty() {
            main_file
        } else {
            key.as_str()
        };
        if !is_plain_file_name(name) {
            return Err(format!("invalid file name {:?}", truncate(name, 200)));
        }
        if local_names.contains(&name) {
            return Err(format!("local file {name} cannot be overridden"));
        }
        if out.files.contains_key(name) {
            return Err(format!("file {name} is given twice (as \"\" and by name)"));
        }
        out.files.insert(
            name.to_owned(),
            ConfigFile::new(file.content_type.clone(), file.body.clone()),
        );
    }
    restrictions
        .check(&out)
        .map_err(|e| format!("restricted: {e}"))?;
    Ok(out)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The message of a failed validate command: stderr, else stdout, trimmed, at most
/// [`MAX_VALIDATE_OUTPUT`] bytes.
pub fn validate_message(exit: &str, stdout: &[u8], stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    let out = String::from_utf8_lossy(stdout);
    let text = if err.trim().is_empty() {
        out.trim()
    } else {
        err.trim()
    };
    let head = format!("validation failed ({exit})");
    if text.is_empty() {
        head
    } else {
        format!("{head}: {}", truncate(text, MAX_VALIDATE_OUTPUT))
    }
}

/// Sends SIGKILL to a process group when dropped, unless disarmed.
struct KillGroupOnDrop(Option<rustix::process::Pid>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// Runs the validate command against the staged files; `Err` carries the message.
///
/// The command runs in a process group of its own. When it does not finish within the
/// timeout, or when the returned future is dropped before it finishes (opamp-agent
/// stopping on SIGTERM), the whole group is killed with SIGKILL: a validator that starts
/// helpers (`sh -c "..."`) leaves nothing behind.
pub async fn run_validate(
    v: &ValidateSettings,
    staged_dir: &Path,
    main_file: &str,
    state_dir: &Path,
) -> Result<(), String> {
    let file = staged_dir.join(main_file);
    let command = expand(&v.command, staged_dir, state_dir, Some(&file));
    let args: Vec<String> = v
        .args
        .iter()
        .map(|a| expand(a, staged_dir, state_dir, Some(&file)))
        .collect();
    let child = tokio::process::Command::new(&command)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("validation failed: cannot run {command:?}: {e}"))?;
    let mut group = KillGroupOnDrop(
        child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw),
    );
    let result = tokio::time::timeout(v.timeout, child.wait_with_output()).await;
    if result.is_ok() {
        // The command has exited and been reaped: its pid (the group's id) may be reused.
        group.0 = None;
    }
    match result {
        Err(_) => Err(format!(
            "validation failed: {command:?} did not finish within {:?}",
            v.timeout
        )),
        Ok(Err(e)) => Err(format!("validation failed: {command:?}: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(validate_message(
            &crate::process::describe_exit(out.status).replace("process ", ""),
            &out.stdout,
            &out.stderr,
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::RemoteRecord;

    fn wire(files: &[(&str, &str)]) -> v1::AgentConfigMap {
        v1::AgentConfigMap {
            config_map: files
                .iter()
                .map(|(n, b)| {
                    (
                        (*n).to_owned(),
                        v1::AgentConfigFile {
                            body: b.as_bytes().to_vec(),
                            content_type: "text/plain".into(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn empty_key_maps_to_main_file_eff_5() {
        let m = map_remote(
            Some(&wire(&[("", "x"), ("extra.conf", "y")])),
            "collectd.conf",
            &[],
            &Restrictions::default(),
        )
        .unwrap();
        assert_eq!(
            m.files.keys().collect::<Vec<_>>(),
            ["collectd.conf", "extra.conf"]
        );
    }

    #[test]
    fn unsafe_names_and_local_overrides_are_refused_rcfg_12() {
        let r = Restrictions::default();
        for name in ["../x", "a/b", ".hidden"] {
            let e = map_remote(Some(&wire(&[(name, "x")])), "m", &[], &r).unwrap_err();
            assert!(e.starts_with("invalid file name"), "{e}");
        }
        let e = map_remote(
            Some(&wire(&[("local.conf", "x")])),
            "m",
            &["local.conf"],
            &r,
        )
        .unwrap_err();
        assert_eq!(e, "local file local.conf cannot be overridden");
        let e = map_remote(Some(&wire(&[("", "x"), ("m", "y")])), "m", &[], &r).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn restrictions_apply_to_mapped_names_rcfg_12() {
        let r = Restrictions {
            denied_text: vec!["LoadPlugin exec".into()],
            ..Default::default()
        };
        let e =
            map_remote(Some(&wire(&[("", "LoadPlugin exec\n")])), "c.conf", &[], &r).unwrap_err();
        assert!(e.starts_with("restricted:"), "{e}");
    }

    #[test]
    fn same_hash_after_failed_is_reported_not_retried() {
        let mut s = AgentState::default();
        assert_eq!(decide(&s, None, b"h1"), OfferDecision::Apply);
        assert_eq!(decide(&s, Some(b"h1"), b"h1"), OfferDecision::InProgress);
        s.remote = Some(RemoteRecord {
            hash: hex::encode(b"h1"),
            status: RemoteOutcome::Failed,
            error: "boom".into(),
        });
        match decide(&s, None, b"h1") {
            OfferDecision::Report(st) => {
                assert_eq!(st.status, v1::RemoteConfigStatuses::Failed as i32);
                assert_eq!(st.error_message, "boom");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decide(&s, None, b"h2"), OfferDecision::Apply);
        s.remote.as_mut().unwrap().status = RemoteOutcome::Applied;
        assert!(matches!(decide(&s, None, b"h1"), OfferDecision::Report(_)));
    }

    #[test]
    fn the_gate_passes_only_when_up_and_not_unhealthy_until_the_deadline() {
        use opamp_health::Status;
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(10);
        let why = || "process exited with status 1".to_owned();
        assert_eq!(
            gate_verdict(true, Status::Healthy, end, t0, why),
            GateVerdict::Wait
        );
        // Degraded (e.g. a check still starting) does not fail the gate.
        assert_eq!(
            gate_verdict(true, Status::Degraded, end, end, why),
            GateVerdict::Passed
        );
        assert_eq!(
            gate_verdict(false, Status::Healthy, end, t0, why),
            GateVerdict::Failed("process exited with status 1 within the health gate".into())
        );
        assert_eq!(
            gate_verdict(true, Status::Unhealthy, end, end, || "http: status 503"
                .into()),
            GateVerdict::Failed("unhealthy within the health gate: http: status 503".into())
        );
    }

    #[test]
    fn validate_message_prefers_stderr_and_is_bounded() {
        assert_eq!(
            validate_message("exited with status 1", b"out", b" err \n"),
            "validation failed (exited with status 1): err"
        );
        assert_eq!(
            validate_message("exited with status 1", b"out\n", b""),
            "validation failed (exited with status 1): out"
        );
        let long = "é".repeat(5000);
        let m = validate_message("x", b"", long.as_bytes());
        assert!(m.len() <= MAX_VALIDATE_OUTPUT + 40);
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
    }

    #[tokio::test]
    async fn a_cancelled_validation_kills_the_validators_whole_process_group() {
        let d = tempfile::tempdir().unwrap();
        let pid_file = d.path().join("helper.pid");
        let v = ValidateSettings {
            command: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "sleep 300 & echo $! > \"$1\"; wait".into(),
                "sh".into(),
                pid_file.display().to_string(),
            ],
            timeout: Duration::from_secs(600),
        };
        let helper =
            || -> Option<u32> { std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok() };
        let validation = run_validate(&v, d.path(), "main.conf", d.path());
        // Dropped (as on SIGTERM) once the helper runs; the deadline is a deadlock guard.
        tokio::time::timeout(Duration::from_secs(20), async {
            tokio::select! {
                r = validation => panic!("finished: {r:?}"),
                () = async {
                    while helper().is_none() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                } => {}
            }
        })
        .await
        .unwrap();
        let pid = helper().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(pid) {
            assert!(Instant::now() < deadline, "the helper {pid} survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn validate_command_gets_the_staged_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("main.conf"), "good").unwrap();
        let v = ValidateSettings {
            command: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "grep -q good \"$1\" || { echo \"bad config in $1\" >&2; exit 3; }".into(),
                "sh".into(),
                "{file}".into(),
            ],
            timeout: Duration::from_secs(20),
        };
        run_validate(&v, d.path(), "main.conf", d.path())
            .await
            .unwrap();
        std::fs::write(d.path().join("main.conf"), "nope").unwrap();
        let e = run_validate(&v, d.path(), "main.conf", d.path())
            .await
            .unwrap_err();
        assert!(
            e.starts_with("validation failed (exited with status 3): bad config in"),
            "{e}"
        );
    }
}
