//! `opampctl configs ...` and `opampctl assign`: configs, versions, diffs, rollbacks,
//! assignments.

use serde_json::{Value, json};

use crate::cli::{ConfigsCommand, CreateArgs, PushArgs};
use crate::client::Api;
use crate::error::Error;
use crate::files::read_files;
use crate::output::{Printer, Table, cell, note, text, time, write_stdout};

use super::agents::{render_files, resolve_uid};

pub(crate) async fn run(api: &Api, p: &Printer, cmd: ConfigsCommand) -> Result<(), Error> {
    match cmd {
        ConfigsCommand::List => list(api, p).await,
        ConfigsCommand::Create(args) => create(api, p, args).await,
        ConfigsCommand::History { name } => history(api, p, &name).await,
        ConfigsCommand::Show {
            name,
            version,
            file,
        } => show(api, p, &name, version, file.as_deref()).await,
        ConfigsCommand::Diff { name, from, to } => diff(api, p, &name, from, to).await,
        ConfigsCommand::Rollback {
            name,
            version,
            message,
        } => rollback(api, p, &name, version, message).await,
        ConfigsCommand::Push(args) => push(api, p, args).await,
        ConfigsCommand::Delete { name } => {
            let answer = api.delete(&["configs", &name]).await?;
            p.emit(&answer, || {
                format!("deleted config {name} and its versions\n")
            })
        }
    }
}

async fn list(api: &Api, p: &Printer) -> Result<(), Error> {
    let answer = api
        .get_all(&["configs"], &[("limit", "1000".into())], "configs")
        .await?;
    p.emit(&answer, || {
        let mut t = Table::new(["NAME", "LATEST", "CREATED", "CREATED BY"]);
        for c in answer
            .get("configs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            t.row([
                text(c, "name"),
                text(c, "latest_version"),
                time(c, "created_at"),
                text(c, "created_by"),
            ]);
        }
        if t.is_empty() {
            note("no configs yet: create one with `opampctl configs create NAME --file PATH`");
            String::new()
        } else {
            t.render()
        }
    })
}

async fn create(api: &Api, p: &Printer, args: CreateArgs) -> Result<(), Error> {
    let files = read_files(&args.files, args.content_type.as_deref())?;
    let mut body = json!({ "name": args.name, "files": files });
    if let Some(m) = args.message {
        body["message"] = Value::String(m);
    }
    let answer = api.post(&["configs"], &body).await?;
    p.emit(&answer, || {
        let v = answer.get("version").unwrap_or(&Value::Null);
        if answer.get("created").and_then(Value::as_bool) == Some(false) {
            format!(
                "unchanged: {} version {} already has these files (hash {})\n",
                text(v, "config"),
                text(v, "version"),
                p.hash(&text(v, "hash"))
            )
        } else {
            format!(
                "created {} version {} (hash {})\n",
                text(v, "config"),
                text(v, "version"),
                p.hash(&text(v, "hash"))
            )
        }
    })
}

async fn history(api: &Api, p: &Printer, name: &str) -> Result<(), Error> {
    let answer = api
        .get_all(
            &["configs", name, "versions"],
            &[("limit", "1000".into())],
            "versions",
        )
        .await?;
    p.emit(&answer, || {
        let mut t = Table::new(["VERSION", "CREATED", "AUTHOR", "HASH", "MESSAGE"]);
        for v in answer
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut message = text(v, "message");
            if let Some(of) = v.get("rollback_of").filter(|x| !x.is_null()) {
                if message == "-" {
                    message = format!("rollback to version {}", cell(of));
                } else if !message.contains("rollback") {
                    message = format!("{message} (rollback to version {})", cell(of));
                }
            }
            t.row([
                text(v, "version"),
                time(v, "created_at"),
                text(v, "author"),
                p.hash(&text(v, "hash")),
                message,
            ]);
        }
        t.render()
    })
}

