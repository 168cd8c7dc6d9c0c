//! Installs the OpAMP peers we did not write, for the interop tests in `crates/opamp-interop`.
//!
//! - npm `@elastic/opamp-client-node` and `@elastic/mockopampserver`, pinned by
//!   `interop/node/package.json` and its `package-lock.json`, installed with `npm ci` into
//!   `$OPAMP_TEST_CACHE/node/node_modules`;
//! - PyPI `opentelemetry-opamp-client` (and `opentelemetry-proto`, for opamp-telemetry),
//!   pinned by `interop/python/requirements.txt`, installed
//!   into the virtualenv `$OPAMP_TEST_CACHE/venv`.
//!
//! `$OPAMP_TEST_CACHE` defaults to `~/.cache/opamp-test`. A stamp file records a hash of the
//! manifests and of the tool versions, so a second run with nothing changed costs three
//! `--version` calls. This module only installs from the package registries, through npm and
//! pip; it never fetches anything else.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// Environment variable naming the `node_modules` directory the interop tests use.
pub(crate) const NODE_MODULES_VAR: &str = "OPAMP_INTEROP_NODE_MODULES";
/// Environment variable naming the Python interpreter (inside the venv) the interop tests use.
pub(crate) const PYTHON_VAR: &str = "OPAMP_INTEROP_PYTHON";
/// Environment variable naming a Python with the official `opentelemetry-proto` bindings
/// (the same venv), for opamp-telemetry's decode test.
pub(crate) const OTLP_PYTHON_VAR: &str = "OPAMP_OTLP_PYTHON";
/// Set to `1` to skip installing the peers (the interop tests then skip themselves).
pub(crate) const SKIP_VAR: &str = "OPAMP_SKIP_PEERS";

/// Where the installed peers are.
#[derive(Debug)]
pub(crate) struct PeerEnv {
    /// `$OPAMP_TEST_CACHE/node/node_modules`.
    pub(crate) node_modules: PathBuf,
    /// `$OPAMP_TEST_CACHE/venv/bin/python`.
    pub(crate) python: PathBuf,
}

impl PeerEnv {
    /// The environment variables the interop tests read.
    pub(crate) fn envs(&self) -> Vec<(&'static str, OsString)> {
        vec![
            (NODE_MODULES_VAR, self.node_modules.clone().into_os_string()),
            (PYTHON_VAR, self.python.clone().into_os_string()),
            (OTLP_PYTHON_VAR, self.python.clone().into_os_string()),
        ]
    }
}

/// Installs the pinned peers into the cache directory (idempotent; fast when nothing changed).
pub(crate) fn install(root: &Path) -> Result<PeerEnv> {
    let cache = cache_dir()?;
    let node_manifest = root.join("interop/node/package.json");
    let node_lock = root.join("interop/node/package-lock.json");
    let requirements = root.join("interop/python/requirements.txt");

    let node_version = tool_version("node", "Node.js 20 or newer", "nodejs")?;
    check_node_major(&node_version)?;
    let npm_version = tool_version("npm", "npm", "npm")?;
    let python_version = tool_version("python3", "Python 3.9 or newer", "python3 python3-venv")?;

    let mut hasher = Fnv64::new();
    for path in [&node_manifest, &node_lock, &requirements] {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        hasher.write(
            path.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        hasher.write(&bytes);
    }
    for version in [&node_version, &npm_version, &python_version] {
        hasher.write(version.as_bytes());
    }
    let stamp_text = format!(
        "{:016x}\nnode {node_version}, npm {npm_version}, {python_version}\n",
        hasher.finish()
    );

    let node_dir = cache.join("node");
    let venv = cache.join("venv");
    let env = PeerEnv {
        node_modules: node_dir.join("node_modules"),
        python: venv.join("bin/python"),
    };
    let stamp = cache.join("peers.stamp");
    let installed = env
        .node_modules
        .join("@elastic/opamp-client-node/package.json")
        .is_file()
        && env
            .node_modules
            .join("@elastic/mockopampserver/package.json")
            .is_file()
        && env.python.is_file();
    if installed && fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str()) {
        eprintln!("peers: up to date in {}", cache.display());
        return Ok(env);
    }

    // Drop the stamp first, so an interrupted install is redone next time.
    let _ = fs::remove_file(&stamp);

    eprintln!("peers: npm ci (interop/node) into {}", node_dir.display());
    fs::create_dir_all(&node_dir).with_context(|| format!("creating {}", node_dir.display()))?;
    for file in [&node_manifest, &node_lock] {
        let name = file.file_name().context("manifest path has a file name")?;
        fs::copy(file, node_dir.join(name))
            .with_context(|| format!("copying {} to {}", file.display(), node_dir.display()))?;
    }
    // --ignore-scripts: the peers are plain JavaScript; the only install script in the tree is
    // an optional native DTrace probe of a logging library, which the tests do not need.
    run(
        Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .current_dir(&node_dir),
        "npm ci",
    )?;

    eprintln!("peers: python3 -m venv + pip install -r interop/python/requirements.txt");
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing old {}", venv.display()))?;
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (on Debian the venv module is the python3-venv package)",
    )?;
    run(
        Command::new(&env.python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r interop/python/requirements.txt",
    )?;

    fs::write(&stamp, stamp_text).with_context(|| format!("writing {}", stamp.display()))?;
    eprintln!("peers: installed in {}", cache.display());
    Ok(env)
}

