//! The admin REST API: an axum [`Router`] serving `/api/v1/...`, `/api/v1/openapi.json`,
//! `/metrics`, `/healthz` and `/readyz`.
//!
//! Conventions, for every route:
//! - **Errors** are JSON: `{"error": {"code": "config_not_found", "message": "config \"web\"
//!   not found"}}`, for every 4xx and 5xx (unknown routes and methods included). The
//!   `code` is stable and machine-readable; the `message` is for people.
//! - **Auth**: `Authorization: Bearer <secret>` with a token of role `viewer` (GET only),
//!   `operator` (configs, assignments, labels, restart) or `admin` (tokens, groups,
//!   everything). Missing or unknown token: 401; a role too weak: 403. While the store
//!   holds no active token and [`crate::FleetOptions::open_without_tokens`] is set (opampd:
//!   a loopback admin bind), requests without a token are served as an anonymous admin and
//!   a warning is logged. The web UI's session cookie ([`crate::ui`]) stands in for the
//!   header on viewer (read-only) routes, so that a browser's `EventSource` can open the
//!   event stream; writes always need the header.
//! - **Bodies** are JSON (`Content-Type: application/json`, else 415), at most
//!   [`crate::FleetOptions::max_body_bytes`] (else 413); unknown fields are refused (400).
//! - **Lists** are paginated with `limit` and an opaque `cursor` (`next_cursor` in the
//!   answer; `null` on the last page). When a filter is applied in memory (`selector`,
//!   `sync_state`), a page may hold fewer than `limit` items: follow `next_cursor` until it
//!   is `null`.
//! - Nothing is written when a request is refused.
//!
//! The OpenAPI 3 document is generated from these handlers and types ([`ApiDoc`]).

use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use opamp_store::{Actor, EntityKind, Role, TokenHash};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

use crate::{Error, Fleet};

pub(crate) mod agents;
pub(crate) mod assignments;
pub(crate) mod configs;
mod groups;
mod ops;
mod tokens;
pub mod types;

/// An API error: an HTTP status, a stable code and a message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`invalid_selector`, `agent_not_found`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "admin API error");
        }
        let body = types::ErrorBody {
            error: types::ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<opamp_store::Error> for ApiError {
    fn from(e: opamp_store::Error) -> Self {
        use opamp_store::Error as S;
        match &e {
            S::NotFound { kind, .. } => {
                let code = match kind {
                    EntityKind::Agent => "agent_not_found",
                    EntityKind::Config => "config_not_found",
                    EntityKind::ConfigVersion => "version_not_found",
                    EntityKind::Assignment => "assignment_not_found",
                    EntityKind::Group => "group_not_found",
                    EntityKind::Token => "token_not_found",
                    _ => "not_found",
                };
                ApiError::not_found(code, e.to_string())
            }
            S::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            S::InvalidInput { .. } => ApiError::bad_request("invalid_input", e.to_string()),
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidSelector(s) => ApiError::bad_request("invalid_selector", s.to_string()),
            Error::InvalidConfig(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                e.to_string(),
            ),
            Error::InvalidInput { .. } => ApiError::bad_request("invalid_input", e.to_string()),
            Error::NotFound { what, .. } => {
                let code = match what {
                    "agent" => "agent_not_found",
                    "config" => "config_not_found",
                    "config version" => "version_not_found",
                    "group" => "group_not_found",
                    _ => "not_found",
                };
                ApiError::not_found(code, e.to_string())
            }
            Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            Error::Store(s) => s.into(),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body with the API's checks: content type, size limit, unknown fields.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Fleet> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, fleet: &Fleet) -> Result<Self, ApiError> {
        let limit = fleet.options().max_body_bytes;
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than the limit of {limit} bytes"),
            )
        };
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct.to_ascii_lowercase();
                ct.starts_with("application/json") || ct.contains("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON (Content-Type: application/json)",
            ));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large())?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("invalid request body: {e}"))
        })
    }
}

/// Query parameters, with a JSON error when they do not parse.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// Path parameters, with a JSON error when they do not parse.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

static OPEN_WARNED: AtomicBool = AtomicBool::new(false);

/// Authenticates a request and checks that its role allows `needed`.
pub(crate) async fn authorize(
    fleet: &Fleet,
    headers: &HeaderMap,
    needed: Role,
) -> ApiResult<Actor> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    // The web UI's session cookie carries a token too; it is accepted for reading only
    // (writes need the header, so a cross-site request can never change anything).
    let from_cookie = if needed == Role::Viewer && !headers.contains_key(header::AUTHORIZATION) {
        crate::ui::session_bearer(headers, fleet.options().ui_session_ttl)
    } else {
        None
    };
    let Some(value) = headers.get(header::AUTHORIZATION).or(from_cookie.as_ref()) else {
        if fleet.options().open_without_tokens {
            let tokens = fleet.store().list_tokens().await?;
            if tokens.iter().all(|t| t.revoked_at.is_some()) {
                if !OPEN_WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "admin API used without a token: open because no token exists and it listens on loopback only; \
                         create one with `opampd token create --role admin --name <name>` to require tokens"
                    );
                }
                return Ok(Actor::anonymous());
            }
        }
        return Err(unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (create a token with `opampd token create --role viewer --name <name>`)",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let token = fleet
        .store()
        .verify_token(TokenHash::of(secret))
        .await?
        .ok_or_else(|| unauthorized("invalid or revoked token"))?;
    if !token.role.allows(needed) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {:?} has role {}; this request needs role {} or higher",
                token.name, token.role, needed
            ),
        ));
    }
    Ok(Actor::token(token.name))
}

