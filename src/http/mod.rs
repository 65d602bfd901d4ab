//! The HTTP layer: one router on the HTTP port, split by audience.
//!
//! `pnp` answers routers' PnP exchanges, `day0` serves each router its own day-0 config,
//! `files` the image and file downloads (tower-http, with progress counted; the zero-copy fast
//! path in front of it is [`crate::files::sendfile`]), `api` the operator's JSON API and
//! actions, `dashboard` the two pages; `origin`, `newcomers` and `conns` are the edge's limits
//! (names the operator's side answers under, new serials and connections per address).
//! Handlers are thin: parse, call the domain through the store, render; refusals are one
//! [`error::HttpError`] that renders itself. Nothing here panics on what the network sends.

pub(crate) mod api;
pub(crate) mod conns;
pub(crate) mod dashboard;
mod day0;
mod error;
pub(crate) mod files;
pub(crate) mod newcomers;
mod origin;
mod pnp;
mod prometheus;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::connect_info::Connected;
use axum::routing::{any, get, post};
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::domain::plan::Plan;
use crate::store::Registry;

/// Both ends of a TCP connection: the router's address, and ours (used in URLs by default).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client.
    pub remote: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// The connection is TLS (the `[http] https` listener).
    pub tls: bool,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let remote = *stream.remote_addr();
        Peer {
            remote,
            local: stream.io().local_addr().unwrap_or(remote),
            tls: false,
        }
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct App {
    /// Validated configuration.
    pub(crate) cfg: Arc<Config>,
    /// The workflow with image md5s filled in.
    pub(crate) plan: Arc<Plan>,
    /// Device records.
    pub registry: Registry,
    /// DHCP leases (empty when the responder is off).
    pub(crate) leases: crate::dhcp::SharedLeases,
    /// Downloads in flight.
    pub(crate) transfers: crate::files::transfers::Transfers,
    /// Server-side latency of `/pnp/*` exchanges.
    pub(crate) latency: Arc<crate::metrics::Latency>,
    /// Limits on new serials.
    pub(crate) newcomers: Arc<newcomers::Newcomers>,
    /// What the DHCP responder answered (zero when it is off).
    pub(crate) dhcp_counters: Arc<crate::dhcp::Counters>,
    /// The certificates of the HTTPS listener, with `[http] https` on.
    pub(crate) tls: Option<Arc<crate::store::bench_tls::BenchTls>>,
}

impl App {
    /// Base URL routers download from: the configured advertise address, else the address
    /// this connection reached.
    pub(crate) fn base_url(&self, local: SocketAddr) -> String {
        match &self.cfg.advertise {
            Some(a) => a.base_url(self.cfg.listen.port()),
            // The HTTP port, also for a connection that reached the HTTPS one.
            None => format!(
                "http://{}",
                SocketAddr::new(local.ip(), self.cfg.listen.port())
            ),
        }
    }

    /// The URLs a job for a router that reached `local` names.
    pub(crate) fn urls(&self, local: SocketAddr) -> Urls {
        let http = self.base_url(local);
        let Some(h) = &self.cfg.https else {
            return Urls {
                downloads: http.clone(),
                secure: http,
                tls: None,
            };
        };
        // The host routers reconnect to: `[http] advertise`'s, else the address they reached.
        let host = match &self.cfg.advertise {
            Some(a) => a.host.clone(),
            None => local.ip().to_string(),
        };
        let port = h.listen.port();
        let https = match host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => format!("https://[{v6}]:{port}"),
            Err(_) => format!("https://{host}:{port}"),
        };
        Urls {
            downloads: if h.downloads_over_https {
                https.clone()
            } else {
                http.clone()
            },
            secure: https,
            tls: Some(TlsUrls {
                ca_url: format!("{http}/pnp-info/ca.pem"),
                host,
                port,
                timeout: h.timeout,
            }),
        }
    }
}

/// The base URLs of one exchange's jobs ([`App::urls`]).
pub(crate) struct Urls {
    /// Images (and files with HTTPS off).
    pub(crate) downloads: String,
    /// What must not cross plain HTTP with HTTPS on: configs and files.
    pub(crate) secure: String,
    /// With HTTPS on: what certificate-install names.
    tls: Option<TlsUrls>,
}

/// The CA's URL, the host and port to reconnect to, and how long the router has.
struct TlsUrls {
    ca_url: String,
    host: String,
    port: u16,
    timeout: std::time::Duration,
}

impl Urls {
    /// What the workflow knows of this exchange's transport (`None`: HTTPS off).
    pub(crate) fn transport(
        &self,
        over_tls: bool,
    ) -> Option<crate::domain::workflow::Transport<'_>> {
        self.tls
            .as_ref()
            .map(|t| crate::domain::workflow::Transport {
                over_tls,
                ca_url: &t.ca_url,
                host: &t.host,
                port: t.port,
                timeout: t.timeout,
            })
    }
}

/// The whole HTTP application.
pub fn router(app: App) -> Router {
    let max_body = app.cfg.max_body_bytes;
    let files = files::router(&app.cfg.images_dir, &app.cfg.files_dir).layer(
        axum::middleware::from_fn_with_state(app.transfers.clone(), files::track),
    );
    let pnp = Router::new()
        .route("/pnp/HELLO", any(pnp::hello))
        .route("/pnp/WORK-REQUEST", post(pnp::work_request))
        .route("/pnp/WORK-RESPONSE", post(pnp::work_response))
        .route_layer(axum::middleware::from_fn_with_state(
            app.latency.clone(),
            pnp::timed,
        ));
    // The operator's side answers only under names of this appliance (DNS rebinding); routers
    // use addresses, and their routes check who asks by the bound address instead.
    let operator = Router::new()
        .route("/", get(dashboard::index))
        .route("/device/{serial}", get(dashboard::device))
        .route("/api/metrics", get(api::metrics))
        .route("/metrics", get(prometheus::metrics))
        .route("/api/devices", get(api::devices))
        .route("/api/devices/{serial}", get(api::device))
        .route("/api/status", get(api::status))
        .route("/api/waiting", get(api::waiting_routers))
        .route("/api/devices/{serial}/{action}", post(api::action))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            origin::check_host,
        ));
    Router::new()
        .merge(operator)
        .merge(pnp)
        .route("/day0/{serial}/{token}/{file}", get(day0::day0))
        .route("/pnp-info/ca.pem", get(day0::bench_ca))
        .route("/configs/{file}", get(day0::configs))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
        .merge(files)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}
