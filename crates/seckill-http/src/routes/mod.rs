//! The HTTP surface of the API, route by route.

pub(crate) mod dashboard;
pub mod extract;
pub(crate) mod ops;
pub(crate) mod orders;
pub mod purchase;
pub(crate) mod sales;

use crate::App;
use crate::error::ApiError;
use crate::route::Route;
use axum::body::Body;
use axum::handler::Handler;
use axum::http::{Method, Request};
use axum::response::{IntoResponse, Response};
use seckill_core::ErrorCode;

/// The async handler of each route that memory does not answer at once
/// (`from_memory`), its `{id}` already in the request (`extract::Id`).
pub(crate) async fn answer(app: App, route: Route, request: Request<Body>) -> Response {
    match route {
        Route::CreateSale => sales::create.call(request, app).await,
        Route::ListSales => sales::list.call(request, app).await,
        Route::GetSale => sales::get.call(request, app).await,
        Route::Stock => sales::stock.call(request, app).await,
        Route::Report => sales::report.call(request, app).await,
        Route::PurchaseToken => sales::purchase_token.call(request, app).await,
        Route::ListOrders => orders::list.call(request, app).await,
        Route::GetOrder => orders::get.call(request, app).await,
        Route::Pay => orders::pay.call(request, app).await,
        Route::Cancel => orders::cancel.call(request, app).await,
        Route::Degrade if request.method() == Method::POST => {
            ops::set_degrade_level.call(request, app).await
        }
        Route::Degrade => ops::degrade_level.call(request, app).await,
        Route::OpenApi => crate::openapi::serve.call(request, app).await,
        Route::Healthz => ops::healthz.call(request, app).await,
        Route::Readyz => ops::readyz.call(request, app).await,
        Route::Metrics => ops::metrics.call(request, app).await,
        Route::Dashboard if request.uri().path() == "/dashboard" => {
            dashboard::page.call(request, app).await
        }
        Route::Dashboard => dashboard::asset.call(request, app).await,
        Route::DashboardEvents => dashboard::events.call(request, app).await,
        // Answered from memory, always.
        Route::Purchase | Route::Other => ApiError::not_found("no such route").into_response(),
    }
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
