//! Day-0 configs for routers: `/day0/{serial}/{file}` and the reference server's
//! `/configs/{file}`, each rendered for the router that asks and served only to it (a config
//! often holds credentials). Rendering runs on a blocking thread, outside any record's lock.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::error::HttpError;
use super::{App, Peer};
use crate::domain::device::Device;

/// A router's day-0 config at `/day0/{serial}/{file}`, rendered for it; served only to the
/// address that router talks PnP from.
pub(super) async fn day0(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((serial, file)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    let dev = app.registry.summary(&serial).await;
    serve_config(&app, &peer, dev, &file, &serial).await
}

/// `/configs/{file}` (the reference server's URL): the config is served only to a router that
/// talks from the requesting address and is issued that file.
pub(super) async fn configs(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(file): Path<String>,
) -> Result<Response, HttpError> {
    let ip = peer.remote.ip();
    let cfg = app.cfg.clone();
    let dev = app
        .registry
        .summaries()
        .await
        .into_iter()
        .filter(|d| d.ip == Some(ip))
        .find(|d| crate::files::day0::choose(&cfg, &d.serial).is_ok_and(|c| c == file));
    serve_config(&app, &peer, dev, &file, "").await
}

async fn serve_config(
    app: &App,
    peer: &Peer,
    dev: Option<Device>,
    file: &str,
    asked: &str,
) -> Result<Response, HttpError> {
    let Some(dev) = dev else {
        warn!(ip = %peer.remote.ip(), file, serial = asked, "day-0 config requested by an address with no router it belongs to: refused");
        return Err(HttpError::not_found());
    };
    if dev.ip != Some(peer.remote.ip()) {
        warn!(ip = %peer.remote.ip(), serial = %dev.serial, router_ip = ?dev.ip, "day-0 config of {} requested from another address: refused", dev.serial);
        return Err(HttpError::not_found());
    }
    let cfg = app.cfg.clone();
    let serial = dev.serial.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        crate::files::day0::render(&cfg, &crate::files::day0::Builtins::of(&dev))
    })
    .await
    .map_err(|e| HttpError::Internal(format!("day-0 render task: {e}")))?;
    match rendered {
        Ok((chosen, text)) if chosen == file => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
        Ok((chosen, _)) => {
            warn!(
                serial,
                file, chosen, "day-0 config request for a file this router does not get"
            );
            Err(HttpError::not_found())
        }
        Err(e) => {
            warn!(serial, error = %e, "day-0 config cannot be served");
            Err(HttpError::not_found())
        }
    }
}
