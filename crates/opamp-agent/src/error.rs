//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong in opamp-agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is missing, unreadable or invalid (exit status 2).
    #[error("{}: {message}", file.display())]
    Config {
        /// The configuration file.
        file: PathBuf,
        /// What is wrong, starting with the key.
        message: String,
    },
    /// Local misuse: started as root without `allow_root = true` (SEC-2).
    #[error(
        "refusing to run as root (SEC-2, least privilege): run opamp-agent as an unprivileged user, or set `allow_root = true` in {} (or pass --allow-root)",
        file.display()
    )]
    RunningAsRoot {
        /// The configuration file, where `allow_root` would go.
        file: PathBuf,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The managed process could not be started or signalled.
    #[error("process {command:?}: {source}")]
    Process {
        /// The command.
        command: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The OpAMP client failed (bad endpoint, TLS files, state store).
    #[error("OpAMP client: {0}")]
    Client(#[from] opamp_client::Error),
}

impl Error {
    /// An IO error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
