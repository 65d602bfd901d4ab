//! Configuration: `appliance.toml` as written ([`wire`]) and as validated ([`Config`]).
//!
//! Owns reading the file, refusing unknown keys and bad values with the file, the line (from the
//! TOML parser's spans, [`spans`]) and a hint, resolving relative paths against the file's
//! directory, and turning the `[workflow]` tables into the [`Plan`] the workflow runs.
//! Command-line flags and their `APPLIANCE_*` variables ([`Overrides`]) are applied to the wire
//! form before validation, so a bad flag is refused like a bad file value, naming the flag. Every
//! key has a default, so an empty file is a valid configuration.

mod spans;
mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::domain::ios::normalize_version;
use crate::domain::job::MAX_BACKOFF_SECS;
use crate::domain::plan::{Backoffs, Cleanup, FileCopy, ImageTarget, Pattern, Plan, VerifyCheck};
use spans::Spans;
use wire::ConfigWire;

/// A configuration error, already phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Values given on the command line (or in their `APPLIANCE_*` variables), which win over the
/// file. Each is applied to the wire form and validated with it.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`: `[http] listen`.
    pub(crate) listen: Option<String>,
    /// `--advertise`: `[http] advertise`.
    pub(crate) advertise: Option<String>,
    /// `--admin-token`: `[http] admin-token`.
    pub(crate) admin_token: Option<String>,
    /// `--log-level`: `[log] level`.
    pub(crate) log_level: Option<String>,
    /// `--interface`: `[dhcp] interface`.
    pub(crate) interface: Option<String>,
    /// `--address`: `[dhcp] address`.
    pub(crate) address: Option<String>,
    /// `--state-url`: `[state] url`.
    pub(crate) state_url: Option<String>,
    /// `--bench`: `[state] bench`.
    pub(crate) bench: Option<String>,
    /// `--server` of `status`, `device` and `report`: the running server's base URL (no key in
    /// the file: by default it is found from the state directory).
    pub(crate) server: Option<String>,
}

impl Overrides {
    /// Sets each given value in `wire`; returns the flag that set each key path.
    fn apply(&self, wire: &mut ConfigWire) -> HashMap<&'static str, &'static str> {
        let mut origin = HashMap::new();
        let mut set = |value: &Option<String>,
                       key: &'static str,
                       flag: &'static str,
                       slot: &mut dyn FnMut(String)| {
            if let Some(v) = value {
                slot(v.clone());
                origin.insert(key, flag);
            }
        };
        set(
            &self.listen,
            "http.listen",
            "--listen (APPLIANCE_LISTEN)",
            &mut |v| wire.http.listen = v,
        );
        set(
            &self.advertise,
            "http.advertise",
            "--advertise (APPLIANCE_ADVERTISE)",
            &mut |v| wire.http.advertise = Some(v),
        );
        set(
            &self.admin_token,
            "http.admin-token",
            "--admin-token (APPLIANCE_ADMIN_TOKEN)",
            &mut |v| wire.http.admin_token = Some(v),
        );
        set(
            &self.log_level,
            "log.level",
            "--log-level (APPLIANCE_LOG_LEVEL)",
            &mut |v| wire.log.level = v,
        );
        set(
            &self.interface,
            "dhcp.interface",
            "--interface (APPLIANCE_INTERFACE)",
            &mut |v| wire.dhcp.interface = Some(v),
        );
        set(
            &self.address,
            "dhcp.address",
            "--address (APPLIANCE_ADDRESS)",
            &mut |v| wire.dhcp.address = Some(v),
        );
        set(
            &self.state_url,
            "state.url",
            "--state-url (APPLIANCE_STATE_URL)",
            &mut |v| wire.state.url = Some(v),
        );
        set(
            &self.bench,
            "state.bench",
            "--bench (APPLIANCE_BENCH)",
            &mut |v| wire.state.bench = Some(v),
        );
        origin
    }
}

/// Where routers are told to download from: `[http] advertise` read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advertise {
    /// An IPv4 or IPv6 address, or a host name.
    pub(crate) host: String,
    /// The port, when given; else the listen port.
    pub(crate) port: Option<u16>,
}

impl Advertise {
    /// Reads `198.51.100.1`, `198.51.100.1:8080`, `[2001:db8::1]:8080`, `2001:db8::1`,
    /// `pnp.example` or `pnp.example:8080`.
    fn parse(s: &str) -> Option<Advertise> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Some(Advertise {
                host: sa.ip().to_string(),
                port: Some(sa.port()),
            });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Advertise {
                host: ip.to_string(),
                port: None,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
            None => (s, None),
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        name_ok.then(|| Advertise {
            host: host.to_string(),
            port,
        })
    }

    /// `http://host:port`, brackets around an IPv6 address.
    pub(crate) fn base_url(&self, listen_port: u16) -> String {
        let port = self.port.unwrap_or(listen_port);
        match self.host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => format!("http://[{v6}]:{port}"),
            Err(_) => format!("http://{}:{port}", self.host),
        }
    }
}

/// Validated `[dhcp]`; what depends on the interface is resolved at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DhcpConfig {
    /// Interface, when DHCP is on.
    pub(crate) interface: Option<String>,
    /// Address (`198.51.100.1/24`) added to the interface for the run when it has no IPv4
    /// address of its own.
    pub(crate) address: Option<ipnet::Ipv4Net>,
    /// Inclusive ranges; `None`: the interface's subnet.
    pub(crate) pool: Option<Vec<(Ipv4Addr, Ipv4Addr)>>,
    /// Lease time, seconds.
    pub(crate) lease_secs: u32,
    /// Lease caching threshold, percent of the lease time (0: off).
    pub(crate) cache_threshold: u8,
    /// Offers to new clients per 10 s (`None`: an eighth of the pool, at least 4).
    pub(crate) new_client_offers: Option<u32>,
    /// Offers one client gets per minute.
    pub(crate) offers_per_client: u32,
    /// Option 3.
    pub(crate) routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub(crate) dns: Vec<Ipv4Addr>,
    /// PID prefixes.
    pub(crate) pid_prefixes: Vec<String>,
    /// UDP port.
    pub(crate) port: u16,
    /// Option 43 server; `None`: the interface address.
    pub(crate) o43_server: Option<String>,
    /// Option 43 port; `None`: the HTTP port.
    pub(crate) o43_port: Option<u16>,
    /// HTTPS.
    pub(crate) https: bool,
    /// Agent debug.
    pub(crate) debug: bool,
    /// MAC (lower case) → address.
    pub(crate) reservations: HashMap<String, Ipv4Addr>,
}

