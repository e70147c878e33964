//! Cross-origin calls from pages served elsewhere — an item page rendered
//! by `seckill render` and put on a CDN reads the live stock and buys from
//! the engine's own origin. The buyer's routes answer any origin:
//! authentication is a bearer token sent by the page, never a cookie, so
//! allowing `*` lends no ambient authority. Admin routes allow no origin.
//! Only requests that carry `Origin` get the headers: the crowd's
//! non-browser clients pay nothing.

use crate::route::Route;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

const ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, x-purchase-token, x-request-id";
const EXPOSE_HEADERS: &str = "location, retry-after, x-request-id, etag";
/// Browsers may reuse a preflight answer this long (seconds).
const MAX_AGE: &str = "600";

/// The routes a page on another origin may call: the public reads and the
/// buyer's own.
pub fn allows(route: Route) -> bool {
    matches!(
        route,
        Route::ListSales
            | Route::GetSale
            | Route::Stock
            | Route::Purchase
            | Route::PurchaseToken
            | Route::ListOrders
            | Route::GetOrder
            | Route::Pay
            | Route::Cancel
    )
}

/// The answer to a preflight (`OPTIONS` naming the method to come) for an
/// allowed route; `None` for any other request.
pub fn preflight(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if method != Method::OPTIONS || !headers.contains_key(header::ORIGIN) {
        return None;
    }
    let requested = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|value| Method::from_bytes(value.as_bytes()).ok())?;
    if !allows(Route::of(&requested, path)) {
        return None;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    allow_origin(headers);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    Some(response)
}

/// Lets the calling page read an answer of an allowed route.
pub fn allow_origin(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight_for(method: &str, path: &str) -> Option<Response> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method).unwrap(),
        );
        preflight(&Method::OPTIONS, path, &headers)
    }

    #[test]
    fn buyers_routes_are_open_to_other_origins_admin_routes_are_not() {
        let answer = preflight_for("POST", "/api/v1/sales/s/purchase").expect("allowed");
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            answer.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            HeaderValue::from_static("*")
        );
        assert!(preflight_for("GET", "/api/v1/sales/s/stock").is_some());
        assert!(preflight_for("POST", "/api/v1/sales").is_none(), "admin");
        assert!(
            preflight_for("GET", "/api/v1/sales/s/report").is_none(),
            "admin"
        );
        assert!(preflight_for("POST", "/api/v1/admin/degrade").is_none());
        assert!(preflight(&Method::OPTIONS, "/api/v1/sales", &HeaderMap::new()).is_none());
    }
}
