//! The answers made from memory alone, in the accept loop's `call`, with
//! nothing awaited: the crowd's purchase of a sale that is sold out (or
//! unknown, not started, ended), the sale itself and its live stock. They need no future, no
//! task-local scope, no time limit and no router: all of that per request
//! cost the sold-out answer a quarter of its throughput (ARCHITECTURE.md,
//! "Request metrics, measured"). Anything else, or anything these cannot
//! finish, goes the long way.

use crate::App;
use crate::error::canned;
use crate::route::{Route, plain_sale_id};
use crate::routes::{purchase, sales};
use axum::http::Request;
use axum::response::Response;
use seckill_core::ErrorCode;

/// An answer and the error code it was built with, if any.
pub type Answer = (Response, Option<ErrorCode>);

/// The answer to `request` if memory alone makes it; `None` for the long way.
pub fn answer<B>(app: &App, route: Route, request: &Request<B>) -> Option<Answer> {
    let path = request.uri().path();
    let sale_id = match route {
        Route::Purchase => plain_sale_id(path, "/purchase")?,
        // A limited read may have to wait for its slot: the long way.
        Route::Stock if !app.rate_limits.applies_to(route) => plain_sale_id(path, "/stock")?,
        Route::GetSale if !app.rate_limits.applies_to(route) => plain_sale_id(path, "")?,
        _ => return None,
    };
    // Such an answer holds a place among those in flight for no time: it
    // is shed when no place is free, as the long way would be.
    if app.in_flight.is_full() {
        app.metrics.shed_in_flight.increment(1);
        return Some((canned::overloaded(), Some(ErrorCode::Unavailable)));
    }
    match route {
        Route::Purchase => purchase::triage(app, sale_id).refused(),
        Route::GetSale => Some(sales::sale_answer(app, sale_id, request.headers())),
        _ => Some(sales::stock_answer(app, sale_id)),
    }
}
