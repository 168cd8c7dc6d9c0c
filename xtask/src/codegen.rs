//! Protobuf code generation for `opamp-proto`.
//!
//! The schema in `proto/` is compiled with protox (a pure-Rust protobuf compiler, so no
//! `protoc` is needed) and turned into Rust with prost-build. The result is checked in;
//! `check` regenerates into a temporary directory and compares byte for byte.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The file prost-build writes for package `opamp.proto.v1`.
const GENERATED_FILE: &str = "opamp.proto.v1.rs";

/// Proto files, relative to `proto/`.
const PROTO_FILES: &[&str] = &["opamp/v1/opamp.proto", "opamp/v1/anyvalue.proto"];

/// Where the checked-in generated code lives.
pub(crate) fn generated_dir(root: &Path) -> PathBuf {
    root.join("crates/opamp-proto/src/generated")
}

/// Generates the Rust code into `out_dir` and returns the path of the generated file.
fn generate_into(root: &Path, out_dir: &Path) -> Result<PathBuf> {
    let proto_root = root.join("proto");
    let files: Vec<PathBuf> = PROTO_FILES.iter().map(|f| proto_root.join(f)).collect();
    let descriptors = protox::compile(&files, [&proto_root])
        .with_context(|| format!("compiling the schema in {}", proto_root.display()))?;
    fs::create_dir_all(out_dir)?;
    prost_build::Config::new()
        .out_dir(out_dir)
        // Maps as BTreeMap: deterministic encoding (stable hashes, golden bytes).
        .btree_map(["."])
        // `bytes` fields stay Vec<u8>: simple to use, and the uid helpers own the typing.
        .compile_fds(descriptors)
        .context("generating Rust code with prost-build")?;
    Ok(out_dir.join(GENERATED_FILE))
}

/// Regenerates the checked-in code.
pub(crate) fn generate(root: &Path) -> Result<PathBuf> {
    generate_into(root, &generated_dir(root))
}

/// Fails when the checked-in code differs from what the schema generates.
pub(crate) fn check(root: &Path) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("opamp-codegen-check-{}", std::process::id()));
    let fresh = generate_into(root, &tmp)?;
    let fresh_text = fs::read_to_string(&fresh)?;
    let _ = fs::remove_dir_all(&tmp);
    let checked_in = generated_dir(root).join(GENERATED_FILE);
    let current = fs::read_to_string(&checked_in)
        .with_context(|| format!("reading {}", checked_in.display()))?;
    if current != fresh_text {
        bail!(
            "{} is out of date with proto/: run `cargo xtask codegen` and commit the result",
            checked_in.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo xtask codegen --check` as a test: the checked-in code matches the schema.
    #[test]
    fn checked_in_code_matches_schema() {
        let root = crate::project_root();
        check(&root).unwrap();
    }
}
