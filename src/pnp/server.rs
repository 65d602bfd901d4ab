//! The HTTP shell around the workflow: `/pnp/*`, the file routes and the small device API.
//!
//! Owns request handling only: bytes in, [`super::message`] parse, [`super::workflow`] decision
//! under the registry's per-device lock, XML out, one `key=value` log line per exchange. Bad
//! input gets a 4xx and changes nothing; nothing here panics on what the network sends.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::serve::IncomingStream;
use chrono::Local;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::message::{self, DeviceMessage};
use super::workflow::{self, Action, Ctx, Plan, Reply, ResponseOutcome};
use crate::config::Config;
use crate::device::Device;
use crate::state::Registry;

/// Both ends of a TCP connection: the router's address, and ours (used in URLs by default).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client.
    pub remote: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let remote = *stream.remote_addr();
        Peer {
            remote,
            local: stream.io().local_addr().unwrap_or(remote),
        }
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct App {
    /// Validated configuration.
    pub cfg: Arc<Config>,
    /// The workflow with image md5s filled in.
    pub plan: Arc<Plan>,
    /// Device records.
    pub registry: Registry,
    /// DHCP leases (empty when the responder is off).
    pub leases: crate::dhcp::SharedLeases,
    /// Downloads in flight.
    pub transfers: crate::transfers::Transfers,
    /// Server-side latency of `/pnp/*` exchanges.
    pub latency: Arc<crate::metrics::Latency>,
}

impl App {
    /// Base URL routers download from: the configured advertise address, else the address
    /// this connection reached.
    pub fn base_url(&self, local: SocketAddr) -> String {
        match &self.cfg.advertise {
            Some(a) if a.parse::<SocketAddr>().is_ok() => format!("http://{a}"),
            Some(a) if a.parse::<std::net::Ipv6Addr>().is_ok() => {
                format!("http://[{a}]:{}", self.cfg.listen.port())
            }
            Some(a) if a.contains(':') => format!("http://{a}"),
            Some(a) => format!("http://{a}:{}", self.cfg.listen.port()),
            None => format!("http://{local}"),
        }
    }
}

