//! File handling: atomic writes, the staging directory, the swap into `config.dir`, the
//! last known good copy, and reading the effective config back.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::settings::is_plain_file_name;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
/// rename, then fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Creates a directory and its parents.
pub fn ensure_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// The plain (non-hidden) regular files of a directory, by name. A missing directory
/// reads as empty.
pub fn read_dir_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_plain_file_name(&name) {
            continue;
        }
        let path = entry.path();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file {
            continue;
        }
        let body = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        out.insert(name, body);
    }
    Ok(out)
}

/// Makes `dir` hold exactly `files` (plain files only; other entries are left alone
/// except plain files not in `files`, which are removed). Used for the staging and
/// last-known-good directories.
pub fn replace_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), Error> {
    ensure_dir(dir)?;
    for name in read_dir_files(dir)?.keys() {
        if !files.contains_key(name) {
            let p = dir.join(name);
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    for (name, body) in files {
        write_atomic(&dir.join(name), body)?;
    }
    Ok(())
}

/// Removes everything inside `dir` (files, hidden files, subdirectories), keeping `dir`
/// itself. A missing directory is fine. Used to empty the staging directory.
pub fn clear_dir(dir: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        // `file_type` does not follow symlinks: a link is removed, never its target.
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(())
}

/// Swaps a new set of managed files into `dir`: writes every file of `new` (atomically,
/// one by one), then removes the names of `old` that are not in `new`. Files that are in
/// neither (local files, operator files) are untouched.
pub fn swap_in(
    dir: &Path,
    new: &BTreeMap<String, Vec<u8>>,
    old_names: impl IntoIterator<Item = String>,
) -> Result<(), Error> {
    ensure_dir(dir)?;
    for (name, body) in new {
        write_atomic(&dir.join(name), body)?;
    }
    for name in old_names {
        if !new.contains_key(&name) {
            let p = dir.join(&name);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
    }
    Ok(())
}

/// The directories under the state dir.
#[derive(Clone, Debug)]
pub struct StateLayout {
    /// The state directory.
    pub root: PathBuf,
}

impl StateLayout {
    /// `agent-state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("agent-state.json")
    }
    /// `lkg/`: the last known good managed files.
    pub fn lkg_dir(&self) -> PathBuf {
        self.root.join("lkg")
    }
    /// `process.pid`: the running process's pid and start time.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("process.pid")
    }
    /// `staging/`: a candidate config being validated.
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        list.iter()
            .map(|(n, b)| ((*n).to_owned(), b.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(&d.path().join("a.conf"), b"one").unwrap();
        write_atomic(&d.path().join("a.conf"), b"two").unwrap();
        assert_eq!(
            read_dir_files(d.path()).unwrap(),
            files(&[("a.conf", "two")])
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn swap_writes_new_removes_old_managed_and_keeps_others() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("local.conf"), "local").unwrap();
        std::fs::write(d.path().join("old.conf"), "old").unwrap();
        std::fs::write(d.path().join("main.conf"), "v1").unwrap();
        swap_in(
            d.path(),
            &files(&[("main.conf", "v2"), ("new.conf", "n")]),
            ["main.conf".to_owned(), "old.conf".to_owned()],
        )
        .unwrap();
        assert_eq!(
            read_dir_files(d.path()).unwrap(),
            files(&[
                ("local.conf", "local"),
                ("main.conf", "v2"),
                ("new.conf", "n")
            ])
        );
    }

    #[test]
    fn clear_dir_empties_the_directory_but_keeps_it() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("staging");
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        std::fs::write(dir.join("a.conf"), "a").unwrap();
        std::fs::write(dir.join(".a.conf.tmp-1"), "t").unwrap();
        std::fs::write(dir.join("sub/deeper/b"), "b").unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "k").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        clear_dir(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(
            outside.join("keep").exists(),
            "a link's target is left alone"
        );
        clear_dir(&d.path().join("missing")).unwrap();
    }

    #[test]
    fn replace_dir_makes_an_exact_copy() {
        let d = tempfile::tempdir().unwrap();
        let lkg = d.path().join("lkg");
        replace_dir(&lkg, &files(&[("a", "1"), ("b", "2")])).unwrap();
        replace_dir(&lkg, &files(&[("b", "3")])).unwrap();
        assert_eq!(read_dir_files(&lkg).unwrap(), files(&[("b", "3")]));
        assert!(
            read_dir_files(&d.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
