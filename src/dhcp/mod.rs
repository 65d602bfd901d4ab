//! The PnP-only DHCPv4 responder.
//!
//! `packet` reads datagrams without trusting them, `classify` decides who is a PnP router,
//! `leases` holds the pool and lease table, `settings` resolves the configuration with the
//! interface, `reply` applies RFC 2131 (all pure); `option43` and
//! `snippet` format option 43 and configs for other DHCP servers; `socket` binds. This module is
//! the thin async shell: resolve settings from the interface, receive, answer, persist.

pub(crate) mod classify;
pub(crate) mod flood;
pub(crate) mod leases;
pub(crate) mod option43;
pub(crate) mod packet;
pub(crate) mod reply;
pub(crate) mod settings;
pub(crate) mod snippet;
pub(crate) mod socket;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

use crate::sync::lock;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use leases::Leases;
use reply::Outcome;
pub(crate) use settings::Settings;

/// The lease table shared by the responder and the PnP server (which shows a router's lease).
pub(crate) type SharedLeases = Arc<Mutex<Leases>>;

/// What the responder answered since start (for `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// OFFERs sent.
    pub(crate) offers: std::sync::atomic::AtomicU64,
    /// ACKs sent.
    pub(crate) acks: std::sync::atomic::AtomicU64,
    /// NAKs sent.
    pub(crate) naks: std::sync::atomic::AtomicU64,
    /// Packets from PnP routers left unanswered (limits, exhaustion, forged RELEASE/DECLINE).
    pub(crate) unanswered: std::sync::atomic::AtomicU64,
    /// Packets from clients we do not serve (not PnP, or a PID not configured).
    pub(crate) foreign: std::sync::atomic::AtomicU64,
}

impl Counters {
    fn count(&self, outcome: &Outcome) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = match outcome {
            Outcome::Reply { kind: "OFFER", .. } => &self.offers,
            Outcome::Reply { kind: "NAK", .. } => &self.naks,
            Outcome::Reply { .. } => &self.acks,
            Outcome::Silent {
                foreign: Some(_), ..
            } => &self.foreign,
            Outcome::Silent { .. } => &self.unanswered,
        };
        c.fetch_add(1, Relaxed);
    }
}

/// Reads the saved lease table: none saved is an empty table, an unreadable one an error.
pub(crate) fn parse_leases(saved: Option<String>) -> anyhow::Result<Leases> {
    match saved {
        None => Ok(Leases::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "the saved lease table is unreadable ({e}): start once with [dhcp] off, or move the state directory aside, to start with no leases"
            )
        }),
    }
}

/// The IPv4 address and netmask of `interface`.
pub(crate) fn interface_v4(interface: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let addrs = if_addrs::get_if_addrs().map_err(|e| format!("cannot list interfaces: {e}"))?;
    let mut link_local = None;
    for a in addrs {
        if a.name != interface {
            continue;
        }
        if let if_addrs::IfAddr::V4(v4) = a.addr {
            // 169.254/16 (RFC 3927) is what a laptop's port gets with no DHCP server: not an
            // address to serve a bench from.
            if v4.ip.is_link_local() {
                link_local = Some(v4.ip);
                continue;
            }
            return Ok((v4.ip, v4.netmask));
        }
    }
    // An interface without addresses is not listed by getifaddrs: look for the device itself.
    let exists = Path::new("/sys/class/net").join(interface).exists() || link_local.is_some();
    Err(if !exists {
        format!(
            "interface {interface} does not exist: check [dhcp] interface or --interface (`ip -br link` lists them)"
        )
    } else {
        let only = link_local.map_or(String::new(), |ip| format!(" (only the link-local {ip})"));
        format!(
            "interface {interface} has no IPv4 address{only}: give it one for this run with `--address 198.51.100.1/24` (the appliance adds it and removes it at exit; needs root), or `sudo ip addr add 198.51.100.1/24 dev {interface}`"
        )
    })
}

/// Adds `cidr` (e.g. `198.51.100.1/24`) to `interface` for this run and brings it up, with the
/// `ip` command (iproute2); [`remove_address`] takes it away again at exit.
pub(crate) fn add_address(interface: &str, cidr: &str) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `ip` (install iproute2): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    };
    run(&["addr", "add", cidr, "dev", interface]).map_err(|e| {
        format!(
            "cannot add {cidr} to {interface}: {e} (run as root, or give the binary CAP_NET_ADMIN: `sudo setcap cap_net_admin,cap_net_bind_service,cap_net_raw+ep $(which pnp-appliance)`)"
        )
    })?;
    run(&["link", "set", interface, "up"]).map_err(|e| format!("cannot bring {interface} up: {e}"))
}

/// Removes what [`add_address`] added (at a clean stop; after a kill -9 it stays until
/// `sudo ip addr del CIDR dev IFACE`).
pub(crate) fn remove_address(interface: &str, cidr: &str) {
    let _ = std::process::Command::new("ip")
        .args(["addr", "del", cidr, "dev", interface])
        .output();
}

