//! `/api/v1/configs...`: configs, immutable versions, diffs, rollback.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use opamp_store::{NewConfigVersion, PageRequest, Role};

use super::types::{
    ConfigDetail, ConfigList, ConfigView, CreateConfigRequest, CreatedVersion, DiffQuery, DiffView,
    ErrorBody, PageQuery, RollbackRequest, VersionList, VersionSummary, VersionView,
};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, authorize, json};
use crate::{Error, Fleet};

/// Lists configs by name.
#[utoipa::path(
    get, path = "/api/v1/configs", tag = "configs",
    params(PageQuery),
    responses((status = 200, body = ConfigList), (status = 401, body = ErrorBody))
)]
pub(crate) async fn list_configs(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ConfigList>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let p = fleet
        .store()
        .list_configs(PageRequest {
            cursor: q.cursor,
            limit: q.limit.unwrap_or(0),
        })
        .await?;
    Ok(Json(ConfigList {
        configs: p.items.iter().map(ConfigView::from).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Creates a config, or its next version when the name exists. YAML and JSON files (by
/// content type, else by file name) must parse: otherwise 422 naming the file and the
/// parser's error, and nothing is written. Files equal to the latest version create
/// nothing (200, `created: false`).
#[utoipa::path(
    post, path = "/api/v1/configs", tag = "configs",
    request_body = CreateConfigRequest,
    responses(
        (status = 201, description = "A new version", body = CreatedVersion),
        (status = 200, description = "Same files as the latest version: nothing written", body = CreatedVersion),
        (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "A file does not parse", body = ErrorBody),
    )
)]
pub(crate) async fn create_config(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateConfigRequest>,
) -> ApiResult<Response> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    if req.files.files.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_input",
            "a config needs at least one file in \"files\"",
        ));
    }
    req.files.validate().map_err(Error::InvalidConfig)?;
    let added = fleet
        .store()
        .add_config_version(
            &actor,
            NewConfigVersion {
                config: req.name,
                config_map: req.files,
                message: req.message.unwrap_or_default(),
                rollback_of: None,
            },
        )
        .await?;
    let status = if added.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(
        status,
        CreatedVersion {
            created: added.created,
            version: VersionView::from(&added.version),
        },
    ))
}

/// One config with its latest version.
#[utoipa::path(
    get, path = "/api/v1/configs/{name}", tag = "configs",
    params(("name" = String, Path, description = "Config name")),
    responses((status = 200, body = ConfigDetail), (status = 404, body = ErrorBody))
)]
pub(crate) async fn get_config(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ConfigDetail>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let config = fleet.store().get_config(&name).await?;
    let latest = if config.latest_version > 0 {
        Some(VersionView::from(
            &fleet.store().latest_config_version(&name).await?,
        ))
    } else {
        None
    };
    Ok(Json(ConfigDetail {
        config: ConfigView::from(&config),
        latest,
    }))
}

/// A config's versions, newest first.
#[utoipa::path(
    get, path = "/api/v1/configs/{name}/versions", tag = "configs",
    params(("name" = String, Path, description = "Config name"), PageQuery),
    responses((status = 200, body = VersionList), (status = 404, body = ErrorBody))
)]
pub(crate) async fn list_versions(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<VersionList>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    fleet.store().get_config(&name).await?;
    let p = fleet
        .store()
        .list_config_versions(
            &name,
            PageRequest {
                cursor: q.cursor,
                limit: q.limit.unwrap_or(0),
            },
        )
        .await?;
    Ok(Json(VersionList {
        versions: p.items.iter().map(VersionSummary::from).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// One version with its files.
#[utoipa::path(
    get, path = "/api/v1/configs/{name}/versions/{version}", tag = "configs",
    params(("name" = String, Path, description = "Config name"), ("version" = u64, Path, description = "Version number")),
    responses((status = 200, body = VersionView), (status = 404, body = ErrorBody))
)]
pub(crate) async fn get_version(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, u64)>,
) -> ApiResult<Json<VersionView>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let v = fleet.store().get_config_version(&name, version).await?;
    Ok(Json(VersionView::from(&v)))
}

/// The difference between two versions: files added, removed, changed; per key for YAML
/// and JSON; a line diff.
#[utoipa::path(
    get, path = "/api/v1/configs/{name}/diff", tag = "configs",
    params(("name" = String, Path, description = "Config name"), DiffQuery),
    responses((status = 200, body = DiffView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub(crate) async fn diff_versions(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<DiffView>> {
    authorize(&fleet, &headers, Role::Viewer).await?;
    let from = fleet.store().get_config_version(&name, q.from).await?;
    let to = match q.to {
        Some(v) => fleet.store().get_config_version(&name, v).await?,
        None => fleet.store().latest_config_version(&name).await?,
    };
    let d = opamp_config::diff(&from.config_map, &to.config_map);
    Ok(Json(DiffView {
        config: name,
        from: from.version,
        to: to.version,
        diff: serde_json::to_value(&d).unwrap_or_default(),
    }))
}

/// Restores an older version as a new version (history is never rewritten).
#[utoipa::path(
    post, path = "/api/v1/configs/{name}/rollback", tag = "configs",
    params(("name" = String, Path, description = "Config name")),
    request_body = RollbackRequest,
    responses(
        (status = 201, body = CreatedVersion),
        (status = 200, description = "That version's files are the latest already", body = CreatedVersion),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn rollback(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> ApiResult<Response> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    let old = fleet.store().get_config_version(&name, req.version).await?;
    let added = fleet
        .store()
        .add_config_version(
            &actor,
            NewConfigVersion {
                config: name,
                config_map: old.config_map,
                message: req
                    .message
                    .unwrap_or_else(|| format!("rollback to version {}", req.version)),
                rollback_of: Some(req.version),
            },
        )
        .await?;
    let status = if added.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(
        status,
        CreatedVersion {
            created: added.created,
            version: VersionView::from(&added.version),
        },
    ))
}

/// Deletes a config and its versions (409 while an assignment uses it).
#[utoipa::path(
    delete, path = "/api/v1/configs/{name}", tag = "configs",
    params(("name" = String, Path, description = "Config name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub(crate) async fn delete_config(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = authorize(&fleet, &headers, Role::Operator).await?;
    fleet.store().delete_config(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
