//! Which route of the API a request is for, known from its method and path
//! before any routing: degradation decides on it, metrics label by it. It is
//! a classification, not a router: a request with a malformed id still
//! reaches the router, which answers it.

use axum::http::Method;

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
        let post = method == Method::POST;
        let get = method == Method::GET;
        let segments = path.strip_prefix("/api/v1/").map(|rest| {
            let mut parts = Segments(Some(rest));
            [parts.next(), parts.next(), parts.next(), parts.next()]
        });
        match segments {
            Some([Some("sales"), None, None, None]) if post => Self::CreateSale,
            Some([Some("sales"), None, None, None]) if get => Self::ListSales,
            Some([Some("sales"), Some(_), None, None]) if get => Self::GetSale,
            Some([Some("sales"), Some(_), Some("stock"), None]) if get => Self::Stock,
            Some([Some("sales"), Some(_), Some("report"), None]) if get => Self::Report,
            Some([Some("sales"), Some(_), Some("purchase"), None]) if post => Self::Purchase,
            Some([Some("sales"), Some(_), Some("purchase-token"), None]) if post => {
                Self::PurchaseToken
            }
            Some([Some("orders"), None, None, None]) if get => Self::ListOrders,
            Some([Some("orders"), Some(_), None, None]) if get => Self::GetOrder,
            Some([Some("orders"), Some(_), Some("pay"), None]) if post => Self::Pay,
            Some([Some("orders"), Some(_), Some("cancel"), None]) if post => Self::Cancel,
            Some([Some("admin"), Some("degrade"), None, None]) if get || post => Self::Degrade,
            Some([Some("openapi.json"), None, None, None]) if get => Self::OpenApi,
            Some(_) => Self::Other,
            None => match path {
                "/healthz" if get => Self::Healthz,
                "/readyz" if get => Self::Readyz,
                "/metrics" if get => Self::Metrics,
                "/dashboard/events" if get => Self::DashboardEvents,
                "/dashboard" if get => Self::Dashboard,
                _ if get && path.starts_with("/dashboard/") => Self::Dashboard,
                _ => Self::Other,
            },
        }
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

/// The sale id of `/api/v1/sales/{id}{suffix}` when it needs no decoding,
/// for the routes answered without the router; ids that do are routed.
pub fn plain_sale_id<'a>(path: &'a str, suffix: &str) -> Option<&'a str> {
    let id = path.strip_prefix("/api/v1/sales/")?.strip_suffix(suffix)?;
    let plain = !id.is_empty() && memchr::memchr2(b'/', b'%', id.as_bytes()).is_none();
    plain.then_some(id)
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
    fn only_plain_sale_ids_are_taken_from_the_path() {
        let id = |path| plain_sale_id(path, "/stock");
        assert_eq!(id("/api/v1/sales/s-1/stock"), Some("s-1"));
        assert_eq!(id("/api/v1/sales/a%2Fb/stock"), None, "needs decoding");
        assert_eq!(id("/api/v1/sales/a/b/stock"), None);
        assert_eq!(id("/api/v1/sales//stock"), None);
        assert_eq!(id("/api/v1/sales/s/purchase"), None);
    }
}