/// Now in Unix seconds, the clock of the lease table.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Saves the lease table with group commit: whoever needs the table on disk waits for the next
/// write, and one write (snapshot taken after every waiter's change) serves all of them.
#[derive(Clone)]
pub(crate) struct LeaseSaver {
    tx: std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

impl LeaseSaver {
    /// Starts the saver thread for `leases`, committing them to `registry`'s store.
    pub(crate) fn start(
        leases: SharedLeases,
        registry: crate::store::Registry,
    ) -> std::io::Result<LeaseSaver> {
        let (tx, rx) =
            std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Result<(), String>>>();
        std::thread::Builder::new()
            .name("lease-saver".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiters = vec![first];
                    while let Ok(w) = rx.try_recv() {
                        waiters.push(w);
                    }
                    // The snapshot is taken after every waiter's change was made.
                    let json = serde_json::to_string(&*lock(&leases)).unwrap_or_default();
                    let result = registry.save_leases_blocking(json);
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            })?;
        Ok(LeaseSaver { tx })
    }

    /// Returns once the table as it is now is on disk.
    pub(crate) async fn save(&self) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(done)
            .map_err(|_| "lease saver stopped".to_string())?;
        wait.await.map_err(|_| "lease saver stopped".to_string())?
    }
}

/// Writes the flood report when one is due.
fn report(guard: &mut flood::Guard, settings: &Settings, leases: &SharedLeases, now: u64) {
    if guard.due(now) {
        let counts = lock(leases).counts(now);
        if let Some(report) = guard.report(now, settings.pool.size(), counts) {
            warn!("{report}");
        }
    }
}

fn save_failed(e: &str) {
    warn!(error = %e, "cannot save leases: they are kept in memory only; free disk space or fix permissions of the state directory");
}

/// Answers PnP routers on `socket` until `cancel`.
pub(crate) async fn run(
    socket: std::net::UdpSocket,
    settings: Arc<Settings>,
    leases: SharedLeases,
    counters: Arc<Counters>,
    registry: crate::store::Registry,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let socket = Arc::new(UdpSocket::from_std(socket)?);
    let saver = LeaseSaver::start(leases.clone(), registry)?;
    info!(
        server = ?settings.server.map(|s| s.ip),
        option43 = %settings.option43,
        pid_prefixes = ?settings.prefixes,
        pool = settings.pool.describe().as_str(),
        "DHCP responder ready (answers Cisco PnP routers only)"
    );
    let mut buf = vec![0u8; 4096];
    let mut foreign: HashSet<String> = HashSet::new();
    let mut guard = flood::Guard::new(
        settings.pool.size(),
        settings.new_client_offers,
        settings.offers_per_client,
    );
    // Reports of unanswered DISCOVERs are due on time even when the flood has stopped.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let (n, src) = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                report(&mut guard, &settings, &leases, unix_now());
                continue;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "DHCP receive failed");
                    continue;
                }
            },
        };
        let data = &buf[..n];
        // From the fixed header, so even a packet that does not parse is logged with them.
        let (xid, mac) = packet::header_ids(data);
        let span = info_span!("dhcp", xid = %xid, mac = %mac);
        // The receive path is pure and fuzzed; a panic in it still must not stop the responder.
        let now = unix_now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reply::handle(data, src, &settings, &mut lock(&leases), &mut guard, now)
        }));
        report(&mut guard, &settings, &leases, now);
        let outcome = match outcome {
            Ok(o) => {
                counters.count(&o);
                o
            }
            Err(_) => {
                span.in_scope(
                    || warn!(%src, bytes = n, "DHCP packet caused an internal error; dropped"),
                );
                continue;
            }
        };
        match outcome {
            Outcome::Reply {
                bytes,
                to,
                kind,
                yiaddr,
                pid,
                persist,
                ..
            } => {
                if bytes.is_empty() {
                    continue;
                }
                let socket = socket.clone();
                let send = async move {
                    match socket.send_to(&bytes, to).await {
                        // The PID is the client's text: a string field, written escaped.
                        Ok(_) => info!(pid = pid.as_str(), ip = %yiaddr, to = %to, "DHCP {kind}"),
                        Err(e) => warn!(to = %to, error = %e, "cannot send DHCP {kind}"),
                    }
                };
                if persist {
                    // An ACK leaves only once its lease is on disk; the loop goes on meanwhile.
                    let saver = saver.clone();
                    tokio::spawn(
                        async move {
                            if let Err(e) = saver.save().await {
                                save_failed(&e);
                            }
                            send.await;
                        }
                        .instrument(span),
                    );
                } else {
                    send.instrument(span).await;
                }
            }
            Outcome::Silent {
                reason,
                warn: w,
                persist,
                foreign: f,
            } => {
                if persist {
                    let saver = saver.clone();
                    tokio::spawn(
                        async move {
                            if let Err(e) = saver.save().await {
                                save_failed(&e);
                            }
                        }
                        .instrument(span.clone()),
                    );
                }
                let _in = span.enter();
                if w {
                    warn!(reason = reason.as_str(), "DHCP");
                } else if let Some(kind) = f {
                    if foreign.len() < 10_000 && foreign.insert(format!("{mac} {kind:?}")) {
                        match kind {
                            reply::Foreign::OtherPid => info!(
                                reason = reason.as_str(),
                                "DHCP: not answering a PnP router (once per MAC)"
                            ),
                            reply::Foreign::NotPnp => debug!(
                                reason = reason.as_str(),
                                "DHCP: not answering a non-PnP client"
                            ),
                        }
                    }
                } else if !reason.is_empty() {
                    debug!(reason = reason.as_str(), "DHCP");
                }
            }
        }
    }
    Ok(())
}
