//! Start-up and the serving loop of `pnp-appliance serve`.
//!
//! Owns the fallible part: open the registry, checksum images (cached), report every missing
//! image, file or config, bind the port; only then serve. Serving stops on SIGINT/SIGTERM
//! (or the cancel token) after a final flush of the status table.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::files::checksum::Md5Cache;
use crate::http::{self, App, Peer};
use crate::store::Registry;

/// Opens state and checksums images; returns the ready application and the warnings printed.
pub async fn prepare(cfg: Config) -> anyhow::Result<(App, Vec<String>)> {
    let (registry, mut warnings) = Registry::open(&cfg.store)?;
    let mut interrupted = 0;
    for d in registry.summaries().await {
        if registry
            .update(
                &d.serial,
                || None,
                crate::domain::workflow::mark_interrupted,
            )
            .await
            .unwrap_or(false)
        {
            interrupted += 1;
        }
    }
    if interrupted > 0 {
        info!(
            routers = interrupted,
            "jobs in flight at the last stop are accepted when answered, or sent again"
        );
    }
    let mut plan = cfg.plan.clone();
    let cache_path = cfg.state_dir.join("md5-cache.json");
    let images_dir = cfg.images_dir.clone();
    let names: Vec<String> = plan.images.iter().map(|i| i.file.clone()).collect();
    let results = tokio::task::spawn_blocking(move || {
        let mut cache = Md5Cache::load(&cache_path);
        let results: Vec<_> = names.iter().map(|n| cache.md5_of(&images_dir, n)).collect();
        let saved = cache.save(&cache_path);
        (results, saved)
    })
    .await
    .context("md5 task failed")?;
    let (results, saved) = results;
    if let Err(e) = saved {
        warnings.push(format!(
            "cannot save md5 cache: {e} (the next start re-reads images)"
        ));
    }
    for (img, res) in plan.images.iter_mut().zip(results) {
        match res {
            Ok((md5, hit)) => {
                img.size = std::fs::metadata(cfg.images_dir.join(&img.file))
                    .ok()
                    .map(|m| m.len());
                info!(image = %img.file, md5 = %md5, cached = hit, version = %img.version, bytes = img.size.unwrap_or(0), "target image ready");
                img.md5 = Some(md5);
            }
            Err(e) => warnings.push(format!(
                "target image {} unavailable ({e}): routers that need it will go FAILED; copy it into {}",
                img.file,
                cfg.images_dir.display()
            )),
        }
    }
    for (what, copy) in [
        ("guestshell tarball", &plan.tarball),
        ("python script", &plan.script),
    ] {
        if let Some(c) = copy
            && !c.present
        {
            warnings.push(format!(
                "{what} {} missing in {}: routers will go FAILED at that step; copy it there",
                c.file,
                cfg.files_dir.display()
            ));
        }
    }
    if plan.day0_config && !cfg.configs_dir.join(&cfg.default_config).is_file() {
        warnings.push(format!(
            "no {}/{}: routers without their own <SERIAL>.cfg will go FAILED at CONFIG_START",
            cfg.configs_dir.display(),
            cfg.default_config
        ));
    }
    for w in &warnings {
        warn!("{w}");
    }
    let mut cfg = cfg;
    if cfg.admin_token.is_none() {
        let (token, generated) = crate::store::token::read_or_create(&cfg.state_dir)
            .with_context(|| {
                format!(
                    "cannot read or create the admin token {} (fix the state directory's permissions, or set [http] admin-token)",
                    crate::store::token::path(&cfg.state_dir).display()
                )
            })?;
        if generated {
            let at = crate::store::token::path(&cfg.state_dir);
            // Printed this once, to the console only: the log file is no place for it.
            eprintln!(
                "pnp-appliance: generated the admin token for device actions: {token}\n  kept in {} (the CLI on this host reads it from there); enter it in the dashboard's \"admin token\" field",
                at.display()
            );
            info!(path = %at.display(), "admin token generated (printed on the console once)");
        }
        cfg.admin_token = Some(token);
    }
    let tls = match &cfg.https {
        None => None,
        Some(h) => {
            let names = tls_names(&cfg);
            let state_dir = cfg.state_dir.clone();
            let configured = h.cert.clone();
            let t = tokio::task::spawn_blocking(move || {
                crate::store::bench_tls::load_or_create(&state_dir, &names, configured.as_ref())
            })
            .await
            .context("certificate task failed")?
            .map_err(|e| anyhow::anyhow!("[http] https: {e}\n  hint: fix the state directory's permissions, or set tls-cert and tls-key"))?;
            info!(ca = %t.ca_path.display(), names = t.names.join(" ").as_str(), listen = %h.listen, "HTTPS ready: routers take this CA as trustpoint pnplabel, then speak PnP over HTTPS");
            Some(Arc::new(t))
        }
    };
    let leases = crate::dhcp::parse_leases(registry.take_saved_leases())?;
    let newcomers = Arc::new(crate::http::newcomers::Newcomers::new(
        cfg.limits.new_serials_per_address,
        cfg.limits.max_devices,
    ));
    let app = App {
        newcomers,
        dhcp_counters: Arc::default(),
        cfg: Arc::new(cfg),
        plan: Arc::new(plan),
        registry,
        leases: Arc::new(std::sync::Mutex::new(leases)),
        transfers: crate::files::transfers::Transfers::default(),
        latency: Default::default(),
        tls,
    };
    Ok((app, warnings))
}

