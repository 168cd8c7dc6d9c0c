//! Differences between two config maps: which files were added, removed or changed, and for
//! YAML and JSON files which keys; plus a line diff of every changed text file for display.

use serde::Serialize;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::model::{Format, parse_structured};
use crate::{ConfigFile, ConfigMap};

/// How one file differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    /// Only in the new map.
    Added,
    /// Only in the old map.
    Removed,
    /// In both, with a different body or content type.
    Changed,
}

/// How one key of a YAML or JSON file differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum KeyChange {
    /// The key exists only in the new file.
    Added {
        /// The key's path, e.g. `receivers.otlp.protocols.grpc.endpoint` or `items[2]`.
        path: String,
        /// Its new value.
        new: Value,
    },
    /// The key exists only in the old file.
    Removed {
        /// The key's path.
        path: String,
        /// Its old value.
        old: Value,
    },
    /// The key exists in both with different values.
    Changed {
        /// The key's path.
        path: String,
        /// The old value.
        old: Value,
        /// The new value.
        new: Value,
    },
}

impl KeyChange {
    /// The path of the key.
    pub fn path(&self) -> &str {
        match self {
            KeyChange::Added { path, .. }
            | KeyChange::Removed { path, .. }
            | KeyChange::Changed { path, .. } => path,
        }
    }
}

/// One line of a line diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    /// `"equal"`, `"insert"` or `"delete"`.
    pub tag: &'static str,
    /// Line number in the old file (1-based), when the line is there.
    pub old_line: Option<usize>,
    /// Line number in the new file (1-based), when the line is there.
    pub new_line: Option<usize>,
    /// The line's text without its line ending (lossy UTF-8).
    pub text: String,
}

/// The difference of one file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileDiff {
    /// The file name.
    pub name: String,
    /// Added, removed or changed.
    pub change: FileChange,
    /// `(old, new)` content types when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<(String, String)>,
    /// Per-key changes, when both sides parse as YAML or JSON; empty otherwise.
    pub keys: Vec<KeyChange>,
    /// Every line of both versions, aligned, for side-by-side or unified display.
    pub lines: Vec<DiffLine>,
    /// A unified diff (`---`/`+++`/`@@` hunks with 3 lines of context).
    pub unified: String,
}

/// The difference between two config maps; unchanged files are left out.
#[derive(Clone, Debug, PartialEq, Serialize, Default)]
pub struct ConfigDiff {
    /// Changed files, sorted by name.
    pub files: Vec<FileDiff>,
}

impl ConfigDiff {
    /// True when the two maps are equal.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Names of files with the given change.
    pub fn names(&self, change: FileChange) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| f.change == change)
            .map(|f| f.name.as_str())
            .collect()
    }
}

/// Compares `old` with `new`.
pub fn diff(old: &ConfigMap, new: &ConfigMap) -> ConfigDiff {
    let empty = ConfigFile::default();
    let mut names: Vec<&String> = old.files.keys().chain(new.files.keys()).collect();
    names.sort();
    names.dedup();
    let files = names
        .into_iter()
        .filter_map(|name| {
            let (o, n) = (old.files.get(name), new.files.get(name));
            let change = match (o, n) {
                (None, Some(_)) => FileChange::Added,
                (Some(_), None) => FileChange::Removed,
                (Some(a), Some(b)) if a == b => return None,
                _ => FileChange::Changed,
            };
            let (a, b) = (o.unwrap_or(&empty), n.unwrap_or(&empty));
            Some(file_diff(name, change, a, b))
        })
        .collect();
    ConfigDiff { files }
}

fn file_diff(name: &str, change: FileChange, a: &ConfigFile, b: &ConfigFile) -> FileDiff {
    let content_type = (change == FileChange::Changed && a.content_type != b.content_type)
        .then(|| (a.content_type.clone(), b.content_type.clone()));
    let keys = match change {
        FileChange::Changed => key_changes(name, a, b),
        _ => Vec::new(),
    };
    let old_text = String::from_utf8_lossy(&a.body);
    let new_text = String::from_utf8_lossy(&b.body);
    let text_diff = TextDiff::from_lines(old_text.as_ref(), new_text.as_ref());
    let lines = text_diff
        .iter_all_changes()
        .map(|c| DiffLine {
            tag: match c.tag() {
                ChangeTag::Equal => "equal",
                ChangeTag::Insert => "insert",
                ChangeTag::Delete => "delete",
            },
            old_line: c.old_index().map(|i| i + 1),
            new_line: c.new_index().map(|i| i + 1),
            text: c.value().trim_end_matches(['\n', '\r']).to_owned(),
        })
        .collect();
    let unified = text_diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string();
    FileDiff {
        name: name.to_owned(),
        change,
        content_type,
        keys,
        lines,
        unified,
    }
}

fn key_changes(name: &str, a: &ConfigFile, b: &ConfigFile) -> Vec<KeyChange> {
    let fa = Format::detect(name, &a.content_type);
    let fb = Format::detect(name, &b.content_type);
    match (
        parse_structured(name, fa, &a.body),
        parse_structured(name, fb, &b.body),
    ) {
        (Ok(Some(va)), Ok(Some(vb))) => {
            let mut out = Vec::new();
            compare(String::new(), &va, &vb, &mut out);
            out
        }
        _ => Vec::new(),
    }
}

/// Appends a key to a path: `a.b`, or `a["x.y"]` for keys that are not plain identifiers.
fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '/'));
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::String(key.to_owned())),
    }
}

