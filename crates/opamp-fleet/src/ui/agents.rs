//! `/agents` (filtered, sorted, paginated list) and `/agents/{uid}` (one agent, with its
//! actions: restart, assign a config, edit labels).

use std::cmp::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use opamp_proto::AgentCapabilities;
use opamp_store::{
    Agent, AgentEvent, AgentEventKind, PageRequest, RemoteConfigState, Role, Timestamp,
};
use serde::Deserialize;

use super::auth::{self, Session};
use super::overview::{attr, attr_text};
use super::{
    Nav, Ui, UiError, UiResult, connection_badge, csrf_field, encode, fragment, health_badge,
    healthy, json_text, notice, page, query, see_other, sync_badge, time,
};
use crate::SyncState;
use crate::api::types::{AssignmentRequest, LabelValue, capability_names, hex};
use crate::api::{ApiJson, ApiPath, ApiQuery};
use crate::selector::Selector;

// ---------------------------------------------------------------------------------------
// The list

/// Query of `/agents`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    /// A label selector.
    #[serde(default)]
    selector: String,
    /// Free text: uid, label keys and values.
    #[serde(default)]
    q: String,
    /// `true`, `false` or empty.
    #[serde(default)]
    connected: String,
    /// `healthy`, `unhealthy`, `unknown` or empty.
    #[serde(default)]
    health: String,
    /// A sync state or empty.
    #[serde(default)]
    sync: String,
    /// Sort column.
    #[serde(default)]
    sort: String,
    /// `asc` or `desc`.
    #[serde(default)]
    dir: String,
    /// Page number from 1.
    page: Option<usize>,
    /// Rows per page.
    per: Option<usize>,
    fragment: Option<String>,
}

const SORTS: [(&str, &str); 7] = [
    ("agent", "Agent"),
    ("version", "Version"),
    ("host", "Host"),
    ("connection", "Connection"),
    ("health", "Health"),
    ("sync", "Config"),
    ("last_seen", "Last seen"),
];

/// One row, with what sorting and rendering need.
struct Row<'a> {
    agent: &'a Agent,
    service: String,
    version: String,
    host: String,
    healthy: Option<bool>,
    sync: SyncState,
}

fn sync_rank(s: SyncState) -> u8 {
    match s {
        SyncState::Failed => 0,
        SyncState::Drifted => 1,
        SyncState::Pending => 2,
        SyncState::InSync => 3,
        _ => 4,
    }
}

fn compare(sort: &str, a: &Row<'_>, b: &Row<'_>) -> Ordering {
    let by_name = || {
        a.service
            .cmp(&b.service)
            .then_with(|| a.agent.instance_uid.cmp(&b.agent.instance_uid))
    };
    match sort {
        "version" => a.version.cmp(&b.version),
        "host" => a.host.cmp(&b.host),
        "connection" => b.agent.connected.cmp(&a.agent.connected),
        "health" => {
            let r = |h: Option<bool>| match h {
                Some(false) => 0,
                None => 1,
                Some(true) => 2,
            };
            r(a.healthy).cmp(&r(b.healthy))
        }
        "sync" => sync_rank(a.sync).cmp(&sync_rank(b.sync)),
        "last_seen" => b.agent.last_seen.cmp(&a.agent.last_seen),
        _ => Ordering::Equal,
    }
    .then_with(by_name)
}

fn matches_text(a: &Agent, labels: &std::collections::BTreeMap<String, String>, q: &str) -> bool {
    if q.is_empty() {
        return true;
    }
    let q = q.to_lowercase();
    a.instance_uid.to_string().contains(&q)
        || labels
            .iter()
            .any(|(k, v)| k.to_lowercase().contains(&q) || v.to_lowercase().contains(&q))
}

