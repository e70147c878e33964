//! A cluster node before it can serve: it listens at once and answers
//! while it waits for Redis and the database (the cluster crate's `open_node`),
//! so a balancer sees a live node that is not ready rather than a refused
//! port, and nothing is sold before the sales are restored into memory.
//!
//! `/healthz` answers 200 (the process is alive); `/readyz` and every other
//! route 503 `unavailable` with `Retry-After` and what the node waits for.
//! Each connection serves one request and closes, so that clients come
//! back to the engine itself once it serves.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use seckill_core::ErrorCode;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long one connection may take (TLS handshake, head, answer).
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// What the node waits for, as its answers say it.
#[derive(Debug)]
pub struct Waiting {
    reason: Mutex<String>,
}

impl Default for Waiting {
    fn default() -> Self {
        Self {
            reason: Mutex::new("connecting to Redis and the database".into()),
        }
    }
}

impl Waiting {
    pub fn set(&self, reason: String) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = reason;
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn answer(&self, path: &str) -> Response<Body> {
        let waiting = self.reason();
        let message = match path {
            "/healthz" => return (StatusCode::OK, "ok").into_response(),
            "/readyz" => format!("not ready: waiting: {waiting}"),
            _ => format!("this node is starting, nothing was done; waiting: {waiting}"),
        };
        ApiError::new(ErrorCode::Unavailable, message).into_response()
    }
}

/// Answers on `listener` as described above until `until` resolves, and
/// returns its output; the listener is then free for the engine.
pub async fn answer_until<T>(
    listener: &TcpListener,
    tls: Option<TlsAcceptor>,
    waiting: Arc<Waiting>,
    until: impl Future<Output = T>,
) -> T {
    let mut until = std::pin::pin!(until);
    loop {
        let (stream, _) = tokio::select! {
            output = &mut until => return output,
            accepted = crate::http1::accept(listener) => accepted,
        };
        let (tls, waiting) = (tls.clone(), Arc::clone(&waiting));
        tokio::spawn(tokio::time::timeout(CONNECTION_LIMIT, async move {
            match tls {
                None => serve_one(stream, waiting).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_one(stream, waiting).await;
                    }
                }
            }
        }));
    }
}

/// One request on `io`, answered, then the connection closes.
async fn serve_one<IO>(io: IO, waiting: Arc<Waiting>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let answer = waiting.answer(request.uri().path());
        async move { Ok::<_, Infallible>(answer) }
    });
    let _ = http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_but_not_ready_and_refusing() {
        let waiting = Waiting::default();
        waiting.set("redis: connection refused".into());
        assert_eq!(waiting.answer("/healthz").status(), StatusCode::OK);
        for path in ["/readyz", "/api/v1/sales/s/purchase", "/api/v1/sales"] {
            let answer = waiting.answer(path);
            assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(answer.headers()["retry-after"], "1", "{path}");
        }
    }
}
