//! The answers made from memory alone, in the accept loop's `call`, with
//! nothing awaited: the crowd's purchase of a sale that is sold out (or
//! unknown, not started, ended), the sale itself, its live stock and the
//! list of sales. They need no future, no task-local scope, no time limit
//! and no router: all of that per request
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
    let (path, headers) = (request.uri().path(), request.headers());
    match route {
        Route::Purchase => {
            let sale_id = plain_sale_id(path, "/purchase")?;
            unless_full(app, || purchase::triage(app, sale_id).refused())
        }
        // A limited read may have to wait for its slot: the long way.
        _ if app.rate_limits.applies_to(route) => None,
        Route::GetSale => {
            let sale_id = plain_sale_id(path, "")?;
            unless_full(app, || Some(sales::sale_answer(app, sale_id, headers)))
        }
        Route::Stock => {
            let sale_id = plain_sale_id(path, "/stock")?;
            unless_full(app, || Some(sales::stock_answer(app, sale_id)))
        }
        Route::ListSales => unless_full(app, || Some((app.market.listing().answer(headers), None))),
        _ => None,
    }
}

/// Such an answer holds a place among those in flight for no time: it is
/// shed when no place is free, as the long way would be.
fn unless_full(app: &App, make: impl FnOnce() -> Option<Answer>) -> Option<Answer> {
    if app.in_flight.is_full() {
        app.metrics.shed_in_flight.increment(1);
        return Some((canned::overloaded(), Some(ErrorCode::Unavailable)));
    }
    make()
}
