//! Live download progress: bytes served, total, rate, ETA and stalls, per router address.
//!
//! Owns the table of downloads in flight (and recently ended). Downloads served with sendfile
//! ([`super::sendfile`]) feed it directly, the hyper file routes through the HTTP layer's
//! counting body; `status`, the dashboard and the JSON API read [`Transfers::for_ip`]. A router that disconnects mid-transfer ends its entry as aborted
//! (logged); the next job simply downloads again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// No byte for this long while incomplete: the transfer is flagged as stalled.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(30);
/// Ended transfers stay visible this long.
pub(crate) const KEEP_ENDED: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Entry {
    ip: IpAddr,
    /// The router bound to `ip` when the download started, for the log.
    serial: Option<String>,
    path: String,
    bytes: u64,
    total: Option<u64>,
    started: Instant,
    last_progress: Instant,
    ended: Option<(Instant, bool)>,
}

/// One transfer as shown to operators (part of the stable `status --json` schema).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct TransferView {
    /// Path served, e.g. `/images/c1100-....bin`.
    pub(crate) path: String,
    /// Bytes sent so far.
    pub(crate) bytes: u64,
    /// Content length, when known.
    pub(crate) total: Option<u64>,
    /// Average rate, bytes per second.
    pub(crate) rate_bps: u64,
    /// Seconds left at that rate.
    pub(crate) eta_secs: Option<u64>,
    /// Seconds since it started.
    pub(crate) elapsed_secs: u64,
    /// Where it is.
    pub(crate) state: TransferState,
}

/// Where a download is (`running`, `stalled`, `done`, `aborted` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransferState {
    /// Bytes are moving.
    Running,
    /// No byte for [`STALL_AFTER`].
    Stalled,
    /// Every byte sent.
    Done,
    /// The router closed the connection first.
    Aborted,
}

impl TransferState {
    /// The JSON name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TransferState::Running => "running",
            TransferState::Stalled => "stalled",
            TransferState::Done => "done",
            TransferState::Aborted => "aborted",
        }
    }
}

impl std::fmt::Display for TransferState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shared table.
#[derive(Clone, Default)]
pub(crate) struct Transfers {
    inner: Arc<Mutex<(u64, HashMap<u64, Entry>)>>,
    /// The serial each router address last spoke PnP for (see [`Transfers::name`]).
    names: Arc<Mutex<HashMap<IpAddr, String>>>,
    /// Bytes of every download since start (for `/metrics`).
    served: Arc<std::sync::atomic::AtomicU64>,
}

impl Transfers {
    fn with<R>(&self, f: impl FnOnce(&mut (u64, HashMap<u64, Entry>)) -> R) -> R {
        let mut g = crate::sync::lock(&self.inner);
        f(&mut g)
    }

    /// Records that `ip` speaks PnP for `serial` (the PnP server, at each admitted exchange), so
    /// download lines in the log name the router.
    pub(crate) fn name(&self, ip: IpAddr, serial: &str) {
        let mut names = crate::sync::lock(&self.names);
        if names.get(&ip).is_some_and(|s| s == serial) {
            return;
        }
        if names.len() >= 100_000 {
            names.clear();
        }
        names.insert(ip, serial.to_string());
    }

    pub(crate) fn start(&self, ip: IpAddr, path: String, total: Option<u64>) -> u64 {
        let now = Instant::now();
        let serial = crate::sync::lock(&self.names).get(&ip).cloned();
        self.with(|(next, map)| {
            map.retain(|_, e| e.ended.is_none_or(|(t, _)| t.elapsed() < KEEP_ENDED));
            *next += 1;
            map.insert(
                *next,
                Entry {
                    ip,
                    serial,
                    path,
                    bytes: 0,
                    total,
                    started: now,
                    last_progress: now,
                    ended: None,
                },
            );
            *next
        })
    }

    pub(crate) fn add(&self, id: u64, n: usize) {
        self.served
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        self.with(|(_, map)| {
            if let Some(e) = map.get_mut(&id) {
                e.bytes += n as u64;
                e.last_progress = Instant::now();
            }
        });
    }