/// Parses a pool: `198.51.100.100-198.51.100.199` or `198.51.100.0/24` (its hosts).
pub(crate) fn parse_pool(s: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (Ipv4Addr, Ipv4Addr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (a <= b).then_some((a, b));
    }
    let net: ipnet::Ipv4Net = s.trim().parse().ok()?;
    let mut hosts = net.hosts();
    let first = hosts.next()?;
    let last = hosts.next_back().unwrap_or(first);
    Some((first, last))
}

fn parse_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    (parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok()))
    .then(|| parts.join(":").to_ascii_lowercase())
}

/// Validated configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages).
    pub(crate) source: PathBuf,
    /// HTTP listen address.
    pub(crate) listen: SocketAddr,
    /// Address for URLs sent to routers (`None`: the address each router connected to).
    pub(crate) advertise: Option<Advertise>,
    /// Largest PnP body.
    pub(crate) max_body_bytes: usize,
    /// Token for device actions.
    pub(crate) admin_token: Option<String>,
    /// State directory.
    pub(crate) state_dir: PathBuf,
    /// Where device state is kept, and this bench's name.
    pub(crate) store: Location,
    /// Log directory.
    pub(crate) log_dir: PathBuf,
    /// Images.
    pub(crate) images_dir: PathBuf,
    /// Configs.
    pub(crate) configs_dir: PathBuf,
    /// Files.
    pub(crate) files_dir: PathBuf,
    /// Default day-0 config file name.
    pub(crate) default_config: String,
    /// Inventory CSV file name in the configs directory.
    pub(crate) inventory: String,
    /// Log level directive.
    pub(crate) log_level: String,
    /// Log files kept.
    pub(crate) log_keep: usize,
    /// The workflow (image md5s still unset: filled in at start-up).
    pub(crate) plan: Plan,
    /// The DHCP responder.
    pub(crate) dhcp: DhcpConfig,
    /// Host names accepted in `Host` and `Origin` of dashboard and API requests, besides
    /// address literals and `localhost` (lower case).
    pub(crate) server_names: Vec<String>,
    /// What one host may take.
    pub(crate) limits: Limits,
    /// The running server to ask (`--server`), e.g. `http://127.0.0.1:9090`.
    pub(crate) server_url: Option<String>,
    /// `[http] https`: PnP moves to HTTPS; `None`: plain HTTP only.
    pub(crate) https: Option<Https>,
}

/// `[http] https = true`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Https {
    /// The HTTPS listener.
    pub(crate) listen: SocketAddr,
    /// A certificate chain and key to serve instead of the bench CA's.
    pub(crate) cert: Option<(PathBuf, PathBuf)>,
    /// `pnpserver.<domain>` goes in the certificate.
    pub(crate) dns_domain: Option<String>,
    /// Images over HTTPS too (else plain HTTP, md5-checked, zero-copy). Files always go over
    /// HTTPS: file-transfer carries no checksum.
    pub(crate) downloads_over_https: bool,
    /// How long a router has to come back over HTTPS.
    pub(crate) timeout: std::time::Duration,
}

/// `[http] https` and what goes with it.
fn https(cx: &Cx<'_>, h: &wire::HttpWire, base: &Path) -> Result<Option<Https>, ConfigError> {
    if !h.https {
        return Ok(None);
    }
    let listen: SocketAddr = h.https_listen.parse().map_err(|_| {
        cx.err(
            "http.https-listen",
            format!(
                "{:?} is not an address:port (hint: \"0.0.0.0:8443\")",
                h.https_listen
            ),
        )
    })?;
    let cert = match (&h.tls_cert, &h.tls_key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
        _ => {
            return Err(cx.err(
                "http.tls-cert",
                "give both tls-cert and tls-key (PEM files), or neither to use the bench CA the appliance creates",
            ));
        }
    };
    let dns_domain = match h.dns_domain.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d)
            if d.len() <= 240
                && d.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }) =>
        {
            Some(d.to_ascii_lowercase())
        }
        Some(d) => {
            return Err(cx.err(
                "http.dns-domain",
                format!("{d:?} is not a DNS domain (hint: \"bench.example\")"),
            ));
        }
    };
    let downloads_over_https = match h.downloads.trim() {
        "http" => false,
        "https" => true,
        other => {
            return Err(cx.err(
                "http.downloads",
                format!("{other:?}: give \"http\" (images over plain HTTP, md5-checked, zero-copy) or \"https\""),
            ));
        }
    };
    if !(10..=86_400).contains(&h.https_timeout) {
        return Err(cx.err(
            "http.https-timeout",
            "give 10 to 86400 seconds (default 600: a router takes the trustpoint and reconnects within a minute or two)",
        ));
    }
    Ok(Some(Https {
        listen,
        cert,
        dns_domain,
        downloads_over_https,
        timeout: std::time::Duration::from_secs(h.https_timeout),
    }))
}

/// `[limits]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Device records held at most.
    pub(crate) max_devices: usize,
    /// New serials per address per 10 minutes.
    pub(crate) new_serials_per_address: u32,
    /// Open connections per client address.
    pub(crate) connections_per_address: u32,
    /// Time to send a request head.
    pub(crate) header_timeout: std::time::Duration,
    /// Idle keep-alive time.
    pub(crate) idle_timeout: std::time::Duration,
    /// Lifetime of a day-0 config URL.
    pub(crate) config_url_lifetime: std::time::Duration,
}

