//! File serving for routers: `/images` and `/files` (day-0 configs: see `day0` and the PnP
//! server's `/configs` and `/day0` routes, which serve a config only to its router).
//!
//! Owns the routes that hand routers what a job names. Plain downloads are answered before they
//! reach hyper by [`sendfile`] (zero-copy); everything else, and the same requests in tests that
//! call the router directly, by tower-http's `ServeDir`, which streams from disk in 64 KiB chunks
//! (memory stays flat however many routers pull a 700 MB image), does HEAD, Content-Length,
//! Range (206/416), Last-Modified, and refuses `..` traversal.

pub mod checksum;
pub mod day0;
pub mod sendfile;

use axum::Router;
use tower_http::services::ServeDir;

use std::path::Path;

/// Routes for the image and file directories.
pub fn router<S: Clone + Send + Sync + 'static>(images: &Path, files: &Path) -> Router<S> {
    let serve = |dir: &std::path::Path| {
        ServeDir::new(dir)
            .with_buf_chunk_size(64 << 10)
            .append_index_html_on_directories(false)
    };
    Router::new()
        .nest_service("/images", serve(images))
        .nest_service("/files", serve(files))
}