/// `$OPAMP_TEST_CACHE`, or `~/.cache/opamp-test`.
fn cache_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("OPAMP_TEST_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME")
                .context("neither OPAMP_TEST_CACHE nor HOME is set: cannot place the peer cache")?;
            PathBuf::from(home).join(".cache/opamp-test")
        }
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Runs `TOOL --version`; a clear error when the tool is missing.
fn tool_version(tool: &str, what: &str, debian_packages: &str) -> Result<String> {
    let missing = || {
        format!(
            "the interop tests need {what} (`{tool}` on PATH), which was not found.\n\
             Install it (Debian: `apt-get install {debian_packages}`), or set {SKIP_VAR}=1 to \
             run the other tests without the peers."
        )
    };
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .with_context(missing)?;
    if !out.status.success() {
        bail!(
            "`{tool} --version` failed ({}): {}",
            out.status,
            tail(&out.stderr)
        );
    }
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if text.is_empty() {
        // Python 2 printed its version on stderr; keep whatever there is for the stamp.
        text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    }
    Ok(text)
}

fn check_node_major(version: &str) -> Result<()> {
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= 20 => Ok(()),
        _ => bail!(
            "the interop tests need Node.js 20 or newer (the pinned peers require it); found \
             `node --version` = {version:?}. Set {SKIP_VAR}=1 to run the other tests without the peers."
        ),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {what} ({:?})", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({})\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status,
            tail(&out.stderr),
            tail(&out.stdout)
        );
    }
    Ok(out)
}

/// The last few KiB of a process's output, for error messages.
fn tail(bytes: &[u8]) -> String {
    const MAX: usize = 4096;
    let start = bytes.len().saturating_sub(MAX);
    String::from_utf8_lossy(&bytes[start..]).trim().to_owned()
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for the stamp file (not for security).
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") hash differently.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv64_is_stable_and_separates_fields() {
        let mut a = Fnv64::new();
        a.write(b"ab");
        a.write(b"c");
        let mut b = Fnv64::new();
        b.write(b"a");
        b.write(b"bc");
        assert_ne!(a.finish(), b.finish());
        let mut c = Fnv64::new();
        c.write(b"ab");
        c.write(b"c");
        assert_eq!(a.finish(), c.finish());
    }

    #[test]
    fn node_version_check_accepts_20_and_later_only() {
        assert!(check_node_major("v20.20.2").is_ok());
        assert!(check_node_major("v22.1.0").is_ok());
        assert!(check_node_major("v18.19.0").is_err());
        assert!(check_node_major("garbage").is_err());
    }
}
