//! `opampctl agents ...`, and the lookup of an agent by a shortened uid.

use serde_json::Value;

use crate::cli::{AgentsCommand, AgentsListArgs};
use crate::client::Api;
use crate::error::Error;
use crate::output::{Printer, Table, cell, note, pairs, text, time};

pub(crate) async fn run(api: &Api, p: &Printer, cmd: AgentsCommand) -> Result<(), Error> {
    match cmd {
        AgentsCommand::List(args) => list(api, p, args).await,
        AgentsCommand::Show { uid, reveal } => show(api, p, &uid, reveal).await,
        AgentsCommand::Events { uid, limit } => events(api, p, &uid, limit).await,
        AgentsCommand::Delete { uid } => {
            let uid = resolve_uid(api, &uid).await?;
            let answer = api.delete(&["agents", &uid]).await?;
            p.emit(&answer, || format!("forgot agent {uid}\n"))
        }
    }
}

async fn list(api: &Api, p: &Printer, args: AgentsListArgs) -> Result<(), Error> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(s) = args.selector {
        query.push(("selector", s));
    }
    if let Some(s) = args.sync_state {
        query.push(("sync_state", s));
    }
    if args.connected {
        query.push(("connected", "true".into()));
    }
    if args.disconnected {
        query.push(("connected", "false".into()));
    }
    if let Some(t) = args.transport {
        query.push(("transport", t));
    }
    if let Some(l) = args.limit {
        query.push(("limit", l.to_string()));
    }
    let answer = if args.all {
        api.get_all(&["agents"], &query, "agents").await?
    } else {
        if let Some(c) = args.cursor {
            query.push(("cursor", c));
        }
        api.get_query(&["agents"], &query).await?
    };
    let agents = answer
        .get("agents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let next = answer
        .get("next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    p.emit(&answer, || {
        let mut header = vec![
            "UID",
            "SERVICE",
            "VERSION",
            "CONN",
            "SYNC",
            "CONFIG",
            "HEALTH",
            "LAST SEEN",
        ];
        if p.wide {
            header.extend(["HOST", "LABELS"]);
        }
        let mut t = Table::new(header);
        for a in &agents {
            let ident = a.get("identifying_attributes").unwrap_or(&Value::Null);
            let non_ident = a.get("non_identifying_attributes").unwrap_or(&Value::Null);
            let mut row = vec![
                p.uid(&text(a, "instance_uid")),
                text(ident, "service.name"),
                text(ident, "service.version"),
                connection(a),
                text(a, "sync_state"),
                desired(a),
                health(a),
                time(a, "last_seen"),
            ];
            if p.wide {
                row.push(text(non_ident, "host.name"));
                row.push(pairs(a.get("labels")));
            }
            t.row(row);
        }
        if t.is_empty() {
            note("no agents match");
            String::new()
        } else {
            t.render()
        }
    })?;
    if let Some(c) = next {
        if matches!(p.output, crate::cli::Output::Table) {
            note(&format!(
                "more agents: add --all, or --cursor {c} for the next page"
            ));
        }
    }
    Ok(())
}

/// `ws`, `http`, or `no` when disconnected.
fn connection(a: &Value) -> String {
    if a.get("connected").and_then(Value::as_bool) == Some(true) {
        text(a, "transport")
    } else {
        "no".into()
    }
}

/// `name@vN` of the desired config, `-` when unmanaged.
fn desired(a: &Value) -> String {
    match a.get("desired_config") {
        Some(d) if d.is_object() => format!("{}@v{}", text(d, "config"), text(d, "version")),
        _ => "-".into(),
    }
}

fn health(a: &Value) -> String {
    match a
        .get("health")
        .and_then(|h| h.get("healthy"))
        .and_then(Value::as_bool)
    {
        Some(true) => "healthy".into(),
        Some(false) => "unhealthy".into(),
        None => "-".into(),
    }
}

async fn show(api: &Api, p: &Printer, uid: &str, reveal: bool) -> Result<(), Error> {
    let uid = resolve_uid(api, uid).await?;
    let query = if reveal {
        vec![("reveal", "true".to_owned())]
    } else {
        Vec::new()
    };
    let a = api.get_query(&["agents", &uid], &query).await?;
    p.emit(&a, || render_agent(&a))
}

