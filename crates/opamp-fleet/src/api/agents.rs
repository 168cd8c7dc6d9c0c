//! `/api/v1/agents...`: list, show, delete, timeline, labels, restart.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use opamp_proto::{AgentCapabilities, InstanceUid};
use opamp_store::{AgentFilter, Command, PageRequest, Role, Transport};

use super::types::{
    AgentDetail, AgentList, AgentQuery, CommandView, EntryList, ErrorBody, LabelValue, LabelsView,
    PageQuery, RevealQuery, agent_view,
};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, authorize, json};
use crate::selector::{Op, Selector};
use crate::{Error, Fleet, SyncState};

pub(crate) fn parse_uid(s: &str) -> ApiResult<InstanceUid> {
    s.parse::<InstanceUid>().map_err(|e| {
        ApiError::bad_request(
            "invalid_instance_uid",
            format!("{s:?} is not an instance uid (expected a UUID such as 0190a1b2-...): {e}"),
        )
    })
}

/// Lists agents, filtered and paginated.
#[utoipa::path(
    get, path = "/api/v1/agents", tag = "agents",
    params(AgentQuery),
    responses(
        (status = 200, description = "A page of agents", body = AgentList),
        (status = 400, description = "Invalid selector, sync state, transport or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub(crate) async fn list_agents(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<AgentQuery>,
) -> ApiResult<Json<AgentList>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let selector = match q.selector.as_deref() {
        Some(text) => Selector::parse(text).map_err(Error::from)?,
        None => Selector::everything(),
    };
    let sync = match q.sync_state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(SyncState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "sync_state {s:?} is not one of in_sync, pending, failed, drifted, unmanaged"
                ),
            )
        })?),
    };
    let transport = match q.transport.as_deref() {
        None | Some("") => None,
        Some(t) => Some(t.parse::<Transport>().map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("transport {t:?} is neither \"ws\" nor \"http\""),
            )
        })?),
    };
    // Exact requirements narrow the query in the store; the rest is matched here.
    let filter = AgentFilter {
        connected: q.connected,
        transport,
        labels: selector.equalities(),
        has_labels: selector
            .requirements
            .iter()
            .filter(|r| matches!(r.op, Op::Exists | Op::In(_)))
            .map(|r| r.key.clone())
            .collect(),
        ..Default::default()
    };
    let page = PageRequest {
        cursor: q.cursor.filter(|c| !c.is_empty()),
        limit: q.limit.unwrap_or(0),
    };
    let p = fleet
        .timed("list_agents", fleet.store().list_agents(filter, page))
        .await?;
    let agents = p
        .items
        .iter()
        .filter(|a| selector.matches(&a.effective_labels()))
        .filter_map(|a| {
            let (desired, state) = fleet.view_of(a);
            if sync.is_some_and(|s| s != state) {
                return None;
            }
            Some(agent_view(a, desired.as_deref(), state))
        })
        .collect();
    Ok(Json(AgentList {
        agents,
        next_cursor: p.next_cursor,
    }))
}

/// One agent with its effective config (secret-looking values redacted unless
/// `reveal=true`, admins only).
#[utoipa::path(
    get, path = "/api/v1/agents/{uid}", tag = "agents",
    params(("uid" = String, Path, description = "Instance uid"), RevealQuery),
    responses(
        (status = 200, body = AgentDetail),
        (status = 400, description = "Not an instance uid", body = ErrorBody),
        (status = 403, description = "reveal=true without the admin role", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    )
)]
pub(crate) async fn get_agent(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(uid): ApiPath<String>,
    ApiQuery(q): ApiQuery<RevealQuery>,
) -> ApiResult<Json<AgentDetail>> {
    authorize(
        &fleet,
        &headers,
        if q.reveal { Role::Admin } else { Role::Viewer },
    )
    .await?;
    let uid = parse_uid(&uid)?;
    let agent = fleet
        .timed("get_agent", fleet.store().get_agent(uid))
        .await?;
    let (desired, state) = fleet.view_of(&agent);
    let effective = agent.effective_config.as_ref().map(|m| {
        if q.reveal {
            m.clone()
        } else {
            crate::redact::redact_map(m)
        }
    });
    Ok(Json(AgentDetail {
        agent: agent_view(&agent, desired.as_deref(), state),
        effective_config: effective,
        effective_config_redacted: !q.reveal,
    }))
}