/// The filtered, sorted rows and the selector error, if any.
fn rows<'a>(ui: &Ui, agents: &'a [Agent], q: &ListQuery) -> (Vec<Row<'a>>, Option<String>) {
    let (selector, selector_error) = match Selector::parse(q.selector.trim()) {
        Ok(s) => (s, None),
        Err(e) => (Selector::everything(), Some(e.to_string())),
    };
    let connected = match q.connected.as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    let sync = SyncState::parse(&q.sync);
    let text = q.q.trim();
    let fleet = &ui.fleet;
    let mut out = Vec::with_capacity(agents.len());
    for agent in agents {
        if connected.is_some_and(|c| c != agent.connected) {
            continue;
        }
        let labels = agent.effective_labels();
        if !selector.matches(&labels) || !matches_text(agent, &labels, text) {
            continue;
        }
        let h = healthy(agent.health.as_ref());
        let health_ok = match q.health.as_str() {
            "healthy" => h == Some(true),
            "unhealthy" => h == Some(false),
            "unknown" => h.is_none(),
            _ => true,
        };
        if !health_ok {
            continue;
        }
        let (_, state) = fleet.view_of(agent);
        if sync.is_some_and(|s| s != state) {
            continue;
        }
        out.push(Row {
            service: attr_text(agent, "service.name"),
            version: attr_text(agent, "service.version"),
            host: attr_text(agent, "host.name"),
            healthy: h,
            sync: state,
            agent,
        });
    }
    let sort = if SORTS.iter().any(|(k, _)| *k == q.sort) {
        q.sort.as_str()
    } else {
        "agent"
    };
    out.sort_by(|a, b| compare(sort, a, b));
    if q.dir == "desc" {
        out.reverse();
    }
    (out, selector_error)
}

fn list_url(q: &ListQuery, sort: &str, dir: &str, page: usize) -> String {
    let page = if page > 1 {
        page.to_string()
    } else {
        String::new()
    };
    let per = q.per.map(|p| p.to_string()).unwrap_or_default();
    format!(
        "/agents{}",
        query(&[
            ("selector", &q.selector),
            ("q", &q.q),
            ("connected", &q.connected),
            ("health", &q.health),
            ("sync", &q.sync),
            ("sort", sort),
            ("dir", dir),
            ("page", &page),
            ("per", &per),
        ])
    )
}

fn remote_status_text(a: &Agent) -> Option<&'static str> {
    a.remote_config_status.as_ref().map(|s| s.status.as_str())
}

