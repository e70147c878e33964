//! `GET /api/v1/openapi.json`: the document the server publishes covers
//! every route it classifies, protects the same routes the server does, and
//! names only error codes the server has, with the statuses it sends them
//! with. A route added without documentation fails here.

use seckill_core::ErrorCode;
use seckill_http::error::status_of;
use seckill_http::route::Route;
use seckill_test_support::*;
use std::collections::{BTreeMap, BTreeSet};

async fn document() -> Value {
    let server = Seckill::start().await;
    let resp = server.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let doc = resp.expect(StatusCode::OK);
    assert!(
        str_field(&doc, "openapi").starts_with("3."),
        "not OpenAPI 3: {}",
        doc["openapi"]
    );
    doc
}

/// `(method, path, operation)` for every documented operation.
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item is an object") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes())
                .unwrap_or_else(|_| panic!("{path}: `{method}` is not a method"));
            operations.push((method, path.clone(), operation.clone()));
        }
    }
    operations
}

/// `/api/v1/sales/{sale_id}` → `/api/v1/sales/x`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented() {
    let doc = document().await;
    let mut documented = BTreeMap::new();
    for (method, path, _) in operations(&doc) {
        let route = Route::of(&method, &concrete(&path));
        assert_ne!(
            route,
            Route::Other,
            "{method} {path} is no route of the server"
        );
        documented.insert(route.label(), format!("{method} {path}"));
    }
    let undocumented: Vec<&str> = Route::ALL
        .into_iter()
        .filter(|route| *route != Route::Other && !documented.contains_key(route.label()))
        .map(Route::label)
        .collect();
    assert!(
        undocumented.is_empty(),
        "undocumented routes: {undocumented:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_errors_are_the_servers_own() {
    let doc = document().await;
    let codes: BTreeMap<&str, ErrorCode> = ErrorCode::ALL
        .iter()
        .map(|code| (code.as_str(), *code))
        .collect();
    let mut seen = BTreeSet::<String>::new();
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let status: u16 = status.parse().expect("a numeric status");
            if status < 400 {
                continue;
            }
            let schema = &response["content"]["application/json"]["schema"];
            let documented = schema["properties"]["error"]["properties"]["code"]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} {status}: no error codes: {schema}"));
            assert_eq!(
                schema["required"],
                json!(["error"]),
                "{method} {path} {status}: the error object is required"
            );
            for code in documented {
                let name = code.as_str().expect("a code is a string");
                let code = codes.get(name).unwrap_or_else(|| {
                    panic!("{method} {path} {status}: `{name}` is no ErrorCode")
                });
                assert_eq!(
                    status_of(*code).as_u16(),
                    status,
                    "{method} {path}: `{name}` is documented under the wrong status"
                );
                seen.insert(name.to_string());
            }
        }
    }
    for expected in [
        "bad_request",
        "unauthorized",
        "not_found",
        "sold_out",
        "unavailable",
    ] {
        assert!(
            seen.contains(expected),
            "`{expected}` is documented nowhere"
        );
    }
}

/// Each operation that checks a token says which one, and the schemes exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_routes_name_their_token() {
    let doc = document().await;
    let schemes = &doc["components"]["securitySchemes"];
    for scheme in ["user_jwt", "admin_token", "dashboard_token"] {
        assert_eq!(schemes[scheme]["type"], "http", "{scheme}");
        assert_eq!(schemes[scheme]["scheme"], "bearer", "{scheme}");
    }
    let security = |method: &Method, path: &str| -> Option<String> {
        let (_, _, operation) = operations(&doc)
            .into_iter()
            .find(|(m, p, _)| m == method && p == path)
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let first = operation["security"]
            .as_array()?
            .first()?
            .as_object()?
            .clone();
        first.keys().next().cloned()
    };
    for (method, path, scheme) in [
        (Method::POST, "/api/v1/sales", Some("admin_token")),
        (
            Method::GET,
            "/api/v1/sales/{sale_id}/report",
            Some("admin_token"),
        ),
        (Method::POST, "/api/v1/admin/degrade", Some("admin_token")),
        (
            Method::POST,
            "/api/v1/sales/{sale_id}/purchase",
            Some("user_jwt"),
        ),
        (Method::GET, "/api/v1/orders/{order_id}", Some("user_jwt")),
        (
            Method::POST,
            "/api/v1/orders/{order_id}/pay",
            Some("user_jwt"),
        ),
        (Method::GET, "/api/v1/sales/{sale_id}", None),
        (Method::GET, "/healthz", None),
    ] {
        assert_eq!(
            security(&method, path).as_deref(),
            scheme,
            "{method} {path}"
        );
    }
    // The dashboard is open unless a token is configured: no scheme, or its own.
    for path in ["/dashboard", "/dashboard/events"] {
        let (_, _, operation) = operations(&doc)
            .into_iter()
            .find(|(m, p, _)| m == Method::GET && p == path)
            .unwrap_or_else(|| panic!("GET {path} is not documented"));
        assert_eq!(
            operation["security"],
            json!([{}, {"dashboard_token": []}]),
            "GET {path}"
        );
    }
}

/// A 503 to a purchase may have reserved: the document says so, and how
/// to get the order back.
#[tokio::test]
async fn a_purchase_503_says_it_may_have_reserved() {
    let doc = document().await;
    let description = str_field(
        &doc["paths"]["/api/v1/sales/{sale_id}/purchase"]["post"]["responses"]["503"],
        "description",
    );
    assert!(
        description.contains("may have reserved") && description.contains("same `Idempotency-Key`"),
        "{description}"
    );
}
