//! Live download progress: bytes served, total, rate, ETA and stalls, per router.
//!
//! Owns the table of downloads in flight (and recently ended). Downloads served with sendfile
//! ([`super::sendfile`]) feed it directly, the hyper file routes through the HTTP layer's
//! counting body; `status`, the dashboard and the JSON API read [`Transfers::for_serial`]. A
//! router that disconnects mid-transfer ends its entry as aborted (logged); the next job simply
//! downloads again.
//!
//! A download is attributed to the job that issued it, not to the address it comes from (NAT,
//! relays and `simulate` put many routers behind one address): image-install and file-transfer
//! jobs name a per-job URL, `/dl/<SERIAL>/<tag>/images/<file>`
//! ([`crate::domain::job::download_path`]), and the PnP
//! server registers the tag with [`Transfers::issued`]. Only a registered tag attributes: the
//! tag is random and never shown, so nobody else can put progress on a router. A download
//! under an unknown tag (issued before a restart) or a plain `/images/<file>` is still served,
//! and is attributed to the serial that last spoke PnP from its address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::domain::job::{download_parts, download_parts_of_url};

/// No byte for this long while incomplete: the transfer is flagged as stalled.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(30);
/// Ended transfers stay visible this long.
pub(crate) const KEEP_ENDED: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Entry {
    ip: IpAddr,
    /// The router it belongs to (see [`Transfers::issued`]).
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
    /// The serial each issued download tag belongs to (see [`Transfers::issued`]).
    tags: Arc<Mutex<HashMap<String, String>>>,
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

    /// Records that the job just sent to `serial` names `url`: a download through it is that
    /// router's, whichever address it comes from.
    pub(crate) fn issued(&self, url: &str, serial: &str) {
        let Some((_, (_, tag, _))) = download_parts_of_url(url) else {
            return;
        };
        let mut tags = crate::sync::lock(&self.tags);
        if tags.len() >= 100_000 {
            tags.clear();
        }
        tags.insert(tag.to_string(), serial.to_string());
    }

    /// The router a download of `path` from `ip` belongs to: the registered tag's, else the
    /// serial that last spoke PnP from `ip`.
    fn owner(&self, ip: IpAddr, path: &str) -> Option<String> {
        if let Some((_, tag, _)) = download_parts(path)
            && let Some(serial) = crate::sync::lock(&self.tags).get(tag)
        {
            return Some(serial.clone());
        }
        crate::sync::lock(&self.names).get(&ip).cloned()
    }

    pub(crate) fn start(&self, ip: IpAddr, path: String, total: Option<u64>) -> u64 {
        let now = Instant::now();
        let serial = self.owner(ip, &path);
        // Shown without the job's tag: `/images/<file>`.
        let path = match download_parts(&path) {
            Some((_, _, rest)) => format!("/{rest}"),
            None => path,
        };
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

    /// The router download `id` belongs to, for a log line (`?` when unknown).
    pub(crate) fn serial_of(&self, id: u64) -> String {
        self.with(|(_, map)| map.get(&id).and_then(|e| e.serial.clone()))
            .unwrap_or_else(|| "?".into())
    }

    /// Bytes served by downloads since start, and the downloads running now.
    pub(crate) fn totals(&self) -> (u64, usize) {
        let running = self.with(|(_, map)| map.values().filter(|e| e.ended.is_none()).count());
        (
            self.served.load(std::sync::atomic::Ordering::Relaxed),
            running,
        )
    }

    /// Downloads of router `serial`, newest first.
    pub(crate) fn for_serial(&self, serial: &str) -> Vec<TransferView> {
        let mut list: Vec<(Instant, TransferView)> = self.with(|(_, map)| {
            map.values()
                .filter(|e| {
                    e.serial.as_deref() == Some(serial)
                        && e.ended.is_none_or(|(t, _)| t.elapsed() < KEEP_ENDED)
                })
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
    use crate::domain::job::download_path;

    #[test]
    fn progress_rate_eta_and_end_states() {
        let t = Transfers::default();
        let ip: IpAddr = "198.51.100.20".parse().unwrap();
        t.name(ip, "S1");
        let id = t.start(ip, "/images/x.bin".into(), Some(1000));
        t.add(id, 250);
        let v = &t.for_serial("S1")[0];
        assert_eq!(
            (v.bytes, v.total, v.state),
            (250, Some(1000), TransferState::Running)
        );
        assert!(v.rate_bps > 0 && v.eta_secs.is_some());
        assert!(t.for_serial("S2").is_empty());
        t.end(id, false);
        let ended = t.for_serial("S1")[0].clone();
        assert_eq!(ended.state, TransferState::Aborted);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            t.for_serial("S1")[0].elapsed_secs,
            ended.elapsed_secs,
            "an ended download's time does not run on"
        );
        let id2 = t.start(ip, "/files/g.tar".into(), None);
        t.end(id2, true);
        let list = t.for_serial("S1");
        assert_eq!(list[0].path, "/files/g.tar");
        assert_eq!(list[0].state, TransferState::Done);
    }

    #[test]
    fn a_download_is_the_router_whose_job_issued_it_whatever_its_address() {
        let t = Transfers::default();
        let nat: IpAddr = "203.0.113.9".parse().unwrap();
        // Three routers behind one address; the last to speak PnP was C.
        for s in ["A", "B", "C"] {
            t.name(nat, s);
        }
        let url = |s: &str, tag: &str| {
            format!(
                "http://198.51.100.1:8080{}",
                download_path(s, tag, "images", "x.bin")
            )
        };
        t.issued(&url("A", "aa11"), "A");
        t.issued(&url("B", "bb22"), "B");
        t.start(nat, download_path("A", "aa11", "images", "x.bin"), Some(10));
        t.start(nat, download_path("B", "bb22", "images", "x.bin"), Some(10));
        // A tag nobody issued (a guess, or one from before a restart) does not attribute by the
        // serial it names: it falls back to the address's last speaker.
        t.start(
            nat,
            download_path("A", "guess", "images", "x.bin"),
            Some(10),
        );
        t.start(nat, "/images/x.bin".into(), Some(10));
        let count = |s: &str| t.for_serial(s).len();
        assert_eq!((count("A"), count("B"), count("C")), (1, 1, 2));
        assert_eq!(
            t.for_serial("A")[0].path,
            "/images/x.bin",
            "shown without its tag"
        );
        assert_eq!(
            download_parts("/dl/S/t/files/g.tar"),
            Some(("S", "t", "files/g.tar"))
        );
        for bad in [
            "/dl/S/t/etc/passwd",
            "/dl//t/images/x",
            "/dl/S/t",
            "/images/x",
        ] {
            assert_eq!(download_parts(bad), None, "{bad}");
        }
    }
}
