//! Sales: create (admin), list, read (cacheable), live stock, report (admin).

use super::extract::{Id, json_body};
use crate::error::{ApiError, ApiResult, canned};
use crate::openapi::responses::{self, SalePath};
use crate::sale_views::SaleView;
use crate::{App, AppState, prebuilt};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seckill_core::{NewSale, SaleId, SalePhase, StockState, Timestamp};
use serde::Serialize;
use std::sync::{Arc, LazyLock};
use utoipa::ToSchema;

/// The stock answer's headers: it may lag by up to a second (caches may
/// keep it that long); it is read from memory, never from the store.
static STOCK_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    prebuilt::headers([(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=1"),
    )])
});

#[utoipa::path(post, path = "/api/v1/sales", operation_id = "create_sale",
    security(("admin_token" = [])), request_body = NewSale,
    responses((status = 201, body = seckill_core::Sale, description = "The sale.",
        headers(("Location" = String, description = "`/api/v1/sales/{id}`")),
        links(("purchase" = (operation_id = "purchase",
            parameters(("sale_id" = "$response.body#/id")))))),
        responses::CreateSaleErrors))]
pub async fn create(State(app): State<App>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    app.auth.admin(&headers)?;
    let new_sale: NewSale = json_body(body)
        .await?
        .ok_or_else(|| ApiError::bad_request("body: a JSON sale object is required"))?;
    let sale = app.market.create_sale(new_sale).await?;
    tracing::info!(
        request_id = crate::request_scope::current_id(),
        sale = %sale.sale.id,
        stock = sale.sale.stock,
        "sale created"
    );
    let location = HeaderValue::from_str(&format!("/api/v1/sales/{}", sale.sale.id))
        .map_err(|_| ApiError::bad_request("sale id is not a header value"))?;
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        app.sales.view_of(sale).detail.json.clone(),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/sales", operation_id = "list_sales",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag of the list seen before.")),
    responses(
        (status = 200, body = Vec<seckill_core::Sale>, description = "Every sale.", headers(
            ("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "The ETag named in `If-None-Match` is current.", headers(
            ("ETag" = String), ("Cache-Control" = String))),
        responses::ListSalesErrors))]
pub async fn list(State(app): State<App>, headers: HeaderMap) -> Response {
    app.sales.listing().answer(&headers)
}

#[utoipa::path(get, path = "/api/v1/sales/{sale_id}", operation_id = "get_sale",
    params(SalePath, ("If-None-Match" = Option<String>, Header, nullable = false,
        description = "An ETag seen before.")),
    responses(
        (status = 200, body = seckill_core::Sale, description = "The sale.", headers(
            ("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "The ETag named in `If-None-Match` is current.", headers(
            ("ETag" = String), ("Cache-Control" = String))),
        responses::SaleErrors))]
pub async fn get(State(app): State<App>, Id(id): Id, headers: HeaderMap) -> ApiResult<Response> {
    sale_answer(&app, &id, &headers)
}

/// The sale (or 304): from memory, so the accept loop makes it at once
/// (`from_memory.rs`).
pub(crate) fn sale_answer(app: &AppState, id: &str, headers: &HeaderMap) -> ApiResult<Response> {
    Ok(find(app, id)?.detail.answer(headers))
}

/// Live state; may lag by up to one second.
#[derive(Serialize, ToSchema)]
#[schema(as = Stock)]
pub struct StockView<'a> {
    sale_id: &'a SaleId,
    stock: u64,
    remaining: u64,
    state: StockState,
}

#[utoipa::path(get, path = "/api/v1/sales/{sale_id}/stock", operation_id = "stock",
    params(SalePath), responses((status = 200, body = StockView, description = "The live stock.",
        headers(("Cache-Control" = String))), responses::SaleErrors))]
pub async fn stock(State(app): State<App>, Id(id): Id) -> ApiResult<Response> {
    stock_answer(&app, &id)
}