fn table(q: &ListQuery, rows: &[Row<'_>], now: Timestamp) -> Markup {
    let per = q.per.unwrap_or(50).clamp(1, 500);
    let pages = rows.len().div_ceil(per).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let start = (page - 1) * per;
    let shown = &rows[start.min(rows.len())..(start + per).min(rows.len())];
    let sort = if q.sort.is_empty() {
        "agent"
    } else {
        q.sort.as_str()
    };
    let desc = q.dir == "desc";
    html! {
        div #agents-table data-live="agents-table" {
            p.count role="status" {
                @if rows.is_empty() { "No agent matches." }
                @else { "Agents " (start + 1) "–" (start + shown.len()) " of " (rows.len()) }
            }
            div.table-wrap {
                table.agents {
                    caption.sr-only { "Agents; column headers sort the table" }
                    thead {
                        tr {
                            @for (key, label) in SORTS {
                                @let current = key == sort;
                                @let next_dir = if current && !desc { "desc" } else { "asc" };
                                th scope="col" aria-sort=[current.then_some(if desc { "descending" } else { "ascending" })] {
                                    a href=(list_url(q, key, next_dir, 1)) {
                                        (label)
                                        @if current { span aria-hidden="true" { @if desc { " ▼" } @else { " ▲" } } }
                                    }
                                }
                            }
                        }
                    }
                    tbody {
                        @for r in shown {
                            @let uid = r.agent.instance_uid.to_string();
                            tr data-uid=(uid) {
                                td {
                                    a href={ "/agents/" (uid) } {
                                        @if r.service.is_empty() { "(no service.name)" } @else { (r.service) }
                                    }
                                    br;
                                    code.uid { (uid) }
                                }
                                td { (r.version) }
                                td { (r.host) }
                                td {
                                    (connection_badge(r.agent.connected))
                                    @if let Some(t) = r.agent.transport { " " span.muted { (t.as_str()) } }
                                }
                                td { (health_badge(r.healthy)) }
                                td {
                                    (sync_badge(r.sync))
                                    @if let Some(s) = remote_status_text(r.agent) { " " span.rc-status { (s) } }
                                }
                                td { (time(r.agent.last_seen, now)) }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pager aria-label="Pages" {
                    @if page > 1 { a rel="prev" href=(list_url(q, &q.sort, &q.dir, page - 1)) { "← Previous" } }
                    span { "Page " (page) " of " (pages) }
                    @if page < pages { a rel="next" href=(list_url(q, &q.sort, &q.dir, page + 1)) { "Next →" } }
                }
            }
        }
    }
}

fn select(name: &str, label: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        div.field {
            label for={ "f-" (name) } { (label) }
            select id={ "f-" (name) } name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[*value == current] { (text) }
                }
            }
        }
    }
}

/// Renders the agents page (or its table fragment) for a query.
pub(crate) async fn render_list(ui: &Ui, session: &Session, q: &ListQuery) -> UiResult<Response> {
    let agents = ui.snapshot.agents(&ui.fleet).await?;
    let (rows, selector_error) = rows(ui, &agents, q);
    let now = Timestamp::now();
    let table = table(q, &rows, now);
    if q.fragment.as_deref() == Some("agents-table") {
        return Ok(fragment(table));
    }
    let mut sync_options = vec![("", "any")];
    sync_options.extend(SyncState::ALL.iter().map(|s| (s.as_str(), s.as_str())));
    let mut r = page(
        session,
        Nav::Agents,
        "Agents",
        html! {
            h1 { "Agents" }
            form.filters method="get" action="/agents" role="search" {
                div.field.wide {
                    label for="f-selector" { "Label selector" }
                    input #f-selector type="text" name="selector" value=(q.selector)
                        placeholder="service.name=checkout,env in (prod,staging)"
                        aria-describedby={ "f-selector-hint" @if selector_error.is_some() { " f-selector-error" } }
                        aria-invalid=[selector_error.as_ref().map(|_| "true")];
                    p.hint #f-selector-hint { "Kubernetes-style: " code { "k=v" } ", " code { "k!=v" } ", " code { "k in (a,b)" } ", " code { "k notin (a)" } ", " code { "k" } ", " code { "!k" } }
                    @if let Some(e) = &selector_error {
                        p.field-error #f-selector-error role="alert" { (e) }
                    }
                }
                div.field {
                    label for="f-q" { "Text" }
                    input #f-q type="search" name="q" value=(q.q) placeholder="uid, label or value";
                }
                (select("connected", "Connection", &q.connected, &[("", "any"), ("true", "connected"), ("false", "disconnected")]))
                (select("health", "Health", &q.health, &[("", "any"), ("healthy", "healthy"), ("unhealthy", "unhealthy"), ("unknown", "unknown")]))
                (select("sync", "Config sync", &q.sync, &sync_options))
                input type="hidden" name="sort" value=(q.sort);
                input type="hidden" name="dir" value=(q.dir);
                div.actions {
                    button type="submit" { "Filter" }
                    a href="/agents" { "Clear" }
                }
            }
            (table)
        },
    );
    if selector_error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

/// `GET /agents`.
pub(crate) async fn list(
    State(ui): State<Ui>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> UiResult<Response> {
    let session = auth::session(&ui.fleet, &headers, "/agents").await?;
    render_list(&ui, &session, &q).await
}

// ---------------------------------------------------------------------------------------
// One agent

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DetailQuery {
    #[serde(default)]
    reveal: bool,
    fragment: Option<String>,
    done: Option<String>,
}

/// Errors and inputs to show again next to the forms of the agent page.
#[derive(Debug, Default)]
pub(crate) struct FormState {
    restart_error: Option<String>,
    label_error: Option<String>,
    label_key: String,
    label_value: String,
    assign_error: Option<String>,
    assign_config: String,
    assign_version: String,
}

fn parse_uid(s: &str) -> UiResult<opamp_proto::InstanceUid> {
    s.parse()
        .map_err(|_| UiError::NotFound(format!("{s:?} is not an agent instance uid")))
}

fn attributes_table(caption: &str, attrs: &opamp_store::Attributes) -> Markup {
    html! {
        @if attrs.is_empty() {
            p.empty { "None reported." }
        } @else {
            div.table-wrap {
                table.kv {
                    caption.sr-only { (caption) }
                    tbody {
                        @for (k, v) in attrs {
                            tr { th scope="row" { (k) } td { (json_text(v)) } }
                        }
                    }
                }
            }
        }
    }
}

fn health_tree(name: &str, h: &serde_json::Value) -> Markup {
    let ok = h.get("healthy").and_then(serde_json::Value::as_bool);
    html! {
        li {
            span.component { (name) } " " (health_badge(ok))
            @if let Some(s) = h.get("status").and_then(|s| s.as_str()) { " " span.muted { (s) } }
            @if let Some(e) = h.get("last_error").and_then(|s| s.as_str()) {
                " " span.error-text { "last error: " (e) }
            }
            @if let Some(children) = h.get("component_health_map").and_then(|m| m.as_object()) {
                ul { @for (k, v) in children { (health_tree(k, v)) } }
            }
        }
    }
}

fn event_text(e: &AgentEvent) -> Markup {
    match &e.kind {
        AgentEventKind::Connected { transport } => html! { "connected over " (transport.as_str()) },
        AgentEventKind::Disconnected => html! { "disconnected" },
        AgentEventKind::ConfigApplied { hash } => {
            html! { "config applied " code.hash { (hash.get(..12).unwrap_or(hash)) } }
        }
        AgentEventKind::ConfigFailed { hash, error } => html! {
            "config failed " code.hash { (hash.get(..12).unwrap_or(hash)) } ": " span.error-text { (error) }
        },
        AgentEventKind::Restarted => html! { "restarted" },
        AgentEventKind::CommandSent { command } => html! { "command sent: " (command.as_str()) },
        AgentEventKind::Note { message } => html! { (message) },
        _ => html! { (e.kind.name()) },
    }
}

fn summary(
    a: &Agent,
    desired: Option<&crate::Resolved>,
    state: SyncState,
    now: Timestamp,
) -> Markup {
    let rc = a.remote_config_status.as_ref();
    html! {
        div #agent-summary data-live="agent-summary" {
            p.badges {
                (connection_badge(a.connected)) " "
                (health_badge(healthy(a.health.as_ref()))) " "
                (sync_badge(state))
            }
            dl.summary {
                dt { "Instance uid" } dd { code { (a.instance_uid) } }
                dt { "Transport" } dd { (a.transport.map_or("unknown", |t| t.as_str())) }
                dt { "First seen" } dd { (time(a.first_seen, now)) }
                dt { "Last seen" } dd { (time(a.last_seen, now)) }
                dt { "Desired config" }
                dd {
                    @match desired {
                        Some(d) => {
                            a href={ "/configs/" (encode(&d.config)) } { (d.config) } " version " (d.version)
                            " " code.hash title=(d.hash.to_string()) { (d.hash.to_string().get(..12).unwrap_or_default()) }
                        }
                        None => span.muted { "none (unmanaged)" },
                    }
                }
                dt { "Remote config status" }
                dd #remote-config-status {
                    @match rc {
                        Some(s) => {
                            span class={ "rc-status rc-" (s.status.as_str().to_lowercase()) } { (s.status.as_str()) }
                            @if !s.last_remote_config_hash.is_empty() {
                                " for " code.hash { (hex(&s.last_remote_config_hash).get(..12).unwrap_or_default()) }
                            }
                            @if s.status == RemoteConfigState::Failed || !s.error_message.is_empty() {
                                p.error-text role="note" { "Error: " (s.error_message) }
                            }
                        }
                        None => span.muted { "not reported" },
                    }
                }
                dt { "Effective config hash" }
                dd { @match a.effective_config_hash { Some(h) => code.hash { (h.to_string().get(..12).unwrap_or_default()) }, None => span.muted { "not reported" } } }
            }
        }
    }
}

fn timeline(events: &[AgentEvent], now: Timestamp) -> Markup {
    html! {
        div #agent-timeline data-live="agent-timeline" {
            @if events.is_empty() {
                p.empty { "No events yet." }
            } @else {
                ol.timeline {
                    @for e in events {
                        li class={ "ev-" (e.kind.name()) } { (time(e.at, now)) " — " (event_text(e)) }
                    }
                }
            }
        }
    }
}

