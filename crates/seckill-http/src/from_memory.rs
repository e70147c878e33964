//! The answers made from memory alone, in the accept loop's `call`, with
//! nothing awaited: the crowd's purchase of a sale that is sold out (or
//! unknown, not started, ended), the sale itself, its live stock, the list
//! of sales, and no route at all. They need no future, no task-local scope
//! and no time limit, which would be most of their cost. Every purchase
//! enters here; one that triage leaves to the market (an open sale, or a
//! keyed retry) goes the long way with the sale triage found. Anything
//! else goes to its async handler (`routes::answer`).

use crate::App;
use crate::error::{ApiError, ApiResult, canned};
use crate::route::{Route, Target};
use crate::routes::ops;
use crate::routes::purchase::{self, Triage};
use crate::routes::sales;
use crate::sale_views::SaleView;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use seckill_core::ErrorCode;
use std::sync::Arc;

/// What memory alone makes of a request that it takes.
pub enum Made {
    /// The answer, and the error code it was built with, if any.
    Answer(Response, Option<ErrorCode>),
    /// A purchase of this sale for the market to decide (triage found it
    /// open, or the request carries an Idempotency-Key): the long way,
    /// without looking the sale up again.
    Purchase(Arc<SaleView>),
}

impl From<ApiResult<Response>> for Made {
    fn from(answer: ApiResult<Response>) -> Self {
        match answer {
            Ok(answer) => Self::Answer(answer, None),
            Err(error) => {
                let code = error.code;
                Self::Answer(error.into_response(), Some(code))
            }
        }
    }
}

/// What memory alone makes of a request for `target`; `None` for the
/// long way.
pub fn made<B>(app: &App, target: Target<'_>, request: &Request<B>) -> Option<Made> {
    let headers = request.headers();
    let made = match target.route {
        Route::Purchase => unless_full(app, || match sale_id(&target) {
            Ok(id) => match purchase::triage(app, &id, headers) {
                Triage::Refused(answer, code) => Made::Answer(answer, Some(code)),
                Triage::Decide(sale) => Made::Purchase(sale),
            },
            Err(error) => Made::from(Err(error)),
        }),
        Route::Other if target.wrong_method => {
            Made::Answer(ops::method_not_allowed(), Some(ErrorCode::MethodNotAllowed))
        }
        Route::Other => Made::from(Err(ApiError::not_found("no such route"))),
        // A limited read may have to wait for its slot: the long way.
        route if app.rate_limits.applies_to(route) => return None,
        Route::GetSale => unless_full(app, || {
            sale_id(&target)
                .and_then(|id| sales::sale_answer(app, &id, headers))
                .into()
        }),
        Route::Stock => unless_full(app, || {
            sale_id(&target)
                .and_then(|id| sales::stock_answer(app, &id))
                .into()
        }),
        Route::ListSales => unless_full(app, || {
            Made::Answer(app.sales.listing().answer(headers), None)
        }),
        _ => return None,
    };
    Some(made)
}

/// The sale id of a route that has one, decoded.
fn sale_id<'a>(target: &'a Target<'_>) -> ApiResult<std::borrow::Cow<'a, str>> {
    target
        .decoded_id()?
        .ok_or_else(|| ApiError::not_found("no such route"))
}

/// Such an answer holds a place among those in flight for no time: it is
/// shed when no place is free, as the long way would be.
fn unless_full(app: &App, make: impl FnOnce() -> Made) -> Made {
    if app.in_flight.is_full() {
        app.metrics.shed_in_flight.increment(1);
        return Made::Answer(canned::overloaded(), Some(ErrorCode::Unavailable));
    }
    make()
}
