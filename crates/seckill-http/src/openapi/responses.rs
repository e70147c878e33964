//! What the document says each operation answers besides success: its
//! error codes grouped by status, and the path parameters.

use crate::error::{sends_retry_after, status_of};
use seckill_core::ErrorCode;
use std::collections::BTreeMap;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, RefOr, Response, ResponseBuilder, Type};
use utoipa::{IntoParams, IntoResponses};

/// `{"error": {"code", "message"}}` with `code` one of `codes`.
pub(super) fn error_schema(codes: &[&str]) -> ObjectBuilder {
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
