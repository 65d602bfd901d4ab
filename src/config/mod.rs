//! Configuration: `appliance.toml` as written (wire types) and as validated ([`Config`]).
//!
//! Owns reading the file, rejecting unknown keys and bad values with the file, the line and a
//! hint, resolving relative paths against the file's directory, and turning the `[workflow]`
//! tables into the [`Plan`] the workflow runs. Every key has a default, so an empty file is a
//! valid configuration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::workflow::{Backoffs, FileCopy, ImageTarget, Plan, normalize_version};

/// A configuration error, already phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpWire {
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address (and optional port) put in the URLs sent to routers.
    pub advertise: Option<String>,
    /// Largest accepted PnP request body.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Token that device actions (resume, retry, reset, forget) require; unset: actions only
    /// from this host.
    pub admin_token: Option<String>,
}

fn default_max_body() -> usize {
    1 << 20
}

impl Default for HttpWire {
    fn default() -> Self {
        HttpWire {
            listen: default_listen(),
            advertise: None,
            max_body_bytes: default_max_body(),
            admin_token: None,
        }
    }
}

/// `[paths]`; relative paths are relative to the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PathsWire {
    /// Device records, md5 cache.
    pub state: String,
    /// Log directory.
    pub logs: String,
    /// The status table.
    pub status_csv: String,
    /// Router images.
    pub images: String,
    /// Day-0 configs.
    pub configs: String,
    /// Other files (tarball, scripts).
    pub files: String,
}

impl Default for PathsWire {
    fn default() -> Self {
        PathsWire {
            state: "state".into(),
            logs: "logs".into(),
            status_csv: "DEVICE_STATUS.csv".into(),
            images: "images".into(),
            configs: "configs".into(),
            files: "files".into(),
        }
    }
}

/// One `[[workflow.image]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageWire {
    /// PID prefix (default: every PID).
    #[serde(default)]
    pub pid_prefix: String,
    /// File name in the images directory.
    pub file: String,
    /// Version it installs; default: read from the file name.
    pub version: Option<String>,
}

/// `[workflow.guestshell]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GuestshellWire {
    /// Tarball in the files directory; omit to skip the transfer.
    pub tarball: Option<String>,
    /// Where it goes on the router.
    #[serde(default = "default_bootflash")]
    pub destination: String,
    /// EEM applet run to install Guestshell; `""` skips it.
    #[serde(default = "default_applet")]
    pub eem_applet: String,
    /// `show app-hosting list` checks before giving up.
    #[serde(default = "default_checks")]
    pub max_checks: u32,
}

fn default_bootflash() -> String {
    "bootflash:".into()
}
fn default_applet() -> String {
    "InstallGuestShell".into()
}
fn default_checks() -> u32 {
    10
}

impl Default for GuestshellWire {
    fn default() -> Self {
        GuestshellWire {
            tarball: None,
            destination: default_bootflash(),
            eem_applet: default_applet(),
            max_checks: default_checks(),
        }
    }
}

/// `[workflow.script]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScriptWire {
    /// Script in the files directory; omit to skip transfer and run.
    pub file: Option<String>,
    /// Where it goes on the router.
    #[serde(default = "default_guest_share")]
    pub destination: String,
    /// Command that runs it; `{file}` is the script's name.
    #[serde(default = "default_script_command")]
    pub command: String,
}

fn default_guest_share() -> String {
    "bootflash:guest-share/".into()
}
fn default_script_command() -> String {
    "guestshell run python3 /bootflash/guest-share/{file}".into()
}

impl Default for ScriptWire {
    fn default() -> Self {
        ScriptWire {
            file: None,
            destination: default_guest_share(),
            command: default_script_command(),
        }
    }
}

/// `[workflow]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct WorkflowWire {
    /// Config-register value; `""` skips the step.
    pub config_register: String,
    /// Push `configs/<SERIAL>.cfg`, else the default config.
    pub day0_config: bool,
    /// Fallback config file name.
    pub default_config: String,
    /// Inventory CSV (in the configs directory) with per-router template variables.
    pub inventory: String,
    /// Where images go on the router.
    pub image_destination: String,
    /// Minimum bootflash free bytes before the EEM applet; 0 skips the check.
    pub min_bootflash_free: i64,
    /// Retries of a failed job.
    pub max_retries: u32,
    /// Tell finished routers to delete their PnP profile instead of long backoffs.
    pub terminate_when_finished: bool,
    /// Target images.
    pub image: Vec<ImageWire>,
    /// Guestshell.
    pub guestshell: GuestshellWire,
    /// Python script.
    pub script: ScriptWire,
}

