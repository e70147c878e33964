//! What one request carries through its handler without any handler
//! passing it along: its id (`X-Request-Id`, for the log lines it causes)
//! and the error code of its answer (for the metrics). A task-local set by
//! the accept loop, so neither the router's handlers nor the response need
//! to carry them, and recording them costs no allocation.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use seckill_core::ErrorCode;
use std::cell::Cell;
use std::future::Future;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client-sent request id kept as is; a longer one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

struct Scope {
    id: HeaderValue,
    code: Cell<Option<ErrorCode>>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// What a request's answer was made with.
pub struct Answered<T> {
    pub output: T,
    /// Handed back for the response, without copying it.
    pub id: HeaderValue,
    /// The error code the answer was built with, if any.
    pub code: Option<ErrorCode>,
}

/// Runs `answer` as the request with `id`.
pub async fn run<T>(id: HeaderValue, answer: impl Future<Output = T>) -> Answered<T> {
    let scope = Scope {
        id,
        code: Cell::new(None),
    };
    let mut scoped = std::pin::pin!(SCOPE.scope(scope, answer));
    let output = scoped.as_mut().await;
    let scope = scoped
        .take_value()
        .expect("the scope is handed back once its future is done");
    Answered {
        output,
        id: scope.id,
        code: scope.code.get(),
    }
}

/// Notes the error code of the answer being built (the last one wins).
pub fn note_error(code: ErrorCode) {
    let _ = SCOPE.try_with(|scope| scope.code.set(Some(code)));
}

/// The current request's id, for a log line; `None` outside a request.
pub fn current_id() -> Option<String> {
    SCOPE
        .try_with(|scope| String::from_utf8_lossy(scope.id.as_bytes()).into_owned())
        .ok()
}

/// The client's `X-Request-Id` if it is a sensible one, else a new id.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(REQUEST_ID_HEADER) {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id.as_bytes().iter().all(u8::is_ascii_graphic) =>
        {
            id.clone()
        }
        _ => generate(),
    }
}

/// `PREFIX-N` in hex: a prefix drawn once per thread and that thread's
/// counter, so ids are unique across threads, restarts and nodes, and
/// making one touches no memory shared with other threads. Written by
/// hand, without `format!`: every answer carries one.
fn generate() -> HeaderValue {
    thread_local! {
        static NEXT: Cell<(u32, u64)> = Cell::new((rand::random(), 0));
    }
    let (prefix, n) = NEXT.with(|next| {
        let (prefix, n) = next.get();
        next.set((prefix, n + 1));
        (prefix, n)
    });
    let mut id = [b'-'; 8 + 1 + 16];
    hex(u64::from(prefix), &mut id[..8]);
    let digits = (16 - n.leading_zeros() as usize / 4).max(1);
    hex(n, &mut id[9..9 + digits]);
    HeaderValue::from_bytes(&id[..9 + digits]).expect("hex digits are a valid header")
}

/// `n`'s lowest hex digits, as many as `out` holds.
fn hex(mut n: u64, out: &mut [u8]) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_noted_code_is_the_answers() {
        let id = HeaderValue::from_static("the-id");
        let answered = run(id.clone(), async {
            note_error(ErrorCode::NotFound);
            tokio::task::yield_now().await;
            assert_eq!(current_id().as_deref(), Some("the-id"));
            note_error(ErrorCode::SoldOut);
        })
        .await;
        assert_eq!(answered.code, Some(ErrorCode::SoldOut));
        assert_eq!(answered.id, id);
        assert_eq!(run(generate(), async {}).await.code, None);
        assert_eq!(current_id(), None);
        note_error(ErrorCode::Internal); // outside a request: ignored
    }

    #[test]
    fn sensible_client_ids_are_kept_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        for bad in ["", "has space", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(bad).unwrap());
            let id = request_id(&headers);
            assert_ne!(id, bad);
            assert!(id.to_str().unwrap().contains('-'));
        }
        assert_ne!(generate(), generate());
    }

    #[test]
    fn generated_ids_are_the_prefix_and_the_count_in_hex() {
        let mut digits = [0; 4];
        hex(0xbeef, &mut digits);
        assert_eq!(&digits, b"beef");
        let first = generate();
        let (prefix, n) = first.to_str().unwrap().split_once('-').unwrap();
        assert_eq!(prefix.len(), 8);
        let n = u64::from_str_radix(n, 16).unwrap();
        let next = format!("{prefix}-{:x}", n + 1);
        assert_eq!(generate(), next.as_str());
    }
}