/// The OpenAPI document of the admin API, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "opampd admin API",
        description = "Fleet management for OpAMP agents: agents, labels, configs and versions, assignments, groups, commands, tokens, events.",
        license(name = "Apache-2.0")
    ),
    paths(
        agents::list_agents,
        agents::get_agent,
        agents::delete_agent,
        agents::agent_events,
        agents::put_label,
        agents::delete_label,
        agents::patch_labels,
        agents::restart_agent,
        configs::list_configs,
        configs::create_config,
        configs::get_config,
        configs::list_versions,
        configs::get_version,
        configs::diff_versions,
        configs::rollback,
        configs::delete_config,
        assignments::list_assignments,
        assignments::create_assignment,
        assignments::get_assignment,
        assignments::delete_assignment,
        groups::list_groups,
        groups::create_group,
        groups::get_group,
        groups::update_group,
        groups::delete_group,
        tokens::list_tokens,
        tokens::create_token,
        tokens::revoke_token,
        ops::summary,
        ops::events,
        ops::audit,
        ops::openapi_json,
        ops::metrics,
        ops::healthz,
        ops::readyz,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "agents", description = "Agents, their labels and commands"),
        (name = "configs", description = "Configs and their immutable versions"),
        (name = "assignments", description = "Which config goes where"),
        (name = "groups", description = "Named selectors"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "fleet", description = "Summary, events, audit"),
        (name = "ops", description = "Health and metrics")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token secret (`opampd token create`). Roles: viewer (read), operator (configs, assignments, labels, restart), admin (everything).",
                    ))
                    .build(),
            ),
        );
    }
}

impl Fleet {
    /// The admin router: `/api/v1/...`, `/api/v1/openapi.json`, `/metrics`, `/healthz`,
    /// `/readyz`, and the web UI ([`crate::ui`]). Serve it on the admin port (it has no state to share with the OpAMP
    /// listener beyond this fleet).
    pub fn admin_router(&self) -> Router {
        api_router()
            .with_state(self.clone())
            .merge(crate::ui::router(self))
    }
}

fn api_router() -> Router<Fleet> {
    Router::new()
        .route("/api/v1/agents", get(agents::list_agents))
        .route(
            "/api/v1/agents/{uid}",
            get(agents::get_agent).delete(agents::delete_agent),
        )
        .route("/api/v1/agents/{uid}/events", get(agents::agent_events))
        .route(
            "/api/v1/agents/{uid}/labels",
            axum::routing::patch(agents::patch_labels),
        )
        .route(
            "/api/v1/agents/{uid}/labels/{key}",
            put(agents::put_label).delete(agents::delete_label),
        )
        .route("/api/v1/agents/{uid}/restart", post(agents::restart_agent))
        .route(
            "/api/v1/configs",
            get(configs::list_configs).post(configs::create_config),
        )
        .route(
            "/api/v1/configs/{name}",
            get(configs::get_config).delete(configs::delete_config),
        )
        .route(
            "/api/v1/configs/{name}/versions",
            get(configs::list_versions),
        )
        .route(
            "/api/v1/configs/{name}/versions/{version}",
            get(configs::get_version),
        )
        .route("/api/v1/configs/{name}/diff", get(configs::diff_versions))
        .route("/api/v1/configs/{name}/rollback", post(configs::rollback))
        .route(
            "/api/v1/assignments",
            get(assignments::list_assignments).post(assignments::create_assignment),
        )
        .route(
            "/api/v1/assignments/{id}",
            get(assignments::get_assignment).delete(assignments::delete_assignment),
        )
        .route(
            "/api/v1/groups",
            get(groups::list_groups).post(groups::create_group),
        )
        .route(
            "/api/v1/groups/{name}",
            get(groups::get_group)
                .put(groups::update_group)
                .delete(groups::delete_group),
        )
        .route(
            "/api/v1/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route(
            "/api/v1/tokens/{id}",
            axum::routing::delete(tokens::revoke_token),
        )
        .route("/api/v1/summary", get(ops::summary))
        .route("/api/v1/events", get(ops::events))
        .route("/api/v1/audit", get(ops::audit))
        .route("/api/v1/openapi.json", get(ops::openapi_json))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(State(_): State<Fleet>, req: Request) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(State(_): State<Fleet>, req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// JSON with a status.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, axum::Json(body)).into_response()
}