fn render_agent(a: &Value) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
    let ident = a.get("identifying_attributes").unwrap_or(&Value::Null);
    line("instance uid", text(a, "instance_uid"));
    line(
        "service",
        format!(
            "{} {}",
            text(ident, "service.name"),
            text(ident, "service.version")
        ),
    );
    line(
        "connected",
        if a.get("connected").and_then(Value::as_bool) == Some(true) {
            format!("yes ({})", text(a, "transport"))
        } else {
            match text(a, "transport").as_str() {
                "-" => "no".to_owned(),
                t => format!("no (last over {t})"),
            }
        },
    );
    line("sync state", text(a, "sync_state"));
    line(
        "desired config",
        match a.get("desired_config") {
            Some(d) if d.is_object() => format!(
                "{} version {} (assignment {}, hash {})",
                text(d, "config"),
                text(d, "version"),
                text(d, "assignment_id"),
                text(d, "hash")
            ),
            _ => "none (unmanaged)".into(),
        },
    );
    line(
        "remote config",
        match a.get("remote_config_status") {
            Some(s) if s.is_object() => {
                let mut v = format!(
                    "{} (hash {})",
                    text(s, "status"),
                    text(s, "last_remote_config_hash")
                );
                let err = text(s, "error_message");
                if err != "-" {
                    v.push_str(&format!(": {err}"));
                }
                v
            }
            _ => "not reported".into(),
        },
    );
    line("effective hash", text(a, "effective_config_hash"));
    line(
        "health",
        match health(a).as_str() {
            "-" => "not reported".into(),
            h => h.to_owned(),
        },
    );
    let caps = a
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(cell).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "-".into());
    line("capabilities", caps);
    line("first seen", time(a, "first_seen"));
    line("last seen", time(a, "last_seen"));

    let section = |out: &mut String, title: &str, map: Option<&Value>, marks: Option<&Value>| {
        out.push_str(&format!("{title}:\n"));
        match map.and_then(Value::as_object) {
            Some(m) if !m.is_empty() => {
                for (k, v) in m {
                    let mark = if marks.and_then(|o| o.get(k)).is_some() {
                        "  (operator)"
                    } else {
                        ""
                    };
                    out.push_str(&format!("  {k} = {}{mark}\n", cell(v)));
                }
            }
            _ => out.push_str("  (none)\n"),
        }
    };
    section(
        &mut out,
        "identifying attributes",
        a.get("identifying_attributes"),
        None,
    );
    section(
        &mut out,
        "non-identifying attributes",
        a.get("non_identifying_attributes"),
        None,
    );
    section(
        &mut out,
        "labels",
        a.get("labels"),
        a.get("operator_labels"),
    );

    match a.get("effective_config").and_then(Value::as_object) {
        Some(files) => {
            let redacted =
                a.get("effective_config_redacted").and_then(Value::as_bool) == Some(true);
            out.push_str(if redacted {
                "effective config (secret-looking values redacted; --reveal shows them, admin role):\n"
            } else {
                "effective config:\n"
            });
            out.push_str(&render_files(files));
        }
        None => out.push_str("effective config: not reported\n"),
    }
    out
}

/// Config files, each under a `--- name (content type)` header, bodies indented.
pub(crate) fn render_files(files: &serde_json::Map<String, Value>) -> String {
    let mut out = String::new();
    if files.is_empty() {
        out.push_str("  (no files)\n");
    }
    for (name, f) in files {
        let shown = if name.is_empty() { "(unnamed)" } else { name };
        out.push_str(&format!("  --- {shown} ({})\n", text(f, "content_type")));
        match f.get("body") {
            Some(Value::String(body)) => {
                for l in body.lines() {
                    out.push_str(&format!("  {l}\n"));
                }
            }
            Some(other) => out.push_str(&format!("  (binary: {other})\n")),
            None => {}
        }
    }
    out
}

async fn events(api: &Api, p: &Printer, uid: &str, limit: u32) -> Result<(), Error> {
    let uid = resolve_uid(api, uid).await?;
    let answer = api
        .get_query(&["agents", &uid, "events"], &[("limit", limit.to_string())])
        .await?;
    p.emit(&answer, || {
        let mut t = Table::new(["TIME", "EVENT", "DETAILS"]);
        for e in answer
            .get("entries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let details = e
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| {
                            !matches!(k.as_str(), "id" | "instance_uid" | "at" | "kind")
                        })
                        .map(|(k, v)| format!("{k}={}", cell(v)))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            t.row([time(e, "at"), text(e, "kind"), details]);
        }
        if t.is_empty() {
            note("no events");
            String::new()
        } else {
            t.render()
        }
    })
}

/// A whole uid as typed, or the one agent whose uid (hex digits) starts or ends with `arg`.
pub(crate) async fn resolve_uid(api: &Api, arg: &str) -> Result<String, Error> {
    let arg = arg.trim();
    let hex: String = arg.chars().filter(|c| *c != '-').collect::<String>();
    if hex.len() == 32 || hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        // A whole uid, or something the server will explain better than we can.
        return Ok(arg.to_owned());
    }
    let needle = hex.to_ascii_lowercase();
    let all = api
        .get_all(&["agents"], &[("limit", "1000".into())], "agents")
        .await?;
    let matches: Vec<String> = all
        .get("agents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("instance_uid").and_then(Value::as_str))
        .filter(|uid| {
            let h: String = uid
                .chars()
                .filter(|c| *c != '-')
                .collect::<String>()
                .to_ascii_lowercase();
            h.starts_with(&needle) || h.ends_with(&needle)
        })
        .map(str::to_owned)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::AgentLookup(format!(
            "no agent uid starts or ends with {arg:?} (list agents with `opampctl agents list`)"
        ))),
        many => Err(Error::AgentLookup(format!(
            "{arg:?} matches {} agents ({}): give more digits",
            many.len(),
            many.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ))),
    }
}