fn compare(path: String, a: &Value, b: &Value, out: &mut Vec<KeyChange>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            for (k, va) in ma {
                let p = child(&path, k);
                match mb.get(k) {
                    Some(vb) => compare(p, va, vb, out),
                    None => out.push(KeyChange::Removed {
                        path: p,
                        old: va.clone(),
                    }),
                }
            }
            for (k, vb) in mb {
                if !ma.contains_key(k) {
                    out.push(KeyChange::Added {
                        path: child(&path, k),
                        new: vb.clone(),
                    });
                }
            }
        }
        (Value::Array(xa), Value::Array(xb)) => {
            for i in 0..xa.len().max(xb.len()) {
                let p = format!("{path}[{i}]");
                match (xa.get(i), xb.get(i)) {
                    (Some(va), Some(vb)) => compare(p, va, vb, out),
                    (Some(va), None) => out.push(KeyChange::Removed {
                        path: p,
                        old: va.clone(),
                    }),
                    (None, Some(vb)) => out.push(KeyChange::Added {
                        path: p,
                        new: vb.clone(),
                    }),
                    (None, None) => {}
                }
            }
        }
        _ if a == b => {}
        _ => out.push(KeyChange::Changed {
            path,
            old: a.clone(),
            new: b.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(body: &str) -> ConfigFile {
        ConfigFile::new("text/yaml", body)
    }

    #[test]
    fn files_added_removed_changed() {
        let old = ConfigMap::new()
            .with_file("keep", ConfigFile::new("", "same\n"))
            .with_file("gone", ConfigFile::new("", "x\n"))
            .with_file("edit", ConfigFile::new("", "a\nb\nc\n"));
        let new = ConfigMap::new()
            .with_file("keep", ConfigFile::new("", "same\n"))
            .with_file("edit", ConfigFile::new("", "a\nB\nc\n"))
            .with_file("new", ConfigFile::new("", "y\n"));
        let d = diff(&old, &new);
        assert_eq!(d.names(FileChange::Added), ["new"]);
        assert_eq!(d.names(FileChange::Removed), ["gone"]);
        assert_eq!(d.names(FileChange::Changed), ["edit"]);
        let edit = d.files.iter().find(|f| f.name == "edit").unwrap();
        let tags: Vec<_> = edit
            .lines
            .iter()
            .map(|l| (l.tag, l.text.as_str()))
            .collect();
        assert_eq!(
            tags,
            [
                ("equal", "a"),
                ("delete", "b"),
                ("insert", "B"),
                ("equal", "c")
            ]
        );
        assert!(edit.unified.contains("-b\n+B\n"), "{}", edit.unified);
        assert!(edit.keys.is_empty(), "plain text has no keys");
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn yaml_keys_are_compared_per_key() {
        let old = ConfigMap::single(
            "c.yaml",
            yaml("receivers:\n  otlp:\n    endpoint: 0.0.0.0:4317\nexporters: [debug]\nlevel: 1\n"),
        );
        let new = ConfigMap::single(
            "c.yaml",
            yaml(
                "receivers:\n  otlp:\n    endpoint: 0.0.0.0:4318\n  prom: {}\nexporters: [debug, otlp]\n\"a.b\": true\n",
            ),
        );
        let d = diff(&old, &new);
        let keys = &d.files[0].keys;
        assert!(keys.contains(&KeyChange::Changed {
            path: "receivers.otlp.endpoint".into(),
            old: json!("0.0.0.0:4317"),
            new: json!("0.0.0.0:4318"),
        }));
        assert!(keys.contains(&KeyChange::Added {
            path: "receivers.prom".into(),
            new: json!({})
        }));
        assert!(keys.contains(&KeyChange::Added {
            path: "exporters[1]".into(),
            new: json!("otlp")
        }));
        assert!(keys.contains(&KeyChange::Removed {
            path: "level".into(),
            old: json!(1)
        }));
        assert!(keys.contains(&KeyChange::Added {
            path: "[\"a.b\"]".into(),
            new: json!(true)
        }));
        assert_eq!(keys.len(), 5, "{keys:?}");
    }

    #[test]
    fn json_keys_and_content_type_change() {
        let old = ConfigMap::single(
            "c",
            ConfigFile::new("application/json", r#"{"a":1,"b":{"c":[1,2]}}"#),
        );
        let new = ConfigMap::single(
            "c",
            ConfigFile::new("text/json", r#"{"a":1,"b":{"c":[1]}}"#),
        );
        let d = diff(&old, &new);
        assert_eq!(
            d.files[0].content_type,
            Some(("application/json".into(), "text/json".into()))
        );
        assert_eq!(
            d.files[0].keys,
            [KeyChange::Removed {
                path: "b.c[1]".into(),
                old: json!(2)
            }]
        );
    }

    #[test]
    fn unparsable_side_falls_back_to_lines() {
        let old = ConfigMap::single("c.yaml", yaml("a: 1\n"));
        let new = ConfigMap::single("c.yaml", yaml("a: [\n"));
        let d = diff(&old, &new);
        assert!(d.files[0].keys.is_empty());
        assert!(!d.files[0].lines.is_empty());
    }

    #[test]
    fn diff_serializes_for_the_api() {
        let d = diff(
            &ConfigMap::new(),
            &ConfigMap::single("x", ConfigFile::new("", "1\n")),
        );
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["files"][0]["change"], "added");
        assert_eq!(v["files"][0]["lines"][0]["tag"], "insert");
    }
}
