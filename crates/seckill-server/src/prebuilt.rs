//! Answers assembled from parts made once: a JSON body and a header map
//! that is cloned, not built. Building the headers per request (each one
//! hashed into a fresh map, and axum's `IntoResponse` first setting a
//! content type that the next step replaced) took about 1,800 of the
//! 12,900 instructions of a sale read; cloning takes about 500
//! (callgrind, ARCHITECTURE.md "Cached reads, measured").

use crate::request_scope::REQUEST_ID_HEADER;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// `Content-Type: application/json` alone.
pub static JSON_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| headers([]));

/// A JSON answer with a copy of `headers`.
pub fn json(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers.clone();
    response
}

/// Headers an answer to another origin gets after it is made (CORS'
/// `Access-Control-Allow-Origin` and `-Expose-Headers`): room is kept for
/// them, so that adding them does not grow the map's table.
const ADDED_LATER: usize = 2;

/// `Content-Type: application/json`, an empty request id and `more`.
/// The request id is filled in as the answer leaves
/// (`http1::About::finish`): replacing a value in a cloned map costs half
/// of adding one, as a clone has no spare room for another entry.
pub fn headers<const N: usize>(more: [(header::HeaderName, HeaderValue); N]) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2 + N + ADDED_LATER);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static(""));
    headers.extend(more);
    headers
}

/// A JSON body that never changes, served from memory with its strong ETag
/// and a `Cache-Control`: a sale, or the list of sales.
pub struct CachedJson {
    pub json: Bytes,
    etag: HeaderValue,
    /// Content type, the request id's slot, ETag and Cache-Control.
    headers: HeaderMap,
}

impl CachedJson {
    pub fn new(json: Bytes, cache_control: &'static str) -> Self {
        let etag = etag_of(&json);
        let headers = headers([
            (header::ETAG, etag.clone()),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ]);
        Self {
            json,
            etag,
            headers,
        }
    }

    /// The body, or 304 without it when the client's `If-None-Match`
    /// names this ETag (or `*`).
    pub fn answer(&self, request: &HeaderMap) -> Response {
        if !self.is_named_by(request) {
            return json(StatusCode::OK, &self.headers, self.json.clone());
        }
        let mut response = json(StatusCode::NOT_MODIFIED, &self.headers, Bytes::new());
        response.headers_mut().remove(header::CONTENT_TYPE);
        response
    }

    fn is_named_by(&self, request: &HeaderMap) -> bool {
        let Ok(etag) = self.etag.to_str() else {
            return false;
        };
        request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == etag || tag == "*")
    }
}

/// A strong ETag for a body: a prefix of its SHA-256.
fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header")
}
