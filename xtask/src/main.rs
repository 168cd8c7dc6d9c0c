//! Project automation, run as `cargo xtask <task>`.
//!
//! Tasks:
//! - `codegen [--check]`: compile `proto/opamp/v1/*.proto` with protox (pure Rust, no
//!   `protoc`) and prost-build into `crates/opamp-proto/src/generated/`; with `--check`,
//!   fail instead of writing when the checked-in code differs.
//! - `conformance`: check that docs/CONFORMANCE.md names only tests that exist and covers
//!   every requirement ID of the checklist.
//! - `bench [--quick] [--agents N]`: load benchmarks of `opamp-server` (see `bench.rs`),
//!   written into docs/BENCHMARKS.md.
//! - `test`: the project's whole test suite (the command README.md names); installs the
//!   interop peers first (see `peers.rs`; `OPAMP_SKIP_PEERS=1` skips them).

mod bench;
mod codegen;
mod conformance;
mod peers;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  codegen [--check]   regenerate crates/opamp-proto/src/generated from proto/ (--check: fail on drift)
  conformance         check docs/CONFORMANCE.md against the tests and the requirements checklist
  test                run every test of the workspace (what CI runs)
  peers               install the interop peers (npm, PyPI) and print their env vars
  bench [--quick] [--agents N]  load benchmarks of opamp-server into docs/BENCHMARKS.md
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("codegen") => {
            let check = match args.get(1).map(String::as_str) {
                None => false,
                Some("--check") => true,
                Some(other) => bail!("unknown codegen flag {other:?}\n\n{USAGE}"),
            };
            if check {
                codegen::check(&root)
            } else {
                let written = codegen::generate(&root)?;
                println!("codegen: wrote {}", written.display());
                Ok(())
            }
        }
        Some("conformance") => {
            println!("conformance: {}", conformance::check(&root)?);
            Ok(())
        }
        Some("test") => test(&root),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("peers") => {
            for (key, value) in peers::install(&root)?.envs() {
                println!("export {key}={}", value.to_string_lossy());
            }
            Ok(())
        }
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root (the parent of this crate's directory).
fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs every test of the workspace.
fn test(root: &std::path::Path) -> Result<()> {
    codegen::check(root)?;
    println!("codegen: checked-in code matches proto/");
    println!("conformance: {}", conformance::check(root)?);
    let peer_envs = if std::env::var_os(peers::SKIP_VAR).is_some_and(|v| v == "1") {
        println!(
            "peers: {}=1, interop tests will skip themselves",
            peers::SKIP_VAR
        );
        Vec::new()
    } else {
        peers::install(root)?.envs()
    };
    run_cargo(
        root,
        &["test", "--workspace", "--all-targets", "--locked"],
        &peer_envs,
    )?;
    run_cargo(root, &["test", "--workspace", "--doc", "--locked"], &[])?;
    Ok(())
}

fn run_cargo(
    root: &std::path::Path,
    args: &[&str],
    envs: &[(&str, std::ffi::OsString)],
) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v)))
        .current_dir(root)
        .status()
        .with_context(|| format!("could not start {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