/// The whole HTTP application.
pub fn router(app: App) -> Router {
    let max_body = app.cfg.max_body_bytes;
    let files = crate::files::router(&app.cfg.images_dir, &app.cfg.files_dir).layer(
        axum::middleware::from_fn_with_state(app.transfers.clone(), crate::transfers::track),
    );
    let pnp = Router::new()
        .route("/pnp/HELLO", any(hello))
        .route("/pnp/WORK-REQUEST", post(work_request))
        .route("/pnp/WORK-RESPONSE", post(work_response))
        .route_layer(axum::middleware::from_fn_with_state(
            app.latency.clone(),
            timed,
        ));
    Router::new()
        .route("/", get(crate::dashboard::index))
        .route("/device/{serial}", get(crate::dashboard::device))
        .merge(pnp)
        .route("/api/metrics", get(api_metrics))
        .route("/api/devices", get(api_devices))
        .route("/api/devices/{serial}", get(api_device))
        .route("/day0/{serial}/{file}", get(day0))
        .route("/configs/{file}", get(configs))
        .route("/api/status", get(api_status))
        .route("/api/devices/{serial}/{action}", post(api_action))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
        .merge(files)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn bad_request(kind: &str, peer: &Peer, err: impl std::fmt::Display) -> Response {
    warn!(ip = %peer.remote.ip(), error = %err, "rejected {kind}");
    (StatusCode::BAD_REQUEST, format!("rejected {kind}: {err}\n")).into_response()
}

/// Runs `f` with the workflow's view of the world: now, the download base URL, and the
/// day-0 config lookup.
fn with_ctx<R>(
    cfg: &Config,
    base: &str,
    now: chrono::DateTime<Local>,
    f: impl FnOnce(&Ctx<'_>) -> R,
) -> R {
    let config_for =
        |d: &Device| crate::files::day0::render(cfg, &builtins(d)).map(|(file, _)| file);
    f(&Ctx {
        now,
        base_url: base,
        config_for: &config_for,
    })
}

fn builtins(d: &Device) -> crate::files::day0::Builtins {
    crate::files::day0::Builtins {
        serial: d.serial.clone(),
        pid: d.pid.clone(),
        vid: d.vid.clone(),
        ip: d.ip.clone(),
    }
}

/// A router's day-0 config at `/day0/{serial}/{file}`, rendered for it; served only to the
/// address that router talks PnP from (configs often hold credentials).
async fn day0(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((serial, file)): Path<(String, String)>,
) -> Response {
    let dev = app.registry.summary(&serial).await;
    serve_config(&app, &peer, dev, &file, &serial).await
}

/// `/configs/{file}` (the reference server's URL): the config is served only to a router that
/// talks from the requesting address and is issued that file.
async fn configs(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(file): Path<String>,
) -> Response {
    let ip = peer.remote.ip().to_string();
    let cfg = app.cfg.clone();
    let dev = app
        .registry
        .summaries()
        .await
        .into_iter()
        .filter(|d| d.ip == ip)
        .find(|d| crate::files::day0::choose(&cfg, &d.serial).is_ok_and(|c| c == file));
    serve_config(&app, &peer, dev, &file, "").await
}

async fn serve_config(
    app: &App,
    peer: &Peer,
    dev: Option<Device>,
    file: &str,
    asked: &str,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found\n").into_response();
    let Some(dev) = dev else {
        warn!(ip = %peer.remote.ip(), file, serial = asked, "day-0 config requested by an address with no router it belongs to: refused");
        return not_found();
    };
    if dev.ip != peer.remote.ip().to_string() {
        warn!(ip = %peer.remote.ip(), serial = %dev.serial, router_ip = %dev.ip, "day-0 config of {} requested from another address: refused", dev.serial);
        return not_found();
    }
    let cfg = app.cfg.clone();
    let serial = dev.serial.clone();
    let rendered =
        tokio::task::spawn_blocking(move || crate::files::day0::render(&cfg, &builtins(&dev)))
            .await;
    match rendered {
        Ok(Ok((chosen, text))) if chosen == file => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Ok(Ok((chosen, _))) => {
            warn!(
                serial,
                file, chosen, "day-0 config request for a file this router does not get"
            );
            not_found()
        }
        Ok(Err(e)) => {
            warn!(serial, error = %e, "day-0 config cannot be served");
            not_found()
        }
        Err(e) => {
            warn!(serial, error = %e, "day-0 render task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

async fn hello() -> StatusCode {
    StatusCode::OK
}

async fn work_request(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    body: Bytes,
) -> Response {
    let req = match message::parse_device_message(&body) {
        Ok(DeviceMessage::WorkRequest(r)) => r,
        Ok(_) => return bad_request("work-request", &peer, "body is not a work request (<info>)"),
        Err(e) => return bad_request("work-request", &peer, e),
    };
    debug!(serial = %req.udi.serial, xml = %String::from_utf8_lossy(&body), "work-request received");
    let now = Local::now();
    let base = app.base_url(peer.local);
    let ip = peer.remote.ip().to_string();
    let cfg = app.cfg.clone();
    let plan = app.plan.clone();
    let udi = req.udi.clone();
    let lease = lease_of(&app, &peer);
    let outcome = app
        .registry
        .update(
            &udi.serial,
            || {
                let mut d = Device::new(&udi.serial, &udi.raw, &udi.pid, &udi.vid, now);
                d.log(now, format!("new device {} from {ip}", udi.raw));
                Some(d)
            },
            |dev| {
                dev.last_contact = now;
                dev.ip.clone_from(&ip);
                if lease.is_some() {
                    dev.lease.clone_from(&lease);
                }
                if dev.udi != udi.raw {
                    dev.udi.clone_from(&udi.raw);
                    dev.pid.clone_from(&udi.pid);
                    dev.vid.clone_from(&udi.vid);
                }
                let before = dev.state;
                let reply = with_ctx(&cfg, &base, now, |ctx| {
                    workflow::on_work_request(dev, &req, &plan, ctx)
                });
                (before, dev.state, reply, dev.fail_reason.clone())
            },
        )
        .await;
    let Some((before, after, Reply::Job(job), fail)) = outcome else {
        return StatusCode::OK.into_response();
    };
    let body = message::render_request(&udi.raw, &req.correlator, &job);
    info!(
        serial = %udi.serial,
        ip = %peer.remote.ip(),
        state = %after,
        from = %before,
        job = %job.summary(),
        result = "sent",
        reason = fail.as_deref().unwrap_or(""),
        "work-request"
    );
    debug!(serial = %udi.serial, xml = %body, "job sent");
    xml(body)
}

/// The responder's current lease for the address a router talks from.
fn lease_of(app: &App, peer: &Peer) -> Option<crate::device::DeviceLease> {
    let std::net::IpAddr::V4(ip) = peer.remote.ip() else {
        return None;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let leases = crate::dhcp::lock(&app.leases);
    let l = leases.bound(ip, now)?;
    let expires = std::time::UNIX_EPOCH + std::time::Duration::from_secs(l.expires);
    Some(crate::device::DeviceLease {
        ip: l.ip.to_string(),
        mac: l.mac.clone(),
        expires: expires.into(),
    })
}

async fn work_response(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    body: Bytes,
) -> Response {
    let msg = match message::parse_device_message(&body) {
        Ok(m) => m,
        Err(e) => return bad_request("work-response", &peer, e),
    };
    let now = Local::now();
    let resp = match msg {
        DeviceMessage::Fault(f) => {
            let serial = f.udi.as_ref().map(|u| u.serial.clone()).unwrap_or_default();
            warn!(serial = %serial, ip = %peer.remote.ip(), code = %f.code, text = %f.text, "device fault: it did not understand our request");
            if !serial.is_empty() {
                let text = format!("protocol fault {}: {}", f.code, f.text);
                app.registry
                    .update(
                        &serial,
                        || None,
                        |d| {
                            d.last_contact = now;
                            d.log(now, text);
                        },
                    )
                    .await;
            }
            // §7.2: a fault has no correlator; peers answer with an empty 200.
            return StatusCode::OK.into_response();
        }
        DeviceMessage::WorkRequest(_) => {
            return bad_request(
                "work-response",
                &peer,
                "body is a work request, not a response",
            );
        }
        DeviceMessage::Response(r) => r,
    };
    debug!(serial = %resp.udi.serial, xml = %String::from_utf8_lossy(&body), "work-response received");
    let base = app.base_url(peer.local);
    let ip = peer.remote.ip().to_string();
    let cfg = app.cfg.clone();
    let plan = app.plan.clone();
    let outcome = app
        .registry
        .update(
            &resp.udi.serial,
            || None,
            |dev| {
                dev.last_contact = now;
                dev.ip.clone_from(&ip);
                let before = dev.state;
                let outcome = with_ctx(&cfg, &base, now, |ctx| {
                    workflow::on_work_response(dev, &resp, &plan, ctx)
                });
                (before, dev.state, outcome, dev.last_error.clone())
            },
        )
        .await;
    let result = if resp.success { "success" } else { "failure" };
    match outcome {
        None => warn!(
            serial = %resp.udi.serial, ip = %peer.remote.ip(), service = %resp.service,
            "work-response from an unknown device: ignored (it must send a work request first)"
        ),
        Some((before, after, ResponseOutcome::Applied, err)) => info!(
            serial = %resp.udi.serial,
            ip = %peer.remote.ip(),
            state = %after,
            from = %before,
            job = %resp.service,
            result,
            error = err.as_deref().filter(|_| !resp.success).unwrap_or(""),
            "work-response"
        ),
        Some((_, after, ResponseOutcome::Unexpected(why), _)) => warn!(
            serial = %resp.udi.serial, ip = %peer.remote.ip(), state = %after, job = %resp.service,
            result, "work-response ignored: {why}"
        ),
    }
    // Every work response gets a bye with its correlator (§6.8).
    xml(message::render_bye(&resp.udi.raw, &resp.correlator))
}

/// Every record without its history: up to 300 lines each, so with them a poll of this list
/// for 1000 routers was a ~43 MB body built from copies of every record (BENCHMARKS.md, "Soak").
/// A record's history is at `/api/devices/{serial}`.
async fn api_devices(State(app): State<App>) -> Response {
    let list: Vec<serde_json::Value> = app
        .registry
        .summaries()
        .await
        .into_iter()
        .filter_map(|d| {
            let mut v = serde_json::to_value(d).ok()?;
            if let Some(record) = v.as_object_mut() {
                record.remove("history");
            }
            Some(v)
        })
        .collect();
    axum::Json(list).into_response()
}

async fn api_device(State(app): State<App>, Path(serial): Path<String>) -> Response {
    match app.registry.get(&serial).await {
        Some(d) => axum::Json(d).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no device with serial {serial}\n"),
        )
            .into_response(),
    }
}

/// Measures a PnP exchange inside the server (see [`crate::metrics`]).
async fn timed(
    State(latency): State<Arc<crate::metrics::Latency>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    latency.record(started.elapsed());
    resp
}

/// Server metrics: PnP exchange latency as measured inside the server.
async fn api_metrics(State(app): State<App>) -> Response {
    axum::Json(serde_json::json!({ "pnp": app.latency.view() })).into_response()
}

async fn api_status(State(app): State<App>) -> Response {
    let devices = app.registry.summaries().await;
    axum::Json(crate::status::rows(&devices, Some(&app.transfers))).into_response()
}

/// Device actions need the admin token when one is configured, else a client on this host.
fn authorize(app: &App, headers: &axum::http::HeaderMap, peer: &Peer) -> Result<(), Box<Response>> {
    match &app.cfg.admin_token {
        Some(token) => {
            let given = headers
                .get("x-admin-token")
                .and_then(|v| v.to_str().ok())
                .or_else(|| {
                    headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                });
            if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                Ok(())
            } else {
                Err(Box::new(
                    (
                        StatusCode::UNAUTHORIZED,
                        "device actions need the admin token ([http] admin-token) in an X-Admin-Token header\n",
                    )
                        .into_response(),
                ))
            }
        }
        None if peer.remote.ip().is_loopback() || peer.remote.ip() == peer.local.ip() => Ok(()),
        None => Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "device actions are accepted from this host only: set [http] admin-token to allow them from elsewhere\n",
            )
                .into_response(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api_action(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((serial, action)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(refused) = authorize(&app, &headers, &peer) {
        warn!(ip = %peer.remote.ip(), serial, action, "device action refused: not authorized");
        return *refused;
    }
    let action = match action.as_str() {
        "resume" => Action::Resume,
        "retry" => Action::Retry,
        "reset" => Action::Reset,
        "forget" => Action::Forget,
        other => {
            return (
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: resume, retry, reset or forget\n"),
            )
                .into_response();
        }
    };
    let now = Local::now();
    let result = if action == Action::Forget {
        app.registry.remove(&serial).await.then(|| {
            Ok(format!(
                "{serial}: record deleted (a router that calls again starts as NEW_DEVICE)"
            ))
        })
    } else {
        app.registry
            .update(&serial, || None, |d| workflow::operator(d, action, now))
            .await
    };
    match result {
        None => (
            StatusCode::NOT_FOUND,
            format!("no device with serial {serial}\n"),
        )
            .into_response(),
        Some(Ok(msg)) => {
            info!(serial, ip = %peer.remote.ip(), "operator: {msg}");
            (StatusCode::OK, format!("{msg}\n")).into_response()
        }
        Some(Err(msg)) => (StatusCode::CONFLICT, format!("{msg}\n")).into_response(),
    }
}
