//! The download routes `/images` and `/files`, as tower-http serves them, with each body
//! counted in the transfer table.
//!
//! Plain downloads are answered before they reach hyper by [`crate::files::sendfile`]
//! (zero-copy); everything else, and the same requests in tests that call the router directly,
//! by `ServeDir`, which streams from disk in 64 KiB chunks (memory stays flat however many
//! routers pull a 700 MB image), does HEAD, Content-Length, Range (206/416), Last-Modified, and
//! refuses `..` traversal.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeDir;

use super::Peer;
use crate::files::transfers::Transfers;

/// Routes for the image and file directories; nothing behind a symlink that leads out of its
/// folder is served.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(images: &Path, files: &Path) -> Router<S> {
    let serve = |dir: &Path| {
        let confine = Confine(Arc::new(dir.to_path_buf()));
        Router::new()
            .fallback_service(
                ServeDir::new(dir)
                    .with_buf_chunk_size(64 << 10)
                    .append_index_html_on_directories(false),
            )
            .layer(axum::middleware::from_fn_with_state(confine, confine_layer))
    };
    // The per-job URLs (`/dl/<SERIAL>/<tag>/…`, see `domain::job::download_path`) serve the
    // same files; only the transfer table reads the prefix.
    Router::new()
        .nest("/images", serve(images))
        .nest("/files", serve(files))
        .nest("/dl/{serial}/{tag}/images", serve(images))
        .nest("/dl/{serial}/{tag}/files", serve(files))
}

#[derive(Clone)]
struct Confine(Arc<PathBuf>);

/// Refuses a path that resolves (through symlinks) outside the folder.
async fn confine_layer(State(dir): State<Confine>, req: Request, next: Next) -> Response {
    let rel = percent_decode(req.uri().path());
    if !crate::files::confined(&dir.0, &rel) {
        tracing::warn!(
            path = rel.as_str(),
            folder = %dir.0.display(),
            "download refused: the path is a symlink leading out of its folder (replace it with the file itself)"
        );
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    next.run(req).await
}

/// `%XX` escapes decoded (invalid ones kept as they are); the result only names a file to check.
fn percent_decode(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Body wrapper that counts what is sent and ends the entry when the body ends or is dropped.
struct Counting {
    inner: Body,
    table: Transfers,
    id: u64,
    ended: bool,
}

impl http_body::Body for Counting {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.table.add(this.id, d.len());
                }
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.table.end(this.id, true);
            }
            Poll::Ready(Some(Err(_))) => {
                this.ended = true;
                this.table.end(this.id, false);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        if !self.ended {
            self.table.end(self.id, false);
        }
    }
}

/// Middleware for the file routes: counts every successful GET body.
pub(super) async fn track(
    State(table): State<Transfers>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let is_get = req.method() == Method::GET;
    let resp = next.run(req).await;
    if !is_get || !resp.status().is_success() {
        return resp;
    }
    let total = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let id = table.start(peer.remote.ip(), path, total);
    resp.map(|inner| {
        Body::new(Counting {
            inner,
            table,
            id,
            ended: false,
        })
    })
}
