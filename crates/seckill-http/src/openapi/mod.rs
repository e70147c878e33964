//! The OpenAPI 3 document of the API, served at `GET /api/v1/openapi.json`.
//! It is generated from the code — the handlers' `#[utoipa::path]`
//! annotations, the request and response types, and the error codes with
//! the statuses [`status_of`] gives them — so it cannot drift from what the
//! server does. Built and serialized once, then served as bytes.

pub mod responses;

use crate::routes::{dashboard, ops, orders, purchase, sales};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use seckill_core::ErrorCode;
use std::sync::LazyLock;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{Schema, SchemaType};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Required, Type};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "seckill", version = "1", description = "The flash-sale engine's HTTP API."),
    paths(
        sales::create, sales::list, sales::get, sales::stock, sales::report,
        sales::purchase_token, purchase::buy,
        orders::list, orders::get, orders::pay, orders::cancel,
        ops::degrade_level, ops::set_degrade_level, serve,
        ops::healthz, ops::readyz, ops::metrics,
        dashboard::page, dashboard::asset, dashboard::events,
    ),
    modifiers(&Components),
)]
struct ApiDoc;

/// This document, generated from the code.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, body = Object, description = "The OpenAPI document of this API.")))]
pub async fn serve() -> axum::response::Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document(),
    )
        .into_response()
}

/// The document as JSON, built on first use.
pub fn document() -> Bytes {
    static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
        let json = ApiDoc::openapi()
            .to_json()
            .expect("the document is plain data");
        Bytes::from(json)
    });
    DOCUMENT.clone()
}

/// The security schemes, and the error object with every code.
struct Components;

impl Modify for Components {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer);
            if description.contains("JWT") {
                scheme = scheme.bearer_format("JWT");
            }
            SecurityScheme::Http(scheme.description(Some(description)).build())
        };
        components.add_security_scheme(
            "user_jwt",
            bearer("A user's HS256 JWT; `sub` is the user id, `exp` is required."),
        );
        components.add_security_scheme("admin_token", bearer("The configured admin token."));
        components.add_security_scheme(
            "dashboard_token",
            bearer("The configured dashboard token, when one is set; or as `?token=`."),
        );
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        components
            .schemas
            .insert("Error".into(), responses::error_schema(&all).into());
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.post, &mut item.put, &mut item.patch] {
                let body = operation.as_mut().and_then(|op| op.request_body.as_mut());
                if let Some(RefOr::T(body)) = body {
                    absent_not_null(body);
                }
            }
        }
    }
}

/// An optional body (`Option<T>` in an annotation) may be left out, but is
/// never the JSON `null` the generated schema would also allow.
fn absent_not_null(body: &mut RequestBody) {
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let mut types = one_of.items.iter().filter(|item| !is_null(item));
            if let (Some(only), None) = (types.next(), types.next()) {
                content.schema = Some(only.clone());
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::Type(Type::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Length bounds in annotations are literals: they must be the checked ones.
    #[test]
    fn the_documented_lengths_are_the_checked_ones() {
        let doc: Value = serde_json::from_slice(&document()).unwrap();
        let pay_ref = &doc["components"]["schemas"]["PayBody"]["properties"]["payment_ref"];
        assert_eq!(
            pay_ref["maxLength"].as_u64(),
            Some(seckill_core::order::MAX_PAYMENT_REF_LEN as u64)
        );
        let purchase = &doc["paths"]["/api/v1/sales/{sale_id}/purchase"]["post"];
        let key = purchase["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "Idempotency-Key")
            .unwrap();
        assert_eq!(
            key["schema"]["maxLength"].as_u64(),
            Some(purchase::MAX_IDEMPOTENCY_KEY_LEN as u64)
        );
        assert_eq!(key["schema"]["pattern"], "^[!-~]+$");
    }
}
