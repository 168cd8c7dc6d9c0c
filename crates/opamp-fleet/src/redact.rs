//! Redaction of secret-looking values in effective configs shown by the admin API.
//!
//! A key "looks secret" when, lower-cased, it contains `password`, `passwd`, `token`,
//! `secret`, `key` or `credential`. Its value (a scalar, or a whole nested block) is replaced
//! by [`REDACTED`]:
//! - YAML and JSON files (by content type or name, as `opamp_config::Format` detects them)
//!   are parsed, redacted key by key at every depth, and re-serialized;
//! - any other file, or a YAML/JSON file that does not parse, is redacted line by line: a
//!   line `key = value`, `key: value` or `key value` whose key looks secret keeps its key and
//!   loses its value.
//!
//! Redaction is deliberately generous (`monkey` contains `key`): hiding a harmless value is
//! cheaper than showing a secret. Admins see the original with `?reveal=true`.

use opamp_config::{ConfigFile, ConfigMap, Format};

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// Whether a key looks like it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "token", "secret", "key", "credential"]
        .iter()
        .any(|w| k.contains(w))
}

/// A copy of `map` with secret-looking values redacted.
pub fn redact_map(map: &ConfigMap) -> ConfigMap {
    ConfigMap {
        files: map
            .files
            .iter()
            .map(|(name, file)| (name.clone(), redact_file(name, file)))
            .collect(),
    }
}

fn redact_file(name: &str, file: &ConfigFile) -> ConfigFile {
    let Some(text) = file.text() else {
        // Binary content is not shown at all.
        return ConfigFile::new(file.content_type.clone(), REDACTED);
    };
    let body = match Format::detect(name, &file.content_type) {
        Format::Json => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(mut v) => {
                redact_json(&mut v);
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| redact_lines(text))
            }
            Err(_) => redact_lines(text),
        },
        Format::Yaml => match serde_norway::from_str::<serde_norway::Value>(text) {
            Ok(mut v) => {
                redact_yaml(&mut v);
                serde_norway::to_string(&v).unwrap_or_else(|_| redact_lines(text))
            }
            Err(_) => redact_lines(text),
        },
        Format::Text => redact_lines(text),
    };
    ConfigFile::new(file.content_type.clone(), body)
}

fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_key(k) {
                    *val = serde_json::Value::String(REDACTED.into());
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

fn redact_yaml(v: &mut serde_norway::Value) {
    use serde_norway::Value as Y;
    match v {
        Y::Mapping(map) => {
            for (k, val) in map.iter_mut() {
                let secret = match k {
                    Y::String(s) => is_secret_key(s),
                    _ => false,
                };
                if secret {
                    *val = Y::String(REDACTED.into());
                } else {
                    redact_yaml(val);
                }
            }
        }
        Y::Sequence(items) => items.iter_mut().for_each(redact_yaml),
        Y::Tagged(t) => redact_yaml(&mut t.value),
        _ => {}
    }
}

/// Line by line: `key = value`, `key: value`, `key value` (collectd, INI, env files).
fn redact_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (content, ending) = match line.strip_suffix('\n') {
            Some(c) => (c, "\n"),
            None => (line, ""),
        };
        out.push_str(&redact_line(content));
        out.push_str(ending);
    }
    out
}

fn redact_line(line: &str) -> String {
    let indent_len = line.len() - line.trim_start().len();
    let rest = &line[indent_len..];
    let key_end = rest
        .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
        .unwrap_or(rest.len());
    let key = rest[..key_end].trim_matches(|c| c == '"' || c == '\'' || c == '-');
    if key_end == rest.len() || key.is_empty() || !is_secret_key(key) {
        return line.to_owned();
    }
    let after = &rest[key_end..];
    let sep_len = after
        .find(|c: char| !(c == '=' || c == ':' || c.is_whitespace()))
        .unwrap_or(after.len());
    if sep_len == after.len() {
        // `password:` with the value on the next lines: nothing on this line to hide.
        return line.to_owned();
    }
    format!(
        "{}{}{}",
        &line[..indent_len + key_end],
        &after[..sep_len],
        REDACTED
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        for k in [
            "password",
            "DB_PASSWORD",
            "api_key",
            "token",
            "clientSecret",
            "credentials",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["endpoint", "level", "name"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn yaml_is_redacted_at_every_depth() {
        let m = ConfigMap::single(
            "otel.yaml",
            ConfigFile::new(
                "text/yaml",
                "exporters:\n  otlp:\n    endpoint: x:4317\n    headers:\n      api_key: s3cr3t\n  auth:\n    token: abc\n",
            ),
        );
        let r = redact_map(&m);
        let body = r.files["otel.yaml"].text().unwrap_or_default().to_owned();
        assert!(!body.contains("s3cr3t") && !body.contains("abc"), "{body}");
        assert!(body.contains("x:4317"), "{body}");
        assert!(body.contains(REDACTED));
    }

    #[test]
    fn json_and_text_are_redacted() {
        let m = ConfigMap::new()
            .with_file(
                "c.json",
                ConfigFile::new("application/json", r#"{"db":{"password":"pw","host":"h"}}"#),
            )
            .with_file(
                "collectd.conf",
                ConfigFile::new(
                    "text/plain",
                    "Hostname \"h\"\n  Password \"pw2\"\nSECRET_TOKEN=pw3\nkey:\n",
                ),
            );
        let r = redact_map(&m);
        let j = r.files["c.json"].text().unwrap_or_default().to_owned();
        assert!(!j.contains("\"pw\"") && j.contains("\"h\""), "{j}");
        let t = r.files["collectd.conf"]
            .text()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            t,
            "Hostname \"h\"\n  Password <redacted>\nSECRET_TOKEN=<redacted>\nkey:\n"
        );
    }

    #[test]
    fn broken_yaml_falls_back_to_lines() {
        let m = ConfigMap::single(
            "x.yaml",
            ConfigFile::new("text/yaml", "a: [1\npassword: pw\n"),
        );
        let r = redact_map(&m);
        assert_eq!(
            r.files["x.yaml"].text().unwrap_or_default(),
            "a: [1\npassword: <redacted>\n"
        );
    }
}
