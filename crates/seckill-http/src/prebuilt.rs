//! Answers assembled from parts made once: a JSON body and a header map
//! that is cloned, not built, since hashing each header into a fresh map
//! per request is a large part of a cached read's cost.

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
/// ([`set_request_id`]): replacing a value in a cloned map costs half
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

    /// Compared as bytes: an ETag is ASCII, so checking that it is a string
    /// first would cost every read, `If-None-Match` or not.
    fn is_named_by(&self, request: &HeaderMap) -> bool {
        let etag = self.etag.as_bytes();
        request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
            .map(|tag| {
                let tag = tag.trim_ascii();
                tag.strip_prefix(b"W/").unwrap_or(tag)
            })
            .any(|tag| tag == etag || tag == b"*")
    }
}

/// Fills the request id's slot, found by walking the map's few entries,
/// which is cheaper than hashing `x-request-id`. An answer built
/// elsewhere, without the slot, gets the header added.
pub fn set_request_id(headers: &mut HeaderMap, id: HeaderValue) {
    match headers
        .iter_mut()
        .find(|(name, _)| *name == REQUEST_ID_HEADER)
    {
        Some((_, slot)) => *slot = id,
        None => {
            headers.insert(REQUEST_ID_HEADER, id);
        }
    }
}

/// A strong ETag for a body: a prefix of its SHA-256.
fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_names_the_etag_strong_weak_in_a_list_or_as_a_star() {
        let cached = CachedJson::new(Bytes::from_static(b"{}"), "no-cache");
        let etag = cached.etag.to_str().unwrap().to_owned();
        let named = |values: &[&str]| {
            let mut request = HeaderMap::new();
            for value in values {
                request.append(header::IF_NONE_MATCH, value.parse().unwrap());
            }
            cached.answer(&request).status() == StatusCode::NOT_MODIFIED
        };
        assert!(named(&[&etag]));
        assert!(named(&[&format!("W/{etag}")]));
        assert!(named(&[&format!("\"other\", {etag} ,\"more\"")]));
        assert!(named(&["\"other\"", &etag]));
        assert!(named(&["*"]));
        assert!(!named(&[]));
        assert!(!named(&["\"other\", W/\"more\""]));
        assert!(!named(&[&etag[..etag.len() - 1]]));
    }

    #[test]
    fn the_request_id_fills_its_slot_or_is_added() {
        let id = HeaderValue::from_static("the-id");
        let mut prebuilt = headers([]);
        set_request_id(&mut prebuilt, id.clone());
        assert_eq!(prebuilt.len(), 2);
        assert_eq!(prebuilt.get(REQUEST_ID_HEADER), Some(&id));
        let mut elsewhere = HeaderMap::new();
        set_request_id(&mut elsewhere, id.clone());
        assert_eq!(elsewhere.get(REQUEST_ID_HEADER), Some(&id));
    }
}
