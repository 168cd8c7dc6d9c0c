//! Local restrictions that a remote configuration cannot override (RCFG-12, SEC-3..5).
//!
//! The agent's operator writes them in the agent's local configuration, as an **allow
//! list**; a remote config that breaks any rule is refused whole ([`Restrictions::check`]) or
//! stripped of the offending files ([`Restrictions::sanitize`]). Nothing the server sends can
//! change them.
//!
//! Rules (each optional; an empty list means "no rule"):
//! - file names are always relative and safe: no absolute paths, no `..`, no backslashes or
//!   control characters;
//! - `allowed_files`: globs the file names must match (`*.conf`, `conf.d/*.yaml`);
//! - `allowed_content_types`: media types the files may declare;
//! - `max_file_bytes` / `max_total_bytes`: size caps;
//! - `denied_keys`: key paths a YAML or JSON config may not contain, e.g. `extensions.*` or
//!   `**.command` (`*` is one segment, `**` any number, `[*]` any array index);
//! - `path_rules`: at matching key paths every string value must lie under one of the
//!   allowed directory prefixes (SEC-3 file collection, SEC-4 executables);
//! - `denied_text`: case-insensitive substrings no file may contain (for formats without
//!   keys, e.g. `LoadPlugin exec` in a collectd.conf).
//!
//! ```
//! use opamp_config::{ConfigFile, ConfigMap, Restrictions, PathRule};
//! let rules = Restrictions {
//!     allowed_files: vec!["*.yaml".into()],
//!     path_rules: vec![PathRule { keys: "receivers.filelog.include[*]".into(), allowed_prefixes: vec!["/var/log/".into()] }],
//!     ..Default::default()
//! };
//! let ok = ConfigMap::single("c.yaml", ConfigFile::new("text/yaml", "receivers:\n  filelog:\n    include: [/var/log/app.log]\n"));
//! assert!(rules.check(&ok).is_ok());
//! let bad = ConfigMap::single("c.yaml", ConfigFile::new("text/yaml", "receivers:\n  filelog:\n    include: [/etc/shadow]\n"));
//! let err = rules.check(&bad).unwrap_err();
//! assert!(err.to_string().contains("/etc/shadow"));
//! ```

use std::fmt;

use globset::{Glob, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Format, parse_structured};
use crate::{ConfigMap, Error};

/// A rule for the string values found at some key paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    /// Key path pattern, e.g. `receivers.filelog.include[*]`.
    pub keys: String,
    /// Allowed prefixes, e.g. `/var/log/`.
    pub allowed_prefixes: Vec<String>,
}

/// The local allow list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Restrictions {
    /// Globs that every file name must match; empty allows any safe name.
    pub allowed_files: Vec<String>,
    /// Allowed media types (parameters ignored); empty allows any.
    pub allowed_content_types: Vec<String>,
    /// Largest allowed file body.
    pub max_file_bytes: Option<u64>,
    /// Largest allowed sum of all bodies.
    pub max_total_bytes: Option<u64>,
    /// Key path patterns that YAML/JSON configs may not contain.
    pub denied_keys: Vec<String>,
    /// Prefix rules for string values at key paths.
    pub path_rules: Vec<PathRule>,
    /// Substrings (case-insensitive) that no file may contain.
    pub denied_text: Vec<String>,
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The file it concerns.
    pub file: String,
    /// The key path, for key rules.
    pub key: Option<String>,
    /// Which rule: `file_name`, `allowed_files`, `allowed_content_types`, `max_file_bytes`,
    /// `max_total_bytes`, `denied_keys`, `path_rules`, `denied_text`, `parse`.
    pub rule: &'static str,
    /// A sentence saying what is wrong.
    pub message: String,
}

/// Every rule a config broke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&v.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

impl Restrictions {
    /// Checks the rules themselves (globs compile, patterns are non-empty). Call once when
    /// the local configuration is loaded.
    pub fn validate(&self) -> Result<(), String> {
        for g in &self.allowed_files {
            Glob::new(g).map_err(|e| format!("allowed_files: {g:?}: {e}"))?;
        }
        for p in self
            .denied_keys
            .iter()
            .chain(self.path_rules.iter().map(|r| &r.keys))
        {
            if p.trim().is_empty() {
                return Err("empty key pattern".into());
            }
        }
        for r in &self.path_rules {
            if r.allowed_prefixes.is_empty() {
                return Err(format!("path rule {:?} allows no prefix", r.keys));
            }
        }
        Ok(())
    }

