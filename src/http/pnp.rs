//! The PnP routes routers speak: `/pnp/HELLO`, `/pnp/WORK-REQUEST`, `/pnp/WORK-RESPONSE`.
//!
//! Bytes in, [`crate::pnp::message`] parse, [`crate::domain::workflow`] decision under the
//! registry's per-device lock, XML out, one `key=value` log line per exchange. Bad input gets a
//! 400 with the reason and changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Local;
use tracing::{Instrument, debug, info, info_span, warn};

use super::error::HttpError;
use super::{App, Peer};
use crate::store::Elsewhere;
use std::net::IpAddr;

use super::newcomers::Refusal;
use crate::domain::device::{self, Device};
use crate::domain::identity::{self, Admission};
use crate::domain::job::{Job, Service};
use crate::domain::workflow::{self, Ctx, ResponseOutcome};
use crate::pnp::message::{self, DeviceMessage};

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn rejected(kind: &'static str, peer: &Peer, why: impl std::fmt::Display) -> HttpError {
    // Device-supplied text is recorded as a string field, which the log writes escaped and
    // quoted: a newline in it cannot forge a log line.
    warn!(ip = %peer.remote.ip(), error = why.to_string().as_str(), "rejected {kind}");
    HttpError::BadRequest {
        kind,
        why: why.to_string(),
    }
}

/// Chooses and renders the day-0 config for `vars` on a blocking thread: what it is, or why
/// there is none.
async fn render_day0(
    app: &App,
    vars: crate::files::day0::Builtins,
) -> Result<crate::domain::device::Day0, String> {
    let cfg = app.cfg.clone();
    tokio::task::spawn_blocking(move || crate::files::day0::prepare(&cfg, &vars))
        .await
        .unwrap_or_else(|e| Err(format!("day-0 render task failed: {e}")))
}

pub(super) async fn hello() -> StatusCode {
    StatusCode::OK
}

pub(super) async fn work_request(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let (udi, req) = match message::parse_device_message(&body) {
        Ok(DeviceMessage::WorkRequest { udi, request }) => (udi, request),
        Ok(_) => {
            return Err(rejected(
                "work-request",
                &peer,
                "body is not a work request (<info>)",
            ));
        }
        Err(e) => return Err(rejected("work-request", &peer, e)),
    };
    let span = info_span!("pnp", serial = %udi.serial, correlator = req.correlator.as_str());
    exchange_request(app, peer, udi, req, body)
        .instrument(span)
        .await
}

/// What one pass of a work request over the record came to.
enum Pass {
    /// Another host's claim: nothing changed but the claim.
    Refused { bound: IpAddr, warn: bool },
    /// Another host's claim, sent a SUDI challenge (it takes the record only by proof).
    Challenge { bound: IpAddr, warn: bool, job: Job },
    /// The day-0 config must be rendered first (nothing changed).
    NeedsDay0(crate::files::day0::Builtins),
    /// The job to send.
    Job {
        before: device::State,
        after: device::State,
        job: Job,
        fail: Option<String>,
        attention: Option<String>,
    },
}