/// The live stock: from memory only, so the accept loop also answers it
/// without the router.
pub(crate) fn stock_answer(app: &AppState, id: &str) -> ApiResult<Response> {
    let sale = find(app, id)?;
    // No count while the purchase answer is 503: it would promise units.
    if sale.is_unavailable() {
        return Err(ApiError::unavailable(crate::error::UNDER_REPAIR));
    }
    let remaining = sale.stock.remaining();
    let state = StockState::of(app.market.clock().phase(&sale.sale), remaining);
    let body = sale.stock_json(remaining, state);
    Ok(prebuilt::json(StatusCode::OK, &STOCK_HEADERS, body))
}

/// Units per order status, from the store, beside the live remaining count:
/// `remaining + queued + pending_payment + paid == stock` is invariant.
#[derive(Serialize, ToSchema)]
pub struct Report {
    sale_id: SaleId,
    stock: u64,
    remaining: u64,
    queued: u64,
    pending_payment: u64,
    paid: u64,
    expired: u64,
    cancelled: u64,
}

#[utoipa::path(get, path = "/api/v1/sales/{sale_id}/report", operation_id = "report",
    params(SalePath), security(("admin_token" = [])),
    responses((status = 200, body = Report, description = "Units per order status."),
        responses::ReportErrors))]
pub async fn report(State(app): State<App>, Id(id): Id, headers: HeaderMap) -> ApiResult<Response> {
    app.auth.admin(&headers)?;
    let sale = find(&app, &id)?;
    let units = app.market.store().units_by_status(&sale.sale.id).await?;
    Ok(Json(Report {
        sale_id: sale.sale.id.clone(),
        stock: sale.sale.stock,
        remaining: sale.stock.remaining(),
        queued: units.queued,
        pending_payment: units.pending_payment,
        paid: units.paid,
        expired: units.expired,
        cancelled: units.cancelled,
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub struct PurchaseToken {
    token: String,
    expires_at: Timestamp,
}

/// Issues a purchase token, only while the sale is open: a token cannot be
/// had before the start, so a script cannot hold one in advance.
#[utoipa::path(post, path = "/api/v1/sales/{sale_id}/purchase-token",
    operation_id = "purchase_token", params(SalePath), security(("user_jwt" = [])),
    responses((status = 200, body = PurchaseToken,
        description = "A token for `X-Purchase-Token`, bound to the caller and the sale."),
        responses::PurchaseTokenErrors))]
pub async fn purchase_token(
    State(app): State<App>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let sale = find(&app, &id)?;
    let user = app.auth.user(&headers)?;
    let now = app.market.clock().now();
    match app.market.clock().phase(&sale.sale) {
        // The purchase's own refusals, word for word.
        SalePhase::Upcoming => return Ok(canned::not_started()),
        SalePhase::Ended => return Ok(canned::ended()),
        SalePhase::Open => {}
    }
    let (token, expires_at) = app.purchase_tokens.issue(&sale.sale.id, &user, now);
    Ok(Json(PurchaseToken { token, expires_at }).into_response())
}

/// The sale, or the API's 404.
pub(super) fn find(app: &AppState, id: &str) -> ApiResult<Arc<SaleView>> {
    app.sales
        .get(id)
        .ok_or_else(|| ApiError::not_found("no such sale"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stock_body_is_the_documented_view() {
        let new_sale: NewSale =
            serde_json::from_str(r#"{"name":"x","stock":7,"price_cents":1}"#).unwrap();
        let id = SaleId::from("needs \"escaping\"");
        let live = seckill_engine::LiveSale::new(new_sale.validate(id, Timestamp::now()).unwrap());
        let sale = SaleView::new(Arc::new(live));
        for (remaining, state) in [
            (7, StockState::Upcoming),
            (3, StockState::Open),
            (0, StockState::SoldOut),
            (1, StockState::Ended),
        ] {
            let view = StockView {
                sale_id: &sale.sale.id,
                stock: sale.sale.stock,
                remaining,
                state,
            };
            let expected = serde_json::to_vec(&view).unwrap();
            let body = sale.stock_json(remaining, state);
            assert_eq!(body, expected, "{}", String::from_utf8_lossy(&body));
        }
    }
}
