//! `/`: the fleet at a glance.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use opamp_store::{Agent, Timestamp};
use serde::Deserialize;

use super::{Nav, Ui, UiResult, auth, chart, fragment, page, query};
use crate::{Fleet, SyncState};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OverviewQuery {
    fragment: Option<String>,
}

/// Counts shown on the overview.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) total: u64,
    pub(crate) connected: u64,
    pub(crate) healthy: u64,
    pub(crate) unhealthy: u64,
    pub(crate) sync: BTreeMap<&'static str, u64>,
    /// (service.name, service.version) → (agents, connected).
    pub(crate) types: BTreeMap<(String, String), (u64, u64)>,
}

pub(crate) fn attr<'a>(a: &'a Agent, key: &str) -> Option<&'a serde_json::Value> {
    a.description
        .identifying_attributes
        .get(key)
        .or_else(|| a.description.non_identifying_attributes.get(key))
}

pub(crate) fn attr_text(a: &Agent, key: &str) -> String {
    attr(a, key).map(super::json_text).unwrap_or_default()
}

/// Counts the agents.
pub(crate) fn count(fleet: &Fleet, agents: &[Agent]) -> Counts {
    let mut c = Counts::default();
    for s in SyncState::ALL {
        c.sync.insert(s.as_str(), 0);
    }
    for a in agents {
        c.total += 1;
        c.connected += u64::from(a.connected);
        match super::healthy(a.health.as_ref()) {
            Some(true) => c.healthy += 1,
            Some(false) => c.unhealthy += 1,
            None => {}
        }
        let (_, state) = fleet.view_of(a);
        *c.sync.entry(state.as_str()).or_default() += 1;
        let key = (
            attr_text(a, "service.name"),
            attr_text(a, "service.version"),
        );
        let e = c.types.entry(key).or_default();
        e.0 += 1;
        e.1 += u64::from(a.connected);
    }
    c
}

fn stat(label: &str, value: u64, href: &str, class: &str) -> Markup {
    html! {
        li class={ "stat " (class) } {
            a href=(href) {
                span.value { (value) }
                span.name { (label) }
            }
        }
    }
}

/// The overview's live region.
pub(crate) fn body(c: &Counts, history: &[(Timestamp, u64)], now: Timestamp) -> Markup {
    let unknown = c.total - c.healthy - c.unhealthy;
    html! {
        div #overview data-live="overview" {
            section aria-labelledby="h-conn" {
                h2 #h-conn { "Connection" }
                ul.stats {
                    (stat("agents", c.total, "/agents", ""))
                    (stat("connected", c.connected, &format!("/agents{}", query(&[("connected", "true")])), "ok"))
                    (stat("disconnected", c.total - c.connected, &format!("/agents{}", query(&[("connected", "false")])), "off"))
                }
            }
            section aria-labelledby="h-health" {
                h2 #h-health { "Health" }
                ul.stats {
                    (stat("healthy", c.healthy, &format!("/agents{}", query(&[("health", "healthy")])), "ok"))
                    (stat("unhealthy", c.unhealthy, &format!("/agents{}", query(&[("health", "unhealthy")])), "bad"))
                    (stat("unknown", unknown, &format!("/agents{}", query(&[("health", "unknown")])), "off"))
                }
            }
            section aria-labelledby="h-sync" {
                h2 #h-sync { "Config sync" }
                ul.stats {
                    @for s in SyncState::ALL {
                        (stat(&s.as_str().replace('_', " "), c.sync.get(s.as_str()).copied().unwrap_or(0),
                            &format!("/agents{}", query(&[("sync", s.as_str())])), &format!("sync-{}", s.as_str())))
                    }
                }
            }
            section aria-labelledby="h-chart" {
                h2 #h-chart { "Connected agents, last hour" }
                (chart::svg(history, now, c.connected))
                p.hint { "Sampled every 30 s by this server replica since it started (each replica keeps its own history in memory)." }
            }
            section aria-labelledby="h-types" {
                h2 #h-types { "Agents by type and version" }
                @if c.types.is_empty() {
                    p.empty { "No agent has connected yet." }
                } @else {
                    div.table-wrap {
                        table {
                            caption.sr-only { "Agents by service.name and service.version" }
                            thead { tr { th scope="col" { "Type (service.name)" } th scope="col" { "Version" } th scope="col" .num { "Agents" } th scope="col" .num { "Connected" } } }
                            tbody {
                                @for ((name, version), (n, conn)) in &c.types {
                                    tr {
                                        td {
                                            @if name.is_empty() { span.muted { "(none)" } }
                                            @else { a href={ "/agents" (query(&[("selector", &format!("service.name={name}"))])) } { (name) } }
                                        }
                                        td { @if version.is_empty() { span.muted { "(none)" } } @else { (version) } }
                                        td.num { (n) }
                                        td.num { (conn) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /`.
pub(crate) async fn page_handler(
    ui: &Ui,
    headers: &HeaderMap,
    q: OverviewQuery,
) -> UiResult<Response> {
    let session = auth::session(&ui.fleet, headers, "/").await?;
    let agents = ui.snapshot.agents(&ui.fleet).await?;
    let counts = count(&ui.fleet, &agents);
    let now = Timestamp::now();
    let body = body(&counts, &ui.history.samples(), now);
    if q.fragment.as_deref() == Some("overview") {
        return Ok(fragment(body));
    }
    Ok(page(
        &session,
        Nav::Overview,
        "Overview",
        html! {
            h1 { "Fleet overview" }
            (body)
        },
    ))
}

/// `GET /` (axum handler).
pub(crate) async fn show(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> UiResult<Response> {
    page_handler(&ui, &headers, q).await
}
