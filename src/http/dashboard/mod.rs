//! The web dashboard on the HTTP port: `/` (device table, live) and `/device/{serial}`
//! (history, script output, actions).
//!
//! Owns the two pages, compiled into the binary (no CDN or other outside asset, so it works on
//! an isolated bench). They read the JSON API (`/api/status`, `/api/devices/{serial}`) and send
//! actions with the admin token in `X-Admin-Token`; all data is inserted as text, never as HTML.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("style.css");
const COMMON: &str = include_str!("common.js");

fn page(template: &str) -> Response {
    let html = template
        .replace("/*CSS*/", CSS)
        .replace("/*COMMON*/", COMMON);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        html,
    )
        .into_response()
}

/// `GET /`.
pub(crate) async fn index() -> Response {
    page(include_str!("index.html"))
}

/// `GET /device/{serial}`.
pub(crate) async fn device() -> Response {
    page(include_str!("device.html"))
}