impl Default for WorkflowWire {
    fn default() -> Self {
        WorkflowWire {
            config_register: "0x2102".into(),
            day0_config: true,
            default_config: "default.cfg".into(),
            inventory: "inventory.csv".into(),
            image_destination: default_bootflash(),
            min_bootflash_free: 1 << 30,
            max_retries: 2,
            terminate_when_finished: false,
            image: Vec::new(),
            guestshell: GuestshellWire::default(),
            script: ScriptWire::default(),
        }
    }
}

/// `[backoff]`, seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct BackoffWire {
    /// After a successful image install.
    pub after_image_install: u64,
    /// While Guestshell comes up.
    pub wait_for_guestshell: u64,
    /// In BOOTFLASH_NO_SPACE.
    pub no_space: u64,
    /// For FINISHED routers.
    pub finished: u64,
    /// For FAILED routers.
    pub failed: u64,
}

impl Default for BackoffWire {
    fn default() -> Self {
        BackoffWire {
            after_image_install: 120,
            wait_for_guestshell: 60,
            no_space: 600,
            finished: 1200,
            failed: 600,
        }
    }
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LogWire {
    /// Console and file level filter (`info`, `debug`, or a tracing directive).
    pub level: String,
    /// Rotated log files kept.
    pub keep_files: usize,
}

impl Default for LogWire {
    fn default() -> Self {
        LogWire {
            level: "info".into(),
            keep_files: 7,
        }
    }
}

/// `[dhcp.option43]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Option43Wire {
    /// PnP server address (IPv4, IPv6 or host name); default: the interface address.
    pub server: Option<String>,
    /// PnP server port; default: the port of `[http] listen`.
    pub port: Option<u16>,
    /// `K5` (HTTPS) instead of `K4` (HTTP).
    pub https: bool,
    /// `D` (agent debug on) instead of `N`.
    pub debug: bool,
}

impl Default for Option43Wire {
    fn default() -> Self {
        Option43Wire {
            server: None,
            port: None,
            https: false,
            debug: true,
        }
    }
}

/// One `[[dhcp.reservation]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReservationWire {
    /// Hardware address `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Fixed address.
    pub ip: String,
}

/// `[dhcp]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DhcpWire {
    /// Interface to serve on; DHCP runs only when set (or `serve --interface`).
    pub interface: Option<String>,
    /// `first-last` or a CIDR; default: the interface's subnet.
    pub pool: Option<String>,
    /// Lease time, seconds.
    pub lease_time: u32,
    /// Percent of the lease time during which a renewal re-sends the lease as it is instead of
    /// extending (and rewriting) it; ISC dhcpd's `dhcp-cache-threshold`. 0 rewrites every time.
    pub cache_threshold: u8,
    /// Option 3.
    pub router: Option<String>,
    /// Option 6.
    pub dns: Vec<String>,
    /// PID prefixes answered.
    pub pid_prefixes: Vec<String>,
    /// UDP port (67; another port only for tests).
    pub port: u16,
    /// Option 43 fields.
    pub option43: Option43Wire,
    /// Fixed addresses by MAC.
    pub reservation: Vec<ReservationWire>,
}

impl Default for DhcpWire {
    fn default() -> Self {
        DhcpWire {
            interface: None,
            pool: None,
            lease_time: 3600,
            cache_threshold: 25,
            router: None,
            dns: Vec::new(),
            pid_prefixes: vec!["C11".into()],
            port: 67,
            option43: Option43Wire::default(),
            reservation: Vec::new(),
        }
    }
}

/// Validated `[dhcp]`; what depends on the interface is resolved at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// Interface, when DHCP is on.
    pub interface: Option<String>,
    /// Inclusive ranges; `None`: the interface's subnet.
    pub pool: Option<Vec<(Ipv4Addr, Ipv4Addr)>>,
    /// Lease time, seconds.
    pub lease_secs: u32,
    /// Lease caching threshold, percent of the lease time (0: off).
    pub cache_threshold: u8,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// PID prefixes.
    pub pid_prefixes: Vec<String>,
    /// UDP port.
    pub port: u16,
    /// Option 43 server; `None`: the interface address.
    pub o43_server: Option<String>,
    /// Option 43 port; `None`: the HTTP port.
    pub o43_port: Option<u16>,
    /// HTTPS.
    pub https: bool,
    /// Agent debug.
    pub debug: bool,
    /// MAC (lower case) → address.
    pub reservations: std::collections::HashMap<String, Ipv4Addr>,
}

