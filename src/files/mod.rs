//! File serving for routers: `/images`, `/configs`, `/files`.
//!
//! Owns the routes that hand routers what a job names. tower-http's `ServeDir` streams from
//! disk in 1 MiB chunks (memory stays flat however many routers pull a 700 MB image) and does
//! HEAD, Content-Length, Range (206/416), ETag and refuses `..` traversal; configs are served as
//! `text/plain` like the reference server does.

pub mod checksum;
pub mod day0;

use axum::Router;
use axum::http::{HeaderValue, header};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Config;

/// Routes for the three file directories.
pub fn router<S: Clone + Send + Sync + 'static>(cfg: &Config) -> Router<S> {
    let serve = |dir: &std::path::Path| {
        ServeDir::new(dir)
            .with_buf_chunk_size(1 << 20)
            .append_index_html_on_directories(false)
    };
    Router::new()
        .nest_service("/images", serve(&cfg.images_dir))
        .nest_service("/files", serve(&cfg.files_dir))
        .nest_service(
            "/configs",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ))
                .service(serve(&cfg.configs_dir)),
        )
}
