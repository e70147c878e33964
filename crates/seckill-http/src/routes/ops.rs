//! Operations: liveness, readiness, metrics, and the API's answers for
//! unknown routes and methods.

use super::extract::json_body;
use crate::App;
use crate::degrade::{By, Degrade, Level};
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seckill_core::ErrorCode;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = String,
    content_type = "text/plain", description = "Running.")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 `{"status": "ready"}` once warm; 503 (the API's error shape) saying
/// what it waits for: the first expiry sweep at start, the drain at
/// shutdown (so balancers stop sending new work). Before this engine
/// exists, a cluster node waiting for Redis or the database answers 503
/// with that reason itself (`crate::waiting`), and `/healthz` 200.
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, body = Object, description = "Ready: `{\"status\": \"ready\"}`."),
        crate::openapi::responses::ReadyzErrors))]
pub async fn readyz(State(app): State<App>) -> Response {
    let waiting_for = waiting_for(
        app.draining.load(Ordering::Acquire),
        app.market.swept_once(),
    );
    match waiting_for {
        None => Json(serde_json::json!({"status": "ready"})).into_response(),
        Some(what) => ApiError::unavailable(what).into_response(),
    }
}

fn waiting_for(draining: bool, swept_once: bool) -> Option<&'static str> {
    if draining {
        Some("not ready: draining, finishing the requests in flight")
    } else if !swept_once {
        Some(
            "not ready: waiting for the first expiry sweep, which puts the units of orders \
             that expired while the engine was stopped back on sale",
        )
    } else {
        None
    }
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, body = String,
    content_type = "text/plain", description = "Prometheus text format.")))]
pub async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(
            &app.market,
            app.in_flight.current(),
            &app.requests.snapshot(),
        ),
    )
        .into_response()
}

/// The body of `POST /api/v1/admin/degrade`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DegradeRequest {
    level: Level,
}

/// `level` applies: the stricter of the operator's and the automatic one.
#[derive(Serialize, ToSchema)]
pub struct DegradeState {
    level: Level,
    operator: Level,
    automatic: Level,
}

impl DegradeState {
    fn of(degrade: &Degrade) -> Self {
        Self {
            level: degrade.level(),
            operator: degrade.operator_level(),
            automatic: degrade.automatic_level(),
        }
    }
}

/// Reads the degrade level.
#[utoipa::path(get, path = "/api/v1/admin/degrade", security(("admin_token" = [])),
    responses((status = 200, body = DegradeState, description = "The current levels."),
        crate::openapi::responses::DegradeErrors))]
pub async fn degrade_level(
    State(app): State<App>,
    headers: HeaderMap,
) -> ApiResult<Json<DegradeState>> {
    app.auth.admin(&headers)?;
    Ok(Json(DegradeState::of(&app.degrade)))
}

/// Switches the operator's degrade level (one click).
#[utoipa::path(post, path = "/api/v1/admin/degrade", security(("admin_token" = [])),
    request_body = DegradeRequest,
    responses((status = 200, body = DegradeState, description = "The levels after the switch."),
        crate::openapi::responses::SetDegradeErrors))]
pub async fn set_degrade_level(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<DegradeState>> {
    app.auth.admin(&headers)?;
    let DegradeRequest { level } = json_body(body)
        .await?
        .ok_or_else(|| ApiError::bad_request("body: {\"level\": …} is required"))?;
    app.degrade.set(By::Operator, level);
    Ok(Json(DegradeState::of(&app.degrade)))
}

/// A path that is a route's, asked with another method.
pub fn method_not_allowed() -> Response {
    let mut response = ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
    .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_swept_and_not_draining() {
        assert_eq!(waiting_for(false, true), None);
        assert!(waiting_for(false, false).unwrap().contains("expiry sweep"));
        assert!(waiting_for(true, true).unwrap().contains("draining"));
    }
}