fn limits(cx: &Cx<'_>, l: &wire::LimitsWire) -> Result<Limits, ConfigError> {
    let at_least = |key: &str, v: u64, min: u64, why: &str| {
        if v < min {
            Err(cx.err(key, format!("must be at least {min}: {why}")))
        } else {
            Ok(())
        }
    };
    at_least(
        "limits.max-devices",
        l.max_devices as u64,
        1,
        "the number of routers the appliance keeps records of",
    )?;
    at_least(
        "limits.new-serials-per-address",
        u64::from(l.new_serials_per_address),
        1,
        "a router brings one serial",
    )?;
    at_least(
        "limits.connections-per-address",
        u64::from(l.connections_per_address),
        4,
        "a router opens a few connections at once",
    )?;
    at_least(
        "limits.header-timeout",
        l.header_timeout,
        1,
        "seconds a client has to send its request head",
    )?;
    at_least(
        "limits.idle-timeout",
        l.idle_timeout,
        1,
        "seconds an idle connection stays open",
    )?;
    at_least(
        "limits.config-url-lifetime",
        l.config_url_lifetime,
        30,
        "a router fetches its config right after the job",
    )?;
    Ok(Limits {
        max_devices: l.max_devices,
        new_serials_per_address: l.new_serials_per_address,
        connections_per_address: l.connections_per_address,
        header_timeout: std::time::Duration::from_secs(l.header_timeout),
        idle_timeout: std::time::Duration::from_secs(l.idle_timeout),
        config_url_lifetime: std::time::Duration::from_secs(l.config_url_lifetime),
    })
}

fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && name != "."
        && name != ".."
        && !name.starts_with('.')
}

/// What validation knows besides the values: the file, the spans, who set each overridden key.
struct Cx<'a> {
    path: &'a Path,
    spans: Spans<'a>,
    origin: HashMap<&'static str, &'static str>,
}

impl Cx<'_> {
    /// An error about the value at `key` (`table.key`, `table.array[i].key`), located at its
    /// line, or at the flag that set it.
    fn err(&self, key: &str, msg: impl std::fmt::Display) -> ConfigError {
        let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
        let table: String = table
            .split('.')
            .map(|s| s.split('[').next().unwrap_or(s))
            .collect::<Vec<_>>()
            .join(".");
        match self.origin.get(key) {
            Some(flag) => ConfigError(format!("{flag}: {msg}")),
            None => ConfigError(format!(
                "{}:{}: [{table}] {name}: {msg}",
                self.path.display(),
                self.spans.line(key)
            )),
        }
    }
}

impl Config {
    /// Reads and validates `path`, with `overrides` applied first.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read config {}: {e} (give another file with --config or APPLIANCE_CONFIG)",
                path.display()
            ))
        })?;
        Config::parse(&src, path, overrides)
    }

    /// Validates `src` as if read from `path`, with `overrides` applied first.
    pub(crate) fn parse(
        src: &str,
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut wire: ConfigWire = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| spans::line_of(src, s.start)).unwrap_or(0);
            let msg = e.message().trim().to_string();
            // A value of the wrong type: name the key and what it takes, in words.
            let msg = match (in_words(&msg), key_at(src, line)) {
                (Some(want), Some(key)) => format!("{key}: {want}"),
                (Some(want), None) => want,
                _ => msg,
            };
            let hint = if msg.contains("unknown field") {
                "remove or correct the key; see the config reference in README.md"
            } else {
                "fix the value; see the commented appliance.toml shipped with pnp-appliance"
            };
            ConfigError(format!("{}:{line}: {msg}\n  hint: {hint}", path.display()))
        })?;
        let origin = overrides.apply(&mut wire);
        let cx = Cx {
            path,
            spans: Spans::parse(src),
            origin,
        };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        // Absolute where possible, so messages name real paths.
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        let http = http(&cx, &wire.http)?;
        let plan = workflow(&cx, &wire, &base)?;
        let https = https(&cx, &wire.http, &base)?;
        let dhcp = dhcp(&cx, &wire.dhcp)?;
        let w = &wire.workflow;
        for (key, name) in [
            ("workflow.default-config", &w.default_config),
            ("workflow.inventory", &w.inventory),
        ] {
            if !valid_file_name(name) {
                return Err(cx.err(
                    key,
                    "must be a plain file name inside the configs directory",
                ));
            }
        }
        if wire.log.level.trim().is_empty() {
            return Err(cx.err("log.level", "give a level such as \"info\" or \"debug\""));
        }
        let p = &wire.paths;
        Ok(Config {
            source: path.to_path_buf(),
            listen: http.0,
            advertise: http.1,
            max_body_bytes: wire.http.max_body_bytes,
            admin_token: wire.http.admin_token.clone(),
            state_dir: base.join(&p.state),
            store: store(
                &cx,
                &wire.state,
                &base.join(&p.state),
                &base.join(&p.status_csv),
            )?,
            log_dir: base.join(&p.logs),
            images_dir: base.join(&p.images),
            configs_dir: base.join(&p.configs),
            files_dir: base.join(&p.files),
            default_config: w.default_config.clone(),
            inventory: w.inventory.clone(),
            log_level: wire.log.level.clone(),
            log_keep: wire.log.keep_files.max(1),
            plan,
            dhcp,
            server_names: server_names(&cx, &wire.http.server_names)?,
            limits: limits(&cx, &wire.limits)?,
            server_url: server_url(overrides.server.as_deref())?,
            https,
        })
    }
}

/// Where state is kept: read from `[paths]` and `[state]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    /// The state directory (the SQLite database, the token, the md5 cache).
    pub(crate) dir: PathBuf,
    /// The status table.
    pub(crate) status_csv: PathBuf,
    /// This bench's name (the `bench` of its records and leases).
    pub(crate) bench: String,
    /// The fleet database (`postgresql://…`); `None`: SQLite in `dir`.
    pub(crate) url: Option<String>,
    /// How long a claim lasts without the holding bench hearing from its router.
    pub(crate) claim_timeout: std::time::Duration,
}

