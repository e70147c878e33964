//! Operations: liveness, readiness, metrics, and the API's answers for
//! unknown routes and methods.

use super::extract::json_body;
use crate::App;
use crate::degrade::Level;
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

/// 200 once the engine serves (stock is rebuilt before the socket opens),
/// 503 while draining at shutdown so balancers stop sending new work.
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, body = String, content_type = "text/plain", description = "Ready."),
        crate::openapi::ReadyzErrors))]
pub async fn readyz(State(app): State<App>) -> Response {
    if app.draining.load(Ordering::Acquire) {
        ApiError::unavailable("draining").into_response()
    } else {
        "ready".into_response()
    }
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, body = String,
    content_type = "text/plain", description = "Prometheus text format.")))]
pub async fn metrics(State(app): State<App>) -> Response {
    for sale in app.market.all() {
        let id = sale.sale.id.to_string();
        metrics::gauge!("seckill_sale_stock", "sale_id" => id.clone()).set(sale.sale.stock as f64);
        metrics::gauge!("seckill_sale_remaining", "sale_id" => id)
            .set(sale.stock.remaining() as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DegradeLevel {
    level: Level,
}

/// Reads the degrade level.
#[utoipa::path(get, path = "/api/v1/admin/degrade", security(("admin_token" = [])),
    responses((status = 200, body = DegradeLevel, description = "The current level."),
        crate::openapi::DegradeErrors))]
pub async fn degrade_level(
    State(app): State<App>,
    headers: HeaderMap,
) -> ApiResult<Json<DegradeLevel>> {
    app.auth.admin(&headers)?;
    Ok(Json(DegradeLevel {
        level: app.degrade.level(),
    }))
}

/// Switches the degrade level.
#[utoipa::path(post, path = "/api/v1/admin/degrade", security(("admin_token" = [])),
    request_body = DegradeLevel,
    responses((status = 200, body = DegradeLevel, description = "The new level."),
        crate::openapi::SetDegradeErrors))]
pub async fn set_degrade_level(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<DegradeLevel>> {
    app.auth.admin(&headers)?;
    let DegradeLevel { level } = json_body(body)
        .await?
        .ok_or_else(|| ApiError::bad_request("body: {\"level\": …} is required"))?;
    app.degrade.set(level);
    Ok(Json(DegradeLevel { level }))
}

/// This document, generated from the code (`crate::openapi`).
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, body = Object, description = "The OpenAPI document of this API.")))]
pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        crate::openapi::document(),
    )
        .into_response()
}

pub async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route")
}

pub async fn method_not_allowed() -> Response {
    let mut response = ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
    .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
