//! The stable, machine-readable error codes of the API. Their HTTP statuses
//! are the server's business; the codes are the contract.

use std::fmt;

/// Every `error.code` the API can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    SoldOut,
    LimitReached,
    NotStarted,
    Ended,
    PurchaseTokenRequired,
    PurchaseTokenInvalid,
    OrderExpired,
    OrderCancelled,
    NotPayable,
    NotCancellable,
    RateLimited,
    Unavailable,
    NotImplemented,
    Internal,
}

impl ErrorCode {
    pub const ALL: [Self; 20] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::PayloadTooLarge,
        Self::RequestTimeout,
        Self::SoldOut,
        Self::LimitReached,
        Self::NotStarted,
        Self::Ended,
        Self::PurchaseTokenRequired,
        Self::PurchaseTokenInvalid,
        Self::OrderExpired,
        Self::OrderCancelled,
        Self::NotPayable,
        Self::NotCancellable,
        Self::RateLimited,
        Self::Unavailable,
        Self::NotImplemented,
        Self::Internal,
    ];

    /// The string clients match on.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::SoldOut => "sold_out",
            Self::LimitReached => "limit_reached",
            Self::NotStarted => "not_started",
            Self::Ended => "ended",
            Self::PurchaseTokenRequired => "purchase_token_required",
            Self::PurchaseTokenInvalid => "purchase_token_invalid",
            Self::OrderExpired => "order_expired",
            Self::OrderCancelled => "order_cancelled",
            Self::NotPayable => "not_payable",
            Self::NotCancellable => "not_cancellable",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::NotImplemented => "not_implemented",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input value, naming the field so the client can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
