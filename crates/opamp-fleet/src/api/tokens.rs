//! `/api/v1/tokens...`: API tokens (admin only). Secrets are shown once, at creation.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use opamp_store::{NewToken, Role, generate_secret};

use super::types::{CreatedToken, ErrorBody, TokenList, TokenRequest, TokenView};
use super::{ApiError, ApiJson, ApiPath, ApiResult, authorize, json};
use crate::Fleet;

/// Every token (never their secrets), revoked ones included.
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 403, body = ErrorBody))
)]
pub(crate) async fn list_tokens(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
) -> ApiResult<Json<TokenList>> {
    authorize(&fleet, &headers, Role::Admin).await?;
    let all = fleet.store().list_tokens().await?;
    Ok(Json(TokenList {
        tokens: all.iter().map(TokenView::from).collect(),
    }))
}

/// Creates a token and returns its secret (once).
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens",
    request_body = TokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub(crate) async fn create_token(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Response> {
    let actor = authorize(&fleet, &headers, Role::Admin).await?;
    let role: Role = req.role.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_input",
            format!("role {:?} is not one of admin, operator, viewer", req.role),
        )
    })?;
    let (secret, hash) = generate_secret();
    let t = fleet
        .store()
        .create_token(
            &actor,
            NewToken {
                name: req.name,
                role,
                hash,
            },
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        CreatedToken {
            token: TokenView::from(&t),
            secret,
        },
    ))
}

/// Revokes a token (idempotent).
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, body = TokenView), (status = 404, body = ErrorBody))
)]
pub(crate) async fn revoke_token(
    State(fleet): State<Fleet>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TokenView>> {
    let actor = authorize(&fleet, &headers, Role::Admin).await?;
    let t = fleet.store().revoke_token(&actor, id).await?;
    Ok(Json(TokenView::from(&t)))
}
