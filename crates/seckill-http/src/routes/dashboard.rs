//! `GET /dashboard`: a live page for the wall screen during a sale, and
//! `GET /dashboard/events`, the server-sent events it draws from (a
//! `history` event with the last minutes, then a `snapshot` every second).
//! Every asset is embedded in the binary: no build step, no CDN, works
//! offline. With a dashboard token configured, the page and its events ask
//! for it; the assets, the same for everyone, do not.

use crate::App;
use crate::dashboard::Events;
use crate::error::ApiError;
use crate::routes::extract::{Id, QueryParams};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Notify;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// `?token=`: the dashboard token, for a page or an `EventSource` that
/// cannot send it as a header.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The dashboard token, when one is configured (or as a bearer token).
    token: Option<String>,
}

#[utoipa::path(get, path = "/dashboard", params(TokenQuery),
    security((), ("dashboard_token" = [])),
    responses((status = 200, body = String,
    content_type = "text/html", description = "The live dashboard page."),
    crate::openapi::responses::DashboardPageErrors))]
pub async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<TokenQuery>,
) -> Response {
    if let Err(refused) = app.auth.dashboard(&headers, query.token.as_deref()) {
        return refused.into_response();
    }
    let mut page = asset_response("text/html; charset=utf-8", PAGE);
    // The token may be in the page's address: it goes nowhere else.
    page.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    page
}

/// The page's script and style sheet.
#[utoipa::path(get, path = "/dashboard/{asset}",
    params(("asset" = String, Path, description = "`dashboard.js` or `dashboard.css`.")),
    responses((status = 200, description = "The asset.",
        content((String = "text/javascript"), (String = "text/css"))),
        crate::openapi::responses::DashboardAssetErrors))]
pub async fn asset(Id(name): Id) -> Response {
    match name.as_str() {
        "dashboard.js" => asset_response("text/javascript; charset=utf-8", SCRIPT),
        "dashboard.css" => asset_response("text/css; charset=utf-8", STYLE),
        _ => ApiError::not_found("no such dashboard asset").into_response(),
    }
}

fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The stream ends when the engine drains, or when its reader falls a
/// snapshot behind.
#[utoipa::path(get, path = "/dashboard/events", params(TokenQuery),
    security((), ("dashboard_token" = [])),
    responses((status = 200, body = String, content_type = "text/event-stream",
        description = "Server-sent events: `history` once, then a `snapshot` every second."),
        crate::openapi::responses::DashboardEventsErrors))]
pub async fn events(
    State(app): State<App>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<TokenQuery>,
) -> Response {
    if let Err(refused) = app.auth.dashboard(&headers, query.token.as_deref()) {
        return refused.into_response();
    }
    let Some(events) = app.dashboard.open() else {
        return ApiError::unavailable("too many dashboard streams are open; retry shortly")
            .into_response();
    };
    let sending = Sending {
        events,
        unwritten: Arc::new(Notify::new()),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(stream::unfold(sending, Sending::next)),
    )
        .into_response()
}

/// One stream's events on their way out. Each event sent carries a mark
/// that the connection drops once it has written the event to the socket;
/// the next event waits for that. A reader that has not taken an event
/// when a newer snapshot comes has fallen behind: its connection is closed
/// (the body fails) rather than anything being queued for it.
struct Sending {
    events: Events,
    /// Held by the event not yet written, which notifies when dropped.
    unwritten: Arc<Notify>,
}

/// The reader did not take an event before a newer snapshot came.
#[derive(Debug, thiserror::Error)]
#[error("the dashboard reader fell behind")]
struct FellBehind;

/// An event's bytes, marked unwritten while they live.
struct Marked {
    event: Bytes,
    unwritten: Arc<Notify>,
}

impl AsRef<[u8]> for Marked {
    fn as_ref(&self) -> &[u8] {
        &self.event
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        self.unwritten.notify_one();
    }
}

impl Sending {
    async fn next(mut self) -> Option<(Result<Bytes, FellBehind>, Self)> {
        let unwritten = &self.unwritten;
        let written = async {
            while Arc::strong_count(unwritten) > 1 {
                unwritten.notified().await;
            }
        };
        let newer = tokio::select! {
            biased;
            () = written => None,
            newer = self.events.newer() => Some(newer),
        };
        match newer {
            Some(true) => return Some((Err(FellBehind), self)),
            Some(false) => return None,
            None => {}
        }
        let event = self.events.next().await?;
        let marked = Marked {
            event,
            unwritten: Arc::clone(&self.unwritten),
        };
        Some((Ok(Bytes::from_owner(marked)), self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::Feed;
    use std::time::Duration;

    fn sending(feed: &Feed) -> Sending {
        Sending {
            events: feed.open().expect("a place"),
            unwritten: Arc::new(Notify::new()),
        }
    }

    /// What `Sending` hands out next, failing if it waits.
    async fn now(sending: Sending) -> (Result<Bytes, FellBehind>, Sending) {
        tokio::time::timeout(Duration::from_secs(1), sending.next())
            .await
            .expect("ready at once")
            .expect("not ended")
    }

    #[tokio::test]
    async fn an_event_still_held_when_a_newer_snapshot_comes_ends_the_stream() {
        let feed = Feed::new(1);
        let (history, sending) = now(sending(&feed)).await;
        let _unwritten = history.expect("the history");
        feed.publish_json("1");
        let (behind, _) = now(sending).await;
        assert!(behind.is_err(), "the reader fell behind");
    }

    #[tokio::test]
    async fn each_written_event_is_followed_by_the_latest_snapshot_and_then_a_wait() {
        let feed = Feed::new(1);
        let (history, sending) = now(sending(&feed)).await;
        drop(history);
        feed.publish_json("1");
        feed.publish_json("2");
        let (snapshot, sending) = now(sending).await;
        let snapshot = snapshot.expect("a snapshot");
        assert_eq!(&snapshot[..], b"event: snapshot\ndata: 2\n\n");
        // Held, with nothing newer: the next event waits for it.
        let next = tokio::time::timeout(Duration::from_millis(50), sending.next()).await;
        assert!(next.is_err(), "nothing to send yet");
    }

    #[tokio::test]
    async fn the_drain_ends_a_stream_whose_event_is_still_held() {
        let feed = Feed::new(1);
        let (history, sending) = now(sending(&feed)).await;
        let _unwritten = history.expect("the history");
        feed.close();
        let ended = tokio::time::timeout(Duration::from_secs(1), sending.next()).await;
        assert!(ended.expect("at once").is_none());
    }
}
