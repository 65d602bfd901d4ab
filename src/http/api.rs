//! The operator's JSON API and device actions.
//!
//! Owns the stable status-row shape ([`StatusRow`], documented in README.md), read by
//! `status`, the dashboard and `/api/status`; the record routes; the latency metrics; and the
//! action route with its authorization.

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::Local;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::error::HttpError;
use super::{App, Peer};
use crate::domain::device::{Device, DeviceLease};
use crate::domain::workflow::{self, Action};
use crate::files::transfers::{TransferView, Transfers};

/// One router in `status --json` and `GET /api/status` (stable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusRow {
    /// Serial number.
    pub(crate) serial: String,
    /// PID.
    pub(crate) platform: String,
    /// VID.
    pub(crate) hw_rev: String,
    /// Address it talks from.
    pub(crate) ip: String,
    /// `YYYY-MM-DDTHH:MM:SS`.
    pub(crate) first_seen: String,
    /// `YYYY-MM-DDTHH:MM:SS`.
    pub(crate) last_contact: String,
    /// Running version.
    pub(crate) current_version: String,
    /// Target image file.
    pub(crate) target_image: String,
    /// Guestshell tarball copied.
    pub(crate) guestshell_tarball: bool,
    /// Python script copied.
    pub(crate) python_script: bool,
    /// Day-0 config applied.
    pub(crate) config_update: bool,
    /// Workflow state name.
    pub(crate) state: String,
    /// The job in flight, e.g. `image-install http://...`.
    pub(crate) step: Option<String>,
    /// The newest download to this router (running, stalled, done or aborted).
    pub(crate) transfer: Option<TransferView>,
    /// Last error the router reported.
    pub(crate) last_error: Option<String>,
    /// Why it is FAILED.
    pub(crate) fail_reason: Option<String>,
    /// Its DHCP lease from our responder.
    pub(crate) lease: Option<DeviceLease>,
    /// Another address's refused claim on this serial: "SERIAL claimed from X, bound to Y ...".
    #[serde(default)]
    pub(crate) claim: Option<String>,
    /// `needs_you`, `in_progress` or `finished`.
    pub(crate) group: crate::domain::bench::Group,
    /// Step k of n in the workflow.
    pub(crate) progress: crate::domain::bench::Progress,
    /// From its day-0 config (the inventory's row).
    pub(crate) hostname: Option<String>,
    /// Why it needs you (`group` = `needs_you`).
    pub(crate) reason: Option<String>,
    /// What to do about it.
    pub(crate) fix: Option<String>,
    /// The bench that drives it (`[state] bench`; with a fleet database, one of several).
    #[serde(default)]
    pub(crate) bench: String,
    /// `sudi-verified`, `sudi-failed` or `address-bound`.
    #[serde(default)]
    pub(crate) identity: String,
    /// What the identity rests on, or why the SUDI check failed.
    #[serde(default)]
    pub(crate) identity_detail: String,
}

/// A router our DHCP leased an address to that has not spoken PnP yet (`/api/waiting`,
/// `status`): "leased, waiting for PnP".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Waiting {
    /// Leased address.
    pub(crate) ip: String,
    /// Its MAC.
    pub(crate) mac: String,
    /// PID from option 124.
    pub(crate) pid: String,
    /// Bound since, `YYYY-MM-DDTHH:MM:SS`.
    pub(crate) since: String,
}

/// The waiting routers of a lease table at `now` (Unix seconds).
pub(crate) fn waiting(leases: &crate::dhcp::leases::Leases, now: u64) -> Vec<Waiting> {
    leases
        .waiting(now)
        .into_iter()
        .map(|l| Waiting {
            ip: l.ip.to_string(),
            mac: l.mac.clone(),
            pid: l.pid.clone().unwrap_or_default(),
            since: crate::domain::bench::utc(chrono::DateTime::<Local>::from(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(l.since),
            )),
        })
        .collect()
}

/// `GET /api/waiting`: routers leased by our DHCP that have not spoken PnP yet.
pub(super) async fn waiting_routers(State(app): State<App>) -> Response {
    let now = crate::dhcp::unix_now();
    let list = waiting(&crate::sync::lock(&app.leases), now);
    axum::Json(list).into_response()
}

/// Rows for `devices`, with transfers when the server runs, in the order every view shows
/// them: the routers that need you, then those in progress, then the finished ones, each pile
/// by serial (an order that does not move under the operator's eyes).
pub(crate) fn rows(devices: &[Device], transfers: Option<&Transfers>) -> Vec<StatusRow> {
    let mut rows: Vec<StatusRow> = devices
        .iter()
        .map(|d| {
            row(
                d,
                transfers.and_then(|t| t.for_serial(&d.serial).into_iter().next()),
            )
        })
        .collect();
    rows.sort_by(|a, b| (a.group, &a.serial).cmp(&(b.group, &b.serial)));
    rows
}

