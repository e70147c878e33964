//! The HTTP surface of the API, route by route.

pub(crate) mod dashboard;
pub mod extract;
pub(crate) mod ops;
pub(crate) mod orders;
pub mod purchase;
pub(crate) mod sales;

use crate::App;
use crate::error::ApiError;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use seckill_core::ErrorCode;
use tower_http::catch_panic::CatchPanicLayer;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/v1/sales", post(sales::create).get(sales::list))
        .route("/api/v1/sales/{id}", get(sales::get))
        .route("/api/v1/sales/{id}/stock", get(sales::stock))
        .route("/api/v1/sales/{id}/report", get(sales::report))
        .route("/api/v1/sales/{id}/purchase", post(purchase::purchase))
        .route(
            "/api/v1/sales/{id}/purchase-token",
            post(sales::purchase_token),
        )
        .route("/api/v1/orders", get(orders::list))
        .route("/api/v1/orders/{id}", get(orders::get))
        .route("/api/v1/orders/{id}/pay", post(orders::pay))
        .route("/api/v1/orders/{id}/cancel", post(orders::cancel))
        .route(
            "/api/v1/admin/degrade",
            get(ops::degrade_level).post(ops::set_degrade_level),
        )
        .route("/api/v1/openapi.json", get(crate::openapi::serve))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/events", get(dashboard::events))
        .route("/dashboard/{asset}", get(dashboard::asset))
        .fallback(ops::unknown_route)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(app)
}

/// A bug must still answer in the API's shape, and the process keeps serving.
pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    panicked(crate::request_scope::current_id())
}

/// The answer to a request whose handler panicked, logged with its id.
pub(crate) fn panicked(request_id: Option<String>) -> Response {
    tracing::error!(request_id, "a request handler panicked");
    ApiError::new(ErrorCode::Internal, "internal error").into_response()
}
