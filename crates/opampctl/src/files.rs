//! Reading config files from the command line into the API's `files` object: the
//! `PATH[:NAME]` syntax, content types guessed from extensions, binary bodies as base64.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::Error;

/// The content type opampctl gives a file by its extension: `.yaml`/`.yml` →
/// `text/yaml`, `.json` → `application/json`, anything else `text/plain`.
///
/// ```
/// use opampctl::guess_content_type;
///
/// assert_eq!(guess_content_type("otel.yaml"), "text/yaml");
/// assert_eq!(guess_content_type("/etc/app/CONFIG.YML"), "text/yaml");
/// assert_eq!(guess_content_type("agent.json"), "application/json");
/// assert_eq!(guess_content_type("collectd.conf"), "text/plain");
/// ```
pub fn guess_content_type(name: impl AsRef<Path>) -> &'static str {
    let ext = name
        .as_ref()
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("yaml" | "yml") => "text/yaml",
        Some("json") => "application/json",
        _ => "text/plain",
    }
}

/// One `--file` argument: where to read, and the name inside the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileArg {
    pub(crate) path: PathBuf,
    pub(crate) name: String,
}

/// `PATH` or `PATH:NAME`. A path that exists as typed wins over the split, so a file
/// whose name holds a colon still works.
pub(crate) fn parse_file_arg(arg: &str) -> Result<FileArg, Error> {
    let whole = Path::new(arg);
    let (path, name) = match arg.rsplit_once(':') {
        Some((path, name)) if !whole.exists() && !path.is_empty() => {
            (PathBuf::from(path), name.to_owned())
        }
        _ => {
            let name = whole
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--file {arg:?}: no file name to use in the config; write PATH:NAME"
                    ))
                })?;
            (whole.to_owned(), name)
        }
    };
    Ok(FileArg { path, name })
}

/// Reads the files into `{"name": {"content_type", "body"}}`.
pub(crate) fn read_files(args: &[String], content_type: Option<&str>) -> Result<Value, Error> {
    let mut files = Map::new();
    for arg in args {
        let f = parse_file_arg(arg)?;
        if files.contains_key(&f.name) {
            return Err(Error::Usage(format!(
                "two files are named {:?} in the config: rename one with PATH:NAME",
                f.name
            )));
        }
        let bytes = std::fs::read(&f.path).map_err(|source| Error::File {
            path: f.path.clone(),
            source,
        })?;
        let ct = match content_type {
            Some(ct) => ct.to_owned(),
            None => match guess_content_type(&f.path) {
                "text/plain" => guess_content_type(&f.name),
                ct => ct,
            }
            .to_owned(),
        };
        let body = match String::from_utf8(bytes) {
            Ok(text) => Value::String(text),
            Err(e) => json!({ "base64": base64(e.as_bytes()) }),
        };
        files.insert(f.name, json!({ "content_type": ct, "body": body }));
    }
    Ok(Value::Object(files))
}

/// Standard base64 with padding (RFC 4648 §4), for binary file bodies.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn file_args_take_an_optional_name_in_the_config() {
        assert_eq!(
            parse_file_arg("/nonexistent/dir/otel.yaml").unwrap(),
            FileArg {
                path: "/nonexistent/dir/otel.yaml".into(),
                name: "otel.yaml".into()
            }
        );
        assert_eq!(
            parse_file_arg("/nonexistent/x.tmp:collector.yaml").unwrap(),
            FileArg {
                path: "/nonexistent/x.tmp".into(),
                name: "collector.yaml".into()
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a:b.conf");
        std::fs::write(&odd, "x").unwrap();
        let got = parse_file_arg(odd.to_str().unwrap()).unwrap();
        assert_eq!(got.path, odd);
        assert_eq!(got.name, "a:b.conf");
    }

    #[test]
    fn files_are_read_with_guessed_or_given_content_types() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("otel.yaml");
        std::fs::write(&yaml, "a: 1\n").unwrap();
        let tmp = dir.path().join("upload.tmp");
        std::fs::write(&tmp, [0xffu8, 0x00]).unwrap();
        let files = read_files(
            &[
                yaml.to_str().unwrap().to_owned(),
                format!("{}:extra.json", tmp.display()),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            files,
            json!({
                "otel.yaml": {"content_type": "text/yaml", "body": "a: 1\n"},
                "extra.json": {"content_type": "application/json", "body": {"base64": "/wA="}},
            })
        );
        let forced =
            read_files(&[yaml.to_str().unwrap().to_owned()], Some("text/x-custom")).unwrap();
        assert_eq!(forced["otel.yaml"]["content_type"], "text/x-custom");
        let missing = read_files(&["/nonexistent/nope.yaml".to_owned()], None).unwrap_err();
        assert_eq!(missing.exit_code(), crate::error::EXIT_USAGE);
        let twice = read_files(
            &[
                yaml.to_str().unwrap().to_owned(),
                yaml.to_str().unwrap().to_owned(),
            ],
            None,
        )
        .unwrap_err();
        assert!(twice.to_string().contains("two files"), "{twice}");
    }
}
