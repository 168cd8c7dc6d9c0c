//! Assignments, groups, labels, restart, summary and tokens.

use serde_json::{Map, Value, json};

use crate::cli::{AssignmentsCommand, GroupsCommand, LabelsCommand, TokensCommand};
use crate::client::Api;
use crate::error::Error;
use crate::output::{Printer, Table, cell, note, pairs, text, time};

use super::agents::resolve_uid;
use super::configs::{target_text, version_text};

pub(crate) async fn assignments(
    api: &Api,
    p: &Printer,
    cmd: AssignmentsCommand,
) -> Result<(), Error> {
    match cmd {
        AssignmentsCommand::List => {
            let answer = api.get(&["assignments"]).await?;
            p.emit(&answer, || {
                let mut t = Table::new(["ID", "CONFIG", "VERSION", "TARGET", "CREATED", "AUTHOR"]);
                for a in answer
                    .get("assignments")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let target = match a.get("agent").and_then(Value::as_str) {
                        Some(uid) => format!("agent {}", p.uid(uid)),
                        None => target_text(a),
                    };
                    t.row([
                        text(a, "id"),
                        text(a, "config"),
                        version_text(a),
                        target,
                        time(a, "created_at"),
                        text(a, "author"),
                    ]);
                }
                if t.is_empty() {
                    note("no assignments: push a config with `opampctl assign NAME --selector S`");
                    String::new()
                } else {
                    t.render()
                }
            })
        }
        AssignmentsCommand::Show { id } => {
            let a = api.get(&["assignments", &id.to_string()]).await?;
            p.emit(&a, || {
                format!(
                    "assignment {}: {} ({}) to {}, set {} by {}\n",
                    text(&a, "id"),
                    text(&a, "config"),
                    version_text(&a),
                    target_text(&a),
                    time(&a, "created_at"),
                    text(&a, "author")
                )
            })
        }
        AssignmentsCommand::Delete { id } => {
            let answer = api.delete(&["assignments", &id.to_string()]).await?;
            p.emit(&answer, || format!("deleted assignment {id}\n"))
        }
    }
}

fn group_line(g: &Value) -> String {
    format!(
        "group {}: {}{}\n",
        text(g, "name"),
        text(g, "selector"),
        match text(g, "description").as_str() {
            "-" => String::new(),
            d => format!(" ({d})"),
        }
    )
}

pub(crate) async fn groups(api: &Api, p: &Printer, cmd: GroupsCommand) -> Result<(), Error> {
    match cmd {
        GroupsCommand::List => {
            let answer = api.get(&["groups"]).await?;
            p.emit(&answer, || {
                let mut t = Table::new(["NAME", "SELECTOR", "DESCRIPTION", "UPDATED"]);
                for g in answer
                    .get("groups")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    t.row([
                        text(g, "name"),
                        text(g, "selector"),
                        text(g, "description"),
                        time(g, "updated_at"),
                    ]);
                }
                if t.is_empty() {
                    note("no groups: create one with `opampctl groups create NAME --selector S`");
                    String::new()
                } else {
                    t.render()
                }
            })
        }
        GroupsCommand::Show { name } => {
            let g = api.get(&["groups", &name]).await?;
            p.emit(&g, || group_line(&g))
        }
        GroupsCommand::Create {
            name,
            selector,
            description,
        } => {
            let mut body = json!({ "name": name, "selector": selector });
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            let g = api.post(&["groups"], &body).await?;
            p.emit(&g, || format!("created {}", group_line(&g)))
        }
        GroupsCommand::Update {
            name,
            selector,
            description,
        } => {
            let mut body = json!({ "selector": selector });
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            let g = api.put(&["groups", &name], &body).await?;
            p.emit(&g, || format!("updated {}", group_line(&g)))
        }
        GroupsCommand::Delete { name } => {
            let answer = api.delete(&["groups", &name]).await?;
            p.emit(&answer, || format!("deleted group {name}\n"))
        }
    }
}

/// `key=value` → (key, value); the key must be non-empty.
fn parse_label(arg: &str) -> Result<(String, String), Error> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(Error::Usage(format!(
            "{arg:?} is not KEY=VALUE (to remove a label: `opampctl labels remove UID KEY`)"
        ))),
    }
}