/// The host name: the default bench name.
fn host_name() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_string();
    if name.is_empty() {
        "bench".into()
    } else {
        name
    }
}

/// `[state]`: the store and the bench name.
fn store(
    cx: &Cx<'_>,
    s: &wire::StateWire,
    dir: &Path,
    status_csv: &Path,
) -> Result<Location, ConfigError> {
    let bench = match &s.bench {
        Some(b) => b.trim().to_string(),
        None => host_name(),
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if bench.is_empty() || bench.len() > 63 || !bench.chars().all(valid) {
        return Err(cx.err(
            "state.bench",
            format!(
                "{bench:?} is not a bench name: give 1-63 letters, digits, '-', '_' or '.' (hint: \"bench-2\")"
            ),
        ));
    }
    let url = match &s.url {
        None => None,
        Some(u) => {
            let u = u.trim();
            if !(u.starts_with("postgresql://") || u.starts_with("postgres://")) {
                return Err(cx.err(
                    "state.url",
                    "give a PostgreSQL URL (hint: \"postgresql://pnp@fleet-db.example/pnp\"), or leave it out to keep state in SQLite in the state directory",
                ));
            }
            if let Err(e) = u.parse::<postgres::Config>() {
                return Err(cx.err("state.url", format!("not a PostgreSQL URL: {e}")));
            }
            Some(u.to_string())
        }
    };
    let claim_timeout = s.claim_timeout.unwrap_or(120);
    if !(2..=3600).contains(&claim_timeout) {
        return Err(cx.err(
            "state.claim-timeout",
            "give 2 to 3600 seconds (default 120: longer than a router is silent between PnP exchanges, shorter than the wait before another bench may take it over)",
        ));
    }
    Ok(Location {
        dir: dir.to_path_buf(),
        status_csv: status_csv.to_path_buf(),
        bench,
        url,
        claim_timeout: std::time::Duration::from_secs(claim_timeout),
    })
}

/// `[http]`: the listen address and the advertised one.
fn http(cx: &Cx<'_>, h: &wire::HttpWire) -> Result<(SocketAddr, Option<Advertise>), ConfigError> {
    let listen: SocketAddr = h.listen.parse().map_err(|_| {
        cx.err(
            "http.listen",
            format!(
                "{:?} is not an address:port (hint: \"0.0.0.0:8080\")",
                h.listen
            ),
        )
    })?;
    let advertise = match &h.advertise {
        None => None,
        Some(a) => Some(Advertise::parse(a).ok_or_else(|| {
            cx.err(
                "http.advertise",
                format!(
                    "{a:?} is not an address, address:port or host name (hint: \"198.51.100.1\")"
                ),
            )
        })?),
    };
    if let Some(t) = &h.admin_token
        && (t.len() < 12 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(cx.err(
            "http.admin-token",
            "at least 12 characters, no spaces (e.g. the output of `openssl rand -hex 16`)",
        ));
    }
    if h.max_body_bytes < 4096 {
        return Err(cx.err(
            "http.max-body-bytes",
            "must be at least 4096 (device-info answers are a few KB)",
        ));
    }
    Ok((listen, advertise))
}

/// `invalid type: string "two", expected u32` as an operator reads it: `"two" is text; give a
/// whole number`. `None` for other messages.
fn in_words(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("invalid type: ")?;
    let (got, expected) = rest.split_once(", expected ")?;
    // The value as written, to show the fix with it.
    let value = got.split_once(' ').map(|(_, v)| v.trim_matches('`'));
    let got = match got.split_once(' ') {
        Some(("string", v)) => format!("{v} is text"),
        Some(("integer", v)) => format!("{} is a number", v.trim_matches('`')),
        Some(("floating", _)) => "a decimal number".to_string(),
        Some(("boolean", v)) => format!("{} is true/false", v.trim_matches('`')),
        _ => got.to_string(),
    };
    let quoted = value
        .filter(|v| !v.starts_with('"'))
        .map_or("\"...\"".to_string(), |v| format!("\"{v}\""));
    let want = match expected.trim() {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i64" | "i32" => "a whole number, e.g. 2".into(),
        "a boolean" => "true or false".into(),
        "a string" => format!("text in quotes, e.g. {quoted}"),
        "a sequence" => format!(
            "a list in brackets, e.g. [{}]",
            value.map_or("\"C11\"".to_string(), |v| if v.starts_with('"') {
                v.to_string()
            } else {
                format!("\"{v}\"")
            })
        ),
        "f64" => "a number".into(),
        other => other.to_string(),
    };
    Some(format!("{got}; give {want}"))
}

/// `[table] key` of the assignment on line `line` (1-based) of `src`.
fn key_at(src: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = src.lines().collect();
    let text = lines.get(line.checked_sub(1)?)?;
    let key = text.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string());
    Some(match table {
        Some(t) => format!("[{t}] {key}"),
        None => key.to_string(),
    })
}

/// `--server URL`: an http(s) base URL, kept without a trailing `/`.
fn server_url(given: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(u) = given else {
        return Ok(None);
    };
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() > "https://".len()
        && !u.chars().any(char::is_whitespace);
    if !ok {
        return Err(ConfigError(format!(
            "--server (APPLIANCE_SERVER): {u:?} is not a server URL (hint: \"http://127.0.0.1:8080\")"
        )));
    }
    Ok(Some(u.trim_end_matches('/').to_string()))
}

/// `[http] server-names`: DNS names, lower case.
fn server_names(cx: &Cx<'_>, names: &[String]) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .map(|n| {
            let n = n.trim().to_ascii_lowercase();
            let ok = !n.is_empty()
                && n.len() <= 253
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if ok {
                Ok(n)
            } else {
                Err(cx.err(
                    "http.server-names",
                    format!("{n:?} is not a host name (letters, digits, '-' and '.')"),
                ))
            }
        })
        .collect()
}

