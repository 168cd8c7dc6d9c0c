//! `/api/v1/assignments...`: which config (pinned version or latest) goes to which agent,
//! group or selector. See [`crate::desired`] for the precedence.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use opamp_store::{AssignmentTarget, NewAssignment, Role};

use super::agents::parse_uid;
use super::types::{AssignmentList, AssignmentRequest, AssignmentView, ErrorBody};
use super::{ApiError, ApiJson, ApiPath, ApiResult, authorize, json};
use crate::selector::Selector;
use crate::{Error, Fleet};

/// Every assignment, by id.
#[utoipa::path(
    get, path = "/api/v1/assignments", tag = "assignments",
    responses((status = 200, body = AssignmentList), (status = 401, body = ErrorBody))
)]
pub(crate) async fn list_assignments(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
) -> ApiResult<Json<AssignmentList>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let all = fleet.store().list_assignments().await?;
    Ok(Json(AssignmentList {
        assignments: all.iter().map(AssignmentView::from).collect(),
    }))
}

/// Assigns a config to exactly one of `agent`, `group` or `selector`, replacing the
/// assignment that target had. Agents get their new desired config at once (WebSocket) or
/// with their next poll (HTTP).
#[utoipa::path(
    post, path = "/api/v1/assignments", tag = "assignments",
    request_body = AssignmentRequest,
    responses(
        (status = 201, body = AssignmentView),
        (status = 400, description = "Invalid selector, or not exactly one target", body = ErrorBody),
        (status = 404, description = "Unknown config, version, group or agent", body = ErrorBody),
    )
)]
pub(crate) async fn create_assignment(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AssignmentRequest>,
) -> ApiResult<Response> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    let target = match (req.selector, req.group, req.agent) {
        (Some(s), None, None) => {
            let sel = Selector::parse(&s).map_err(Error::from)?;
            if sel.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_selector",
                    "an empty selector would match every agent: write a requirement such as `env=prod`",
                ));
            }
            AssignmentTarget::Selector(sel.to_string())
        }
        (None, Some(g), None) => {
            fleet.store().get_group(&g).await?;
            AssignmentTarget::Group(g)
        }
        (None, None, Some(a)) => {
            let uid = parse_uid(&a)?;
            fleet.store().get_agent(uid).await?;
            AssignmentTarget::Agent(uid)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "give exactly one of \"selector\", \"group\" or \"agent\"",
            ));
        }
    };
    // Check the config and version first, so that the error names them.
    match req.version {
        Some(v) => {
            fleet.store().get_config_version(&req.config, v).await?;
        }
        None => {
            fleet.store().latest_config_version(&req.config).await?;
        }
    }
    let a = fleet
        .store()
        .put_assignment(
            &actor,
            NewAssignment {
                config: req.config,
                version: req.version,
                target,
            },
        )
        .await?;
    Ok(json(StatusCode::CREATED, AssignmentView::from(&a)))
}

/// One assignment.
#[utoipa::path(
    get, path = "/api/v1/assignments/{id}", tag = "assignments",
    params(("id" = i64, Path, description = "Assignment id")),
    responses((status = 200, body = AssignmentView), (status = 404, body = ErrorBody))
)]
pub(crate) async fn get_assignment(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AssignmentView>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let a = fleet.store().get_assignment(id).await?;
    Ok(Json(AssignmentView::from(&a)))
}

/// Deletes an assignment; agents it decided fall back to the next one that matches, or
/// become unmanaged (they keep running what they have).
#[utoipa::path(
    delete, path = "/api/v1/assignments/{id}", tag = "assignments",
    params(("id" = i64, Path, description = "Assignment id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody))
)]
pub(crate) async fn delete_assignment(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    fleet.store().delete_assignment(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