/// One router's row, with its newest download.
fn row(d: &Device, transfer: Option<TransferView>) -> StatusRow {
    use crate::domain::bench;
    let stalled = transfer
        .as_ref()
        .filter(|t| t.state == crate::files::transfers::TransferState::Stalled)
        .map(|t| t.path.rsplit('/').next().unwrap_or_default().to_string());
    let attention = bench::attention(d, stalled.as_deref());
    let (identity, identity_detail) = crate::domain::identity::identity(d);
    StatusRow {
        identity: identity.into(),
        identity_detail,
        bench: d.bench.clone(),
        serial: d.serial.clone(),
        platform: d.pid.clone(),
        hw_rev: d.vid.clone(),
        ip: d.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        first_seen: bench::utc(d.first_seen),
        last_contact: bench::utc(d.last_contact),
        current_version: d.current_version.clone(),
        target_image: d.target_image.clone(),
        guestshell_tarball: d.tarball_done,
        python_script: d.script_done,
        config_update: d.config_file.is_some(),
        state: d.state.as_str().to_string(),
        step: d.pending.as_ref().map(|p| p.job.summary()),
        transfer,
        last_error: d.last_error.clone(),
        fail_reason: d.fail_reason.clone(),
        lease: d.lease.clone(),
        claim: crate::domain::identity::claim_text(d),
        group: bench::group(d, attention.as_ref()),
        progress: bench::progress(d),
        hostname: bench::hostname(d),
        reason: attention.as_ref().map(|a| a.reason.clone()),
        fix: attention.map(|a| a.fix),
    }
}

fn no_device(serial: &str) -> HttpError {
    HttpError::NotFound(format!(
        "no device with serial {serial} (`pnp-appliance status` lists them)"
    ))
}

/// Every record without its history: up to 300 lines each, so with them a poll of this list
/// for 1000 routers was a ~43 MB body built from copies of every record (BENCHMARKS.md, "Soak").
/// A record's history is at `/api/devices/{serial}`.
pub(super) async fn devices(State(app): State<App>, Query(page): Query<Page>) -> Response {
    let all = app.registry.fleet_summaries().await;
    let total = all.len();
    let list: Vec<serde_json::Value> = page
        .of(&all)
        .iter()
        .filter_map(|d| {
            let mut v = record_json(d)?;
            if let Some(record) = v.as_object_mut() {
                record.remove("history");
            }
            Some(v)
        })
        .collect();
    page.answer(total, list)
}

/// Paging of the list routes: `?offset=N&limit=M`, newest contact first. An answer holds at
/// most [`Page::MAX`] records; `X-Total-Count` says how many there are.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

impl Page {
    /// Most records in one answer.
    const MAX: usize = 2000;

    fn of<'a, T>(&self, all: &'a [T]) -> &'a [T] {
        let start = self.offset.unwrap_or(0).min(all.len());
        let n = self.limit.unwrap_or(Self::MAX).min(Self::MAX);
        &all[start..all.len().min(start.saturating_add(n))]
    }

    /// The page of `all`, taken out of it.
    fn take<T>(&self, all: Vec<T>) -> Vec<T> {
        let n = self.limit.unwrap_or(Self::MAX).min(Self::MAX);
        all.into_iter()
            .skip(self.offset.unwrap_or(0))
            .take(n)
            .collect()
    }

    fn answer<T: Serialize>(&self, total: usize, items: Vec<T>) -> Response {
        let mut resp = axum::Json(items).into_response();
        if let Ok(v) = total.to_string().parse() {
            resp.headers_mut().insert("x-total-count", v);
        }
        resp
    }
}

/// A record as the API shows it: as stored, plus `step`, the summary of the job in flight (the
/// stored job is typed; pages and scripts want its text), and `claim_text`. The job in flight
/// is shown with an empty correlator and its config URL without the token: with them, any host
/// could answer for the router or fetch its config.
fn record_json(d: &Device) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(d).ok()?;
    if let (Some(p), Some(shown)) = (&d.pending, v.get_mut("pending")) {
        shown["correlator"] = "".into();
        shown["job"] = serde_json::to_value(p.job.shown()).ok()?;
    }
    if let Some(record) = v.as_object_mut() {
        let step = d.pending.as_ref().map(|p| p.job.summary());
        record.insert("step".into(), step.into());
        record.insert(
            "claim_text".into(),
            crate::domain::identity::claim_text(d).into(),
        );
    }
    Some(v)
}