pub(crate) async fn labels(api: &Api, p: &Printer, cmd: LabelsCommand) -> Result<(), Error> {
    let (uid, body) = match cmd {
        LabelsCommand::Set { uid, labels } => {
            let mut body = Map::new();
            for l in &labels {
                let (k, v) = parse_label(l)?;
                body.insert(k, Value::String(v));
            }
            (uid, body)
        }
        LabelsCommand::Remove { uid, keys } => {
            let body = keys.into_iter().map(|k| (k, Value::Null)).collect();
            (uid, body)
        }
        LabelsCommand::List { uid } => {
            let uid = resolve_uid(api, &uid).await?;
            let a = api.get(&["agents", &uid]).await?;
            let view = json!({
                "labels": a.get("labels").cloned().unwrap_or(Value::Null),
                "operator_labels": a.get("operator_labels").cloned().unwrap_or(Value::Null),
            });
            return p.emit(&view, || {
                let ops = a.get("operator_labels");
                let mut t = Table::new(["KEY", "VALUE", "SOURCE"]);
                for (k, v) in a
                    .get("labels")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let source = if ops.and_then(|o| o.get(k)).is_some() {
                        "operator"
                    } else {
                        "description"
                    };
                    t.row([k.clone(), cell(v), source.to_owned()]);
                }
                t.render()
            });
        }
    };
    let uid = resolve_uid(api, &uid).await?;
    let answer = api
        .patch(&["agents", &uid, "labels"], &Value::Object(body))
        .await?;
    p.emit(&answer, || {
        format!(
            "operator labels of {}: {}\n",
            p.uid(&uid),
            pairs(answer.get("labels"))
        )
    })
}

pub(crate) async fn restart(api: &Api, p: &Printer, uid: &str) -> Result<(), Error> {
    let uid = resolve_uid(api, uid).await?;
    let answer = api.post(&["agents", &uid, "restart"], &json!({})).await?;
    p.emit(&answer, || {
        format!(
            "restart queued for agent {uid} (command {}): sent now over WebSocket, or with its next poll over HTTP\n",
            text(&answer, "id")
        )
    })
}

pub(crate) async fn summary(api: &Api, p: &Printer) -> Result<(), Error> {
    let s = api.get(&["summary"]).await?;
    p.emit(&s, || {
        let counts = |key: &str| -> String {
            match s.get(key).and_then(Value::as_object) {
                Some(m) if !m.is_empty() => m
                    .iter()
                    .map(|(k, v)| format!("{k} {}", cell(v)))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => "-".into(),
            }
        };
        format!(
            "agents      {}\nconnection  {}\ntransport   {}\nsync state  {}\nhealth      {}\n",
            text(&s, "total"),
            counts("by_connection"),
            counts("by_transport"),
            counts("by_sync_state"),
            counts("by_health"),
        )
    })
}

pub(crate) async fn tokens(api: &Api, p: &Printer, cmd: TokensCommand) -> Result<(), Error> {
    match cmd {
        TokensCommand::List => {
            let answer = api.get(&["tokens"]).await?;
            p.emit(&answer, || {
                let mut t = Table::new(["ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"]);
                for k in answer
                    .get("tokens")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    t.row([
                        text(k, "id"),
                        text(k, "name"),
                        text(k, "role"),
                        time(k, "created_at"),
                        time(k, "last_used_at"),
                        time(k, "revoked_at"),
                    ]);
                }
                t.render()
            })
        }
        TokensCommand::Create { name, role } => {
            let answer = api
                .post(&["tokens"], &json!({ "name": name, "role": role }))
                .await?;
            p.emit(&answer, || {
                note("the secret is shown only now: store it (export OPAMP_TOKEN=...)");
                format!("{}\n", text(&answer, "secret"))
            })
        }
        TokensCommand::Revoke { id } => {
            let answer = api.delete(&["tokens", &id.to_string()]).await?;
            p.emit(&answer, || format!("revoked token {id}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_as_key_equals_value() {
        assert_eq!(
            parse_label("env=prod").unwrap(),
            ("env".into(), "prod".into())
        );
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(
            parse_label("empty=").unwrap(),
            ("empty".into(), String::new())
        );
        let e = parse_label("env").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        assert!(parse_label("=x").is_err());
    }
}
