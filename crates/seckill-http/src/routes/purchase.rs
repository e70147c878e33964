//! `POST /api/v1/sales/{id}/purchase`: the hot path, cheapest check first.
//! Unknown, upcoming, ended and sold-out sales are answered from memory
//! before the token is even looked at: most of a crowd ends there.

use super::extract::json_body;
use super::sales;
use crate::error::{ApiError, ApiResult, canned};

use crate::AppState;
use crate::openapi::responses::{self, SalePath};
use crate::rate_limit::Limited;
use crate::route::Route;
use crate::sale_views::SaleView;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seckill_core::Receipt;
use seckill_core::{ErrorCode, SalePhase};
use seckill_engine::Purchase;
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use utoipa::ToSchema;

/// Where a sale with `require_purchase_token` looks for the token.
const PURCHASE_TOKEN_HEADER: &str = "x-purchase-token";

const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Longest accepted Idempotency-Key.
pub(crate) const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// At most the sale's `per_user_limit`.
    #[serde(default = "one")]
    #[schema(minimum = 1)]
    quantity: u64,
}

fn one() -> u64 {
    1
}

impl Default for PurchaseBody {
    fn default() -> Self {
        Self { quantity: one() }
    }
}

/// Where a purchase stands before anything about the buyer is known.
pub(crate) enum Triage {
    /// Answered from memory: unknown sale, not started, ended, sold out.
    Refused(Response, ErrorCode),
    /// For the market to decide: the sale is open, or the request carries
    /// an Idempotency-Key whose earlier answer must win over the refusal
    /// (the market checks the key before the phase and the stock, I5).
    Decide(Arc<SaleView>),
}

/// The cheapest checks, from memory only; refusals are counted. Only a
/// request that would be refused looks at its headers.
pub(crate) fn triage(app: &AppState, sale_id: &str, headers: &HeaderMap) -> Triage {
    let sale = match sales::find(app, sale_id) {
        Ok(sale) => sale,
        Err(error) => {
            let error = app.metrics.refused(error);
            let code = error.code;
            return Triage::Refused(error.into_response(), code);
        }
    };
    if sale.is_unavailable() {
        let error = app
            .metrics
            .refused(ApiError::unavailable(crate::error::UNDER_REPAIR));
        return Triage::Refused(error.into_response(), ErrorCode::Unavailable);
    }
    let (code, answer): (ErrorCode, fn() -> Response) = match app.market.clock().phase(&sale.sale) {
        SalePhase::Upcoming => (ErrorCode::NotStarted, canned::not_started),
        SalePhase::Ended => (ErrorCode::Ended, canned::ended),
        SalePhase::Open if sale.stock.is_sold_out() => (ErrorCode::SoldOut, canned::sold_out),
        SalePhase::Open => return Triage::Decide(sale),
    };
    // A walk over the few headers: cheaper than hashing the name.
    if headers.keys().any(|name| name == IDEMPOTENCY_KEY_HEADER) {
        return Triage::Decide(sale);
    }
    app.metrics.purchase(Some(code));
    Triage::Refused(answer(), code)
}

/// Why a purchase that passed triage was refused.
enum Refused {
    Api(ApiError),
    Limited(Limited),
}

impl<E: Into<ApiError>> From<E> for Refused {
    fn from(error: E) -> Self {
        Self::Api(error.into())
    }
}

impl From<Limited> for Refused {
    fn from(limited: Limited) -> Self {
        Self::Limited(limited)
    }
}

/// A purchase of `sale`, which triage left to the market, from `peer`,
/// cheapest check first.
#[utoipa::path(post, path = "/api/v1/sales/{sale_id}/purchase", operation_id = "purchase",
    security(("user_jwt" = [])),
    params(SalePath,
        ("Idempotency-Key" = Option<String>, Header, nullable = false, max_length = 200,
            pattern = "^[!-~]+$",
            description = "Retries with the same key and user get the first answer."),
        ("X-Purchase-Token" = Option<String>, Header, nullable = false,
            description = "Required by sales with `require_purchase_token`.")),
    request_body(content = Option<PurchaseBody>, description = "May be empty: one unit."),
    responses((status = 202, body = Receipt, description = "Reserved durably.",
        headers(("Location" = String, description = "`/api/v1/orders/{order_id}`")),
        links(
            ("get_order" = (operation_id = "get_order",
                parameters(("order_id" = "$response.body#/order_id")))),
            ("pay" = (operation_id = "pay",
                parameters(("order_id" = "$response.body#/order_id")))),
            ("cancel" = (operation_id = "cancel",
                parameters(("order_id" = "$response.body#/order_id")))))),
        responses::PurchaseErrors))]
pub async fn buy(
    app: &AppState,
    sale: &Arc<SaleView>,
    peer: IpAddr,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    match reserve(app, sale, peer, &parts.headers, body).await {
        Ok(response) => {
            app.metrics.purchase(None);
            response
        }
        Err(Refused::Api(error)) => app.metrics.refused(error).into_response(),
        Err(Refused::Limited(limited)) => {
            app.metrics.purchase(Some(ErrorCode::RateLimited));
            limited.into_response()
        }
    }
}

async fn reserve(
    app: &AppState,
    sale: &Arc<SaleView>,
    peer: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    let limits = &app.rate_limits;
    limits.admit_address(Route::Purchase, peer, headers).await?;
    let user = app.auth.user(headers)?;
    limits.admit_user(Route::Purchase, Some(&user)).await?;
    if sale.sale.require_purchase_token {
        let token = headers
            .get(PURCHASE_TOKEN_HEADER)
            .map(HeaderValue::as_bytes);
        app.purchase_tokens
            .check(&sale.sale.id, &user, token, app.market.clock().now())?;
    }
    let request = json_body::<PurchaseBody>(body).await?.unwrap_or_default();
    let quantity = sale.sale.check_quantity(request.quantity)?;
    let idempotency_key = idempotency_key(headers)?;
    let receipt = app
        .market
        .purchase(
            &sale.live,
            Purchase {
                user,
                quantity,
                idempotency_key,
            },
        )
        .await?;
    let location = HeaderValue::from_str(&format!("/api/v1/orders/{}", receipt.order_id))
        .map_err(|_| ApiError::new(ErrorCode::Internal, "order id is not a header value"))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(receipt),
    )
        .into_response())
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    // Visible ASCII is `!` to `~`: no space, tab or other control character.
    match value.to_str() {
        Ok(key)
            if (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
                && key.bytes().all(|byte| byte.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_string()))
        }
        _ => Err(ApiError::bad_request(format!(
            "Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        ))),
    }
}
