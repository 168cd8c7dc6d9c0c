//! `/configs`: configs with rollout bars; one config's versions, files and assignments;
//! the side-by-side diff of two versions; the editor of a new version.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use opamp_config::{ConfigFile, ConfigMap, FileChange, FileDiff};
use opamp_store::{AssignmentTarget, PageRequest, Role, Timestamp};
use serde::Deserialize;

use super::agents::parse_version;
use super::auth::{self, Session};
use super::{
    Nav, Ui, UiError, UiResult, csrf_field, encode, fragment, notice, page, query, see_other, time,
};
use crate::SyncState;
use crate::api::ApiJson;
use crate::api::types::{AssignmentRequest, CreateConfigRequest};

/// Agents that should run a config, by sync state.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rollout {
    pub(crate) in_sync: u64,
    pub(crate) pending: u64,
    pub(crate) failed: u64,
}

impl Rollout {
    fn total(&self) -> u64 {
        self.in_sync + self.pending + self.failed
    }
}

/// Rollouts of every config (from one pass over the agents).
pub(crate) async fn rollouts(ui: &Ui) -> UiResult<HashMap<String, Rollout>> {
    let fleet = &ui.fleet;
    let agents = ui.snapshot.agents(fleet).await?;
    let mut out: HashMap<String, Rollout> = HashMap::new();
    for a in agents.iter() {
        let (desired, state) = fleet.view_of(a);
        let Some(d) = desired else { continue };
        let r = out.entry(d.config.clone()).or_default();
        match state {
            SyncState::InSync => r.in_sync += 1,
            SyncState::Failed | SyncState::Drifted => r.failed += 1,
            _ => r.pending += 1,
        }
    }
    Ok(out)
}