async fn exchange_request(
    app: App,
    peer: Peer,
    udi: message::Udi,
    req: crate::domain::job::WorkRequest,
    body: Bytes,
) -> Result<Response, HttpError> {
    debug!(xml = %String::from_utf8_lossy(&body), "work-request received");
    let now = Local::now();
    let urls = app.urls(peer.local);
    let ip = peer.remote.ip();
    let plan = app.plan.clone();
    let lease = lease_of(&app, &peer);
    let mac = lease.as_ref().map(|l| l.mac.clone());
    let config_token = rand::random::<[u8; 16]>();
    // The day-0 config is rendered outside the record's lock: when this request can need it,
    // the first pass only reports so (changing nothing), and a second pass runs with it.
    let mut day0: Option<Result<crate::domain::device::Day0, String>> = None;
    if let Some(wait) = driven_elsewhere(&app, &udi.serial).await {
        return Ok(wait);
    }
    let outcome = loop {
        let outcome = app
            .registry
            .update(
                &udi.serial,
                || new_record(&app, &udi, ip, now),
                |dev| {
                    if let Admission::Refused { bound, warn } =
                        identity::admit(dev, ip, mac.as_deref(), now)
                    {
                        let token = hex::encode(config_token);
                        if plan.identity.device_auth
                            && let Some(job) =
                                identity::challenge_claimant(dev, ip, &token, &req.correlator, now)
                        {
                            return Pass::Challenge { bound, warn, job };
                        }
                        return Pass::Refused { bound, warn };
                    }
                    if day0.is_none() && workflow::needs_day0(dev, &plan) {
                        let mut vars = crate::files::day0::Builtins::of(dev);
                        vars.ip = ip.to_string();
                        return Pass::NeedsDay0(vars);
                    }
                    dev.last_contact = now;
                    dev.ip = Some(ip);
                    if lease.is_some() {
                        dev.lease.clone_from(&lease);
                    }
                    if dev.udi != udi.raw {
                        dev.udi.clone_from(&udi.raw);
                        dev.pid.clone_from(&udi.pid);
                        dev.vid.clone_from(&udi.vid);
                    }
                    let before = dev.state;
                    let ctx = Ctx {
                        now,
                        base_url: &urls.downloads,
                        secure_base: &urls.secure,
                        tls: urls.transport(peer.tls),
                        day0: day0.as_ref(),
                        config_token,
                    };
                    let job = workflow::on_work_request(dev, &req, &plan, &ctx);
                    Pass::Job {
                        before,
                        after: dev.state,
                        job,
                        fail: dev.fail_reason.clone(),
                        attention: (dev.state != before)
                            .then(|| workflow::attention(dev))
                            .flatten(),
                    }
                },
            )
            .await;
        match outcome {
            Some(Pass::NeedsDay0(vars)) => day0 = Some(render_day0(&app, vars).await),
            other => break other,
        }
    };
    let (before, after, job, fail) = match outcome {
        Some(Pass::Job {
            before,
            after,
            job,
            fail,
            attention,
        }) => {
            needs_operator(attention);
            app.transfers.name(ip, &udi.serial);
            if let Some(url) = job.download_url() {
                app.transfers.issued(url, &udi.serial);
            }
            (before, after, job, fail)
        }
        Some(Pass::Refused { bound, warn }) => {
            if warn {
                refused_warning(&udi.serial, ip, bound);
            }
            // An empty 200 is "no work now" (docs/pnp-protocol.md §6.6): a real router that
            // moved keeps polling until the operator accepts the move.
            return Ok(StatusCode::OK.into_response());
        }
        Some(Pass::Challenge { bound, warn, job }) => {
            if warn {
                refused_warning(&udi.serial, ip, bound);
            }
            info!(
                ip = %ip, job = %job.summary(), result = "sent",
                "SUDI challenge sent to {ip} for {}: it takes the record only if it proves the serial",
                udi.serial
            );
            return Ok(xml(message::render_request(
                &udi.raw,
                &req.correlator,
                &job,
            )));
        }
        Some(Pass::NeedsDay0(_)) | None => return Ok(StatusCode::OK.into_response()),
    };
    let body = message::render_request(&udi.raw, &req.correlator, &job);
    info!(
        ip = %peer.remote.ip(),
        state = %after,
        from = %before,
        job = %job.summary(),
        result = "sent",
        reason = fail.as_deref().unwrap_or(""),
        "work-request"
    );
    debug!(xml = %body, "job sent");
    Ok(xml(body))
}

/// The WARN for a claim from another host (once, then once a minute).
fn refused_warning(serial: &str, ip: IpAddr, bound: IpAddr) {
    warn!(
        ip = %ip, bound = %bound,
        "{serial} claimed from {ip}, bound to {bound}: refused (no job, no config). If the router really moved: `pnp-appliance device accept-move {serial}`"
    );
}

/// With a fleet database: the answer for a router this bench may not drive now (another
/// bench heard from it lately, or the database is away), an empty 200 ("no work now",
/// docs/pnp-protocol.md §6.6) so it keeps polling and is taken over once that claim runs out.
async fn driven_elsewhere(app: &App, serial: &str) -> Option<Response> {
    match app.registry.claim(serial).await {
        Ok(()) => None,
        Err(Elsewhere::Claimed { bench, secs }) => {
            info!(
                bench = bench.as_str(),
                "driven by bench {bench}, which heard from it lately: told to wait; this bench takes it over if bench {bench} does not hear from it within {secs} s (unplug it there, or stop that bench)"
            );
            Some(StatusCode::OK.into_response())
        }
        Err(Elsewhere::Unreachable(e)) => {
            warn!("{e}: the router is told to wait; check the fleet database is up and reachable");
            Some(StatusCode::OK.into_response())
        }
    }
}