    pub(crate) fn end(&self, id: u64, complete: bool) {
        let entry = self.with(|(_, map)| {
            map.get_mut(&id).map(|e| {
                // A client may stop polling once it has Content-Length bytes, so a body dropped
                // after its last byte was delivered is complete, not aborted.
                let all_sent = e.total.is_some_and(|t| e.bytes >= t);
                e.ended = Some((Instant::now(), complete || all_sent));
                e.clone()
            })
        });
        if let Some(e) = entry {
            let complete = e.ended.is_some_and(|(_, c)| c);
            let secs = e.started.elapsed().as_secs_f64();
            let serial = e.serial.as_deref().unwrap_or("?");
            if complete {
                tracing::info!(serial, ip = %e.ip, path = %e.path, bytes = e.bytes, secs = format!("{secs:.1}"), "download finished");
            } else {
                tracing::warn!(serial, ip = %e.ip, path = %e.path, bytes = e.bytes, total = e.total.unwrap_or(0), secs = format!("{secs:.1}"), "download aborted: the router closed the connection; it will retry with the job");
            }
        }
    }

    /// Bytes served by downloads since start, and the downloads running now.
    pub(crate) fn totals(&self) -> (u64, usize) {
        let running = self.with(|(_, map)| map.values().filter(|e| e.ended.is_none()).count());
        (
            self.served.load(std::sync::atomic::Ordering::Relaxed),
            running,
        )
    }

    /// Transfers to `ip`, newest first.
    pub(crate) fn for_ip(&self, ip: IpAddr) -> Vec<TransferView> {
        let mut list: Vec<(Instant, TransferView)> = self.with(|(_, map)| {
            map.values()
                .filter(|e| e.ip == ip && e.ended.is_none_or(|(t, _)| t.elapsed() < KEEP_ENDED))
                .map(|e| (e.started, view(e)))
                .collect()
        });
        list.sort_by_key(|e| std::cmp::Reverse(e.0));
        list.into_iter().map(|(_, v)| v).collect()
    }
}

fn view(e: &Entry) -> TransferView {
    // An ended download's time stops at its end.
    let elapsed = match e.ended {
        Some((at, _)) => at.duration_since(e.started),
        None => e.started.elapsed(),
    };
    let rate = (e.bytes as f64 / elapsed.as_secs_f64().max(0.001)) as u64;
    let state = match e.ended {
        Some((_, true)) => TransferState::Done,
        Some((_, false)) => TransferState::Aborted,
        None if e.last_progress.elapsed() > STALL_AFTER => TransferState::Stalled,
        None => TransferState::Running,
    };
    TransferView {
        path: e.path.clone(),
        bytes: e.bytes,
        total: e.total,
        rate_bps: rate,
        eta_secs: match (e.total, e.ended) {
            (Some(t), None) if rate > 0 => Some(t.saturating_sub(e.bytes) / rate),
            _ => None,
        },
        elapsed_secs: elapsed.as_secs(),
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_rate_eta_and_end_states() {
        let t = Transfers::default();
        let ip: IpAddr = "198.51.100.20".parse().unwrap();
        let id = t.start(ip, "/images/x.bin".into(), Some(1000));
        t.add(id, 250);
        let v = &t.for_ip(ip)[0];
        assert_eq!(
            (v.bytes, v.total, v.state),
            (250, Some(1000), TransferState::Running)
        );
        assert!(v.rate_bps > 0 && v.eta_secs.is_some());
        assert!(t.for_ip("198.51.100.21".parse().unwrap()).is_empty());
        t.end(id, false);
        let ended = t.for_ip(ip)[0].clone();
        assert_eq!(ended.state, TransferState::Aborted);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            t.for_ip(ip)[0].elapsed_secs,
            ended.elapsed_secs,
            "an ended download's time does not run on"
        );
        let id2 = t.start(ip, "/files/g.tar".into(), None);
        t.end(id2, true);
        let list = t.for_ip(ip);
        assert_eq!(list[0].path, "/files/g.tar");
        assert_eq!(list[0].state, TransferState::Done);
    }
}
