//! The OpenAPI 3 document of the API, served at `GET /api/v1/openapi.json`.
//! It is generated from the code — the handlers' `#[utoipa::path]`
//! annotations, the request and response types, and the error codes with
//! the statuses [`status_of`] gives them — so it cannot drift from what the
//! server does. Built and serialized once, then served as bytes.

use crate::error::{sends_retry_after, status_of};
use crate::routes::{dashboard, ops, orders, purchase, sales};
use bytes::Bytes;
use seckill_core::ErrorCode;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{AdditionalProperties, Schema, SchemaType};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, RefOr, Required, Response, ResponseBuilder, Type,
};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "seckill", version = "1", description = "The flash-sale engine's HTTP API."),
    paths(
        sales::create, sales::list, sales::get, sales::stock, sales::report,
        sales::purchase_token, purchase::purchase,
        orders::list, orders::get, orders::pay, orders::cancel,
        ops::degrade_level, ops::set_degrade_level, ops::openapi,
        ops::healthz, ops::readyz, ops::metrics,
        dashboard::page, dashboard::asset, dashboard::events,
    ),
    modifiers(&Components),
)]
struct ApiDoc;

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
            .insert("Error".into(), error_schema(&all).into());
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

/// `{"error": {"code", "message"}}` with `code` one of `codes`.
fn error_schema(codes: &[&str]) -> ObjectBuilder {
    let closed = || Some(AdditionalProperties::FreeForm(false));
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes.iter().copied()));
    let error = ObjectBuilder::new()
        .property("code", code)
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .required("code")
        .required("message")
        .additional_properties(closed());
    ObjectBuilder::new()
        .property("error", error)
        .required("error")
        .additional_properties(closed())
}

/// One documented answer per status among `codes`, listing its codes,
/// then the operation's note on that status, if any.
fn error_responses(
    codes: &[ErrorCode],
    notes: &[(u16, &str)],
) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for &code in codes {
        by_status
            .entry(status_of(code).as_u16())
            .or_default()
            .push(code);
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let names: Vec<&str> = codes.iter().map(|code| code.as_str()).collect();
            let mut description = names
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            for (_, note) in notes.iter().filter(|(noted, _)| *noted == status) {
                description.push_str(". ");
                description.push_str(note);
            }
            let content = ContentBuilder::new()
                .schema(Some(error_schema(&names)))
                .build();
            let mut response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content);
            if codes.iter().any(|&code| sends_retry_after(code)) {
                let seconds = HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds to wait before retrying."))
                    .build();
                response = response.header("Retry-After", seconds);
            }
            (status.to_string(), response.build().into())
        })
        .collect()
}

/// `errors! { Name = [Code, …] (STATUS: "note")…; … }`: the error answers
/// an operation documents, as a type its `#[utoipa::path]` lists among its
/// responses, with a note on a status where the codes do not say enough.
macro_rules! errors {
    ($($name:ident = [$($code:ident),* $(,)?] $(($status:literal: $note:expr))*;)*) => {$(
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                error_responses(&[$(ErrorCode::$code),*], &[$(($status, $note)),*])
            }
        }
    )*};
}

/// What a 503 to a purchase may mean.
const PURCHASE_UNAVAILABLE: &str = "A 503 on purchase may have reserved: a cluster's \
    durability wait can fall short after Redis took the units, and a purchase can run out \
    of time while its reservation is being made. Retry with the same `Idempotency-Key`: \
    it gets the earlier answer (the order) even once the sale has sold out or ended.";

// Every API route may be rate limited (429) or refused while overloaded,
// degraded or out of time (503); one that takes a body gets 408 when the
// body does not arrive within the time limit.
errors! {
    CreateSaleErrors = [
        BadRequest, Unauthorized, PayloadTooLarge, RequestTimeout, RateLimited, Unavailable,
    ];
    ListSalesErrors = [RateLimited, Unavailable];
    SaleErrors = [BadRequest, NotFound, RateLimited, Unavailable];
    ReportErrors = [BadRequest, Unauthorized, NotFound, RateLimited, Unavailable];
    PurchaseTokenErrors = [
        BadRequest, Unauthorized, NotFound, NotStarted, Ended, RateLimited, Unavailable,
    ];
    PurchaseErrors = [
        BadRequest, Unauthorized, PurchaseTokenRequired, PurchaseTokenInvalid, NotFound,
        PayloadTooLarge, RequestTimeout, SoldOut, LimitReached, NotStarted, Ended, RateLimited,
        Unavailable,
    ] (503: PURCHASE_UNAVAILABLE);
    ListOrdersErrors = [BadRequest, Unauthorized, RateLimited, Unavailable];
    OrderErrors = [BadRequest, Unauthorized, NotFound, RateLimited, Unavailable];
    PayErrors = [
        BadRequest, Unauthorized, NotFound, PayloadTooLarge, RequestTimeout, OrderExpired,
        OrderCancelled, NotPayable, RateLimited, Unavailable,
    ];
    CancelErrors = [BadRequest, Unauthorized, NotFound, NotCancellable, RateLimited, Unavailable];
    DegradeErrors = [Unauthorized, RateLimited, Unavailable];
    SetDegradeErrors = [BadRequest, Unauthorized, PayloadTooLarge, RateLimited, Unavailable];
    ReadyzErrors = [Unavailable];
    DashboardPageErrors = [BadRequest, Unauthorized];
    DashboardEventsErrors = [BadRequest, Unauthorized, Unavailable];
    DashboardAssetErrors = [NotFound];
}

/// `{sale_id}` in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SalePath {
    /// A sale's id.
    pub sale_id: String,
}

/// `{order_id}` in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrderPath {
    /// An order's id.
    pub order_id: String,
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
