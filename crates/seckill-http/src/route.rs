//! The route table: which route of the API a request is for, and its
//! `{id}` segment, known from its method and path alone. Degradation
//! decides on the route and metrics label by it; memory answers some
//! routes at once (`from_memory`) and the rest go to their async handler
//! (`routes::answer`). A purchase always takes the first way.

use crate::error::{ApiError, ApiResult};
use axum::http::Method;
use std::borrow::Cow;

/// The routes of the API, plus everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Purchase,
    PurchaseToken,
    CreateSale,
    ListSales,
    GetSale,
    Stock,
    Report,
    ListOrders,
    GetOrder,
    Pay,
    Cancel,
    Degrade,
    OpenApi,
    Healthz,
    Readyz,
    Metrics,
    /// The live dashboard's page and its assets.
    Dashboard,
    /// The dashboard's stream of snapshots.
    DashboardEvents,
    /// No route of the API (answered 404 or 405 by the router).
    Other,
}

impl Route {
    pub const ALL: [Self; 19] = [
        Self::Purchase,
        Self::PurchaseToken,
        Self::CreateSale,
        Self::ListSales,
        Self::GetSale,
        Self::Stock,
        Self::Report,
        Self::ListOrders,
        Self::GetOrder,
        Self::Pay,
        Self::Cancel,
        Self::Degrade,
        Self::OpenApi,
        Self::Healthz,
        Self::Readyz,
        Self::Metrics,
        Self::Dashboard,
        Self::DashboardEvents,
        Self::Other,
    ];

    pub fn of(method: &Method, path: &str) -> Self {
        find(method, path).route
    }

    /// The `route` label of metrics.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::PurchaseToken => "purchase_token",
            Self::CreateSale => "create_sale",
            Self::ListSales => "list_sales",
            Self::GetSale => "get_sale",
            Self::Stock => "stock",
            Self::Report => "report",
            Self::ListOrders => "list_orders",
            Self::GetOrder => "get_order",
            Self::Pay => "pay",
            Self::Cancel => "cancel",
            Self::Degrade => "degrade",
            Self::OpenApi => "openapi",
            Self::Healthz => "healthz",
            Self::Readyz => "readyz",
            Self::Metrics => "metrics",
            Self::Dashboard => "dashboard",
            Self::DashboardEvents => "dashboard_events",
            Self::Other => "other",
        }
    }
}

/// The `/`-separated segments of a path, each end found with `memchr`:
/// every request is classified, and `memchr` is the cheapest search.
struct Segments<'a>(Option<&'a str>);

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0.take()?;
        let Some(slash) = memchr::memchr(b'/', rest.as_bytes()) else {
            return Some(rest);
        };
        self.0 = Some(&rest[slash + 1..]);
        Some(&rest[..slash])
    }
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub route: Route,
    /// The path's `{id}` segment as sent (percent-encoded).
    pub id: Option<&'a str>,
    /// The path is a route's, the method is not (405); else an `Other`
    /// route is no route at all (404).
    pub wrong_method: bool,
}

impl Target<'_> {
    /// The `{id}` segment, percent-decoded.
    pub fn decoded_id(&self) -> ApiResult<Option<Cow<'_, str>>> {
        self.id
            .map(|raw| {
                // Ids as the engine makes them carry no `%`: nothing to decode.
                if memchr::memchr(b'%', raw.as_bytes()).is_none() {
                    return Ok(Cow::Borrowed(raw));
                }
                percent_encoding::percent_decode_str(raw)
                    .decode_utf8()
                    .map_err(|_| ApiError::bad_request("path: the id is not UTF-8 once decoded"))
            })
            .transpose()
    }
}