fn packages(p: Option<&serde_json::Value>) -> Markup {
    let list = p
        .and_then(|p| p.get("packages"))
        .and_then(|p| p.as_object())
        .filter(|m| !m.is_empty());
    html! {
        @match list {
            None => p.empty { "No package statuses reported." },
            Some(list) => div.table-wrap { table {
                caption.sr-only { "Packages" }
                thead { tr { th scope="col" { "Package" } th scope="col" { "Has version" } th scope="col" { "Offered version" } th scope="col" { "Status" } th scope="col" { "Error" } } }
                tbody {
                    @for (name, s) in list {
                        tr {
                            td { (name) }
                            td { (s.get("agent_has_version").map(json_text).unwrap_or_default()) }
                            td { (s.get("server_offered_version").map(json_text).unwrap_or_default()) }
                            td { (s.get("status").map(json_text).unwrap_or_default()) }
                            td { (s.get("error_message").map(json_text).unwrap_or_default()) }
                        }
                    }
                }
            } },
        }
    }
}

/// Renders the agent page (or one of its fragments).
pub(crate) async fn render_detail(
    ui: &Ui,
    session: &Session,
    uid_text: &str,
    q: &DetailQuery,
    forms: FormState,
) -> UiResult<Response> {
    let uid = parse_uid(uid_text)?;
    if q.reveal && !session.can(Role::Admin) {
        return Err(UiError::Forbidden(
            "only the admin role may reveal secret-looking values".into(),
        ));
    }
    let fleet = &ui.fleet;
    let agent = match fleet.timed("get_agent", fleet.store().get_agent(uid)).await {
        Ok(a) => a,
        Err(e) if e.is_not_found() => {
            return Err(UiError::NotFound(format!(
                "no agent with instance uid {uid}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let (desired, state) = fleet.view_of(&agent);
    let now = Timestamp::now();
    match q.fragment.as_deref() {
        Some("agent-summary") => {
            return Ok(fragment(summary(&agent, desired.as_deref(), state, now)));
        }
        Some("agent-timeline") | Some(_) => {
            let events = fleet
                .store()
                .list_agent_events(uid, PageRequest::first(50))
                .await?;
            if q.fragment.as_deref() == Some("agent-timeline") {
                return Ok(fragment(timeline(&events.items, now)));
            }
        }
        None => {}
    }
    let events = fleet
        .store()
        .list_agent_events(uid, PageRequest::first(50))
        .await?;
    let configs = fleet
        .store()
        .list_configs(PageRequest::first(1000))
        .await?
        .items;
    let title = attr(&agent, "service.name")
        .map(json_text)
        .unwrap_or_else(|| uid.to_string());
    let effective = agent.effective_config.as_ref().map(|m| {
        if q.reveal {
            m.clone()
        } else {
            crate::redact::redact_map(m)
        }
    });
    let labels = agent.effective_labels();
    let operator = session.can(Role::Operator);
    let restartable = agent
        .capabilities
        .contains(AgentCapabilities::ACCEPTS_RESTART_COMMAND);
    let uid_s = uid.to_string();
    let body = html! {
        p.breadcrumb { a href="/agents" { "Agents" } " / " }
        h1 { (title) }
        (notice(q.done.as_deref()))
        (summary(&agent, desired.as_deref(), state, now))

        @if operator {
            section.actions-panel aria-labelledby="h-actions" {
                h2 #h-actions { "Actions" }
                div.action-forms {
                    form.card method="post" action={ "/agents/" (uid_s) "/restart" } {
                        (csrf_field(session))
                        h3 { "Restart" }
                        @if restartable {
                            p.hint { "Queues a restart command: delivered at once over WebSocket, with the next poll over HTTP." }
                        } @else {
                            p.hint { "This agent does not accept restart commands (no AcceptsRestartCommand capability)." }
                        }
                        @if let Some(e) = &forms.restart_error { p.field-error role="alert" { (e) } }
                        button type="submit" disabled[!restartable] { "Restart agent" }
                    }
                    form.card method="post" action={ "/agents/" (uid_s) "/assign" } {
                        (csrf_field(session))
                        h3 { "Assign a config" }
                        div.field {
                            label for="assign-config" { "Config" }
                            select #assign-config name="config" required aria-describedby=[forms.assign_error.as_ref().map(|_| "assign-error")] {
                                @if configs.is_empty() { option value="" { "(no config yet)" } }
                                @for c in &configs {
                                    option value=(c.name) selected[c.name == forms.assign_config || (forms.assign_config.is_empty() && desired.as_ref().is_some_and(|d| d.config == c.name))] {
                                        (c.name) " (latest v" (c.latest_version) ")"
                                    }
                                }
                            }
                        }
                        div.field {
                            label for="assign-version" { "Version" }
                            input #assign-version type="text" inputmode="numeric" name="version" value=(forms.assign_version) placeholder="latest";
                            p.hint { "A version number to pin, or empty to follow the latest." }
                        }
                        @if let Some(e) = &forms.assign_error { p.field-error #assign-error role="alert" { (e) } }
                        button type="submit" disabled[configs.is_empty()] { "Assign to this agent" }
                    }
                }
            }
        }

        section aria-labelledby="h-labels" {
            h2 #h-labels { "Labels" }
            p.hint { "What selectors match: description attributes, overlaid by operator labels (marked)." }
            div.table-wrap {
                table.kv {
                    caption.sr-only { "Labels" }
                    tbody {
                        @for (k, v) in &labels {
                            tr {
                                th scope="row" { (k) }
                                td { (v) }
                                td {
                                    @if agent.labels.contains_key(k) {
                                        span.badge.info { "operator" }
                                        @if operator {
                                            form.inline method="post" action={ "/agents/" (uid_s) "/labels" } {
                                                (csrf_field(session))
                                                input type="hidden" name="op" value="remove";
                                                input type="hidden" name="key" value=(k);
                                                button.link type="submit" aria-label={ "Remove label " (k) } { "Remove" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if operator {
                form.row method="post" action={ "/agents/" (uid_s) "/labels" } {
                    (csrf_field(session))
                    input type="hidden" name="op" value="set";
                    div.field {
                        label for="label-key" { "Key" }
                        input #label-key type="text" name="key" required value=(forms.label_key)
                            aria-invalid=[forms.label_error.as_ref().map(|_| "true")] aria-describedby=[forms.label_error.as_ref().map(|_| "label-error")];
                    }
                    div.field {
                        label for="label-value" { "Value" }
                        input #label-value type="text" name="value" value=(forms.label_value);
                    }
                    button type="submit" { "Set label" }
                    @if let Some(e) = &forms.label_error { p.field-error #label-error role="alert" { (e) } }
                }
            }
        }

        section aria-labelledby="h-attrs" {
            h2 #h-attrs { "Description" }
            h3 { "Identifying attributes" }
            (attributes_table("Identifying attributes", &agent.description.identifying_attributes))
            h3 { "Non-identifying attributes" }
            (attributes_table("Non-identifying attributes", &agent.description.non_identifying_attributes))
        }

        section aria-labelledby="h-caps" {
            h2 #h-caps { "Capabilities" }
            ul.tags { @for c in capability_names(agent.capabilities) { li { (c) } } }
            @if !agent.custom_capabilities.is_empty() {
                h3 { "Custom capabilities" }
                ul.tags { @for c in &agent.custom_capabilities { li { (c) } } }
            }
        }

        section aria-labelledby="h-health" {
            h2 #h-health { "Health" }
            @match &agent.health {
                Some(h) => ul.tree { (health_tree("agent", h)) },
                None => p.empty { "No health reported." },
            }
        }

        section aria-labelledby="h-eff" {
            h2 #h-eff { "Effective config" }
            @match &effective {
                None => p.empty { "Not reported." },
                Some(m) => {
                    @if q.reveal {
                        p.notice { "Secret-looking values are shown. " a href={ "/agents/" (uid_s) } { "Hide them" } }
                    } @else {
                        p.hint { "Values whose keys look secret (password, token, key, secret, credential) are redacted."
                            @if session.can(Role::Admin) { " " a href={ "/agents/" (uid_s) "?reveal=true" } { "Reveal (admin)" } } }
                    }
                    @for (name, file) in &m.files {
                        figure.file {
                            figcaption { code { (name) } " " span.muted { (file.content_type) } }
                            pre tabindex="0" { code { (file.text().unwrap_or("(binary content)")) } }
                        }
                    }
                }
            }
        }

        section aria-labelledby="h-pkg" {
            h2 #h-pkg { "Packages" }
            (packages(agent.package_statuses.as_ref()))
        }

        section aria-labelledby="h-timeline" {
            h2 #h-timeline { "Timeline" }
            (timeline(&events.items, now))
        }
    };
    let mut r = page(session, Nav::Agents, &title, body);
    if forms.restart_error.is_some() || forms.label_error.is_some() || forms.assign_error.is_some()
    {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

/// `GET /agents/{uid}`.
pub(crate) async fn detail(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    ApiQuery(q): ApiQuery<DetailQuery>,
) -> UiResult<Response> {
    let session = auth::session(&ui.fleet, &headers, &format!("/agents/{}", encode(&uid))).await?;
    render_detail(&ui, &session, &uid, &q, FormState::default()).await
}

/// An API error on a form: 401/403/404/5xx become pages, the rest a message by the form.
fn form_error(e: crate::api::ApiError) -> UiResult<String> {
    match e.status {
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
            Ok(e.message)
        }
        StatusCode::NOT_FOUND if e.code != "agent_not_found" => Ok(e.message),
        _ => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    csrf: Option<String>,
}

/// `POST /agents/{uid}/restart`.
pub(crate) async fn restart(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    axum::Form(f): axum::Form<CsrfOnly>,
) -> UiResult<Response> {
    let path = format!("/agents/{}", encode(&uid));
    let session = auth::post_session(&ui.fleet, &headers, &path, f.csrf.as_deref()).await?;
    super::require(&session, Role::Operator)?;
    let r = crate::api::agents::restart_agent(
        State(ui.fleet.clone()),
        session.api_headers(),
        ApiPath(uid.clone()),
    )
    .await;
    match r {
        Ok(_) => Ok(see_other(&format!(
            "{path}{}",
            query(&[("done", "Restart queued.")])
        ))),
        Err(e) => {
            let forms = FormState {
                restart_error: Some(form_error(e)?),
                ..FormState::default()
            };
            render_detail(&ui, &session, &uid, &DetailQuery::default(), forms).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LabelForm {
    csrf: Option<String>,
    op: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

/// `POST /agents/{uid}/labels`: `op=set` with `key` and `value`, or `op=remove` with `key`.
pub(crate) async fn labels(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    axum::Form(f): axum::Form<LabelForm>,
) -> UiResult<Response> {
    let path = format!("/agents/{}", encode(&uid));
    let session = auth::post_session(&ui.fleet, &headers, &path, f.csrf.as_deref()).await?;
    super::require(&session, Role::Operator)?;
    let key = f.key.trim().to_owned();
    let state = State(ui.fleet.clone());
    let (r, done) = if f.op == "remove" {
        let r = crate::api::agents::delete_label(
            state,
            session.api_headers(),
            ApiPath((uid.clone(), key.clone())),
        )
        .await;
        (r, format!("Label {key} removed."))
    } else {
        let r = crate::api::agents::put_label(
            state,
            session.api_headers(),
            ApiPath((uid.clone(), key.clone())),
            ApiJson(LabelValue {
                value: f.value.clone(),
            }),
        )
        .await;
        (r, format!("Label {key} set."))
    };
    match r {
        Ok(_) => Ok(see_other(&format!("{path}{}", query(&[("done", &done)])))),
        Err(e) => {
            let forms = FormState {
                label_error: Some(form_error(e)?),
                label_key: f.key,
                label_value: f.value,
                ..FormState::default()
            };
            render_detail(&ui, &session, &uid, &DetailQuery::default(), forms).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssignForm {
    csrf: Option<String>,
    #[serde(default)]
    config: String,
    #[serde(default)]
    version: String,
}

/// Parses a version field: empty means the latest.
pub(crate) fn parse_version(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("latest") {
        return Ok(None);
    }
    s.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .map(Some)
        .ok_or_else(|| {
            format!("version {s:?} is not a positive number (leave it empty for the latest)")
        })
}

/// `POST /agents/{uid}/assign`.
pub(crate) async fn assign(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    axum::Form(f): axum::Form<AssignForm>,
) -> UiResult<Response> {
    let path = format!("/agents/{}", encode(&uid));
    let session = auth::post_session(&ui.fleet, &headers, &path, f.csrf.as_deref()).await?;
    super::require(&session, Role::Operator)?;
    let result: Result<(), String> = match parse_version(&f.version) {
        Err(m) => Err(m),
        Ok(version) => match crate::api::assignments::create_assignment(
            State(ui.fleet.clone()),
            session.api_headers(),
            ApiJson(AssignmentRequest {
                config: f.config.clone(),
                version,
                selector: None,
                group: None,
                agent: Some(uid.clone()),
            }),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(form_error(e)?),
        },
    };
    match result {
        Ok(()) => {
            let done = format!("Config {} assigned to this agent.", f.config);
            Ok(see_other(&format!("{path}{}", query(&[("done", &done)]))))
        }
        Err(m) => {
            let forms = FormState {
                assign_error: Some(m),
                assign_config: f.config,
                assign_version: f.version,
                ..FormState::default()
            };
            render_detail(&ui, &session, &uid, &DetailQuery::default(), forms).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_fields_are_a_positive_number_or_empty_for_the_latest() {
        assert_eq!(parse_version(""), Ok(None));
        assert_eq!(parse_version(" latest "), Ok(None));
        assert_eq!(parse_version("3"), Ok(Some(3)));
        assert!(parse_version("0").is_err());
        assert!(parse_version("v2").is_err());
    }
}