/// A bound DHCP socket and its settings, ready to run.
pub(crate) struct Dhcp {
    socket: std::net::UdpSocket,
    settings: Arc<crate::dhcp::Settings>,
    /// The address this run added to the interface (removed at exit).
    added: Option<(String, String)>,
}

/// Resolves the DHCP settings from the interface and binds the socket; `None` (with a log
/// line saying so) when no interface is configured.
pub(crate) fn prepare_dhcp(cfg: &Config) -> anyhow::Result<Option<Dhcp>> {
    let Some(iface) = &cfg.dhcp.interface else {
        info!(
            "DHCP responder off: no [dhcp] interface (use --interface IFACE to answer PnP routers); with another DHCP server, `pnp-appliance dhcp-config` prints its option 43 config"
        );
        return Ok(None);
    };
    let mut added = None;
    let (ip, mask) = match (crate::dhcp::interface_v4(iface), cfg.dhcp.address) {
        (Ok(v4), _) => v4,
        (Err(e), None) => return Err(anyhow::Error::msg(e)),
        (Err(_), Some(net)) => {
            let cidr = net.to_string();
            crate::dhcp::add_address(iface, &cidr).map_err(anyhow::Error::msg)?;
            info!(interface = %iface, address = %cidr, "added the address to the interface for this run (removed at exit)");
            added = Some((iface.clone(), cidr));
            (net.addr(), net.netmask())
        }
    };
    let bound = crate::dhcp::settings::resolve(cfg, Some((ip, mask))).and_then(|settings| {
        crate::dhcp::socket::bind(iface, cfg.dhcp.port).map(|socket| (settings, socket))
    });
    let (settings, socket) = match bound {
        Ok(x) => x,
        Err(e) => {
            // Start-up failed: take back what this run added.
            if let Some((iface, cidr)) = &added {
                crate::dhcp::remove_address(iface, cidr);
            }
            return Err(anyhow::Error::msg(e));
        }
    };
    info!(interface = %iface, address = %ip, "DHCP socket bound");
    Ok(Some(Dhcp {
        socket,
        settings: Arc::new(settings),
        added,
    }))
}

/// What to do when the HTTP port cannot be bound.
pub(crate) fn bind_hint(addr: std::net::SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "port {} needs root or CAP_NET_BIND_SERVICE: run with sudo, `setcap cap_net_bind_service+ep $(which pnp-appliance)`, or use a port above 1023 ([http] listen)",
            addr.port()
        ),
        std::io::ErrorKind::AddrInUse => format!(
            "{addr} is already in use: stop the other server (`ss -ltnp 'sport = :{}'` shows it) or change [http] listen",
            addr.port()
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine: use 0.0.0.0 or one from `ip -br addr`",
            addr.ip()
        ),
        _ => "check [http] listen".to_string(),
    }
}

/// Binds the HTTP port with an actionable error.
pub(crate) async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr}: {e}\n  hint: {}",
            bind_hint(addr, &e)
        )
    })
}