    /// Checks a remote config; `Err` lists every violation.
    pub fn check(&self, config: &ConfigMap) -> Result<(), Error> {
        let violations = self.violations(config);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::Restricted(Violations(violations)))
        }
    }

    /// Removes the files that break a rule; returns the rest and what was removed.
    pub fn sanitize(&self, config: &ConfigMap) -> (ConfigMap, Violations) {
        let violations = self.violations(config);
        let mut kept = config.clone();
        for v in &violations {
            kept.files.remove(&v.file);
        }
        (kept, Violations(violations))
    }

    /// Every violation of `config`.
    pub fn violations(&self, config: &ConfigMap) -> Vec<Violation> {
        let mut out = Vec::new();
        let globs = {
            let mut b = GlobSetBuilder::new();
            for g in &self.allowed_files {
                if let Ok(g) = Glob::new(g) {
                    b.add(g);
                }
            }
            b.build().ok()
        };
        let denied_keys: Vec<Vec<&str>> = self.denied_keys.iter().map(|p| pattern(p)).collect();
        let path_rules: Vec<(Vec<&str>, &PathRule)> = self
            .path_rules
            .iter()
            .map(|r| (pattern(&r.keys), r))
            .collect();

        if let Some(max) = self.max_total_bytes {
            let total = config.total_bytes();
            if total > max {
                out.push(Violation {
                    file: String::new(),
                    key: None,
                    rule: "max_total_bytes",
                    message: format!("config is {total} bytes, more than the local limit of {max}"),
                });
            }
        }
        for (name, file) in &config.files {
            let mut v = |key: Option<String>, rule: &'static str, message: String| {
                out.push(Violation {
                    file: name.clone(),
                    key,
                    rule,
                    message,
                })
            };
            if let Some(reason) = unsafe_name(name) {
                v(
                    None,
                    "file_name",
                    format!("file name {name:?} is not allowed: {reason}"),
                );
                continue;
            }
            if !self.allowed_files.is_empty() && !globs.as_ref().is_some_and(|g| g.is_match(name)) {
                v(
                    None,
                    "allowed_files",
                    format!("file {name:?} is not in the local allow list of files"),
                );
            }
            if !self.allowed_content_types.is_empty() {
                let media = media_type(&file.content_type);
                if !self
                    .allowed_content_types
                    .iter()
                    .any(|a| media_type(a) == media)
                {
                    v(
                        None,
                        "allowed_content_types",
                        format!(
                            "file {name:?} has content type {:?}, which is not allowed locally",
                            file.content_type
                        ),
                    );
                }
            }
            if let Some(max) = self.max_file_bytes {
                let len = file.body.len() as u64;
                if len > max {
                    v(
                        None,
                        "max_file_bytes",
                        format!("file {name:?} is {len} bytes, more than the local limit of {max}"),
                    );
                }
            }
            if !self.denied_text.is_empty() {
                let text = String::from_utf8_lossy(&file.body).to_lowercase();
                for needle in &self.denied_text {
                    if text.contains(&needle.to_lowercase()) {
                        v(
                            None,
                            "denied_text",
                            format!(
                                "file {name:?} contains {needle:?}, which is not allowed locally"
                            ),
                        );
                    }
                }
            }
            if denied_keys.is_empty() && path_rules.is_empty() {
                continue;
            }
            let format = Format::detect(name, &file.content_type);
            match parse_structured(name, format, &file.body) {
                Ok(Some(value)) => {
                    let mut seen = Vec::new();
                    walk(&value, &mut Vec::new(), &mut seen);
                    for (path, value) in seen {
                        let shown = path.join(".").replace(".[", "[");
                        if denied_keys.iter().any(|p| matches(p, &path)) {
                            v(
                                Some(shown.clone()),
                                "denied_keys",
                                format!("file {name:?} sets {shown}, which is not allowed locally"),
                            );
                        }
                        for (p, rule) in &path_rules {
                            if !matches(p, &path) {
                                continue;
                            }
                            let strings: Vec<&str> = match value {
                                Value::String(s) => vec![s.as_str()],
                                Value::Array(items) => {
                                    items.iter().filter_map(Value::as_str).collect()
                                }
                                _ => Vec::new(),
                            };
                            for s in strings {
                                if !prefix_allowed(s, &rule.allowed_prefixes) {
                                    v(
                                        Some(shown.clone()),
                                        "path_rules",
                                        format!(
                                            "file {name:?}: {shown} = {s:?} is outside the allowed locations {:?}",
                                            rule.allowed_prefixes
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => v(
                    None,
                    "parse",
                    format!("{e}; it cannot be checked against the local restrictions"),
                ),
            }
        }
        out
    }
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.starts_with('/') || name.starts_with('~') {
        Some("absolute path")
    } else if name.split('/').any(|c| c == "..") {
        Some("it leaves the config directory (..)")
    } else if name.contains('\\') {
        Some("backslash")
    } else if name.chars().any(char::is_control) {
        Some("control character")
    } else {
        None
    }
}

fn prefix_allowed(value: &str, prefixes: &[String]) -> bool {
    if value.split('/').any(|c| c == "..") {
        return false;
    }
    prefixes.iter().any(|p| value.starts_with(p.as_str()))
}

/// Splits `a.b[*].c` into `["a", "b", "[*]", "c"]`.
fn pattern(p: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in p.split('.') {
        let mut rest = part;
        while let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(&rest[..i]);
            }
            let end = rest[i..].find(']').map_or(rest.len(), |e| i + e + 1);
            out.push(&rest[i..end]);
            rest = &rest[end..];
        }
        if !rest.is_empty() {
            out.push(rest);
        }
    }
    out
}

/// Every (path, value) of a document; paths as segments, indices as `[n]`.
fn walk<'a>(v: &'a Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'a Value)>) {
    if !path.is_empty() {
        out.push((path.clone(), v));
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(k.clone());
                walk(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                walk(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn matches(pattern: &[&str], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| matches(rest, &path[i..])),
        Some((seg, rest)) => match path.split_first() {
            None => false,
            Some((first, tail)) => {
                let ok = match *seg {
                    "*" => true,
                    "[*]" => first.starts_with('['),
                    lit => lit == first,
                };
                ok && matches(rest, tail)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigFile;

    fn yaml(name: &str, body: &str) -> ConfigMap {
        ConfigMap::single(name, ConfigFile::new("text/yaml", body))
    }

    fn rules_of(err: Error) -> Vec<&'static str> {
        match err {
            Error::Restricted(v) => v.0.iter().map(|v| v.rule).collect(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn file_names_must_be_safe_always_sec_3() {
        let r = Restrictions::default();
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a\\b",
            "x\0y",
            "~/.ssh/config",
        ] {
            let m = ConfigMap::single(bad, ConfigFile::new("", "x"));
            assert_eq!(rules_of(r.check(&m).unwrap_err()), ["file_name"], "{bad}");
        }
        assert!(
            r.check(&ConfigMap::single("", ConfigFile::new("", "x")))
                .is_ok()
        );
        assert!(
            r.check(&ConfigMap::single(
                "conf.d/a.conf",
                ConfigFile::new("", "x")
            ))
            .is_ok()
        );
    }

    #[test]
    fn allow_lists_and_sizes_rcfg_12() {
        let r = Restrictions {
            allowed_files: vec!["collectd.conf".into(), "conf.d/*.conf".into()],
            allowed_content_types: vec!["text/plain".into()],
            max_file_bytes: Some(10),
            max_total_bytes: Some(15),
            ..Default::default()
        };
        r.validate().unwrap();
        let ok = ConfigMap::new()
            .with_file(
                "collectd.conf",
                ConfigFile::new("text/plain; charset=utf-8", "12345"),
            )
            .with_file("conf.d/a.conf", ConfigFile::new("TEXT/PLAIN", "123"));
        assert!(r.check(&ok).is_ok());
        let bad = ConfigMap::new()
            .with_file("other.conf", ConfigFile::new("text/plain", "1"))
            .with_file("collectd.conf", ConfigFile::new("text/yaml", "12345678901"))
            .with_file("conf.d/b.conf", ConfigFile::new("text/plain", "12345"));
        let mut rules = rules_of(r.check(&bad).unwrap_err());
        rules.sort();
        assert_eq!(
            rules,
            [
                "allowed_content_types",
                "allowed_files",
                "max_file_bytes",
                "max_total_bytes"
            ]
        );
    }

    #[test]
    fn denied_keys_with_wildcards_sec_4() {
        let r = Restrictions {
            denied_keys: vec!["extensions.*".into(), "**.command".into()],
            ..Default::default()
        };
        assert!(r.check(&yaml("c.yaml", "receivers:\n  otlp: {}\n")).is_ok());
        let err = r
            .check(&yaml(
                "c.yaml",
                "extensions:\n  pprof: {}\nreceivers:\n  x:\n    command: rm -rf /\n",
            ))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("extensions.pprof"), "{text}");
        assert!(text.contains("receivers.x.command"), "{text}");
    }

    #[test]
    fn path_rules_limit_file_collection_sec_3() {
        let r = Restrictions {
            path_rules: vec![PathRule {
                keys: "receivers.filelog.include[*]".into(),
                allowed_prefixes: vec!["/var/log/".into()],
            }],
            ..Default::default()
        };
        let ok = yaml(
            "c.yaml",
            "receivers:\n  filelog:\n    include: [/var/log/a.log, /var/log/b/*.log]\n",
        );
        assert!(r.check(&ok).is_ok());
        for bad in ["/etc/shadow", "/var/log/../../etc/shadow"] {
            let m = yaml(
                "c.yaml",
                &format!("receivers:\n  filelog:\n    include: [\"{bad}\"]\n"),
            );
            let err = r.check(&m).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn denied_text_for_keyless_formats() {
        let r = Restrictions {
            denied_text: vec!["LoadPlugin exec".into()],
            ..Default::default()
        };
        let bad = ConfigMap::single("collectd.conf", ConfigFile::new("", "loadplugin EXEC\n"));
        assert_eq!(rules_of(r.check(&bad).unwrap_err()), ["denied_text"]);
    }

    #[test]
    fn unparsable_structured_config_is_refused_when_key_rules_exist() {
        let r = Restrictions {
            denied_keys: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            rules_of(r.check(&yaml("c.yaml", "a: [")).unwrap_err()),
            ["parse"]
        );
    }

    #[test]
    fn sanitize_drops_only_offending_files() {
        let r = Restrictions {
            allowed_files: vec!["*.conf".into()],
            ..Default::default()
        };
        let m = ConfigMap::new()
            .with_file("a.conf", ConfigFile::new("", "1"))
            .with_file("b.sh", ConfigFile::new("", "2"));
        let (kept, removed) = r.sanitize(&m);
        assert_eq!(kept.files.keys().collect::<Vec<_>>(), ["a.conf"]);
        assert_eq!(removed.0.len(), 1);
    }

    #[test]
    fn rules_are_validated_and_parsed_from_toml_like_data() {
        let bad = Restrictions {
            allowed_files: vec!["[".into()],
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let no_prefix = Restrictions {
            path_rules: vec![PathRule {
                keys: "a".into(),
                allowed_prefixes: vec![],
            }],
            ..Default::default()
        };
        assert!(no_prefix.validate().is_err());
        let json = r#"{"allowed_files": ["*.yaml"], "max_file_bytes": 100}"#;
        let r: Restrictions = serde_json::from_str(json).unwrap();
        assert_eq!(r.max_file_bytes, Some(100));
        assert!(
            serde_json::from_str::<Restrictions>(r#"{"alowed_files": []}"#).is_err(),
            "typos are errors"
        );
    }

    #[test]
    fn pattern_matching() {
        let p = |s| pattern(s);
        let path = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(p("a.b[*].c"), ["a", "b", "[*]", "c"]);
        assert!(matches(&p("a.*"), &path(&["a", "x"])));
        assert!(!matches(&p("a.*"), &path(&["a", "x", "y"])));
        assert!(matches(&p("**.c"), &path(&["a", "b", "c"])));
        assert!(matches(&p("**.c"), &path(&["c"])));
        assert!(matches(&p("a[*]"), &path(&["a", "[3]"])));
        assert!(!matches(&p("a[*]"), &path(&["a", "k"])));
    }
}
