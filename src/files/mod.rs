//! File serving for routers: `/images` and `/files` (day-0 configs: see `day0` and the PnP
//! server's `/configs` and `/day0` routes, which serve a config only to its router).
//!
//! Owns the routes that hand routers what a job names. tower-http's `ServeDir` streams from
//! disk in 1 MiB chunks (memory stays flat however many routers pull a 700 MB image) and does
//! HEAD, Content-Length, Range (206/416), ETag and refuses `..` traversal.

pub mod checksum;
pub mod day0;

use axum::Router;
use tower_http::services::ServeDir;

use crate::config::Config;

/// Routes for the image and file directories.
pub fn router<S: Clone + Send + Sync + 'static>(cfg: &Config) -> Router<S> {
    let serve = |dir: &std::path::Path| {
        ServeDir::new(dir)
            .with_buf_chunk_size(64 << 10)
            .append_index_html_on_directories(false)
    };
    Router::new()
        .nest_service("/images", serve(&cfg.images_dir))
        .nest_service("/files", serve(&cfg.files_dir))
}
