//! `GET /dashboard`: a live page for the wall screen during a sale, and
//! `GET /dashboard/events`, the server-sent events it draws from (a
//! `history` event with the last minutes, then a `snapshot` every second).
//! Every asset is embedded in the binary: no build step, no CDN, works
//! offline.

use crate::App;
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, stream};
use std::convert::Infallible;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

#[utoipa::path(get, path = "/dashboard", responses((status = 200, body = String,
    content_type = "text/html", description = "The live dashboard page.")))]
pub async fn page() -> Response {
    asset_response("text/html; charset=utf-8", PAGE)
}

/// The page's script and style sheet.
#[utoipa::path(get, path = "/dashboard/{asset}",
    params(("asset" = String, Path, description = "`dashboard.js` or `dashboard.css`.")),
    responses((status = 200, description = "The asset.",
        content((String = "text/javascript"), (String = "text/css"))),
        crate::openapi::DashboardAssetErrors))]
pub async fn asset(Path(name): Path<String>) -> Response {
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

/// The stream ends when the engine drains.
#[utoipa::path(get, path = "/dashboard/events", responses((status = 200, body = String,
    content_type = "text/event-stream",
    description = "Server-sent events: `history` once, then a `snapshot` every second.")))]
pub async fn events(State(app): State<App>) -> Response {
    let history = Event::default()
        .event("history")
        .data(app.dashboard.history_json());
    let snapshots = stream::unfold(app.dashboard.subscribe(), |mut snapshots| async move {
        let snapshot = snapshots.next().await?;
        Some((
            Event::default().event("snapshot").data(&*snapshot),
            snapshots,
        ))
    });
    let events = stream::once(async { history })
        .chain(snapshots)
        .map(Ok::<_, Infallible>);
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Sse::new(events),
    )
        .into_response()
}