/// A rollout bar: proportional segments, each with its count written out.
pub(crate) fn rollout_bar(r: &Rollout) -> Markup {
    let total = r.total();
    let pct = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    let label = format!(
        "{} in sync, {} pending, {} failed of {total} agents",
        r.in_sync, r.pending, r.failed
    );
    html! {
        div.rollout {
            @if total == 0 {
                span.muted { "no agent targeted" }
            } @else {
                svg.bar role="img" aria-label=(label) width="100%" height="14" {
                    title { (label) }
                    @let in_sync = pct(r.in_sync);
                    @let pending = pct(r.pending);
                    rect.seg.sync-in_sync x="0%" y="0" height="14" width={ (format!("{in_sync:.2}")) "%" } {}
                    rect.seg.sync-pending x={ (format!("{in_sync:.2}")) "%" } y="0" height="14" width={ (format!("{pending:.2}")) "%" } {}
                    rect.seg.sync-failed x={ (format!("{:.2}", in_sync + pending)) "%" } y="0" height="14" width={ (format!("{:.2}", pct(r.failed))) "%" } {}
                }
                p.legend {
                    span.k.sync-in_sync { (r.in_sync) " in sync" } " · "
                    span.k.sync-pending { (r.pending) " pending" } " · "
                    span.k.sync-failed { (r.failed) " failed" }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    fragment: Option<String>,
    /// A config name to create: redirects to its editor.
    create: Option<String>,
}

fn config_table(
    configs: &[opamp_store::Config],
    rollouts: &HashMap<String, Rollout>,
    now: Timestamp,
) -> Markup {
    html! {
        div #configs-table data-live="configs-table" {
            @if configs.is_empty() {
                p.empty { "No config yet." }
            } @else {
                div.table-wrap {
                    table {
                        caption.sr-only { "Configs" }
                        thead { tr { th scope="col" { "Config" } th scope="col" .num { "Latest version" } th scope="col" { "Rollout" } th scope="col" { "Created" } } }
                        tbody {
                            @for c in configs {
                                tr {
                                    td { a href={ "/configs/" (encode(&c.name)) } { (c.name) }
                                        @if !c.description.is_empty() { br; span.muted { (c.description) } } }
                                    td.num { (c.latest_version) }
                                    td.rollout-cell { (rollout_bar(&rollouts.get(&c.name).copied().unwrap_or_default())) }
                                    td { (time(c.created_at, now)) " by " (c.created_by) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /configs`.
pub(crate) async fn list(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> UiResult<Response> {
    let session = auth::session(&ui.fleet, &headers, "/configs").await?;
    if let Some(name) = q.create.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        return Ok(see_other(&format!("/configs/{}/new", encode(name))));
    }
    let configs = ui
        .fleet
        .store()
        .list_configs(PageRequest::first(1000))
        .await?
        .items;
    let rollouts = rollouts(&ui).await?;
    let table = config_table(&configs, &rollouts, Timestamp::now());
    if q.fragment.as_deref() == Some("configs-table") {
        return Ok(fragment(table));
    }
    Ok(page(
        &session,
        Nav::Configs,
        "Configs",
        html! {
            h1 { "Configs" }
            (table)
            @if session.can(Role::Operator) {
                form.row.card method="get" action="/configs" {
                    div.field {
                        label for="new-name" { "New config name" }
                        input #new-name type="text" name="create" required pattern="[A-Za-z0-9._-]+" placeholder="checkout-collector";
                        p.hint { "Letters, digits, " code { "." } ", " code { "_" } " and " code { "-" } "." }
                    }
                    button type="submit" { "Create…" }
                }
            }
        },
    ))
}

// ---------------------------------------------------------------------------------------
// One config

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DetailQuery {
    fragment: Option<String>,
    done: Option<String>,
}

/// Inputs and error of the assign form, shown again after an error.
#[derive(Debug, Default)]
pub(crate) struct AssignState {
    error: Option<String>,
    kind: String,
    target: String,
    version: String,
}

fn target_text(t: &AssignmentTarget) -> Markup {
    match t {
        AssignmentTarget::Group(g) => html! { "group " strong { (g) } },
        AssignmentTarget::Selector(s) => html! { "selector " code { (s) } },
        AssignmentTarget::Agent(uid) => {
            html! { "agent " a href={ "/agents/" (uid) } { code { (uid) } } }
        }
    }
}

async fn render_detail(
    ui: &Ui,
    session: &Session,
    name: &str,
    q: &DetailQuery,
    assign: AssignState,
) -> UiResult<Response> {
    let fleet = &ui.fleet;
    let config = match fleet.store().get_config(name).await {
        Ok(c) => c,
        Err(e) if e.is_not_found() => {
            return Err(UiError::NotFound(format!("no config named {name:?}")));
        }
        Err(e) => return Err(e.into()),
    };
    let rollout = rollouts(ui).await?.get(name).copied().unwrap_or_default();
    let rollout_region = html! {
        div #config-rollout data-live="config-rollout" { (rollout_bar(&rollout)) }
    };
    if q.fragment.as_deref() == Some("config-rollout") {
        return Ok(fragment(rollout_region));
    }
    let now = Timestamp::now();
    let versions = fleet
        .store()
        .list_config_versions(name, PageRequest::first(100))
        .await?
        .items;
    let latest = versions.first();
    let assignments: Vec<_> = fleet
        .store()
        .list_assignments()
        .await?
        .into_iter()
        .filter(|a| a.config == name)
        .collect();
    let groups = fleet.store().list_groups().await?;
    let operator = session.can(Role::Operator);
    let enc = encode(name);
    let kind = if assign.kind.is_empty() {
        "selector"
    } else {
        assign.kind.as_str()
    };
    let body = html! {
        p.breadcrumb { a href="/configs" { "Configs" } " / " }
        h1 { (config.name) }
        (notice(q.done.as_deref()))
        @if !config.description.is_empty() { p { (config.description) } }
        section aria-labelledby="h-rollout" {
            h2 #h-rollout { "Rollout" }
            (rollout_region)
        }
        section aria-labelledby="h-versions" {
            h2 #h-versions { "Versions" }
            @if operator { p { a.button href={ "/configs/" (enc) "/new" } { "New version…" } } }
            @if versions.is_empty() {
                p.empty { "No version yet." }
            } @else {
                form method="get" action={ "/configs/" (enc) "/diff" } {
                    div.table-wrap {
                        table {
                            caption.sr-only { "Versions, newest first; choose two to compare" }
                            thead { tr { th scope="col" { "Version" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Created" } th scope="col" { "Message" } th scope="col" { "Hash" } } }
                            tbody {
                                @for (i, v) in versions.iter().enumerate() {
                                    tr {
                                        td { "v" (v.version) @if v.rollback_of.is_some() { " " span.badge.info { "rollback" } } }
                                        td { input type="radio" name="from" value=(v.version) checked[i == 1 || versions.len() == 1] aria-label={ "compare from version " (v.version) }; }
                                        td { input type="radio" name="to" value=(v.version) checked[i == 0] aria-label={ "compare to version " (v.version) }; }
                                        td { (time(v.created_at, now)) " by " (v.author) }
                                        td { (v.message) }
                                        td { code.hash title=(v.hash.to_string()) { (v.hash.to_string().get(..12).unwrap_or_default()) } }
                                    }
                                }
                            }
                        }
                    }
                    @if versions.len() > 1 { button type="submit" { "Compare selected versions" } }
                }
            }
        }
        @if let Some(v) = latest {
            section aria-labelledby="h-files" {
                h2 #h-files { "Files of v" (v.version) }
                @for (fname, file) in &v.config_map.files {
                    figure.file {
                        figcaption { code { (fname) } " " span.muted { (file.content_type) } }
                        pre tabindex="0" { code { (file.text().unwrap_or("(binary content)")) } }
                    }
                }
            }
        }
        section aria-labelledby="h-assign" {
            h2 #h-assign { "Assignments" }
            @if assignments.is_empty() {
                p.empty { "Not assigned." }
            } @else {
                ul {
                    @for a in &assignments {
                        li { "#" (a.id) ": " (target_text(&a.target)) ", "
                            @match a.version { Some(v) => { "version " (v) }, None => { "latest version" } }
                            " — " (time(a.created_at, now)) " by " (a.author) }
                    }
                }
            }
            @if operator && !versions.is_empty() {
                form.card method="post" action={ "/configs/" (enc) "/assign" } {
                    (csrf_field(session))
                    h3 { "Assign" }
                    fieldset {
                        legend { "Target" }
                        @for (value, label) in [("selector", "Label selector"), ("group", "Group"), ("agent", "Agent instance uid")] {
                            label.radio { input type="radio" name="kind" value=(value) checked[kind == value]; " " (label) }
                        }
                    }
                    div.field {
                        label for="assign-target" { "Selector, group name or agent uid" }
                        input #assign-target type="text" name="target" required value=(assign.target) list="groups"
                            aria-invalid=[assign.error.as_ref().map(|_| "true")] aria-describedby=[assign.error.as_ref().map(|_| "assign-error")];
                        datalist #groups { @for g in &groups { option value=(g.name) { (g.selector) } } }
                    }
                    div.field {
                        label for="assign-version" { "Version" }
                        input #assign-version type="text" inputmode="numeric" name="version" value=(assign.version) placeholder="latest";
                    }
                    @if let Some(e) = &assign.error { p.field-error #assign-error role="alert" { (e) } }
                    button type="submit" { "Assign" }
                }
            }
        }
    };
    let mut r = page(session, Nav::Configs, name, body);
    if assign.error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

/// `GET /configs/{name}`.
pub(crate) async fn detail(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<DetailQuery>,
) -> UiResult<Response> {
    let session =
        auth::session(&ui.fleet, &headers, &format!("/configs/{}", encode(&name))).await?;
    render_detail(&ui, &session, &name, &q, AssignState::default()).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssignForm {
    csrf: Option<String>,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    version: String,
}

/// `POST /configs/{name}/assign`.
pub(crate) async fn assign(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(name): Path<String>,
    axum::Form(f): axum::Form<AssignForm>,
) -> UiResult<Response> {
    let path = format!("/configs/{}", encode(&name));
    let session = auth::post_session(&ui.fleet, &headers, &path, f.csrf.as_deref()).await?;
    super::require(&session, Role::Operator)?;
    let target = f.target.trim().to_owned();
    let mut req = AssignmentRequest {
        config: name.clone(),
        version: None,
        selector: None,
        group: None,
        agent: None,
    };
    match f.kind.as_str() {
        "group" => req.group = Some(target.clone()),
        "agent" => req.agent = Some(target.clone()),
        _ => req.selector = Some(target.clone()),
    }
    let result: Result<(), String> = match parse_version(&f.version) {
        Err(m) => Err(m),
        Ok(v) => {
            req.version = v;
            match crate::api::assignments::create_assignment(
                State(ui.fleet.clone()),
                session.api_headers(),
                ApiJson(req),
            )
            .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if matches!(
                        e.status,
                        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::CONFLICT
                    ) =>
                {
                    Err(e.message)
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    match result {
        Ok(()) => Ok(see_other(&format!(
            "{path}{}",
            query(&[(
                "done",
                "Assignment saved: matching agents get the config now."
            )])
        ))),
        Err(m) => {
            let state = AssignState {
                error: Some(m),
                kind: f.kind,
                target: f.target,
                version: f.version,
            };
            render_detail(&ui, &session, &name, &DetailQuery::default(), state).await
        }
    }
}

// ---------------------------------------------------------------------------------------
// Diff

#[derive(Debug, Deserialize)]
pub(crate) struct DiffQuery {
    from: Option<u64>,
    to: Option<u64>,
}

/// One row of a side-by-side diff: old side, new side.
type Side<'a> = Option<(usize, &'a str)>;

type Row<'a> = (&'static str, Side<'a>, Side<'a>);

fn flush<'a>(
    rows: &mut Vec<Row<'a>>,
    dels: &mut Vec<(usize, &'a str)>,
    ins: &mut Vec<(usize, &'a str)>,
) {
    let n = dels.len().max(ins.len());
    for i in 0..n {
        let (d, a) = (dels.get(i).copied(), ins.get(i).copied());
        let tag = match (d, a) {
            (Some(_), Some(_)) => "changed",
            (Some(_), None) => "removed",
            _ => "added",
        };
        rows.push((tag, d, a));
    }
    dels.clear();
    ins.clear();
}

/// Aligns a file's lines in two columns: runs of removed lines face the added lines that
/// replace them.
fn side_by_side(f: &FileDiff) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    let mut dels: Vec<(usize, &str)> = Vec::new();
    let mut ins: Vec<(usize, &str)> = Vec::new();
    for l in &f.lines {
        match l.tag {
            "delete" => dels.push((l.old_line.unwrap_or(0), l.text.as_str())),
            "insert" => ins.push((l.new_line.unwrap_or(0), l.text.as_str())),
            _ => {
                flush(&mut rows, &mut dels, &mut ins);
                rows.push((
                    "same",
                    Some((l.old_line.unwrap_or(0), l.text.as_str())),
                    Some((l.new_line.unwrap_or(0), l.text.as_str())),
                ));
            }
        }
    }
    flush(&mut rows, &mut dels, &mut ins);
    rows
}

fn diff_file(f: &FileDiff, from: u64, to: u64) -> Markup {
    let change = match f.change {
        FileChange::Added => "added",
        FileChange::Removed => "removed",
        _ => "changed",
    };
    html! {
        section.diff-file {
            h2 { code { (f.name) } " " span class={ "badge change-" (change) } { (change) } }
            @if let Some((a, b)) = &f.content_type { p { "Content type: " code { (a) } " → " code { (b) } } }
            @if !f.keys.is_empty() {
                details {
                    summary { (f.keys.len()) " key change(s)" }
                    ul.keys {
                        @for k in &f.keys {
                            li { (serde_json::to_value(k).map(|v| {
                                let c = v.get("change").and_then(|c| c.as_str()).unwrap_or("").to_owned();
                                let p = v.get("path").and_then(|c| c.as_str()).unwrap_or("").to_owned();
                                format!("{c}: {p}")
                            }).unwrap_or_default()) }
                        }
                    }
                }
            }
            div.table-wrap {
                table.diff {
                    caption.sr-only { "Lines of " (f.name) ": version " (from) " on the left, version " (to) " on the right. Removed lines are marked −, added lines +." }
                    colgroup { col.ln; col.mark; col.code; col.ln; col.mark; col.code; }
                    thead { tr { th scope="col" { span.sr-only { "Line" } } th scope="col" { span.sr-only { "Change" } } th scope="col" { "v" (from) } th scope="col" { span.sr-only { "Line" } } th scope="col" { span.sr-only { "Change" } } th scope="col" { "v" (to) } } }
                    tbody {
                        @for (tag, old, new) in side_by_side(f) {
                            tr class=(tag) {
                                @match old {
                                    Some((n, text)) => {
                                        td.ln { (n) }
                                        td.mark { @if tag != "same" { span aria-hidden="true" { "−" } span.sr-only { "removed" } } }
                                        td.code.old[tag != "same"] { code { (text) } }
                                    }
                                    None => { td.ln {} td.mark {} td.code.empty {} }
                                }
                                @match new {
                                    Some((n, text)) => {
                                        td.ln { (n) }
                                        td.mark { @if tag != "same" { span aria-hidden="true" { "+" } span.sr-only { "added" } } }
                                        td.code.new[tag != "same"] { code { (text) } }
                                    }
                                    None => { td.ln {} td.mark {} td.code.empty {} }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /configs/{name}/diff?from=&to=`.
pub(crate) async fn diff(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(name): Path<String>,
    super::super::api::ApiQuery(q): super::super::api::ApiQuery<DiffQuery>,
) -> UiResult<Response> {
    let enc = encode(&name);
    let session = auth::session(&ui.fleet, &headers, &format!("/configs/{enc}/diff")).await?;
    let store = ui.fleet.store();
    let config = match store.get_config(&name).await {
        Ok(c) => c,
        Err(e) if e.is_not_found() => {
            return Err(UiError::NotFound(format!("no config named {name:?}")));
        }
        Err(e) => return Err(e.into()),
    };
    let latest = config.latest_version;
    let name_ref = name.as_str();
    let to_v = q.to.unwrap_or(latest);
    let from_v = q.from.unwrap_or(to_v.saturating_sub(1).max(1));
    let get = |v: u64| async move {
        match store.get_config_version(name_ref, v).await {
            Ok(x) => Ok(x),
            Err(e) if e.is_not_found() => Err(UiError::NotFound(format!(
                "config {name_ref:?} has no version {v}"
            ))),
            Err(e) => Err(UiError::from(e)),
        }
    };
    let from = get(from_v).await?;
    let to = get(to_v).await?;
    let d = opamp_config::diff(&from.config_map, &to.config_map);
    let options: Vec<u64> = (1..=latest).rev().collect();
    let body = html! {
        p.breadcrumb { a href="/configs" { "Configs" } " / " a href={ "/configs/" (enc) } { (config.name) } " / " }
        h1 { "Diff of " (config.name) ": v" (from_v) " → v" (to_v) }
        form.row method="get" action={ "/configs/" (enc) "/diff" } {
            div.field {
                label for="from" { "From" }
                select #from name="from" { @for v in &options { option value=(v) selected[*v == from_v] { "v" (v) } } }
            }
            div.field {
                label for="to" { "To" }
                select #to name="to" { @for v in &options { option value=(v) selected[*v == to_v] { "v" (v) } } }
            }
            button type="submit" { "Compare" }
        }
        p.legend { span.k.removed { "− removed" } " · " span.k.added { "+ added" } " · changed lines are side by side" }
        @if d.is_empty() {
            p.empty { "The two versions have the same files." }
        }
        @for f in &d.files { (diff_file(f, from_v, to_v)) }
    };
    Ok(page(
        &session,
        Nav::Configs,
        &format!("Diff of {name}"),
        body,
    ))
}

// ---------------------------------------------------------------------------------------
// Editor

/// One file in the editor.
#[derive(Debug, Default, Clone)]
struct EditFile {
    name: String,
    content_type: String,
    body: String,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Editor {
    files: Vec<EditFile>,
    message: String,
    error: Option<String>,
}

fn editor_page(session: &Session, name: &str, exists: bool, e: &Editor) -> Response {
    let enc = encode(name);
    let body = html! {
        p.breadcrumb { a href="/configs" { "Configs" } " / "
            @if exists { a href={ "/configs/" (enc) } { (name) } " / " } }
        h1 { @if exists { "New version of " (name) } @else { "New config " (name) } }
        @if let Some(err) = &e.error { p.error-message role="alert" #form-error { (err) } }
        form.editor method="post" action={ "/configs/" (enc) "/new" } {
            (csrf_field(session))
            @for (i, f) in e.files.iter().enumerate() {
                fieldset.file {
                    legend { @if f.name.is_empty() { "Add a file" } @else { "File " code { (f.name) } } }
                    div.row {
                        div.field {
                            label for={ "file-" (i) "-name" } { "File name" }
                            input id={ "file-" (i) "-name" } type="text" name={ "file-" (i) "-name" } value=(f.name);
                        }
                        div.field {
                            label for={ "file-" (i) "-type" } { "Content type" }
                            input id={ "file-" (i) "-type" } type="text" name={ "file-" (i) "-type" } value=(f.content_type) placeholder="text/yaml" list="content-types";
                        }
                    }
                    div.field {
                        label for={ "file-" (i) "-body" } { "Content" }
                        textarea id={ "file-" (i) "-body" } name={ "file-" (i) "-body" } rows=(if f.name.is_empty() && f.body.is_empty() { 5 } else { 14 }) spellcheck="false"
                            aria-invalid=[f.error.as_ref().map(|_| "true")]
                            aria-describedby=[f.error.as_ref().map(|_| format!("file-{i}-error"))] { (f.body) }
                        @if let Some(err) = &f.error {
                            p.field-error id={ "file-" (i) "-error" } role="alert" { (err) }
                        }
                    }
                }
            }
            datalist #content-types { option value="text/yaml" {} option value="application/json" {} option value="text/plain" {} }
            div.field {
                label for="message" { "Message" }
                input #message type="text" name="message" value=(e.message) placeholder="what changed and why";
            }
            p.hint { "YAML and JSON files (by content type or file name) must parse. Leave a file name empty to drop the file." }
            button type="submit" { "Create version" }
        }
    };
    let mut r = page(session, Nav::Configs, &format!("Edit {name}"), body);
    if e.error.is_some() || e.files.iter().any(|f| f.error.is_some()) {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    r
}

/// `GET /configs/{name}/new`: the editor, filled with the latest version.
pub(crate) async fn editor(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> UiResult<Response> {
    let session = auth::session(
        &ui.fleet,
        &headers,
        &format!("/configs/{}/new", encode(&name)),
    )
    .await?;
    super::require(&session, Role::Operator)?;
    let store = ui.fleet.store();
    let (exists, latest) = match store.get_config(&name).await {
        Ok(c) if c.latest_version > 0 => (true, Some(store.latest_config_version(&name).await?)),
        Ok(_) => (true, None),
        Err(e) if e.is_not_found() => (false, None),
        Err(e) => return Err(e.into()),
    };
    let mut files: Vec<EditFile> = latest
        .map(|v| {
            v.config_map
                .files
                .iter()
                .map(|(n, f)| EditFile {
                    name: n.clone(),
                    content_type: f.content_type.clone(),
                    body: f.text().unwrap_or_default().to_owned(),
                    error: None,
                })
                .collect()
        })
        .unwrap_or_default();
    if files.is_empty() {
        files.push(EditFile {
            name: "config.yaml".into(),
            content_type: "text/yaml".into(),
            ..EditFile::default()
        });
    }
    files.push(EditFile::default());
    Ok(editor_page(
        &session,
        &name,
        exists,
        &Editor {
            files,
            ..Editor::default()
        },
    ))
}

/// `POST /configs/{name}/new`: validates and creates the version, or shows the editor again
/// with the user's text and the errors next to the fields.
pub(crate) async fn create_version(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(name): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> UiResult<Response> {
    let enc = encode(&name);
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    let session =
        auth::post_session(&ui.fleet, &headers, &format!("/configs/{enc}/new"), csrf).await?;
    super::require(&session, Role::Operator)?;
    let exists = match ui.fleet.store().get_config(&name).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e.into()),
    };
    // Collect file-N-{name,type,body} in index order.
    let mut by_index: BTreeMap<usize, EditFile> = BTreeMap::new();
    let mut message = String::new();
    for (k, v) in fields {
        if k == "message" {
            message = v;
            continue;
        }
        let Some(rest) = k.strip_prefix("file-") else {
            continue;
        };
        let Some((i, part)) = rest.split_once('-') else {
            continue;
        };
        let Ok(i) = i.parse::<usize>() else { continue };
        if i > 1000 {
            continue;
        }
        let f = by_index.entry(i).or_default();
        match part {
            "name" => f.name = v.trim().to_owned(),
            "type" => f.content_type = v.trim().to_owned(),
            // Browsers send textarea line breaks as CRLF.
            "body" => f.body = v.replace("\r\n", "\n"),
            _ => {}
        }
    }
    let mut files: Vec<EditFile> = by_index
        .into_values()
        .filter(|f| !(f.name.is_empty() && f.body.trim().is_empty()))
        .collect();
    let mut editor = Editor {
        message: message.clone(),
        ..Editor::default()
    };
    let mut seen = std::collections::HashSet::new();
    for f in &mut files {
        if f.name.is_empty() {
            f.error = Some("give this file a name (or empty its content to drop it)".into());
        } else if !seen.insert(f.name.clone()) {
            f.error = Some(format!("another file is named {:?}", f.name));
        }
    }
    if files.is_empty() {
        editor.error = Some("a config needs at least one file".into());
    }
    let mut map = ConfigMap::new();
    for f in &files {
        if f.error.is_none() {
            let ct = if f.content_type.is_empty() {
                "text/plain".to_owned()
            } else {
                f.content_type.clone()
            };
            map = map.with_file(
                f.name.clone(),
                ConfigFile::new(ct, f.body.clone().into_bytes()),
            );
        }
    }
    if let Err(errors) = map.validate() {
        for e in errors {
            if let opamp_config::Error::Parse { file, .. } = &e
                && let Some(f) = files.iter_mut().find(|f| &f.name == file)
            {
                f.error = Some(e.to_string());
            } else {
                editor.error = Some(e.to_string());
            }
        }
    }
    let invalid = editor.error.is_some() || files.iter().any(|f| f.error.is_some());
    if !invalid {
        let r = crate::api::configs::create_config(
            State(ui.fleet.clone()),
            session.api_headers(),
            ApiJson(CreateConfigRequest {
                name: name.clone(),
                files: map,
                message: Some(message).filter(|m| !m.trim().is_empty()),
            }),
        )
        .await;
        match r {
            Ok(resp) => {
                let done = if resp.status() == StatusCode::CREATED {
                    "New version created."
                } else {
                    "Same files as the latest version: nothing created."
                };
                return Ok(see_other(&format!(
                    "/configs/{enc}{}",
                    query(&[("done", done)])
                )));
            }
            Err(e)
                if e.status.is_client_error()
                    && e.status != StatusCode::UNAUTHORIZED
                    && e.status != StatusCode::FORBIDDEN =>
            {
                editor.error = Some(e.message);
            }
            Err(e) => return Err(e.into()),
        }
    }
    files.push(EditFile::default());
    editor.files = files;
    Ok(editor_page(&session, &name, exists, &editor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_pairs_removed_lines_with_the_added_lines_that_replace_them() {
        let old = ConfigMap::new().with_file("a.txt", ConfigFile::new("text/plain", "a\nb\nc\n"));
        let new =
            ConfigMap::new().with_file("a.txt", ConfigFile::new("text/plain", "a\nB\nc\nd\n"));
        let d = opamp_config::diff(&old, &new);
        let rows = side_by_side(&d.files[0]);
        let tags: Vec<&str> = rows.iter().map(|r| r.0).collect();
        assert_eq!(tags, ["same", "changed", "same", "added"]);
        assert_eq!(rows[1].1, Some((2, "b")));
        assert_eq!(rows[1].2, Some((2, "B")));
        assert_eq!(rows[3].1, None);
        assert_eq!(rows[3].2, Some((4, "d")));
    }

    #[test]
    fn rollout_bar_writes_the_counts_out() {
        let html = rollout_bar(&Rollout {
            in_sync: 3,
            pending: 1,
            failed: 0,
        })
        .into_string();
        assert!(html.contains("3 in sync"), "{html}");
        assert!(html.contains("1 pending"));
        assert!(html.contains("0 failed"));
        assert!(html.contains(r#"width="75.00%""#), "{html}");
        let empty = rollout_bar(&Rollout::default()).into_string();
        assert!(empty.contains("no agent targeted"));
    }
}