/// The route table: every path, with its route for GET (HEAD too) and for
/// POST.
pub fn find<'a>(method: &Method, path: &'a str) -> Target<'a> {
    use Route::*;
    let segments = path.strip_prefix("/api/v1/").map(|rest| {
        let mut parts = Segments(Some(rest));
        [parts.next(), parts.next(), parts.next(), parts.next()]
    });
    let id = |id: &'a str| (!id.is_empty()).then_some(id);
    let (on_get, on_post, id) = match segments {
        Some([Some("sales"), None, None, None]) => (Some(ListSales), Some(CreateSale), None),
        Some([Some("sales"), Some(sale), tail, None]) => match (id(sale), tail) {
            (None, _) => (None, None, None),
            (sale, None) => (Some(GetSale), None, sale),
            (sale, Some("stock")) => (Some(Stock), None, sale),
            (sale, Some("report")) => (Some(Report), None, sale),
            (sale, Some("purchase")) => (None, Some(Purchase), sale),
            (sale, Some("purchase-token")) => (None, Some(PurchaseToken), sale),
            _ => (None, None, None),
        },
        Some([Some("orders"), None, None, None]) => (Some(ListOrders), None, None),
        Some([Some("orders"), Some(order), tail, None]) => match (id(order), tail) {
            (None, _) => (None, None, None),
            (order, None) => (Some(GetOrder), None, order),
            (order, Some("pay")) => (None, Some(Pay), order),
            (order, Some("cancel")) => (None, Some(Cancel), order),
            _ => (None, None, None),
        },
        Some([Some("admin"), Some("degrade"), None, None]) => (Some(Degrade), Some(Degrade), None),
        Some([Some("openapi.json"), None, None, None]) => (Some(OpenApi), None, None),
        Some(_) => (None, None, None),
        None => match path {
            "/healthz" => (Some(Healthz), None, None),
            "/readyz" => (Some(Readyz), None, None),
            "/metrics" => (Some(Metrics), None, None),
            "/dashboard/events" => (Some(DashboardEvents), None, None),
            "/dashboard" => (Some(Dashboard), None, None),
            _ => match path.strip_prefix("/dashboard/") {
                Some(asset) if !asset.is_empty() && !asset.contains('/') => {
                    (Some(Dashboard), None, Some(asset))
                }
                _ => (None, None, None),
            },
        },
    };
    let route = if method == Method::GET || method == Method::HEAD {
        on_get
    } else if method == Method::POST {
        on_post
    } else {
        None
    };
    match route {
        Some(route) => Target {
            route,
            id,
            wrong_method: false,
        },
        None => Target {
            route: Other,
            id: None,
            wrong_method: on_get.is_some() || on_post.is_some(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_method_and_path() {
        let post = Method::POST;
        let get = Method::GET;
        for (method, path, route) in [
            (&post, "/api/v1/sales/s/purchase", Route::Purchase),
            (
                &post,
                "/api/v1/sales/s/purchase-token",
                Route::PurchaseToken,
            ),
            (&post, "/api/v1/sales", Route::CreateSale),
            (&get, "/api/v1/sales", Route::ListSales),
            (&get, "/api/v1/sales/s", Route::GetSale),
            (&get, "/api/v1/sales/s/stock", Route::Stock),
            (&get, "/api/v1/sales/s/report", Route::Report),
            (&get, "/api/v1/orders", Route::ListOrders),
            (&get, "/api/v1/orders/o", Route::GetOrder),
            (&post, "/api/v1/orders/o/pay", Route::Pay),
            (&post, "/api/v1/orders/o/cancel", Route::Cancel),
            (&post, "/api/v1/admin/degrade", Route::Degrade),
            (&get, "/api/v1/admin/degrade", Route::Degrade),
            (&get, "/api/v1/openapi.json", Route::OpenApi),
            (&get, "/healthz", Route::Healthz),
            (&get, "/metrics", Route::Metrics),
            (&get, "/dashboard", Route::Dashboard),
            (&get, "/dashboard/app.js", Route::Dashboard),
            (&get, "/dashboard/events", Route::DashboardEvents),
            (&post, "/dashboard", Route::Other),
            (&get, "/api/v1/sales/s/purchase", Route::Other),
            (&post, "/api/v1/sales/s/purchase/x", Route::Other),
            (&get, "/api/v1/orders/o/pay", Route::Other),
            (&get, "/nowhere", Route::Other),
        ] {
            assert_eq!(Route::of(method, path), route, "{method} {path}");
        }
    }

    #[test]
    fn ids_are_taken_from_the_path_and_decoded() {
        let post = Method::POST;
        let target = find(&post, "/api/v1/sales/a%2Fb/purchase");
        assert_eq!(target.route, Route::Purchase);
        assert_eq!(target.id, Some("a%2Fb"));
        assert_eq!(target.decoded_id().unwrap().as_deref(), Some("a/b"));
        let bad = find(&post, "/api/v1/sales/%FF/purchase");
        assert!(bad.decoded_id().is_err());
        assert_eq!(find(&Method::GET, "/dashboard/app.js").id, Some("app.js"));
        assert_eq!(find(&Method::GET, "/api/v1/orders/o").id, Some("o"));
        assert_eq!(find(&Method::GET, "/api/v1/sales").id, None);
    }

    #[test]
    fn a_route_asked_with_another_method_is_told_apart_from_no_route() {
        let wrong = find(&Method::GET, "/api/v1/sales/s/purchase");
        assert_eq!((wrong.route, wrong.wrong_method), (Route::Other, true));
        let wrong = find(&Method::DELETE, "/api/v1/sales");
        assert_eq!((wrong.route, wrong.wrong_method), (Route::Other, true));
        for path in [
            "/nowhere",
            "/api/v1/sales//stock",
            "/api/v1/sales/s/",
            "/dashboard/",
        ] {
            let none = find(&Method::GET, path);
            assert_eq!(
                (none.route, none.wrong_method),
                (Route::Other, false),
                "{path}"
            );
        }
        assert_eq!(find(&Method::HEAD, "/api/v1/sales").route, Route::ListSales);
    }
}
