//! The API's error answer: an HTTP status and
//! `{"error": {"code": "...", "message": "..."}}`.

use crate::prebuilt::{self, JSON_HEADERS};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use seckill_core::{ErrorCode, FieldError};
use seckill_engine::{Refusal, StoreError};
use std::borrow::Cow;
use std::sync::LazyLock;

/// The headers of a 429 or 503: when a client should retry, in seconds.
static RETRY_HEADERS: LazyLock<HeaderMap> =
    LazyLock::new(|| prebuilt::headers([(header::RETRY_AFTER, HeaderValue::from_static("1"))]));

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(what: &'static str) -> Self {
        Self::new(ErrorCode::NotFound, what)
    }

    pub fn unauthorized(message: &'static str) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn unavailable(message: &'static str) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// The refusals a purchase gets from the stock, the user's holding or
    /// the clock, in memory or from Redis; worded as their `canned` twins.
    pub fn sold_out() -> Self {
        Self::new(ErrorCode::SoldOut, "the sale is sold out")
    }

    pub fn limit_reached() -> Self {
        Self::new(
            ErrorCode::LimitReached,
            "you already hold the most this sale allows per user",
        )
    }

    pub fn not_started() -> Self {
        Self::new(ErrorCode::NotStarted, "the sale has not started yet")
    }

    pub fn ended() -> Self {
        Self::new(ErrorCode::Ended, "the sale has ended")
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }
}

pub const fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::PurchaseTokenRequired | ErrorCode::PurchaseTokenInvalid => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::SoldOut
        | ErrorCode::LimitReached
        | ErrorCode::NotStarted
        | ErrorCode::Ended
        | ErrorCode::OrderExpired
        | ErrorCode::OrderCancelled
        | ErrorCode::NotPayable
        | ErrorCode::NotCancellable => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether an answer with this code carries `Retry-After`: the client
/// should come back, not give up.
pub const fn sends_retry_after(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable)
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::bad_request(error.to_string())
    }
}

/// Why a cluster sale answers 503 while the stock authority's copy of it
/// is repaired.
pub const UNDER_REPAIR: &str = "the stock authority restarted and this sale is being checked against its orders; retry shortly";

/// The engine's refusals in the API's words.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::SoldOut => Self::sold_out(),
            Refusal::LimitReached => Self::limit_reached(),
            Refusal::NotStarted => Self::not_started(),
            Refusal::Ended => Self::ended(),
            Refusal::NoSuchOrder => Self::not_found("no such order"),
            Refusal::OrderExpired => Self::new(
                ErrorCode::OrderExpired,
                "the payment deadline has passed; the units are back on sale",
            ),
            Refusal::OrderCancelled => {
                Self::new(ErrorCode::OrderCancelled, "the order was cancelled")
            }
            Refusal::NotPayable => Self::new(
                ErrorCode::NotPayable,
                "the order is still queued or was paid with another payment_ref",
            ),
            Refusal::NotCancellable => Self::new(
                ErrorCode::NotCancellable,
                "only an unpaid order within its payment deadline can be cancelled",
            ),
            Refusal::Invalid(error) => error.into(),
            Refusal::UnderRepair => Self::unavailable(UNDER_REPAIR),
            Refusal::Unavailable(why) => Self::unavailable(why),
            Refusal::Store(error) => Self::from(&*error),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::from(&error)
    }
}

impl From<&StoreError> for ApiError {
    fn from(error: &StoreError) -> Self {
        if let StoreError::Refused(why) = error {
            tracing::warn!(
                request_id = crate::request_scope::current_id(),
                why,
                "the store refused a request's data"
            );
            return Self::bad_request("the order store cannot hold a value of this request");
        }
        // An open breaker was logged once when it opened, not per request.
        if !matches!(error, StoreError::CircuitOpen) {
            tracing::error!(
                request_id = crate::request_scope::current_id(),
                %error,
                "store failed"
            );
        }
        Self::unavailable("the order store is unavailable, retry shortly")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {"code": self.code.as_str(), "message": self.message}
        });
        error_response(self.code, Bytes::from(body.to_string()))
    }
}

/// An error answer whose body is already serialized. Its code is noted
/// for the request's metrics.
pub fn error_response(code: ErrorCode, body: Bytes) -> Response {
    crate::request_scope::note_error(code);
    let headers = if sends_retry_after(code) {
        &RETRY_HEADERS
    } else {
        &JSON_HEADERS
    };
    prebuilt::json(status_of(code), headers, body)
}

/// Error answers that the crowd gets most often, serialized once.
pub mod canned {
    use super::*;

    /// `canned!(function, ErrorCode variant, "wire code", "message")`.
    macro_rules! canned {
        ($name:ident, $code:ident, $wire:literal, $message:literal) => {
            pub fn $name() -> Response {
                const BODY: &str = concat!(
                    r#"{"error":{"code":""#,
                    $wire,
                    r#"","message":""#,
                    $message,
                    r#""}}"#
                );
                error_response(ErrorCode::$code, Bytes::from_static(BODY.as_bytes()))
            }
        };
    }

    canned!(sold_out, SoldOut, "sold_out", "the sale is sold out");
    canned!(
        not_started,
        NotStarted,
        "not_started",
        "the sale has not started yet"
    );
    canned!(ended, Ended, "ended", "the sale has ended");
    canned!(
        overloaded,
        Unavailable,
        "unavailable",
        "too many requests in flight; retry shortly"
    );
    canned!(
        degraded,
        Unavailable,
        "unavailable",
        "the service is degraded; this request is refused for now"
    );
    canned!(
        timed_out,
        Unavailable,
        "unavailable",
        "the request took too long; retry shortly"
    );
    canned!(
        body_timed_out,
        RequestTimeout,
        "request_timeout",
        "the request's body did not arrive in time"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn canned_refusals_say_what_their_api_errors_say() {
        for (canned, error) in [
            (canned::sold_out(), ApiError::sold_out()),
            (canned::not_started(), ApiError::not_started()),
            (canned::ended(), ApiError::ended()),
        ] {
            assert_eq!(body_of(canned).await, body_of(error.into_response()).await);
        }
    }

    #[tokio::test]
    async fn canned_bodies_match_their_codes() {
        for (response, code) in [
            (canned::sold_out(), ErrorCode::SoldOut),
            (canned::not_started(), ErrorCode::NotStarted),
            (canned::ended(), ErrorCode::Ended),
            (canned::overloaded(), ErrorCode::Unavailable),
            (canned::timed_out(), ErrorCode::Unavailable),
            (canned::body_timed_out(), ErrorCode::RequestTimeout),
            (canned::degraded(), ErrorCode::Unavailable),
        ] {
            assert_eq!(response.status(), status_of(code));
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"]["code"], code.as_str());
        }
    }
}
