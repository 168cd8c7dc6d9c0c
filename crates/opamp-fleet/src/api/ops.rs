//! Fleet summary, the server-sent event stream, the audit log, the OpenAPI document,
//! `/metrics`, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use opamp_store::{AuditFilter, PageRequest, Role};
use tokio::sync::broadcast::error::RecvError;
use utoipa::OpenApi as _;

use super::types::{EntryList, ErrorBody, EventsQuery, HealthView, PageQuery, SummaryView};
use super::{ApiDoc, ApiQuery, ApiResult, authorize, json};
use crate::{Fleet, SyncState};

/// Counts of agents by connection state, transport, sync state and health.
#[utoipa::path(
    get, path = "/api/v1/summary", tag = "fleet",
    responses((status = 200, body = SummaryView), (status = 401, body = ErrorBody))
)]
pub(crate) async fn summary(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
) -> ApiResult<Json<SummaryView>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let mut s = SummaryView::default();
    for k in ["connected", "disconnected"] {
        s.by_connection.insert(k.into(), 0);
    }
    for k in ["ws", "http"] {
        s.by_transport.insert(k.into(), 0);
    }
    for st in SyncState::ALL {
        s.by_sync_state.insert(st.as_str().into(), 0);
    }
    for k in ["healthy", "unhealthy", "unknown"] {
        s.by_health.insert(k.into(), 0);
    }
    for a in &fleet.all_agents().await? {
        s.total += 1;
        let conn = if a.connected {
            "connected"
        } else {
            "disconnected"
        };
        *s.by_connection.entry(conn.into()).or_default() += 1;
        let t = a.transport.map_or("unknown", |t| t.as_str());
        *s.by_transport.entry(t.into()).or_default() += 1;
        let (_, state) = fleet.view_of(a);
        *s.by_sync_state.entry(state.as_str().into()).or_default() += 1;
        let health = match a
            .health
            .as_ref()
            .and_then(|h| h.get("healthy"))
            .and_then(|h| h.as_bool())
        {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "unknown",
        };
        *s.by_health.entry(health.into()).or_default() += 1;
    }
    Ok(Json(s))
}

/// A server-sent event stream of changes: `agent_connected`, `agent_disconnected`,
/// `agent_updated` (from this replica's agents), and, from every replica,
/// `config_version_added`, `config_deleted`, `assignment_changed`, `assignment_deleted`,
/// `group_changed`, `group_deleted`, `labels_changed`, `agent_deleted`, `command_queued`,
/// `resync` (reload everything). Each event's `data` is a JSON object with a `type`.
/// The token may be passed as `?access_token=` instead of the header (for `EventSource`).
#[utoipa::path(
    get, path = "/api/v1/events", tag = "fleet",
    params(EventsQuery),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(fleet): State<Fleet>,
    mut headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // Browsers' EventSource cannot send headers: accept the token as a query parameter
    // here (and only here).
    if !headers.contains_key(header::AUTHORIZATION)
        && let Some(token) = q.access_token.filter(|t| !t.is_empty())
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    authorize(&fleet, &headers, Role::Viewer).await?;
    let rx = fleet.subscribe_events();
    let shutdown = fleet.inner.shutdown.clone();
    let stream = futures_util::stream::unfold((rx, shutdown), |(mut rx, shutdown)| async move {
        let received = tokio::select! {
            () = shutdown.cancelled() => return None,
            r = rx.recv() => r,
        };
        let event = match received {
            Ok(ev) => Event::default()
                .event(ev.kind.clone())
                .data(ev.data.to_string()),
            // Missed events: tell the client to reload.
            Err(RecvError::Lagged(_)) => Event::default()
                .event("resync")
                .data(r#"{"type":"resync"}"#),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, shutdown)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The audit log: every change an operator made, newest first.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "fleet",
    params(PageQuery),
    responses((status = 200, body = EntryList), (status = 401, body = ErrorBody))
)]
pub(crate) async fn audit(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<EntryList>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let p = fleet
        .store()
        .list_audit(
            AuditFilter::default(),
            PageRequest {
                cursor: q.cursor,
                limit: q.limit.unwrap_or(0),
            },
        )
        .await?;
    Ok(Json(EntryList {
        entries: p
            .items
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect(),
        next_cursor: p.next_cursor,
    }))
}

/// This document (OpenAPI 3, generated from the code). No token needed.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "ops", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json() -> Response {
    json(StatusCode::OK, ApiDoc::openapi())
}

/// Prometheus metrics (text format 0.0.4). No token needed.
#[utoipa::path(
    get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String))
)]
pub(crate) async fn metrics(State(fleet): State<Fleet>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        fleet.render_metrics(),
    )
        .into_response()
}

/// The process is up. No token needed.
#[utoipa::path(
    get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, body = HealthView))
)]
pub(crate) async fn healthz() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".into(),
        error: None,
    })
}

/// The store answers. No token needed.
#[utoipa::path(
    get, path = "/readyz", tag = "ops", security(()),
    responses((status = 200, body = HealthView), (status = 503, body = HealthView))
)]
pub(crate) async fn readyz(State(fleet): State<Fleet>) -> Response {
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        fleet.timed("ping", fleet.store().list_groups()),
    )
    .await;
    match probe {
        Ok(Ok(_)) => json(
            StatusCode::OK,
            HealthView {
                status: "ok".into(),
                error: None,
            },
        ),
        Ok(Err(e)) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            HealthView {
                status: "unavailable".into(),
                error: Some(e.to_string()),
            },
        ),
        Err(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            HealthView {
                status: "unavailable".into(),
                error: Some("the store did not answer within 5 s".into()),
            },
        ),
    }
}
