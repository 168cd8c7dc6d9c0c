//! `cargo xtask conformance`: keeps docs/CONFORMANCE.md honest.
//!
//! - every test function named in the table (a backticked `snake_case` name in the last
//!   column) exists as `fn <name>` somewhere under `crates/` or `xtask/`;
//! - when the requirements checklist is reachable (`../shared/spec/opamp-requirements.md`
//!   beside the checkout, or `$OPAMP_REQUIREMENTS`), every requirement ID in it has a row,
//!   and the table names no ID the checklist lacks.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Runs the check; returns a one-line summary.
pub(crate) fn check(root: &Path) -> Result<String> {
    let doc_path = root.join("docs/CONFORMANCE.md");
    let doc =
        fs::read_to_string(&doc_path).with_context(|| format!("reading {}", doc_path.display()))?;
    let rows = parse_rows(&doc);
    if rows.is_empty() {
        bail!("{}: no requirement rows found", doc_path.display());
    }

    let mut sources = String::new();
    for dir in ["crates", "xtask"] {
        collect_rust(&root.join(dir), &mut sources)?;
    }
    let fields = proto_field_names(root)?;
    let mut missing_tests = Vec::new();
    let mut named = 0usize;
    for (id, notes) in &rows {
        for name in test_names(notes)
            .into_iter()
            .filter(|n| !fields.contains(*n))
        {
            named += 1;
            if !sources.contains(&format!("fn {name}(")) {
                missing_tests.push(format!("{id}: `{name}`"));
            }
        }
    }
    if !missing_tests.is_empty() {
        bail!(
            "docs/CONFORMANCE.md names tests that do not exist:\n  {}",
            missing_tests.join("\n  ")
        );
    }

    let ids: BTreeSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let mut summary = format!("{} rows, {named} test references, all found", rows.len());
    if let Some(req) = requirements_path(root) {
        let text = fs::read_to_string(&req)?;
        let wanted: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("| "))
            .filter_map(|l| l.split(' ').next())
            .filter(|id| is_requirement_id(id))
            .map(str::to_owned)
            .collect();
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|id| !ids.contains(id.as_str()))
            .collect();
        let extra: Vec<&&str> = ids.iter().filter(|id| !wanted.contains(**id)).collect();
        if !missing.is_empty() || !extra.is_empty() {
            bail!(
                "docs/CONFORMANCE.md is out of step with {}: missing {missing:?}, unknown {extra:?}",
                req.display()
            );
        }
        summary.push_str(&format!("; all {} checklist IDs have a row", wanted.len()));
    } else {
        summary.push_str("; requirements checklist not found, ID coverage not checked");
    }
    Ok(summary)
}

/// Field names of the protobuf schema: backticked in the notes, they are not test names.
fn proto_field_names(root: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let dir = root.join("proto/opamp/v1");
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let text = fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            if let Some((lhs, _)) = code.split_once('=') {
                if let Some(name) = lhs.split_whitespace().last() {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    Ok(names)
}

fn requirements_path(root: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::env::var("OPAMP_REQUIREMENTS") {
        return Some(PathBuf::from(p));
    }
    let p = root.join("../shared/spec/opamp-requirements.md");
    p.exists().then_some(p)
}

fn is_requirement_id(s: &str) -> bool {
    let Some((prefix, num)) = s.split_once('-') else {
        return false;
    };
    !prefix.is_empty()
        && prefix.chars().all(|c| c.is_ascii_uppercase())
        && !num.is_empty()
        && num.chars().all(|c| c.is_ascii_digit())
}

/// (ID, last column) of every table row whose first cell is a requirement ID.
fn parse_rows(doc: &str) -> Vec<(String, String)> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            let id = cells.first()?.trim();
            is_requirement_id(id)
                .then(|| (id.to_owned(), (*cells.last().unwrap_or(&"")).to_owned()))
        })
        .collect()
}

/// Backticked snake_case names with at least one underscore: test function names.
fn test_names(notes: &str) -> Vec<&str> {
    notes
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.contains('_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

fn collect_rust(dir: &Path, out: &mut String) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rust(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&fs::read_to_string(&path)?);
            out.push('\n');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_recognised() {
        assert!(is_requirement_id("WS-3"));
        assert!(is_requirement_id("HSL-12"));
        assert!(!is_requirement_id("ID"));
        assert!(!is_requirement_id("ws-3"));
        assert_eq!(
            test_names("opamp-proto: `a_b_c`, `not a test`, `x`, `d_e` and `CONST_X`"),
            ["a_b_c", "d_e"]
        );
        let rows =
            parse_rows("| ID | x |\n|---|---|\n| WS-3 | MUST | B | text | tested | `t_1` |\n");
        assert_eq!(rows, [("WS-3".to_owned(), " `t_1` ".to_owned())]);
    }

    #[test]
    fn conformance_document_is_consistent() {
        let summary = check(&crate::project_root()).unwrap();
        assert!(summary.contains("all found"), "{summary}");
    }
}
