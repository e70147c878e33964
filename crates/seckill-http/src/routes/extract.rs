//! Request parts turned into typed values, with every failure answered as
//! the API's JSON error (I8) instead of the framework's plain-text one.

use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use http_body_util::LengthLimitError;
use seckill_core::ErrorCode;
use serde::de::DeserializeOwned;

/// Largest request body accepted (413 beyond it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The one `{id}` segment of a route, percent-decoded; the accept loop
/// puts it in the request from the route table (`route::find`).
#[derive(Clone)]
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| ApiError::not_found("no such route"))
    }
}

/// The query string, parsed into `T`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(format!("query: {}", rejection.body_text())))
    }
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`]; `None` when it is empty.
/// Errors name the offending field.
pub async fn json_body<T: DeserializeOwned>(body: Body) -> ApiResult<Option<T>> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<LengthLimitError>());
            if too_large {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request("the body could not be read")
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_json(&bytes).map(Some)
}

/// Parses a whole JSON document, an object, into `T`; errors name the
/// offending field. Public so that it can be fuzzed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    // Every body the API takes is an object, and serde would also fill a
    // struct from an array of its fields in order (`[1]` as `{"quantity": 1}`).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request("body: must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            ApiError::bad_request(format!("body: {}", error.inner()))
        } else {
            ApiError::bad_request(format!("field `{path}`: {}", error.inner()))
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request(format!("body: {error}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        quantity: u64,
    }

    fn message(bytes: &[u8]) -> String {
        parse_json::<Probe>(bytes).unwrap_err().message.into_owned()
    }

    #[test]
    fn errors_name_the_field() {
        assert!(message(br#"{"quantity":"2"}"#).contains("quantity"));
        assert!(message(br#"{"quantity":-1}"#).contains("quantity"));
        assert!(message(br#"{"quantity":1e30}"#).contains("quantity"));
        assert!(message(br#"{"quantity":1,"extra":1}"#).contains("extra"));
        assert!(message(br#"{}"#).contains("quantity"));
    }

    #[test]
    fn only_an_object_is_a_body() {
        assert!(parse_json::<Probe>(b" \n{\"quantity\":1}").is_ok());
        for body in [&b"[1]"[..], b" [1]", b"[]", b"1", b"\"x\"", b"null"] {
            assert!(message(body).contains("JSON object"), "{body:?}");
        }
    }

    #[test]
    fn trailing_garbage_and_broken_json_are_refused() {
        assert!(parse_json::<Probe>(br#"{"quantity":1} x"#).is_err());
        assert!(parse_json::<Probe>(br#"{"quantity":"#).is_err());
        assert!(parse_json::<Probe>(b"\xff\xfe").is_err());
    }

    #[tokio::test]
    async fn empty_bodies_are_none_and_huge_ones_413() {
        let empty = json_body::<Probe>(Body::from(" \n")).await.unwrap();
        assert!(empty.is_none());
        let huge = Body::from(vec![b' '; MAX_BODY_BYTES + 1]);
        let error = json_body::<Probe>(huge).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::PayloadTooLarge);
    }
}