pub(super) async fn device(
    State(app): State<App>,
    Path(serial): Path<String>,
) -> Result<Response, HttpError> {
    let d = app
        .registry
        .get(&serial)
        .await
        .ok_or_else(|| no_device(&serial))?;
    let mut v = record_json(&d)
        .ok_or_else(|| HttpError::Internal(format!("record of {serial} does not serialise")))?;
    // What the dashboard's router page shows besides the record: its status row (pile, step,
    // reason and fix, download) and the timeline of its steps.
    let transfer = app.transfers.for_serial(&d.serial).into_iter().next();
    v["row"] = serde_json::to_value(row(&d, transfer)).unwrap_or_default();
    v["timeline"] =
        serde_json::to_value(crate::domain::bench::timeline(&d, Local::now())).unwrap_or_default();
    Ok(axum::Json(v).into_response())
}

/// Server metrics: PnP exchange latency as measured inside the server.
pub(super) async fn metrics(State(app): State<App>) -> Response {
    axum::Json(serde_json::json!({ "pnp": app.latency.view() })).into_response()
}

pub(super) async fn status(State(app): State<App>, Query(page): Query<Page>) -> Response {
    let devices = app.registry.fleet_summaries().await;
    let total = devices.len();
    // Sorted before paging: the piles depend on live downloads, and pages must not overlap.
    let all = rows(&devices, Some(&app.transfers));
    page.answer(total, page.take(all))
}

/// Device actions need proof that they are not cross-site and the admin token (configured, or
/// generated at the first start: there is always one). The token travels in a header
/// (`X-Admin-Token` or `Authorization: Bearer`), which a page on another site cannot set
/// without a CORS preflight we never grant; `Host` and `Origin` must name this appliance
/// ([`super::origin`]), which stops DNS rebinding and form posts.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), HttpError> {
    super::origin::same_site(&app.cfg, headers)?;
    let Some(token) = &app.cfg.admin_token else {
        return Err(HttpError::Forbidden(
            "no admin token is set: restart the server (it generates one) or set [http] admin-token".into(),
        ));
    };
    let given = headers
        .get("x-admin-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    if given.is_some_and(|g| crate::domain::identity::same_secret(g, token)) {
        Ok(())
    } else {
        Err(HttpError::Unauthorized(
            "device actions need the admin token in an X-Admin-Token header: [http] admin-token, or the one generated in the state directory (state/admin-token)",
        ))
    }
}

pub(super) async fn action(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((serial, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    if let Err(refused) = authorize(&app, &headers) {
        warn!(ip = %peer.remote.ip(), serial, action, why = %refused, "device action refused");
        return Err(refused);
    }
    let action: Action = action.parse().map_err(HttpError::NotFound)?;
    let now = Local::now();
    let result = if action == Action::Forget {
        app.registry.forget(&serial).await.map(|gone| {
            gone.then(|| {
                Ok(format!(
                    "{serial}: record deleted (a router that calls again starts as NEW_DEVICE)"
                ))
            })
        })
    } else {
        app.registry
            .act(&serial, |d| workflow::operator(d, action, now))
            .await
    }
    .map_err(|e| HttpError::Conflict(format!("{serial}: {e}")))?;
    match result {
        None => Err(no_device(&serial)),
        Some(Ok(msg)) => {
            info!(serial, ip = %peer.remote.ip(), "operator: {msg}");
            Ok(format!("{msg}\n").into_response())
        }
        Some(Err(msg)) => Err(HttpError::Conflict(msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn pages_cover_the_list_once_and_cap_each_answer() {
        let all: Vec<u32> = (0..4500).collect();
        let page = |offset, limit| Page { offset, limit };
        assert_eq!(page(None, None).of(&all).len(), Page::MAX);
        assert_eq!(page(None, Some(10_000)).of(&all).len(), Page::MAX);
        assert_eq!(page(Some(2), Some(3)).of(&all), &[2, 3, 4]);
        assert_eq!(page(Some(4000), None).of(&all).len(), 500);
        assert!(page(Some(9000), None).of(&all).is_empty());
        // Walking the pages as the CLI and the simulator do gives every item once.
        let mut seen = Vec::new();
        loop {
            let p = page(Some(seen.len()), Some(Page::MAX)).of(&all);
            seen.extend_from_slice(p);
            if p.len() < Page::MAX {
                break;
            }
        }
        assert_eq!(seen, all);
    }
}
