//! Orders, each visible to its owner only: read, list, pay, cancel.

use super::extract::{Id, QueryParams, json_body};
use crate::App;
use crate::error::{ApiError, ApiResult};
use crate::openapi::responses::{self, OrderPath};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use seckill_core::order::check_payment_ref;
use seckill_core::{Order, OrderId, SaleId};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[utoipa::path(get, path = "/api/v1/orders/{order_id}", operation_id = "get_order",
    params(OrderPath), security(("user_jwt" = [])), responses((status = 200, body = Order,
        description = "The order; another user's is `not_found`."), responses::OrderErrors))]
pub async fn get(State(app): State<App>, Id(id): Id, headers: HeaderMap) -> ApiResult<Json<Order>> {
    let user = app.auth.user(&headers)?;
    Ok(Json(app.market.order(&order_id(&id)?, &user).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the orders of this sale.
    sale_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/orders", operation_id = "list_orders",
    params(ListQuery), security(("user_jwt" = [])),
    responses((status = 200, body = Vec<Order>, description = "The caller's orders."),
        responses::ListOrdersErrors))]
pub async fn list(
    State(app): State<App>,
    QueryParams(query): QueryParams<ListQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<Order>>> {
    let user = app.auth.user(&headers)?;
    let sale = match query.sale_id.as_deref().map(SaleId::parse) {
        // No sale has such an id, so none of the caller's orders is of it.
        Some(None) => return Ok(Json(Vec::new())),
        Some(Some(sale)) => Some(sale),
        None => None,
    };
    Ok(Json(app.market.orders_of(&user, sale.as_ref()).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayBody {
    /// Paying again with the same reference answers the same order.
    #[schema(min_length = 1, max_length = 200)]
    payment_ref: String,
}

#[utoipa::path(post, path = "/api/v1/orders/{order_id}/pay", operation_id = "pay",
    params(OrderPath), security(("user_jwt" = [])), request_body = PayBody,
    responses((status = 200, body = Order, description = "The order, `paid`."),
        responses::PayErrors))]
pub async fn pay(
    State(app): State<App>,
    Id(id): Id,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Order>> {
    let user = app.auth.user(&headers)?;
    let PayBody { payment_ref } = json_body(body)
        .await?
        .ok_or_else(|| ApiError::bad_request("body: `payment_ref` is required"))?;
    check_payment_ref(&payment_ref)?;
    Ok(Json(
        app.market.pay(&order_id(&id)?, &user, &payment_ref).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/orders/{order_id}/cancel", operation_id = "cancel",
    params(OrderPath), security(("user_jwt" = [])), responses((status = 200, body = Order,
        description = "The order, `cancelled`; its units are back on sale."),
        responses::CancelErrors))]
pub async fn cancel(
    State(app): State<App>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<Json<Order>> {
    let user = app.auth.user(&headers)?;
    Ok(Json(app.market.cancel(&order_id(&id)?, &user).await?))
}

/// The order a path names; an id no order can have is no such order, and
/// reaches no store.
fn order_id(id: &str) -> ApiResult<OrderId> {
    OrderId::parse(id).ok_or_else(no_such_order)
}

fn no_such_order() -> ApiError {
    ApiError::not_found("no such order")
}