/// Parses a pool: `198.51.100.100-198.51.100.199` or `198.51.100.0/24` (its hosts).
pub fn parse_pool(s: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
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

/// The whole file as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ConfigWire {
    /// HTTP.
    pub http: HttpWire,
    /// Paths.
    pub paths: PathsWire,
    /// Workflow.
    pub workflow: WorkflowWire,
    /// Backoffs.
    pub backoff: BackoffWire,
    /// Logging.
    pub log: LogWire,
    /// DHCP responder.
    pub dhcp: DhcpWire,
}

/// Validated configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages).
    pub source: PathBuf,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Address for URLs sent to routers (`None`: the address each router connected to).
    pub advertise: Option<String>,
    /// Largest PnP body.
    pub max_body_bytes: usize,
    /// Token for device actions.
    pub admin_token: Option<String>,
    /// State directory.
    pub state_dir: PathBuf,
    /// Log directory.
    pub log_dir: PathBuf,
    /// Status CSV.
    pub status_csv: PathBuf,
    /// Images.
    pub images_dir: PathBuf,
    /// Configs.
    pub configs_dir: PathBuf,
    /// Files.
    pub files_dir: PathBuf,
    /// Default day-0 config file name.
    pub default_config: String,
    /// Inventory CSV file name in the configs directory.
    pub inventory: String,
    /// Log level directive.
    pub log_level: String,
    /// Log files kept.
    pub log_keep: usize,
    /// The workflow (image md5s still unset: filled in at start-up).
    pub plan: Plan,
    /// The DHCP responder.
    pub dhcp: DhcpConfig,
}

/// 1-based line of byte offset `at` in `src`.
fn line_of(src: &str, at: usize) -> usize {
    src[..at.min(src.len())].matches('\n').count() + 1
}

/// Line where `key` is set inside `[table]` (or the table header), for validation messages.
fn find_key_line(src: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    let mut header_line = None;
    for (i, line) in src.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if current == table && header_line.is_none() {
                header_line = Some(i + 1);
            }
            continue;
        }
        if current == table && t.split('=').next().map(str::trim) == Some(key) && t.contains('=') {
            return Some(i + 1);
        }
    }
    header_line
}

fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && name != "."
        && name != ".."
        && !name.starts_with('.')
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read config {}: {e} (give another file with --config or APPLIANCE_CONFIG)",
                path.display()
            ))
        })?;
        Config::parse(&src, path)
    }

    /// Validates `src` as if read from `path`.
    pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigError> {
        let wire: ConfigWire = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| line_of(src, s.start)).unwrap_or(0);
            let msg = e.message().trim().to_string();
            let hint = if msg.contains("unknown field") {
                "remove or correct the key; see the config reference in README.md"
            } else {
                "fix the value; see the commented appliance.toml shipped with pnp-appliance"
            };
            ConfigError(format!("{}:{line}: {msg}\n  hint: {hint}", path.display()))
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        // Absolute where possible, so messages name real paths.
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        let err = |table: &str, key: &str, msg: String| {
            let line = find_key_line(src, table, key).unwrap_or(0);
            ConfigError(format!("{}:{line}: [{table}] {key}: {msg}", path.display()))
        };
        let listen: SocketAddr = wire.http.listen.parse().map_err(|_| {
            err(
                "http",
                "listen",
                format!(
                    "{:?} is not an address:port (hint: \"0.0.0.0:8080\")",
                    wire.http.listen
                ),
            )
        })?;
        if let Some(a) = &wire.http.advertise {
            let ok = a.parse::<IpAddr>().is_ok()
                || a.parse::<SocketAddr>().is_ok()
                || (!a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c)));
            if !ok {
                return Err(err(
                    "http",
                    "advertise",
                    format!(
                        "{a:?} is not an address, address:port or host name (hint: \"198.51.100.1\")"
                    ),
                ));
            }
        }
        if let Some(t) = &wire.http.admin_token
            && (t.len() < 12 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(err(
                "http",
                "admin-token",
                "at least 12 characters, no spaces (e.g. the output of `openssl rand -hex 16`)"
                    .into(),
            ));
        }
        if wire.http.max_body_bytes < 4096 {
            return Err(err(
                "http",
                "max-body-bytes",
                "must be at least 4096 (device-info answers are a few KB)".into(),
            ));
        }
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
                return Err(err(
                    "workflow",
                    "config-register",
                    format!("{v:?} is not a hex value like \"0x2102\" (\"\" skips the step)"),
                ));
            }
        };
        let mut images = Vec::new();
        for img in &w.image {
            if !valid_file_name(&img.file) {
                return Err(err(
                    "workflow.image",
                    "file",
                    format!(
                        "{:?} must be a plain file name inside the images directory",
                        img.file
                    ),
                ));
            }
            let version = match &img.version {
                Some(v) => normalize_version(v).ok_or_else(|| {
                    err(
                        "workflow.image",
                        "version",
                        format!("{v:?} is not a version like 17.12.3a"),
                    )
                })?,
                None => normalize_version(&img.file).ok_or_else(|| {
                    err(
                        "workflow.image",
                        "file",
                        format!(
                            "cannot read a version from {:?}: add version = \"17.12.3a\"",
                            img.file
                        ),
                    )
                })?,
            };
            if images
                .iter()
                .any(|i: &ImageTarget| i.pid_prefix == img.pid_prefix)
            {
                return Err(err(
                    "workflow.image",
                    "pid-prefix",
                    format!("two images for PID prefix {:?}", img.pid_prefix),
                ));
            }
            images.push(ImageTarget {
                pid_prefix: img.pid_prefix.clone(),
                file: img.file.clone(),
                version,
                md5: None,
            });
        }
        let files_dir = base.join(&wire.paths.files);
        let copy = |file: &Option<String>,
                    dest: &str,
                    table: &str|
         -> Result<Option<FileCopy>, ConfigError> {
            match file.as_deref() {
                None | Some("") => Ok(None),
                Some(f) if valid_file_name(f) => Ok(Some(FileCopy {
                    file: f.to_string(),
                    destination: dest.to_string(),
                    present: files_dir.join(f).is_file(),
                })),
                Some(f) => Err(err(
                    table,
                    if table.ends_with("guestshell") {
                        "tarball"
                    } else {
                        "file"
                    },
                    format!("{f:?} must be a plain file name inside the files directory"),
                )),
            }
        };
        let tarball = copy(
            &w.guestshell.tarball,
            &w.guestshell.destination,
            "workflow.guestshell",
        )?;
        let script = copy(&w.script.file, &w.script.destination, "workflow.script")?;
        if w.script.command.contains('\n') || w.script.command.trim().is_empty() {
            return Err(err(
                "workflow.script",
                "command",
                "must be one non-empty line".into(),
            ));
        }
        let applet = w.guestshell.eem_applet.trim();
        if applet.contains(char::is_whitespace) {
            return Err(err(
                "workflow.guestshell",
                "eem-applet",
                format!("{applet:?}: an applet name has no spaces"),
            ));
        }
        if !valid_file_name(&w.default_config) {
            return Err(err(
                "workflow",
                "default-config",
                "must be a plain file name inside the configs directory".into(),
            ));
        }
        if !valid_file_name(&w.inventory) {
            return Err(err(
                "workflow",
                "inventory",
                "must be a plain file name inside the configs directory".into(),
            ));
        }
        if w.min_bootflash_free < 0 {
            return Err(err(
                "workflow",
                "min-bootflash-free",
                "must be >= 0 bytes".into(),
            ));
        }
        if w.max_retries > 100 {
            return Err(err("workflow", "max-retries", "at most 100".into()));
        }
        let b = &wire.backoff;
        for (key, v) in [
            ("after-image-install", b.after_image_install),
            ("wait-for-guestshell", b.wait_for_guestshell),
            ("no-space", b.no_space),
            ("finished", b.finished),
            ("failed", b.failed),
        ] {
            if v == 0 || v > 47 * 3600 + 59 * 60 + 59 {
                return Err(err(
                    "backoff",
                    key,
                    format!("{v} s: a PnP backoff is 1 s to 47h59m59s (172799 s)"),
                ));
            }
        }
        if wire.log.level.trim().is_empty() {
            return Err(err(
                "log",
                "level",
                "give a level such as \"info\" or \"debug\"".into(),
            ));
        }
        let plan = Plan {
            config_register,
            images,
            image_destination: w.image_destination.clone(),
            tarball,
            script,
            script_command: w.script.command.clone(),
            day0_config: w.day0_config,
            min_bootflash_free: w.min_bootflash_free,
            eem_applet: (!applet.is_empty()).then(|| applet.to_string()),
            max_retries: w.max_retries,
            guestshell_max_checks: w.guestshell.max_checks.max(1),
            terminate_when_finished: w.terminate_when_finished,
            backoff: Backoffs {
                after_image_install: b.after_image_install,
                wait_for_guestshell: b.wait_for_guestshell,
                no_space: b.no_space,
                finished: b.finished,
                failed: b.failed,
            },
        };
        let d = &wire.dhcp;
        let ip_list = |key: &str, values: &[String]| -> Result<Vec<Ipv4Addr>, ConfigError> {
            values
                .iter()
                .map(|v| {
                    v.parse::<Ipv4Addr>()
                        .map_err(|_| err("dhcp", key, format!("{v:?} is not an IPv4 address")))
                })
                .collect()
        };
        let pool = match &d.pool {
            None => None,
            Some(p) => Some(vec![parse_pool(p).ok_or_else(|| {
                err(
                    "dhcp",
                    "pool",
                    format!("{p:?}: give \"198.51.100.100-198.51.100.199\" or \"198.51.100.0/24\""),
                )
            })?]),
        };
        if d.lease_time < 60 {
            return Err(err("dhcp", "lease-time", "at least 60 seconds".into()));
        }
        if d.cache_threshold > 50 {
            return Err(err(
                "dhcp",
                "cache-threshold",
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
            return Err(err(
                "dhcp",
                "pid-prefixes",
                "give at least one non-empty PID prefix of printable characters, e.g. [\"C11\"]"
                    .into(),
            ));
        }
        if d.port == 0 {
            return Err(err("dhcp", "port", "must not be 0".into()));
        }
        if let Some(i) = &d.interface
            && (i.is_empty() || i.len() > 15 || i.contains('/') || i.contains(char::is_whitespace))
        {
            return Err(err(
                "dhcp",
                "interface",
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
                return Err(err(
                    "dhcp.option43",
                    "server",
                    format!("{srv:?} is not an address or host name"),
                ));
            }
        }
        let mut reservations = std::collections::HashMap::new();
        for r in &d.reservation {
            let mac = parse_mac(&r.mac).ok_or_else(|| {
                err(
                    "dhcp.reservation",
                    "mac",
                    format!("{:?} is not a MAC like 52:54:00:12:34:56", r.mac),
                )
            })?;
            let ip = r.ip.parse::<Ipv4Addr>().map_err(|_| {
                err(
                    "dhcp.reservation",
                    "ip",
                    format!("{:?} is not an IPv4 address", r.ip),
                )
            })?;
            reservations.insert(mac, ip);
        }
        let dhcp = DhcpConfig {
            interface: d.interface.clone(),
            pool,
            lease_secs: d.lease_time,
            cache_threshold: d.cache_threshold,
            routers: ip_list("router", d.router.as_slice())?,
            dns: ip_list("dns", &d.dns)?,
            pid_prefixes: d.pid_prefixes.clone(),
            port: d.port,
            o43_server: d.option43.server.clone(),
            o43_port: d.option43.port,
            https: d.option43.https,
            debug: d.option43.debug,
            reservations,
        };
        let p = &wire.paths;
        Ok(Config {
            source: path.to_path_buf(),
            listen,
            advertise: wire.http.advertise.clone(),
            max_body_bytes: wire.http.max_body_bytes,
            admin_token: wire.http.admin_token.clone(),
            state_dir: base.join(&p.state),
            log_dir: base.join(&p.logs),
            status_csv: base.join(&p.status_csv),
            images_dir: base.join(&p.images),
            configs_dir: base.join(&p.configs),
            files_dir,
            default_config: w.default_config.clone(),
            inventory: w.inventory.clone(),
            log_level: wire.log.level.clone(),
            log_keep: wire.log.keep_files.max(1),
            plan,
            dhcp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(src, Path::new("/etc/pnp/appliance.toml"))
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
            ("[workflow]\nmax-retries = \"x\"\n", ":2:", "invalid type"),
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
        ];
        for (src, line, text) in cases {
            let e = parse(src).expect_err(src).0;
            assert!(
                e.contains("/etc/pnp/appliance.toml") && e.contains(line) && e.contains(text),
                "{src:?} -> {e}"
            );
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
