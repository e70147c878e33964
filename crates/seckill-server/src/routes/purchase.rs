//! `POST /api/v1/sales/{id}/purchase`: the hot path, cheapest check first.
//! Unknown, upcoming, ended and sold-out sales are answered from memory
//! before the token is even looked at: most of a crowd ends there.

use super::extract::{Id, json_body};
use crate::App;
use crate::error::{ApiError, ApiResult, canned};
use crate::market::Purchase;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seckill_core::{ErrorCode, SalePhase, Timestamp};
use serde::Deserialize;

/// Longest accepted Idempotency-Key.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseBody {
    #[serde(default = "one")]
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

pub async fn purchase(State(app): State<App>, Id(sale_id): Id, request: Request) -> Response {
    let Some(sale) = app.market.get(&sale_id) else {
        return app
            .metrics
            .refused(ApiError::not_found("no such sale"))
            .into_response();
    };
    let refused_from_memory = match sale.sale.phase(Timestamp::now()) {
        SalePhase::Upcoming => Some((
            ErrorCode::NotStarted,
            canned::not_started as fn() -> Response,
        )),
        SalePhase::Ended => Some((ErrorCode::Ended, canned::ended as fn() -> Response)),
        SalePhase::Open if sale.stock.is_sold_out() => {
            Some((ErrorCode::SoldOut, canned::sold_out as fn() -> Response))
        }
        SalePhase::Open => None,
    };
    if let Some((code, answer)) = refused_from_memory {
        app.metrics.purchase(Some(code));
        return answer();
    }
    // Taken apart only now: the refusals above never touch headers or body.
    let (parts, body) = request.into_parts();
    match reserve(&app, &sale, &parts.headers, body).await {
        Ok(response) => {
            app.metrics.purchase(None);
            response
        }
        Err(error) => app.metrics.refused(error).into_response(),
    }
}

async fn reserve(
    app: &App,
    sale: &std::sync::Arc<crate::market::LiveSale>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let user = app.auth.user(headers)?;
    let request = json_body::<PurchaseBody>(body).await?.unwrap_or_default();
    let quantity = sale.sale.check_quantity(request.quantity)?;
    let idempotency_key = idempotency_key(headers)?;
    let receipt = app
        .market
        .purchase(
            sale,
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
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN => {
            Ok(Some(key.to_string()))
        }
        _ => Err(ApiError::bad_request(format!(
            "Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        ))),
    }
}