/// `[workflow]` and `[backoff]` as the [`Plan`].
fn workflow(cx: &Cx<'_>, wire: &ConfigWire, base: &Path) -> Result<Plan, ConfigError> {
    let files_dir = &base.join(&wire.paths.files);
    let w = &wire.workflow;
    let config_register = match w.config_register.trim() {
        "" => None,
        v if v.len() <= 6
            && v.starts_with("0x")
            && v.len() > 2
            && v[2..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some(v.to_string())
        }
        v => {
            return Err(cx.err(
                "workflow.config-register",
                format!("{v:?} is not a hex value like \"0x2102\" (\"\" skips the step)"),
            ));
        }
    };
    let mut images: Vec<ImageTarget> = Vec::new();
    for (i, img) in w.image.iter().enumerate() {
        let key = |k: &str| format!("workflow.image[{i}].{k}");
        if !valid_file_name(&img.file) {
            return Err(cx.err(
                &key("file"),
                format!(
                    "{:?} must be a plain file name inside the images directory",
                    img.file
                ),
            ));
        }
        let version = match &img.version {
            Some(v) => normalize_version(v).ok_or_else(|| {
                cx.err(
                    &key("version"),
                    format!("{v:?} is not a version like 17.12.3a"),
                )
            })?,
            None => normalize_version(&img.file).ok_or_else(|| {
                cx.err(
                    &key("file"),
                    format!(
                        "cannot read a version from {:?}: add version = \"17.12.3a\"",
                        img.file
                    ),
                )
            })?,
        };
        if images.iter().any(|i| i.pid_prefix == img.pid_prefix) {
            return Err(cx.err(
                &key("pid-prefix"),
                format!("two images for PID prefix {:?}", img.pid_prefix),
            ));
        }
        images.push(ImageTarget {
            pid_prefix: img.pid_prefix.clone(),
            file: img.file.clone(),
            version,
            md5: None,
            size: None,
        });
    }
    let copy =
        |file: &Option<String>, dest: &str, key: &str| -> Result<Option<FileCopy>, ConfigError> {
            match file.as_deref() {
                None | Some("") => Ok(None),
                Some(f) if valid_file_name(f) => Ok(Some(FileCopy {
                    file: f.to_string(),
                    destination: dest.to_string(),
                    present: files_dir.join(f).is_file(),
                })),
                Some(f) => Err(cx.err(
                    key,
                    format!("{f:?} must be a plain file name inside the files directory"),
                )),
            }
        };
    let gs = &w.guestshell;
    let tarball = copy(&gs.tarball, &gs.destination, "workflow.guestshell.tarball")?;
    let script = copy(
        &w.script.file,
        &w.script.destination,
        "workflow.script.file",
    )?;
    if w.script.command.contains('\n') || w.script.command.trim().is_empty() {
        return Err(cx.err("workflow.script.command", "must be one non-empty line"));
    }
    let applet = gs.eem_applet.trim();
    if applet.contains(char::is_whitespace) {
        return Err(cx.err(
            "workflow.guestshell.eem-applet",
            format!("{applet:?}: an applet name has no spaces"),
        ));
    }
    let pattern = |key: &str, p: &Option<String>| -> Result<Option<Pattern>, ConfigError> {
        match p.as_deref() {
            None | Some("") => Ok(None),
            Some(p) => regex::Regex::new(p)
                .map(|r| Some(Pattern(r)))
                .map_err(|e| cx.err(key, format!("{p:?} is not a regular expression: {e}"))),
        }
    };
    let script_success = pattern("workflow.script.success-pattern", &w.script.success_pattern)?;
    let script_failure = pattern("workflow.script.failure-pattern", &w.script.failure_pattern)?;
    let image_cleanup = match &w.image_cleanup {
        wire::CleanupWire::Mode(m) if m == "auto" => Cleanup::Auto,
        wire::CleanupWire::Mode(m) if m == "off" => Cleanup::Off,
        wire::CleanupWire::Mode(m) => {
            return Err(cx.err(
                "workflow.image-cleanup",
                format!("{m:?}: give \"auto\", \"off\" or a list of commands such as [\"install remove inactive\"]"),
            ));
        }
        wire::CleanupWire::Commands(cmds) => {
            if cmds.iter().any(|c| c.trim().is_empty() || c.contains('\n')) {
                return Err(cx.err(
                    "workflow.image-cleanup",
                    "each command is one non-empty line",
                ));
            }
            if cmds.is_empty() {
                Cleanup::Off
            } else {
                Cleanup::Commands(cmds.iter().map(|c| c.trim().to_string()).collect())
            }
        }
    };
    let mut verify = Vec::new();
    for (i, v) in w.verify.iter().enumerate() {
        if v.command.trim().is_empty() || v.command.contains('\n') {
            return Err(cx.err(
                &format!("workflow.verify[{i}].command"),
                "must be one non-empty line, e.g. \"show running-config | include ^hostname\"",
            ));
        }
        if v.expect.trim().is_empty() || v.expect.contains('\n') {
            return Err(cx.err(
                &format!("workflow.verify[{i}].expect"),
                "must be one non-empty line the command prints, e.g. \"hostname {{ hostname }}\"",
            ));
        }
        if let Err(e) = crate::domain::template::check_template(&v.expect) {
            return Err(cx.err(&format!("workflow.verify[{i}].expect"), e));
        }
        verify.push(VerifyCheck {
            command: v.command.trim().to_string(),
            expect: v.expect.trim().to_string(),
        });
    }
    if w.min_bootflash_free < 0 {
        return Err(cx.err("workflow.min-bootflash-free", "must be >= 0 bytes"));
    }
    if w.max_retries > 100 {
        return Err(cx.err("workflow.max-retries", "at most 100"));
    }
    let b = &wire.backoff;
    for (key, v) in [
        ("backoff.after-image-install", b.after_image_install),
        ("backoff.wait-for-guestshell", b.wait_for_guestshell),
        ("backoff.no-space", b.no_space),
        ("backoff.finished", b.finished),
        ("backoff.failed", b.failed),
    ] {
        if v == 0 || v > MAX_BACKOFF_SECS {
            return Err(cx.err(
                key,
                format!("{v} s: a PnP backoff is 1 s to 47h59m59s ({MAX_BACKOFF_SECS} s)"),
            ));
        }
    }
    Ok(Plan {
        config_register,
        images,
        image_destination: w.image_destination.clone(),
        tarball,
        script,
        script_command: w.script.command.clone(),
        script_success,
        script_failure,
        image_margin: w.image_space_margin,
        image_cleanup,
        verify,
        day0_config: w.day0_config,
        min_bootflash_free: w.min_bootflash_free,
        eem_applet: (!applet.is_empty()).then(|| applet.to_string()),
        max_retries: w.max_retries,
        guestshell_max_checks: gs.max_checks.max(1),
        terminate_when_finished: w.terminate_when_finished,
        backoff: Backoffs {
            after_image_install: b.after_image_install,
            wait_for_guestshell: b.wait_for_guestshell,
            no_space: b.no_space,
            finished: b.finished,
            failed: b.failed,
        },
        identity: identity(cx, &wire.identity, base)?,
    })
}

