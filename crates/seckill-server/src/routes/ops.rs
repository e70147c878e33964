//! Operations: liveness, readiness, metrics, and the API's answers for
//! unknown routes and methods.

use super::extract::json_body;
use crate::App;
use crate::degrade::{By, Level};
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seckill_core::ErrorCode;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 once the engine serves (stock is rebuilt before the socket opens),
/// 503 while draining at shutdown so balancers stop sending new work.
pub async fn readyz(State(app): State<App>) -> Response {
    if app.draining.load(Ordering::Acquire) {
        ApiError::unavailable("draining").into_response()
    } else {
        "ready".into_response()
    }
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradeRequest {
    level: Level,
}

/// `level` applies: the stricter of the operator's and the automatic one.
#[derive(Serialize)]
pub struct DegradeState {
    level: Level,
    operator: Level,
    automatic: Level,
}

/// `GET` reads the degrade level; `POST {"level": …}` switches the
/// operator's level.
pub async fn degrade(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    app.auth.admin(&headers)?;
    if method == Method::POST {
        let DegradeRequest { level } = json_body(body)
            .await?
            .ok_or_else(|| ApiError::bad_request("body: {\"level\": …} is required"))?;
        app.degrade.set(By::Operator, level);
    }
    let degrade = &app.degrade;
    Ok(Json(DegradeState {
        level: degrade.level(),
        operator: degrade.operator_level(),
        automatic: degrade.automatic_level(),
    })
    .into_response())
}

pub async fn openapi() -> ApiError {
    ApiError::not_implemented("the OpenAPI document")
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
