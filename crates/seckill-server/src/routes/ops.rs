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

/// 200 `{"status": "ready"}` once warm; 503 (the API's error shape) saying
/// what it waits for: the first expiry sweep at start, the drain at
/// shutdown (so balancers stop sending new work).
pub async fn readyz(State(app): State<App>) -> Response {
    let waiting_for = waiting_for(
        app.draining.load(Ordering::Acquire),
        app.swept_once.load(Ordering::Acquire),
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

pub async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(&app.market, app.in_flight.current()),
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