/// The record for a serial seen for the first time, unless its address brought too many new
/// serials lately or the appliance holds as many records as it may.
fn new_record(
    app: &App,
    udi: &message::Udi,
    ip: IpAddr,
    now: chrono::DateTime<Local>,
) -> Option<Device> {
    match app
        .newcomers
        .admit(ip, app.registry.len(), std::time::Instant::now())
    {
        Ok(()) => {
            let mut d = Device::new(&udi.serial, &udi.raw, &udi.pid, &udi.vid, now);
            d.log(now, format!("new device {} from {ip}", udi.raw));
            Some(d)
        }
        Err(Refusal::PerAddress { limit, warn: true }) => {
            warn!(
                ip = %ip,
                "{ip} brought more than {limit} new serials in 10 minutes: further new serials from it are ignored until the window ends (a real router is one serial; raise [limits] new-serials-per-address if this host really fronts many)"
            );
            None
        }
        Err(Refusal::Total { limit, warn: true }) => {
            warn!(
                ip = %ip,
                "the appliance holds {limit} routers ([limits] max-devices): new serials are ignored; `pnp-appliance device forget SERIAL` old records or raise the limit"
            );
            None
        }
        Err(_) => None,
    }
}

/// A router that just went FAILED or parked for space: a WARN with its serial, the reason and
/// the fix (it waits for the operator).
fn needs_operator(attention: Option<String>) {
    if let Some(text) = attention {
        // Device text is in the reason: a field, which the log writes escaped.
        warn!(reason = text.as_str(), "router needs the operator");
    }
}

/// The responder's current lease for the address a router talks from (marked as a router's).
fn lease_of(app: &App, peer: &Peer) -> Option<crate::domain::device::DeviceLease> {
    let std::net::IpAddr::V4(ip) = peer.remote.ip() else {
        return None;
    };
    let now = crate::dhcp::unix_now();
    let mut leases = crate::sync::lock(&app.leases);
    // It speaks PnP: its lease is a router's, never taken back for a flood's sake.
    leases.confirm(ip, now);
    let l = leases.bound(ip, now)?;
    let expires = std::time::UNIX_EPOCH + std::time::Duration::from_secs(l.expires);
    Some(crate::domain::device::DeviceLease {
        ip: l.ip,
        mac: l.mac.clone(),
        expires: expires.into(),
    })
}

pub(super) async fn work_response(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let msg =
        message::parse_device_message(&body).map_err(|e| rejected("work-response", &peer, e))?;
    let (udi, resp) = match msg {
        DeviceMessage::Fault(f) => {
            let now = Local::now();
            let serial = f.udi.as_ref().map(|u| u.serial.clone()).unwrap_or_default();
            warn!(serial = serial.as_str(), ip = %peer.remote.ip(), code = f.code.as_str(), text = f.text.as_str(), "device fault: it did not understand our request");
            if !serial.is_empty() {
                let text = format!("protocol fault {}: {}", f.code, f.text);
                let ip = peer.remote.ip();
                let mac = lease_of(&app, &peer).map(|l| l.mac);
                // Only the bound host's faults go into the record's history: another host
                // could otherwise push the whole history out with them.
                app.registry
                    .update(
                        &serial,
                        || None,
                        |d| {
                            if let Admission::Refused { .. } =
                                identity::admit(d, ip, mac.as_deref(), now)
                            {
                                return;
                            }
                            d.last_contact = now;
                            d.log(now, text);
                        },
                    )
                    .await;
            }
            // §7.2: a fault has no correlator; peers answer with an empty 200.
            return Ok(StatusCode::OK.into_response());
        }
        DeviceMessage::WorkRequest { .. } => {
            return Err(rejected(
                "work-response",
                &peer,
                "body is a work request, not a response",
            ));
        }
        DeviceMessage::Response { udi, result } => (udi, result),
    };
    let span = info_span!("pnp", serial = %udi.serial, correlator = resp.correlator.as_str());
    exchange_response(app, peer, udi, resp, body)
        .instrument(span)
        .await
}