/// Forgets an agent (its labels, timeline and agent assignments too). It reappears if it
/// connects again.
#[utoipa::path(
    delete, path = "/api/v1/agents/{uid}", tag = "agents",
    params(("uid" = String, Path, description = "Instance uid")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody))
)]
pub(crate) async fn delete_agent(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    let uid = parse_uid(&uid)?;
    fleet.store().delete_agent(&actor, uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An agent's timeline (connected, disconnected, config applied / failed, commands).
#[utoipa::path(
    get, path = "/api/v1/agents/{uid}/events", tag = "agents",
    params(("uid" = String, Path, description = "Instance uid"), PageQuery),
    responses((status = 200, body = EntryList), (status = 404, body = ErrorBody))
)]
pub(crate) async fn agent_events(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(uid): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<EntryList>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let uid = parse_uid(&uid)?;
    fleet.store().get_agent(uid).await?;
    let p = fleet
        .store()
        .list_agent_events(
            uid,
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

/// Sets one operator label (operator labels win over description attributes).
#[utoipa::path(
    put, path = "/api/v1/agents/{uid}/labels/{key}", tag = "agents",
    params(("uid" = String, Path, description = "Instance uid"), ("key" = String, Path, description = "Label key")),
    request_body = LabelValue,
    responses((status = 200, body = LabelsView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub(crate) async fn put_label(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath((uid, key)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<LabelValue>,
) -> ApiResult<Json<LabelsView>> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    let uid = parse_uid(&uid)?;
    check_label_key(&key)?;
    let labels = fleet
        .store()
        .set_labels(&actor, uid, [(key, body.value)].into())
        .await?;
    Ok(Json(LabelsView { labels }))
}

/// Removes one operator label.
#[utoipa::path(
    delete, path = "/api/v1/agents/{uid}/labels/{key}", tag = "agents",
    params(("uid" = String, Path, description = "Instance uid"), ("key" = String, Path, description = "Label key")),
    responses((status = 200, body = LabelsView), (status = 404, body = ErrorBody))
)]
pub(crate) async fn delete_label(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath((uid, key)): ApiPath<(String, String)>,
) -> ApiResult<Json<LabelsView>> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    let uid = parse_uid(&uid)?;
    let labels = fleet.store().remove_labels(&actor, uid, vec![key]).await?;
    Ok(Json(LabelsView { labels }))
}

/// Sets and removes several operator labels: `{"env": "prod", "old": null}`.
#[utoipa::path(
    patch, path = "/api/v1/agents/{uid}/labels", tag = "agents",
    params(("uid" = String, Path, description = "Instance uid")),
    request_body(content = BTreeMap<String, Option<String>>, description = "key → value, or null to remove"),
    responses((status = 200, body = LabelsView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub(crate) async fn patch_labels(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(uid): ApiPath<String>,
    ApiJson(body): ApiJson<BTreeMap<String, Option<String>>>,
) -> ApiResult<Json<LabelsView>> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    let uid = parse_uid(&uid)?;
    for k in body.keys() {
        check_label_key(k)?;
    }
    let mut labels = fleet.store().get_agent(uid).await?.labels;
    let set: BTreeMap<String, String> = body
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    let remove: Vec<String> = body
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    if !set.is_empty() {
        labels = fleet.store().set_labels(&actor, uid, set).await?;
    }
    if !remove.is_empty() {
        labels = fleet.store().remove_labels(&actor, uid, remove).await?;
    }
    Ok(Json(LabelsView { labels }))
}

fn check_label_key(key: &str) -> ApiResult<()> {
    if crate::selector::is_valid_key(key) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_input",
            format!(
                "invalid label key {key:?}: it must be non-empty, without whitespace or any of , ( ) = ! \""
            ),
        ))
    }
}

/// Queues a restart command (CMD-1): delivered at once over WebSocket, with the next poll
/// over HTTP.
#[utoipa::path(
    post, path = "/api/v1/agents/{uid}/restart", tag = "agents",
    params(("uid" = String, Path, description = "Instance uid")),
    responses(
        (status = 202, description = "Queued", body = CommandView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The agent lacks AcceptsRestartCommand", body = ErrorBody),
    )
)]
pub(crate) async fn restart_agent(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Response> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    let uid = parse_uid(&uid)?;
    let agent = fleet.store().get_agent(uid).await?;
    if !agent
        .capabilities
        .contains(AgentCapabilities::ACCEPTS_RESTART_COMMAND)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "agent {uid} does not accept restart commands (no AcceptsRestartCommand capability)"
            ),
        ));
    }
    let c = fleet
        .store()
        .send_command(&actor, uid, Command::Restart)
        .await?;
    Ok(json(
        StatusCode::ACCEPTED,
        CommandView {
            id: c.id,
            command: c.command.as_str().to_owned(),
            created_at: c.created_at.to_string(),
        },
    ))
}