async fn show(
    api: &Api,
    p: &Printer,
    name: &str,
    version: Option<u64>,
    file: Option<&str>,
) -> Result<(), Error> {
    let answer = match version {
        Some(v) => {
            api.get(&["configs", name, "versions", &v.to_string()])
                .await?
        }
        None => api.get(&["configs", name]).await?,
    };
    // `GET /configs/{name}` nests the latest version; `.../versions/{n}` is the version.
    let v = match version {
        Some(_) => answer.clone(),
        None => answer.get("latest").cloned().unwrap_or(Value::Null),
    };
    if let Some(file) = file {
        let f = v
            .get("files")
            .and_then(|f| f.get(file))
            .ok_or_else(|| Error::Usage(format!("{name} has no file named {file:?}")))?;
        return match f.get("body") {
            Some(Value::String(body)) if matches!(p.output, crate::cli::Output::Table) => {
                write_stdout(body)
            }
            _ => p.emit(f, String::new),
        };
    }
    p.emit(&answer, || {
        if v.is_null() {
            return format!("config {name} has no version yet\n");
        }
        let mut out = format!(
            "config {} version {}\nhash     {}\ncreated  {} by {}\nmessage  {}\n",
            text(&v, "config"),
            text(&v, "version"),
            text(&v, "hash"),
            time(&v, "created_at"),
            text(&v, "author"),
            text(&v, "message"),
        );
        if let Some(of) = v.get("rollback_of").filter(|x| !x.is_null()) {
            out.push_str(&format!("restores version {}\n", cell(of)));
        }
        out.push_str("files:\n");
        if let Some(files) = v.get("files").and_then(Value::as_object) {
            out.push_str(&render_files(files));
        }
        out
    })
}

async fn diff(api: &Api, p: &Printer, name: &str, from: u64, to: Option<u64>) -> Result<(), Error> {
    let mut query = vec![("from", from.to_string())];
    if let Some(to) = to {
        query.push(("to", to.to_string()));
    }
    let answer = api.get_query(&["configs", name, "diff"], &query).await?;
    p.emit(&answer, || render_diff(p, &answer))
}