async fn exchange_response(
    app: App,
    peer: Peer,
    udi: message::Udi,
    resp: crate::domain::job::JobResult,
    body: Bytes,
) -> Result<Response, HttpError> {
    let now = Local::now();
    debug!(xml = %String::from_utf8_lossy(&body), "work-response received");
    let ip = peer.remote.ip();
    let plan = app.plan.clone();
    let mac = lease_of(&app, &peer).map(|l| l.mac);
    if let Some(wait) = driven_elsewhere(&app, &udi.serial).await {
        return Ok(wait);
    }
    let outcome = app
        .registry
        .update(
            &udi.serial,
            || None,
            |dev| {
                if let Admission::Refused { bound, warn } =
                    identity::admit(dev, ip, mac.as_deref(), now)
                {
                    return Err((bound, warn, claimant_proof(dev, ip, &resp, &plan, now)));
                }
                dev.last_contact = now;
                dev.ip = Some(ip);
                let before = dev.state;
                let outcome = workflow::on_work_response(dev, &resp, &plan, now);
                let attention = (dev.state != before)
                    .then(|| workflow::attention(dev))
                    .flatten();
                Ok((
                    before,
                    dev.state,
                    outcome,
                    dev.last_error.clone(),
                    attention,
                ))
            },
        )
        .await;
    let result = if resp.success { "success" } else { "failure" };
    let outcome = match outcome {
        Some(Err((bound, _, Some(proof)))) => {
            claim_logged(&udi.serial, ip, bound, &proof);
            return Ok(xml(message::render_bye(&udi.raw, &resp.correlator)));
        }
        Some(Err((bound, warn, None))) => {
            if warn {
                warn!(
                    ip = %ip, bound = %bound, job = resp.service_name.as_str(),
                    "work-response for {} from {ip}, bound to {bound}: ignored (answers count only from the bound address)",
                    udi.serial
                );
            }
            return Ok(StatusCode::OK.into_response());
        }
        Some(Ok((before, after, outcome, err, attention))) => {
            needs_operator(attention);
            Some((before, after, outcome, err))
        }
        None => None,
    };
    match outcome {
        None => warn!(
            ip = %peer.remote.ip(), service = resp.service_name.as_str(),
            "work-response from an unknown device: ignored (it must send a work request first)"
        ),
        Some((before, after, ResponseOutcome::Applied, err)) => info!(
            ip = %peer.remote.ip(),
            state = %after,
            from = %before,
            // Applied: the service is the pending job's, one of ours.
            job = %resp.service.map_or("unknown", Service::as_str),
            result,
            error = err.as_deref().filter(|_| !resp.success).unwrap_or(""),
            "work-response"
        ),
        Some((_, after, ResponseOutcome::Unexpected(why), _)) => warn!(
            ip = %peer.remote.ip(), state = %after, job = resp.service_name.as_str(),
            result, why = why.as_str(), "work-response ignored"
        ),
    }
    // Every work response gets a bye with its correlator (§6.8).
    Ok(xml(message::render_bye(&udi.raw, &resp.correlator)))
}

/// A claimant's answer to its SUDI challenge, checked (`None`: not such an answer).
fn claimant_proof(
    dev: &mut Device,
    ip: IpAddr,
    resp: &crate::domain::job::JobResult,
    plan: &crate::domain::plan::Plan,
    now: chrono::DateTime<Local>,
) -> Option<identity::ClaimProof> {
    let crate::domain::job::Output::DeviceAuth(a) = &resp.output else {
        return None;
    };
    let (pid, serial) = (dev.pid.clone(), dev.serial.clone());
    let proof = identity::answer_claim(dev, ip, &resp.correlator, now, |challenge| {
        plan.identity
            .trust
            .verify(challenge, a, &pid, &serial, now.timestamp())
    });
    (proof != identity::ClaimProof::NotAsked).then_some(proof)
}

/// The log line of a claimant's SUDI answer.
fn claim_logged(serial: &str, ip: IpAddr, bound: IpAddr, proof: &identity::ClaimProof) {
    match proof {
        identity::ClaimProof::Moved { .. } => info!(
            ip = %ip, from = %bound,
            "{serial} moved from {bound} to {ip}: it proved the same SUDI certificate"
        ),
        identity::ClaimProof::TookOver { .. } => warn!(
            ip = %ip, from = %bound,
            "{serial}: {ip} proved the serial by its SUDI; {bound} had it by address only and never proved it: the record is {ip}'s now and starts over. Check what {bound} is: it may have taken this router's config"
        ),
        identity::ClaimProof::Refused { why } => warn!(
            ip = %ip, bound = %bound, why = why.as_str(),
            "{serial} claimed from {ip}: its SUDI answer does not prove the serial; nothing moved"
        ),
        identity::ClaimProof::NotAsked => {}
    }
}

/// Measures a PnP exchange inside the server (see [`crate::metrics`]).
pub(super) async fn timed(
    State(latency): State<Arc<crate::metrics::Latency>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    latency.record(started.elapsed());
    resp
}
