//! Day-0 configs for routers: `/day0/{serial}/{token}/{file}`, the URL issued with a router's
//! config-upgrade job, and the reference server's `/configs/{file}`. A config often holds
//! credentials, so each is served only to the router's bound address, only while its
//! config-upgrade job for that file is in flight and young
//! ([`crate::domain::identity::may_fetch_config`]); every refusal is a WARN. Rendering runs on
//! a blocking thread, outside any record's lock.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Local;
use tracing::warn;

use super::error::HttpError;
use super::{App, Peer};
use crate::domain::device::Device;
use crate::domain::identity::may_fetch_config;

/// A router's day-0 config at the URL of its config-upgrade job.
pub(super) async fn day0(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((serial, token, file)): Path<(String, String, String)>,
) -> Result<Response, HttpError> {
    let dev = app.registry.summary(&serial).await;
    serve_config(&app, &peer, dev, Some(&token), &file, &serial).await
}

/// `/configs/{file}` (the reference server's URL): served under the same rule, to the router
/// bound to the requesting address whose config-upgrade job names the file.
pub(super) async fn configs(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(file): Path<String>,
) -> Result<Response, HttpError> {
    let ip = peer.remote.ip();
    let (now, lifetime) = (Local::now(), app.cfg.limits.config_url_lifetime);
    let bound: Vec<Device> = app
        .registry
        .summaries()
        .await
        .into_iter()
        .filter(|d| d.binding.as_ref().is_some_and(|b| b.ip == ip))
        .collect();
    // Several routers may share an address (behind NAT, or simulated): the one whose job it is.
    let dev = match bound
        .iter()
        .position(|d| may_fetch_config(d, ip, None, &file, now, lifetime).is_ok())
    {
        Some(i) => bound.into_iter().nth(i),
        None => bound.into_iter().next(),
    };
    serve_config(&app, &peer, dev, None, &file, "").await
}

/// `/pnp-info/ca.pem`: the bench CA routers install as trustpoint `pnplabel` (public: over
/// plain HTTP, before they trust anything).
pub(super) async fn bench_ca(State(app): State<App>) -> Result<Response, HttpError> {
    match &app.tls {
        Some(t) => Ok((
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            t.ca_pem.clone(),
        )
            .into_response()),
        None => Err(HttpError::NotFound(
            "no bench CA: [http] https is off".into(),
        )),
    }
}

async fn serve_config(
    app: &App,
    peer: &Peer,
    dev: Option<Device>,
    token: Option<&str>,
    file: &str,
    asked: &str,
) -> Result<Response, HttpError> {
    let ip = peer.remote.ip();
    if app.cfg.https.is_some() && !peer.tls {
        warn!(ip = %ip, file, serial = asked, "day-0 config requested over plain HTTP with [http] https on: refused (configs go over HTTPS only)");
        return Err(HttpError::Forbidden(
            "day-0 configs are served over HTTPS only ([http] https)".into(),
        ));
    }
    let Some(dev) = dev else {
        warn!(ip = %ip, file, serial = asked, "day-0 config requested by an address with no router it belongs to: refused");
        return Err(HttpError::not_found());
    };
    let lifetime = app.cfg.limits.config_url_lifetime;
    if let Err(why) = may_fetch_config(&dev, ip, token, file, Local::now(), lifetime) {
        warn!(ip = %ip, serial = %dev.serial, file, "day-0 config of {} refused: {why}", dev.serial);
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
