//! `/api/v1/groups...`: named selectors (admin role to change them).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use opamp_store::{Group, Role, Timestamp};

use super::types::{ErrorBody, GroupList, GroupRequest, GroupUpdate, GroupView};
use super::{ApiJson, ApiPath, ApiResult, authorize, json};
use crate::selector::Selector;
use crate::{Error, Fleet};

fn canonical(selector: &str) -> Result<String, Error> {
    Ok(Selector::parse(selector)?.to_string())
}

/// Every group, by name.
#[utoipa::path(
    get, path = "/api/v1/groups", tag = "groups",
    responses((status = 200, body = GroupList), (status = 401, body = ErrorBody))
)]
pub(crate) async fn list_groups(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
) -> ApiResult<Json<GroupList>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let all = fleet.store().list_groups().await?;
    Ok(Json(GroupList {
        groups: all.iter().map(GroupView::from).collect(),
    }))
}

/// Creates a group.
#[utoipa::path(
    post, path = "/api/v1/groups", tag = "groups",
    request_body = GroupRequest,
    responses(
        (status = 201, body = GroupView),
        (status = 400, description = "Invalid name or selector", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
    )
)]
pub(crate) async fn create_group(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<GroupRequest>,
) -> ApiResult<Response> {
    let actor = authorize(&fleet, &headers, Role::Admin).await?;
    let selector = canonical(&req.selector)?;
    let g = fleet
        .store()
        .create_group(
            &actor,
            Group {
                name: req.name,
                selector,
                description: req.description.unwrap_or_default(),
                created_at: Timestamp::now(),
                updated_at: Timestamp::now(),
            },
        )
        .await?;
    Ok(json(StatusCode::CREATED, GroupView::from(&g)))
}

/// One group.
#[utoipa::path(
    get, path = "/api/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorBody))
)]
pub(crate) async fn get_group(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<GroupView>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let g = fleet.store().get_group(&name).await?;
    Ok(Json(GroupView::from(&g)))
}

/// Changes a group's selector (and description).
#[utoipa::path(
    put, path = "/api/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    request_body = GroupUpdate,
    responses((status = 200, body = GroupView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub(crate) async fn update_group(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<GroupUpdate>,
) -> ApiResult<Json<GroupView>> {
    let actor = authorize(&fleet, &headers, Role::Admin).await?;
    let selector = canonical(&req.selector)?;
    let old = fleet.store().get_group(&name).await?;
    let g = fleet
        .store()
        .update_group(
            &actor,
            Group {
                name,
                selector,
                description: req.description.unwrap_or(old.description),
                created_at: old.created_at,
                updated_at: Timestamp::now(),
            },
        )
        .await?;
    Ok(Json(GroupView::from(&g)))
}

/// Deletes a group (409 while an assignment targets it).
#[utoipa::path(
    delete, path = "/api/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub(crate) async fn delete_group(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = authorize(&fleet, &headers, Role::Admin).await?;
    fleet.store().delete_group(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