/// `[identity]`: the policy and the SUDI roots (the files read here, at start-up).
fn identity(
    cx: &Cx<'_>,
    w: &wire::IdentityWire,
    base: &Path,
) -> Result<crate::domain::plan::IdentityPolicy, ConfigError> {
    if w.require_sudi && !w.device_auth {
        return Err(cx.err(
            "identity.require-sudi",
            "needs device-auth = true: a router is asked for its SUDI only with device-auth on",
        ));
    }
    let mut extra = Vec::new();
    for f in &w.extra_roots {
        let path = base.join(f);
        let text = std::fs::read(&path).map_err(|e| {
            cx.err(
                "identity.extra-roots",
                format!(
                    "cannot read {}: {e} (give PEM files of SUDI roots or issuing CAs, relative to this file)",
                    path.display()
                ),
            )
        })?;
        extra.push((path.display().to_string(), text));
    }
    let trust = crate::domain::sudi::Trust::new(&extra).map_err(|e| {
        cx.err(
            "identity.extra-roots",
            format!("{e}: give PEM certificates (-----BEGIN CERTIFICATE-----)"),
        )
    })?;
    Ok(crate::domain::plan::IdentityPolicy {
        device_auth: w.device_auth,
        require_sudi: w.require_sudi,
        trust: std::sync::Arc::new(trust),
    })
}

