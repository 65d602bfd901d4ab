//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4), for the monitoring
//! people already run: routers per workflow state, PnP exchanges and their latency histogram,
//! how long the store takes to commit a change, bytes served and downloads running, and what
//! the DHCP responder answered.
//!
//! Written by hand: a dozen series do not need a metrics library, and the names and help texts
//! are documented here and in README.md. Format: <https://prometheus.io/docs/instrumenting/exposition_formats/>.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::App;
use crate::domain::device::State as DevState;
use crate::metrics::{EXPORT_LE, Exported};

/// What one scrape shows.
pub(crate) struct Snapshot {
    /// Routers in each state (every state listed, zeros included).
    pub(crate) states: Vec<(DevState, usize)>,
    /// PnP exchange latency.
    pub(crate) latency: Exported,
    /// Store commit latency.
    pub(crate) commit: Exported,
    /// Bytes served by downloads since start.
    pub(crate) bytes_served: u64,
    /// Downloads running now.
    pub(crate) downloads: usize,
    /// DHCP: offers, acks, naks, unanswered, foreign.
    pub(crate) dhcp: [u64; 5],
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Exported) {
    family(out, name, "histogram", help);
    for (le, n) in EXPORT_LE.iter().zip(&h.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum_secs);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// The exposition text of `s`.
pub(crate) fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "pnp_routers",
        "gauge",
        "Routers by workflow state.",
    );
    for (state, n) in &s.states {
        let _ = writeln!(out, "pnp_routers{{state=\"{}\"}} {n}", state.as_str());
    }
    histogram(
        &mut out,
        "pnp_exchange_duration_seconds",
        "Time inside the server to answer a PnP exchange (/pnp/*).",
        &s.latency,
    );
    histogram(
        &mut out,
        "pnp_store_commit_duration_seconds",
        "Time from handing a router's durable change to the store until it is on disk (every answer that depends on it waits for this).",
        &s.commit,
    );
    family(
        &mut out,
        "pnp_download_bytes_total",
        "counter",
        "Bytes sent by image and file downloads.",
    );
    let _ = writeln!(out, "pnp_download_bytes_total {}", s.bytes_served);
    family(
        &mut out,
        "pnp_downloads_running",
        "gauge",
        "Downloads in progress.",
    );
    let _ = writeln!(out, "pnp_downloads_running {}", s.downloads);
    family(
        &mut out,
        "pnp_dhcp_packets_total",
        "counter",
        "DHCP packets by what the responder did: offer, ack, nak sent; unanswered (a PnP router held by the limits, the pool, or a forged release); foreign (not a client we serve).",
    );
    for (outcome, n) in ["offer", "ack", "nak", "unanswered", "foreign"]
        .iter()
        .zip(s.dhcp)
    {
        let _ = writeln!(out, "pnp_dhcp_packets_total{{outcome=\"{outcome}\"}} {n}");
    }
    out
}

pub(super) async fn metrics(State(app): State<App>) -> Response {
    let devices = app.registry.summaries().await;
    let states = DevState::ALL
        .iter()
        .map(|st| (*st, devices.iter().filter(|d| d.state == *st).count()))
        .collect();
    let (bytes_served, downloads) = app.transfers.totals();
    let c = &app.dhcp_counters;
    let snapshot = Snapshot {
        states,
        latency: app.latency.exported(),
        commit: app.registry.commit_latency(),
        bytes_served,
        downloads,
        dhcp: [
            c.offers.load(Relaxed),
            c.acks.load(Relaxed),
            c.naks.load(Relaxed),
            c.unanswered.load(Relaxed),
            c.foreign.load(Relaxed),
        ],
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&snapshot),
    )
        .into_response()
}