/// The diff for people: a line per changed file, its key changes, then its unified diff.
fn render_diff(p: &Printer, d: &Value) -> String {
    let mut out = String::new();
    let files: Vec<&Value> = d
        .get("diff")
        .and_then(|d| d.get("files"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let header = format!(
        "config {}: version {} → {}",
        text(d, "config"),
        text(d, "from"),
        text(d, "to")
    );
    out.push_str(&p.paint("1", &header));
    out.push('\n');
    if files.is_empty() {
        out.push_str("no differences: both versions have the same files\n");
        return out;
    }
    for f in files {
        let change = text(f, "change");
        let colour = match change.as_str() {
            "added" => "32",
            "removed" => "31",
            _ => "33",
        };
        out.push('\n');
        out.push_str(&p.paint(colour, &format!("{change} {}", text(f, "name"))));
        out.push('\n');
        if let Some([old, new]) = f
            .get("content_type")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            out.push_str(&format!("  content type: {} → {}\n", cell(old), cell(new)));
        }
        let keys: Vec<&Value> = f
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        if !keys.is_empty() {
            out.push_str("  keys:\n");
        }
        for k in keys {
            let path = text(k, "path");
            let json = |key: &str| k.get(key).map(Value::to_string).unwrap_or_default();
            let line = match text(k, "change").as_str() {
                "added" => p.paint("32", &format!("    + {path}: {}", json("new"))),
                "removed" => p.paint("31", &format!("    - {path}: {}", json("old"))),
                _ => p.paint(
                    "33",
                    &format!("    ~ {path}: {} → {}", json("old"), json("new")),
                ),
            };
            out.push_str(&line);
            out.push('\n');
        }
        if let Some(unified) = f.get("unified").and_then(Value::as_str) {
            for l in unified.lines() {
                let painted = if l.starts_with("+++") || l.starts_with("---") {
                    p.paint("1", l)
                } else if l.starts_with('+') {
                    p.paint("32", l)
                } else if l.starts_with('-') {
                    p.paint("31", l)
                } else if l.starts_with("@@") {
                    p.paint("36", l)
                } else {
                    l.to_owned()
                };
                out.push_str(&painted);
                out.push('\n');
            }
        }
    }
    out
}

async fn rollback(
    api: &Api,
    p: &Printer,
    name: &str,
    version: u64,
    message: Option<String>,
) -> Result<(), Error> {
    let mut body = json!({ "version": version });
    if let Some(m) = message {
        body["message"] = Value::String(m);
    }
    let answer = api.post(&["configs", name, "rollback"], &body).await?;
    p.emit(&answer, || {
        let v = answer.get("version").unwrap_or(&Value::Null);
        if answer.get("created").and_then(Value::as_bool) == Some(false) {
            format!(
                "unchanged: version {version} has the files of the latest version {} already\n",
                text(v, "version")
            )
        } else {
            format!(
                "rolled {name} back to version {version}: new version {} (hash {})\n",
                text(v, "version"),
                p.hash(&text(v, "hash"))
            )
        }
    })
}

/// `configs push` / `assign`: creates an assignment.
pub(crate) async fn push(api: &Api, p: &Printer, args: PushArgs) -> Result<(), Error> {
    let mut body = json!({ "config": args.name });
    if let Some(v) = args.version {
        body["version"] = json!(v);
    }
    if let Some(s) = args.selector {
        body["selector"] = Value::String(s);
    } else if let Some(g) = args.group {
        body["group"] = Value::String(g);
    } else if let Some(a) = args.agent {
        body["agent"] = Value::String(resolve_uid(api, &a).await?);
    }
    let answer = api.post(&["assignments"], &body).await?;
    p.emit(&answer, || {
        format!(
            "assigned {} ({}) to {}: assignment {}\n",
            text(&answer, "config"),
            version_text(&answer),
            target_text(&answer),
            text(&answer, "id")
        )
    })
}

/// `version N` or `latest`.
pub(crate) fn version_text(a: &Value) -> String {
    match a.get("version").filter(|v| !v.is_null()) {
        Some(v) => format!("version {}", cell(v)),
        None => "latest".into(),
    }
}

/// `selector env=prod`, `group web`, `agent <uid>`.
pub(crate) fn target_text(a: &Value) -> String {
    for key in ["selector", "group", "agent"] {
        if let Some(v) = a.get(key).filter(|v| !v.is_null()) {
            return format!("{key} {}", cell(v));
        }
    }
    "-".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Output;

    #[test]
    fn diffs_list_files_keys_and_coloured_lines() {
        let d = json!({
            "config": "web", "from": 1, "to": 2,
            "diff": {"files": [{
                "name": "otel.yaml", "change": "changed",
                "keys": [
                    {"change": "changed", "path": "a.b", "old": 1, "new": 2},
                    {"change": "added", "path": "c", "new": "x"}
                ],
                "lines": [],
                "unified": "--- a/otel.yaml\n+++ b/otel.yaml\n@@ -1 +1 @@\n-a: 1\n+a: 2\n"
            }]}
        });
        let plain = Printer {
            output: Output::Table,
            wide: false,
            color: false,
        };
        let text = render_diff(&plain, &d);
        assert!(text.contains("changed otel.yaml"), "{text}");
        assert!(text.contains("    ~ a.b: 1 → 2"), "{text}");
        assert!(text.contains("    + c: \"x\""), "{text}");
        assert!(text.contains("\n-a: 1\n+a: 2\n"), "{text}");
        assert!(!text.contains('\x1b'));
        let colour = Printer {
            color: true,
            ..plain
        };
        let text = render_diff(&colour, &d);
        assert!(text.contains("\x1b[32m+a: 2\x1b[0m"), "{text}");
        assert!(text.contains("\x1b[31m-a: 1\x1b[0m"), "{text}");
    }

    #[test]
    fn an_empty_diff_says_so() {
        let d = json!({"config": "web", "from": 1, "to": 1, "diff": {"files": []}});
        let p = Printer {
            output: Output::Table,
            wide: false,
            color: false,
        };
        assert!(render_diff(&p, &d).contains("no differences"));
    }
}
