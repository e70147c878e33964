//! The answers made from memory alone, in the accept loop's `call`, with
//! nothing awaited: the crowd's purchase of a sale that is sold out (or
//! unknown, not started, ended), the sale itself, its live stock and the
//! list of sales. They need no future, no task-local scope, no time limit
//! and no router, which would be most of their cost. Anything else, or
//! anything these cannot finish, goes the long way: a purchase that triage
//! leaves to the market (an open sale, or a keyed retry) takes the sale
//! that triage found along.

use crate::App;
use crate::error::{ApiResult, canned};
use crate::route::{Route, plain_sale_id};
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

/// What memory alone makes of `request`; `None` for the long way.
pub fn made<B>(app: &App, route: Route, request: &Request<B>) -> Option<Made> {
    let (path, headers) = (request.uri().path(), request.headers());
    let made = match route {
        Route::Purchase => {
            let sale_id = plain_sale_id(path, "/purchase")?;
            unless_full(app, || match purchase::triage(app, sale_id, headers) {
                Triage::Refused(answer, code) => Made::Answer(answer, Some(code)),
                Triage::Decide(sale) => Made::Purchase(sale),
            })
        }
        // A limited read may have to wait for its slot: the long way.
        _ if app.rate_limits.applies_to(route) => return None,
        Route::GetSale => {
            let sale_id = plain_sale_id(path, "")?;
            unless_full(app, || sales::sale_answer(app, sale_id, headers).into())
        }
        Route::Stock => {
            let sale_id = plain_sale_id(path, "/stock")?;
            unless_full(app, || sales::stock_answer(app, sale_id).into())
        }
        Route::ListSales => unless_full(app, || {
            Made::Answer(app.sales.listing().answer(headers), None)
        }),
        _ => return None,
    };
    Some(made)
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