/// Serves `app` on `listener` (and DHCP when prepared) until `cancel` fires.
pub(crate) async fn run(
    app: App,
    listener: TcpListener,
    dhcp: Option<Dhcp>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    // Fallible start-up first: nothing is spawned or served before this can fail.
    let bulk = crate::files::sendfile::bulk_runtime()
        .map_err(|e| anyhow::anyhow!("cannot start the download threads: {e}"))?;
    let https = match (&app.cfg.https, &app.tls) {
        (Some(h), Some(t)) => Some((bind(h.listen).await?, tls_acceptor(t)?)),
        _ => None,
    };
    let registry = app.registry.clone();
    let latency = app.latency.clone();
    let writer = tokio::spawn(registry.clone().run_writer(cancel.clone()));
    let dhcp_on = dhcp.as_ref().map(|d| d.settings.clone());
    let added = dhcp.as_ref().and_then(|d| d.added.clone());
    let dhcp_task = dhcp.map(|d| {
        tokio::spawn(crate::dhcp::run(
            d.socket,
            d.settings,
            app.leases.clone(),
            app.dhcp_counters.clone(),
            app.registry.clone(),
            cancel.clone(),
        ))
    });
    let local = listener.local_addr()?;
    match raise_open_files_limit() {
        Some(n) if n < 4096 => warn!(
            open_files = n,
            "the open-files limit is {n} (each connection and download is one): a bench of many routers wants more; raise the hard limit (`ulimit -Hn`, LimitNOFILE= in a systemd unit)"
        ),
        Some(n) => info!(open_files = n, "open-files limit"),
        None => {}
    }
    info!(listen = %local, advertise = app.cfg.advertise.as_ref().map_or("(address each router connects to)".to_string(), |a| a.base_url(local.port())), "PnP server ready");
    let client_url = client_url(local);
    if let Err(e) = crate::store::server_record::write(&app.cfg.state_dir, &client_url) {
        warn!(error = %e, "cannot record where this server listens in the state directory: `status` and `device` need --server {client_url}");
    }
    let state_dir = app.cfg.state_dir.clone();
    let option43 = match &dhcp_on {
        Some(s) => Ok(s.clone()),
        None => crate::dhcp::settings::resolve(&app.cfg, None).map(Arc::new),
    };
    let hosts = if local.ip().is_unspecified() {
        host_addresses()
    } else {
        vec![local.ip()]
    };
    for line in startup_lines(local.port(), &hosts, option43.as_deref(), dhcp_on.is_some()) {
        info!("{line}");
    }
    let fast = Arc::new(crate::files::sendfile::FastFiles {
        images: app.cfg.images_dir.clone(),
        files: app.cfg.files_dir.clone(),
        transfers: app.transfers.clone(),
        bulk: Some(bulk.handle().clone()),
        idle_timeout: app.cfg.limits.idle_timeout,
    });
    let limits = app.cfg.limits.clone();
    let router = http::router(app);
    let tls_task = https.map(|(l, acceptor)| {
        tokio::spawn(serve_listener(
            router.clone(),
            Front::Tls(acceptor),
            l,
            limits.clone(),
            cancel.clone(),
        ))
    });
    serve_listener(router, Front::Plain(fast), listener, limits, cancel.clone()).await;
    cancel.cancel();
    if let Some(t) = tls_task {
        let _ = t.await;
    }
    bulk.shutdown_background();
    cancel.cancel();
    crate::store::server_record::remove(&state_dir);
    if let Some((iface, cidr)) = &added {
        crate::dhcp::remove_address(iface, cidr);
        info!(interface = %iface, address = %cidr, "removed the address added for this run");
    }
    let l = latency.view();
    if l.requests > 0 {
        info!(
            requests = l.requests,
            p50_ms = l.p50_ms,
            p99_ms = l.p99_ms,
            max_ms = l.max_ms,
            "PnP exchanges answered (time inside the server)"
        );
    }
    let _ = writer.await;
    if let Some(t) = dhcp_task {
        match t.await {
            Ok(Err(e)) => warn!(error = %e, "DHCP responder stopped with an error"),
            Err(e) => warn!(error = %e, "DHCP task failed"),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

/// A router downloading an image reads slower than we send; hyper then queues body chunks up to
/// this per connection. The default (~400 KB) made 1000 slow downloads cost ~640 MB.
pub(crate) const MAX_CONN_BUF: usize = 64 << 10;

/// Which addresses were last warned about, so a repeating problem is one WARN a minute per
/// address (at most 4096 remembered; forgotten all at once when full).
#[derive(Default)]
struct Throttle(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, std::time::Instant>>);

impl Throttle {
    /// Whether `ip` is due a WARN at `now`.
    fn due(&self, ip: std::net::IpAddr, now: std::time::Instant) -> bool {
        let mut m = crate::sync::lock(&self.0);
        if m.len() >= 4096 {
            m.clear();
        }
        match m.get(&ip) {
            Some(t) if now.duration_since(*t) < std::time::Duration::from_secs(60) => false,
            _ => {
                m.insert(ip, now);
                true
            }
        }
    }
}

/// How a listener's connections reach hyper.
#[derive(Clone)]
enum Front {
    /// Plain HTTP: the zero-copy file path ([`crate::files::sendfile::serve`]) and hyper in
    /// turn, request by request ([`until_file`]).
    Plain(Arc<crate::files::sendfile::FastFiles>),
    /// HTTPS: the TLS handshake (within the header timeout), then everything through hyper
    /// (the kernel cannot encrypt, so no zero-copy path).
    Tls(tokio_rustls::TlsAcceptor),
}

/// Accepts connections until `cancel`, at most `connections-per-address` per client. Each goes
/// through its [`Front`] to hyper, with [`MAX_CONN_BUF`] and the [`Peer`] of the connection in
/// every request; then lets requests in flight finish (up to 5 s: an image download does not
/// hold up a shutdown).
async fn serve_listener(
    router: axum::Router,
    front: Front,
    listener: TcpListener,
    limits: crate::config::Limits,
    cancel: CancellationToken,
) {
    let conns = crate::http::conns::Conns::new(limits.connections_per_address);
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // HTTP/1.1 only, on both fronts: routers and browsers never speak h2c, and the TLS
    // acceptor offers no ALPN, so no client negotiates h2. hyper's header timer runs whenever
    // it waits for a request head: a slow head, and a kept-alive connection left idle after
    // its answer, are both closed after it.
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.max_buf_size(MAX_CONN_BUF)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let tls = matches!(front, Front::Tls(_));
    let failed_handshakes = Arc::new(Throttle::default());
    loop {
        let (stream, remote) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    warn!(error = %e, "cannot accept a connection (raise `ulimit -n` if this says too many open files)");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match conns.open(remote.ip(), std::time::Instant::now()) {
            Ok(slot) => slot,
            Err(report) => {
                if let Some(r) = report {
                    warn!(
                        ip = %remote.ip(),
                        refused = r.count,
                        "{} holds {} connections ([limits] connections-per-address): further ones are closed at once; routers are not affected",
                        remote.ip(),
                        conns.cap()
                    );
                }
                drop(stream);
                continue;
            }
        };
        let peer = Peer {
            remote,
            local: stream.local_addr().unwrap_or(remote),
            tls,
        };
        let _ = stream.set_nodelay(true);
        let svc = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let (h1, watcher, front, cancel) = (
            h1.clone(),
            graceful.watcher(),
            front.clone(),
            cancel.clone(),
        );
        let handshake = limits.header_timeout;
        let failed_handshakes = failed_handshakes.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = TowerToHyperService::new(svc);
            match front {
                Front::Plain(fast) => {
                    // Held until the connection ends: the shutdown waits for it.
                    let _watcher = watcher;
                    let mut stream = stream;
                    loop {
                        let Some(s) =
                            crate::files::sendfile::serve(stream, &fast, peer.remote.ip(), &cancel)
                                .await
                        else {
                            return;
                        };
                        match until_file(&h1, s, svc.clone(), &cancel).await {
                            Some(s) => stream = s,
                            None => return,
                        }
                    }
                }
                Front::Tls(acceptor) => {
                    let stream = match tokio::time::timeout(handshake, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            // A client that does not trust us says so here (unknown CA,
                            // a name the certificate does not hold).
                            let ip = peer.remote.ip();
                            if failed_handshakes.due(ip, std::time::Instant::now()) {
                                warn!(ip = %ip, error = %e, "TLS handshake from {ip} failed: a router that has not taken this appliance's CA, or reaches it under a name its certificate lacks (`pnp-appliance check` lists them), cannot speak HTTPS; it is sent the certificate-install again at its next plain-HTTP poll");
                            }
                            return;
                        }
                        Err(_) => return,
                    };
                    let _ = watcher
                        .watch(h1.serve_connection(TokioIo::new(stream), svc))
                        .await;
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
    }
}

/// Hyper answers `stream` until its next request is one the zero-copy path takes
/// ([`crate::files::sendfile::UntilFile`]): returns the connection then, `None` once it is
/// closed. At `cancel` hyper finishes the request in flight and the connection closes.
async fn until_file<S, B>(
    h1: &hyper::server::conn::http1::Builder,
    stream: tokio::net::TcpStream,
    svc: S,
    cancel: &CancellationToken,
) -> Option<tokio::net::TcpStream>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::TokioIo;
    let io = TokioIo::new(crate::files::sendfile::UntilFile::new(stream));
    let mut conn = h1.serve_connection(io, svc);
    let ended = tokio::select! {
        r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => Some(r),
        _ = cancel.cancelled() => None,
    };
    match ended {
        Some(Ok(())) => {
            let parts = conn.into_parts();
            // Bytes hyper read past its last request (a client sending ahead): they are not
            // ours to serve, so the connection ends.
            if !parts.read_buf.is_empty() {
                return None;
            }
            parts.io.into_inner().into_stream()
        }
        Some(Err(_)) => None,
        None => {
            std::pin::Pin::new(&mut conn).graceful_shutdown();
            let _ = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await;
            None
        }
    }
}

/// The names the HTTPS certificate must hold: `[http] advertise` (an address or a name), else
/// every address of this host (loopback included: a router simulated here connects there),
/// and `pnpserver.<domain>`.
pub(crate) fn tls_names(cfg: &crate::config::Config) -> Vec<String> {
    let domain = cfg.https.as_ref().and_then(|h| h.dns_domain.as_deref());
    let mut names = match &cfg.advertise {
        Some(a) => match a.host.parse::<std::net::IpAddr>() {
            Ok(ip) => crate::store::bench_tls::wanted_names(&[ip], domain),
            Err(_) => {
                let mut n = crate::store::bench_tls::wanted_names(&[], domain);
                n.push(a.host.to_ascii_lowercase());
                n
            }
        },
        None => {
            let ips: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
                .map(|a| {
                    a.into_iter()
                        .map(|i| i.ip())
                        .filter(|ip| ip.is_ipv4())
                        .collect()
                })
                .unwrap_or_default();
            crate::store::bench_tls::wanted_names(&ips, domain)
        }
    };
    names.extend(cfg.server_names.iter().cloned());
    names.sort();
    names.dedup();
    names
}

/// The rustls server configuration for `tls` (ring, TLS 1.2 and 1.3: IOS-XE 16/17 speak 1.2).
fn tls_acceptor(
    tls: &crate::store::bench_tls::BenchTls,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls::pki_types::CertificateDer::pem_slice_iter(tls.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("the HTTPS certificate does not read as PEM: {e}"))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the HTTPS key does not read as PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("the HTTPS certificate and key do not go together: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The base URL a client on this host reaches a listener on `addr` by (loopback for an
/// unspecified address).
pub(crate) fn client_url(addr: std::net::SocketAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// This host's IPv4 addresses other than loopback (for the dashboard URL when listening on
/// every address).
fn host_addresses() -> Vec<std::net::IpAddr> {
    if_addrs::get_if_addrs()
        .map(|a| {
            a.into_iter()
                .map(|i| i.ip())
                .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
                .take(4)
                .collect()
        })
        .unwrap_or_default()
}

/// What the console says once serving: where the dashboard is, the option 43 string routers
/// need, the DHCP pool (without our own address) and the next step.
fn startup_lines(
    port: u16,
    hosts: &[std::net::IpAddr],
    settings: Result<&crate::dhcp::Settings, &String>,
    dhcp_on: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let urls: Vec<String> = hosts
        .iter()
        .map(|ip| format!("http://{}/", std::net::SocketAddr::new(*ip, port)))
        .collect();
    out.push(match urls.is_empty() {
        true => format!("dashboard: http://<this host's address>:{port}/"),
        false => format!("dashboard: {}", urls.join("  ")),
    });
    match settings {
        Ok(s) => {
            out.push(format!("option 43: {}", s.option43));
            if dhcp_on {
                out.push(format!(
                    "DHCP: answering PnP routers on {}, pool {}",
                    s.interface.as_deref().unwrap_or("?"),
                    s.pool.describe()
                ));
            }
        }
        Err(e) => out.push(format!("option 43: not known yet ({e})")),
    }
    out.push(if dhcp_on {
        "next: connect the routers to this interface's switch and power them on; watch with `pnp-appliance status --watch` or the dashboard".into()
    } else {
        "next: give the bench's DHCP server the option 43 above (`pnp-appliance dhcp-config --format isc|kea|dnsmasq|ios` prints its config) or serve DHCP here with `--interface IFACE`; then power the routers on".into()
    });
    out
}

/// Raises the soft open-files limit to the hard one: every connection is a descriptor, and
/// the common soft limit of 1024 is reached by one host holding idle connections. Returns the
/// limit in force.
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    // `None` is unlimited; the soft limit is never above the hard one.
    if l.current != l.maximum {
        l.current = l.maximum;
        if setrlimit(Resource::Nofile, l).is_err() {
            return getrlimit(Resource::Nofile).current;
        }
    }
    l.current
}

/// Cancels `cancel` on SIGINT or SIGTERM.
pub(crate) async fn on_signal(cancel: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    info!("shutting down");
    cancel.cancel();
}

#[cfg(test)]
mod tests {
    use super::{Throttle, startup_lines};
    use crate::dhcp::leases::Pool;

    #[test]
    fn a_repeating_problem_is_warned_once_a_minute_per_address() {
        let t = Throttle::default();
        let now = std::time::Instant::now();
        let (a, b): (std::net::IpAddr, std::net::IpAddr) = (
            "198.51.100.2".parse().unwrap(),
            "198.51.100.3".parse().unwrap(),
        );
        assert!(t.due(a, now));
        assert!(!t.due(a, now + std::time::Duration::from_secs(59)));
        assert!(t.due(b, now), "another address has its own minute");
        assert!(t.due(a, now + std::time::Duration::from_secs(61)));
    }

    #[test]
    fn the_console_says_where_the_dashboard_is_the_option_43_and_what_next() {
        let cfg = crate::config::Config::parse(
            "[dhcp]\npool = \"198.51.100.1-198.51.100.20\"\n",
            std::path::Path::new("/tmp/appliance.toml"),
            &Default::default(),
        )
        .unwrap();
        let mut s = crate::dhcp::settings::resolve(
            &cfg,
            Some((
                "198.51.100.1".parse().unwrap(),
                "255.255.255.0".parse().unwrap(),
            )),
        )
        .unwrap();
        s.interface = Some("eth1".into());
        let hosts = ["198.51.100.1".parse().unwrap()];
        let on = startup_lines(8080, &hosts, Ok(&s), true).join("\n");
        for want in [
            "dashboard: http://198.51.100.1:8080/",
            "option 43: 5A1D;B2;K4;I198.51.100.1;J8080",
            "pool 198.51.100.1-198.51.100.20 (without 198.51.100.1: ours)",
            "next: connect the routers",
        ] {
            assert!(on.contains(want), "{want:?} in:\n{on}");
        }
        let off =
            startup_lines(8080, &[], Err(&"no PnP server address".to_string()), false).join("\n");
        assert!(
            off.contains("option 43: not known yet (no PnP server address)"),
            "{off}"
        );
        assert!(off.contains("dhcp-config"), "{off}");
        let p = Pool {
            ranges: vec![(
                "198.51.100.10".parse().unwrap(),
                "198.51.100.20".parse().unwrap(),
            )],
            exclude: vec!["198.51.100.1".parse().unwrap()],
            reservations: Default::default(),
        };
        assert_eq!(
            p.describe(),
            "198.51.100.10-198.51.100.20",
            "ours is outside the range"
        );
    }
}