/// `[dhcp]`.
fn dhcp(cx: &Cx<'_>, d: &wire::DhcpWire) -> Result<DhcpConfig, ConfigError> {
    let ip_list = |key: &str, values: &[String]| -> Result<Vec<Ipv4Addr>, ConfigError> {
        values
            .iter()
            .map(|v| {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| cx.err(key, format!("{v:?} is not an IPv4 address")))
            })
            .collect()
    };
    let pool = match &d.pool {
        None => None,
        Some(p) => Some(vec![parse_pool(p).ok_or_else(|| {
            cx.err(
                "dhcp.pool",
                format!("{p:?}: give \"198.51.100.100-198.51.100.199\" or \"198.51.100.0/24\""),
            )
        })?]),
    };
    if d.lease_time < 60 {
        return Err(cx.err("dhcp.lease-time", "at least 60 seconds"));
    }
    if d.new_client_offers == Some(0) {
        return Err(cx.err(
            "dhcp.new-client-offers",
            "at least 1 (offers to clients with no lease per 10 seconds); omit it for an eighth of the pool",
        ));
    }
    if d.offers_per_client == 0 {
        return Err(cx.err(
            "dhcp.offers-per-client",
            "at least 1 (a client's DISCOVERs answered per minute; real clients send a few)",
        ));
    }
    if d.cache_threshold > 50 {
        return Err(cx.err(
            "dhcp.cache-threshold",
            format!(
                "{}: give a percent of the lease time from 0 (off) to 50; clients renew at 50 %",
                d.cache_threshold
            ),
        ));
    }
    if d.pid_prefixes.is_empty()
        || d.pid_prefixes.iter().any(|p| {
            p.is_empty()
                || p.len() > 32
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\')
        })
    {
        return Err(cx.err(
            "dhcp.pid-prefixes",
            "give at least one non-empty PID prefix of printable characters, e.g. [\"C11\"]",
        ));
    }
    if d.port == 0 {
        return Err(cx.err("dhcp.port", "must not be 0"));
    }
    if let Some(i) = &d.interface
        && (i.is_empty() || i.len() > 15 || i.contains('/') || i.contains(char::is_whitespace))
    {
        return Err(cx.err(
            "dhcp.interface",
            format!("{i:?} is not an interface name (see `ip -br link`)"),
        ));
    }
    if let Some(srv) = &d.option43.server {
        let ok = !srv.is_empty()
            && srv.len() <= 200
            && srv
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
        if !ok {
            return Err(cx.err(
                "dhcp.option43.server",
                format!("{srv:?} is not an address or host name"),
            ));
        }
    }
    let mut reservations = HashMap::new();
    for (i, r) in d.reservation.iter().enumerate() {
        let mac = parse_mac(&r.mac).ok_or_else(|| {
            cx.err(
                &format!("dhcp.reservation[{i}].mac"),
                format!("{:?} is not a MAC like 52:54:00:12:34:56", r.mac),
            )
        })?;
        let ip = r.ip.parse::<Ipv4Addr>().map_err(|_| {
            cx.err(
                &format!("dhcp.reservation[{i}].ip"),
                format!("{:?} is not an IPv4 address", r.ip),
            )
        })?;
        reservations.insert(mac, ip);
    }
    let address = match &d.address {
        None => None,
        Some(a) => match a.parse::<ipnet::Ipv4Net>() {
            Ok(n)
                if n.prefix_len() <= 30 && n.addr() != n.network() && n.addr() != n.broadcast() =>
            {
                Some(n)
            }
            _ => {
                return Err(cx.err(
                    "dhcp.address",
                    format!(
                        "{a:?} is not a host address with its prefix, e.g. \"198.51.100.1/24\""
                    ),
                ));
            }
        },
    };
    Ok(DhcpConfig {
        interface: d.interface.clone(),
        address,
        pool,
        lease_secs: d.lease_time,
        cache_threshold: d.cache_threshold,
        new_client_offers: d.new_client_offers,
        offers_per_client: d.offers_per_client,
        routers: ip_list("dhcp.router", d.router.as_slice())?,
        dns: ip_list("dhcp.dns", &d.dns)?,
        pid_prefixes: d.pid_prefixes.clone(),
        port: d.port,
        o43_server: d.option43.server.clone(),
        o43_port: d.option43.port,
        https: d.option43.https,
        debug: d.option43.debug,
        reservations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Config, ConfigError> {
        parse_with(src, &Overrides::default())
    }

    fn parse_with(src: &str, o: &Overrides) -> Result<Config, ConfigError> {
        Config::parse(src, Path::new("/etc/pnp/appliance.toml"), o)
    }

    #[test]
    fn type_errors_name_the_key_and_what_it_takes_in_words() {
        let cases = [
            (
                "[workflow]\nmax-retries = \"two\"\n",
                ":2: [workflow] max-retries: \"two\" is text; give a whole number, e.g. 2",
            ),
            (
                "[dhcp]\npid-prefixes = \"C11\"\n",
                ":2: [dhcp] pid-prefixes: \"C11\" is text; give a list in brackets, e.g. [\"C11\"]",
            ),
            (
                "[http]\nlisten = 8080\n",
                ":2: [http] listen: 8080 is a number; give text in quotes, e.g. \"8080\"",
            ),
            (
                "[log]\nlevel = \"info\"\nkeep-files = true\n",
                ":3: [log] keep-files: true is true/false; give a whole number",
            ),
            (
                "[[workflow.image]]\nfile = 7\n",
                ":2: [workflow.image] file: 7 is a number; give text in quotes, e.g. \"7\"",
            ),
        ];
        for (src, want) in cases {
            let e = parse(src).unwrap_err().to_string();
            assert!(e.contains(want), "{src:?}: {e}");
        }
    }

    #[test]
    fn empty_file_has_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.plan.config_register.as_deref(), Some("0x2102"));
        assert_eq!(c.plan.min_bootflash_free, 1 << 30);
        assert_eq!(c.plan.eem_applet.as_deref(), Some("InstallGuestShell"));
        assert_eq!(c.state_dir, Path::new("/etc/pnp/state"));
        assert!(c.plan.images.is_empty());
        assert_eq!(c.dhcp.interface, None);
        assert_eq!(c.dhcp.pid_prefixes, ["C11"]);
        assert_eq!(c.dhcp.port, 67);
        assert_eq!(c.dhcp.cache_threshold, 25);
        assert!(c.dhcp.debug && !c.dhcp.https);
    }

    #[test]
    fn pools() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            parse_pool("198.51.100.0/24"),
            Some((ip("198.51.100.1"), ip("198.51.100.254")))
        );
        assert_eq!(
            parse_pool("198.51.100.10 - 198.51.100.20"),
            Some((ip("198.51.100.10"), ip("198.51.100.20")))
        );
        assert_eq!(parse_pool("198.51.100.20-198.51.100.10"), None);
        assert_eq!(parse_pool("nope"), None);
    }

    #[test]
    fn errors_name_file_line_and_hint() {
        let cases = [
            (
                "[http]\nlisten = \"0.0.0.0:8080\"\nlisen = 1\n",
                ":3:",
                "unknown field",
            ),
            (
                "[http]\n\nlisten = \"nope\"\n",
                ":3:",
                "not an address:port",
            ),
            (
                "[workflow]\nconfig-register = \"2102\"\n",
                ":2:",
                "hex value",
            ),
            ("[backoff]\nfinished = 0\n", ":2:", "47h59m59s"),
            (
                "[workflow]\nmax-retries = \"x\"\n",
                ":2:",
                "give a whole number",
            ),
            (
                "[[workflow.image]]\nfile = \"../x.bin\"\n",
                ":2:",
                "plain file name",
            ),
            (
                "[[workflow.image]]\nfile = \"image.bin\"\n",
                ":2:",
                "cannot read a version",
            ),
            (
                "[workflow.guestshell]\neem-applet = \"a b\"\n",
                ":2:",
                "no spaces",
            ),
            (
                "[dhcp]\n\ncache-threshold = 80\n",
                ":3:",
                "from 0 (off) to 50",
            ),
            // The second and later array tables: the line of their own key, not the first's.
            (
                "[[workflow.image]]\nfile = \"c1100-universalk9.17.12.03a.SPA.bin\"\n\n[[workflow.image]]\npid-prefix = \"C1161\"\nfile = \"x.bin\"\nversion = \"17.09.04a\"\n\n[[workflow.image]]\npid-prefix = \"C1111\"\nfile = \"../y.bin\"\n",
                ":11:",
                "[workflow.image] file: \"../y.bin\" must be a plain file name",
            ),
            (
                "[[workflow.image]]\nfile = \"a.17.1.1.bin\"\n[[workflow.image]]\nfile = \"b.17.1.2.bin\"\n",
                ":3:",
                "two images for PID prefix",
            ),
            (
                "[[dhcp.reservation]]\nmac = \"52:54:00:12:34:56\"\nip = \"198.51.100.5\"\n[[dhcp.reservation]]\nmac = \"52:54:00:12:34:57\"\nip = \"198.51.100.x\"\n",
                ":6:",
                "is not an IPv4 address",
            ),
            ("[http]\nlisten = \"0.0.0.0:8080\"\n", ":1:", ""),
        ];
        for (src, line, text) in cases {
            if text.is_empty() {
                assert!(parse(src).is_ok(), "{src}");
                continue;
            }
            let e = parse(src).expect_err(src).0;
            assert!(
                e.contains("/etc/pnp/appliance.toml") && e.contains(line) && e.contains(text),
                "{src:?} -> {e}"
            );
        }
    }

    #[test]
    fn overrides_are_validated_like_file_values_and_name_the_flag() {
        let file = "[http]\nlisten = \"127.0.0.1:8080\"\nadvertise = \"198.51.100.1\"\n";
        let flag = |o: Overrides| parse_with(file, &o);
        // (overrides, Ok(check) or Err(text))
        let good = flag(Overrides {
            listen: Some("127.0.0.1:9090".into()),
            advertise: Some("pnp.example:8081".into()),
            log_level: Some("debug".into()),
            interface: Some("eth1".into()),
            admin_token: Some("0123456789abcdef".into()),
            server: Some("http://127.0.0.1:9090/".into()),
            address: Some("198.51.100.1/24".into()),
            state_url: Some("postgresql://pnp@127.0.0.1:5432/fleet".into()),
            bench: Some("bench-2".into()),
        })
        .unwrap();
        assert_eq!(
            good.store.url.as_deref(),
            Some("postgresql://pnp@127.0.0.1:5432/fleet")
        );
        assert_eq!(good.store.bench, "bench-2");
        assert_eq!(
            good.dhcp.address.map(|a| a.to_string()).as_deref(),
            Some("198.51.100.1/24")
        );
        for bad in [
            "198.51.100.1",
            "198.51.100.0/24",
            "198.51.100.255/24",
            "x/24",
        ] {
            let e = flag(Overrides {
                address: Some(bad.into()),
                ..Overrides::default()
            })
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("--address (APPLIANCE_ADDRESS):"),
                "{bad}: {e}"
            );
        }
        assert_eq!(good.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(good.server_url.as_deref(), Some("http://127.0.0.1:9090"));
        assert_eq!(
            good.advertise.unwrap().base_url(9090),
            "http://pnp.example:8081"
        );
        assert_eq!(good.log_level, "debug");
        assert_eq!(good.dhcp.interface.as_deref(), Some("eth1"));
        assert_eq!(good.admin_token.as_deref(), Some("0123456789abcdef"));
        let bad = [
            (
                Overrides {
                    advertise: Some("not a host!".into()),
                    ..Overrides::default()
                },
                "--advertise (APPLIANCE_ADVERTISE): \"not a host!\" is not an address",
            ),
            (
                Overrides {
                    listen: Some("nope".into()),
                    ..Overrides::default()
                },
                "--listen (APPLIANCE_LISTEN): \"nope\" is not an address:port",
            ),
            (
                Overrides {
                    interface: Some("a b".into()),
                    ..Overrides::default()
                },
                "--interface (APPLIANCE_INTERFACE): \"a b\" is not an interface name",
            ),
            (
                Overrides {
                    admin_token: Some("short".into()),
                    ..Overrides::default()
                },
                "--admin-token (APPLIANCE_ADMIN_TOKEN): at least 12 characters",
            ),
            (
                Overrides {
                    log_level: Some(" ".into()),
                    ..Overrides::default()
                },
                "--log-level (APPLIANCE_LOG_LEVEL): give a level",
            ),
            (
                Overrides {
                    state_url: Some("mysql://x".into()),
                    ..Overrides::default()
                },
                "--state-url (APPLIANCE_STATE_URL): give a PostgreSQL URL",
            ),
            (
                Overrides {
                    state_url: Some("postgresql://h:notaport/db".into()),
                    ..Overrides::default()
                },
                "--state-url (APPLIANCE_STATE_URL): not a PostgreSQL URL",
            ),
            (
                Overrides {
                    bench: Some("bench 2".into()),
                    ..Overrides::default()
                },
                "--bench (APPLIANCE_BENCH): \"bench 2\" is not a bench name",
            ),
        ];
        for (o, want) in bad {
            let e = flag(o).expect_err(want).0;
            assert!(e.starts_with(want), "{e}");
        }
        // Without the flag, the file's value and line are named.
        let e = parse("[http]\nadvertise = \"not a host!\"\n")
            .unwrap_err()
            .0;
        assert!(e.contains("appliance.toml:2: [http] advertise"), "{e}");
    }

    #[test]
    fn advertise_forms_and_their_urls() {
        let cases = [
            ("198.51.100.1", "http://198.51.100.1:8080"),
            ("198.51.100.1:9000", "http://198.51.100.1:9000"),
            ("2001:db8::1", "http://[2001:db8::1]:8080"),
            ("[2001:db8::1]:9000", "http://[2001:db8::1]:9000"),
            ("pnp.example", "http://pnp.example:8080"),
            ("pnp.example:9000", "http://pnp.example:9000"),
        ];
        for (text, url) in cases {
            assert_eq!(
                Advertise::parse(text).unwrap().base_url(8080),
                url,
                "{text}"
            );
        }
        for bad in ["", "a b", "host:port", "x/y", "host:99999"] {
            assert_eq!(Advertise::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn image_versions_and_prefixes() {
        let c = parse(
            "[[workflow.image]]\nfile = \"c1100-universalk9.17.12.03a.SPA.bin\"\n[[workflow.image]]\npid-prefix = \"C1161\"\nfile = \"x.bin\"\nversion = \"17.09.04a\"\n",
        )
        .unwrap();
        assert_eq!(c.plan.image_for("C1131-8PWB").unwrap().version, "17.12.3a");
        assert_eq!(c.plan.image_for("C1161X-8P").unwrap().version, "17.9.4a");
    }
}
