//! `appliance.toml` as written: the serde layer of the configuration.
//!
//! Every table refuses unknown keys (a typo in a hand-edited file is an error with its line, not
//! a silent default); every key has its default here, once, in the table's `Default`.
//! Validation into [`super::Config`] happens in the parent module.

use serde::Deserialize;

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct HttpWire {
    /// Address and port to listen on.
    pub(crate) listen: String,
    /// Address (and optional port) put in the URLs sent to routers.
    pub(crate) advertise: Option<String>,
    /// Largest accepted PnP request body.
    pub(crate) max_body_bytes: usize,
    /// Token that device actions (resume, retry, reset, forget) require; unset: actions only
    /// from this host.
    pub(crate) admin_token: Option<String>,
    /// Host names the dashboard and API are reached under, besides addresses and `localhost`.
    pub(crate) server_names: Vec<String>,
    /// Move routers to HTTPS (certificate-install, reconnect) and serve PnP only there.
    pub(crate) https: bool,
    /// Address and port of the HTTPS listener.
    pub(crate) https_listen: String,
    /// PEM certificate chain to serve instead of the bench CA's (with `tls-key`).
    pub(crate) tls_cert: Option<String>,
    /// Its PEM private key.
    pub(crate) tls_key: Option<String>,
    /// DNS domain of the bench: the certificate names `pnpserver.<domain>` (DNS discovery).
    pub(crate) dns_domain: Option<String>,
    /// How routers download images with HTTPS on: `http` (md5-checked, zero-copy) or
    /// `https`. Files go over HTTPS (file-transfer carries no checksum).
    pub(crate) downloads: String,
    /// Seconds a router has to come back over HTTPS after certificate-install.
    pub(crate) https_timeout: u64,
}

impl Default for HttpWire {
    fn default() -> Self {
        HttpWire {
            listen: "0.0.0.0:8080".into(),
            advertise: None,
            max_body_bytes: 1 << 20,
            admin_token: None,
            server_names: Vec::new(),
            https: false,
            https_listen: "0.0.0.0:8443".into(),
            tls_cert: None,
            tls_key: None,
            dns_domain: None,
            downloads: "http".into(),
            https_timeout: 600,
        }
    }
}

/// `[limits]`: what one host on the bench may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct LimitsWire {
    /// Device records held at most.
    pub(crate) max_devices: usize,
    /// New serials one address may bring per 10 minutes.
    pub(crate) new_serials_per_address: u32,
    /// Open HTTP connections per client address.
    pub(crate) connections_per_address: u32,
    /// Seconds a client has to send a request head.
    pub(crate) header_timeout: u64,
    /// Seconds an idle keep-alive connection stays open.
    pub(crate) idle_timeout: u64,
    /// Seconds a day-0 config URL stays valid after its job is sent.
    pub(crate) config_url_lifetime: u64,
}

impl Default for LimitsWire {
    fn default() -> Self {
        LimitsWire {
            max_devices: 2000,
            new_serials_per_address: 4,
            connections_per_address: 64,
            header_timeout: 10,
            idle_timeout: 60,
            config_url_lifetime: 900,
        }
    }
}

/// `[paths]`; relative paths are relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct PathsWire {
    /// Device records, md5 cache.
    pub(crate) state: String,
    /// Log directory.
    pub(crate) logs: String,
    /// The status table.
    pub(crate) status_csv: String,
    /// Router images.
    pub(crate) images: String,
    /// Day-0 configs.
    pub(crate) configs: String,
    /// Other files (tarball, scripts).
    pub(crate) files: String,
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

/// `[state]`: where device state is kept and which bench this appliance is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct StateWire {
    /// `postgresql://…`: the fleet database shared by several benches. Unset: SQLite in the
    /// state directory.
    pub(crate) url: Option<String>,
    /// This bench's name in the fleet (default: the host name).
    pub(crate) bench: Option<String>,
    /// Seconds a bench keeps driving a router it has not heard from (fleet database only).
    pub(crate) claim_timeout: Option<u64>,
}

/// `[identity]`: how routers prove their serial.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct IdentityWire {
    /// Ask each new router's capabilities and, where it offers device-auth, for its SUDI.
    pub(crate) device_auth: bool,
    /// Park routers that cannot prove their serial until an operator vouches for them.
    pub(crate) require_sudi: bool,
    /// PEM files of more SUDI roots and issuing CAs (private PKIs, tests).
    pub(crate) extra_roots: Vec<String>,
}

impl Default for IdentityWire {
    fn default() -> Self {
        IdentityWire {
            device_auth: true,
            require_sudi: false,
            extra_roots: Vec::new(),
        }
    }
}

/// One `[[workflow.image]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ImageWire {
    /// PID prefix (default: every PID).
    #[serde(default)]
    pub(crate) pid_prefix: String,
    /// File name in the images directory.
    pub(crate) file: String,
    /// Version it installs; default: read from the file name.
    pub(crate) version: Option<String>,
}

/// `[workflow.guestshell]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct GuestshellWire {
    /// Tarball in the files directory; omit to skip the transfer.
    pub(crate) tarball: Option<String>,
    /// Where it goes on the router.
    pub(crate) destination: String,
    /// EEM applet run to install Guestshell; `""` skips it.
    pub(crate) eem_applet: String,
    /// `show app-hosting list` checks before giving up.
    pub(crate) max_checks: u32,
}

impl Default for GuestshellWire {
    fn default() -> Self {
        GuestshellWire {
            tarball: None,
            destination: "bootflash:".into(),
            eem_applet: "InstallGuestShell".into(),
            max_checks: 10,
        }
    }
}

/// `[workflow.script]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct ScriptWire {
    /// Script in the files directory; omit to skip transfer and run.
    pub(crate) file: Option<String>,
    /// Where it goes on the router.
    pub(crate) destination: String,
    /// Command that runs it; `{file}` is the script's name.
    pub(crate) command: String,
    /// Regular expression for a line of its output that means it succeeded.
    pub(crate) success_pattern: Option<String>,
    /// Regular expression for a line of its output that means it failed.
    pub(crate) failure_pattern: Option<String>,
}

impl Default for ScriptWire {
    fn default() -> Self {
        ScriptWire {
            file: None,
            destination: "bootflash:guest-share/".into(),
            command: "guestshell run python3 /bootflash/guest-share/{file}".into(),
            success_pattern: None,
            failure_pattern: None,
        }
    }
}

/// `[workflow] image-cleanup`: `"auto"`, `"off"`, or the commands to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum CleanupWire {
    /// `"auto"` or `"off"`.
    Mode(String),
    /// Commands, in order.
    Commands(Vec<String>),
}

/// One `[[workflow.verify]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct VerifyWire {
    /// Command run on the router.
    pub(crate) command: String,
    /// A line its output must hold; `{{ variable }}` from the router's template variables.
    pub(crate) expect: String,
}

/// `[workflow]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct WorkflowWire {
    /// Config-register value; `""` skips the step.
    pub(crate) config_register: String,
    /// Push `configs/<SERIAL>.cfg`, else the default config.
    pub(crate) day0_config: bool,
    /// Fallback config file name.
    pub(crate) default_config: String,
    /// Inventory CSV (in the configs directory) with per-router template variables.
    pub(crate) inventory: String,
    /// Where images go on the router.
    pub(crate) image_destination: String,
    /// Minimum bootflash free bytes before the EEM applet; 0 skips the check.
    pub(crate) min_bootflash_free: i64,
    /// Retries of a failed job.
    pub(crate) max_retries: u32,
    /// Tell finished routers to delete their PnP profile instead of long backoffs.
    pub(crate) terminate_when_finished: bool,
    /// Bytes to keep free on bootflash beyond the image.
    pub(crate) image_space_margin: u64,
    /// What frees bootflash when the image does not fit.
    pub(crate) image_cleanup: CleanupWire,
    /// Checks before FINISHED.
    pub(crate) verify: Vec<VerifyWire>,
    /// Target images.
    pub(crate) image: Vec<ImageWire>,
    /// Guestshell.
    pub(crate) guestshell: GuestshellWire,
    /// Python script.
    pub(crate) script: ScriptWire,
}

impl Default for WorkflowWire {
    fn default() -> Self {
        WorkflowWire {
            config_register: "0x2102".into(),
            day0_config: true,
            default_config: "default.cfg".into(),
            inventory: "inventory.csv".into(),
            image_destination: "bootflash:".into(),
            min_bootflash_free: 1 << 30,
            max_retries: 2,
            terminate_when_finished: false,
            image_space_margin: 100 << 20,
            image_cleanup: CleanupWire::Mode("auto".into()),
            verify: Vec::new(),
            image: Vec::new(),
            guestshell: GuestshellWire::default(),
            script: ScriptWire::default(),
        }
    }
}

/// `[backoff]`, seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct BackoffWire {
    /// After a successful image install.
    pub(crate) after_image_install: u64,
    /// While Guestshell comes up.
    pub(crate) wait_for_guestshell: u64,
    /// In BOOTFLASH_NO_SPACE.
    pub(crate) no_space: u64,
    /// For FINISHED routers.
    pub(crate) finished: u64,
    /// For FAILED routers.
    pub(crate) failed: u64,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct LogWire {
    /// Console and file level filter (`info`, `debug`, or a tracing directive).
    pub(crate) level: String,
    /// Rotated log files kept.
    pub(crate) keep_files: usize,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct Option43Wire {
    /// PnP server address (IPv4, IPv6 or host name); default: the interface address.
    pub(crate) server: Option<String>,
    /// PnP server port; default: the port of `[http] listen`.
    pub(crate) port: Option<u16>,
    /// `K5` (HTTPS) instead of `K4` (HTTP).
    pub(crate) https: bool,
    /// `D` (agent debug on) instead of `N`.
    pub(crate) debug: bool,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ReservationWire {
    /// Hardware address `aa:bb:cc:dd:ee:ff`.
    pub(crate) mac: String,
    /// Fixed address.
    pub(crate) ip: String,
}

/// `[dhcp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct DhcpWire {
    /// Interface to serve on; DHCP runs only when set (or `serve --interface`).
    pub(crate) interface: Option<String>,
    /// Address (CIDR) the appliance adds to the interface for the run when it has none.
    pub(crate) address: Option<String>,
    /// `first-last` or a CIDR; default: the interface's subnet.
    pub(crate) pool: Option<String>,
    /// Lease time, seconds.
    pub(crate) lease_time: u32,
    /// Percent of the lease time during which a renewal re-sends the lease as it is instead of
    /// extending (and rewriting) it; ISC dhcpd's `dhcp-cache-threshold`. 0 rewrites every time.
    pub(crate) cache_threshold: u8,
    /// Offers to clients with no lease per 10 s; default: an eighth of the pool, at least 4.
    pub(crate) new_client_offers: Option<u32>,
    /// Offers one client gets per minute.
    pub(crate) offers_per_client: u32,
    /// Option 3.
    pub(crate) router: Option<String>,
    /// Option 6.
    pub(crate) dns: Vec<String>,
    /// PID prefixes answered.
    pub(crate) pid_prefixes: Vec<String>,
    /// UDP port (67; another port only for tests).
    pub(crate) port: u16,
    /// Option 43 fields.
    pub(crate) option43: Option43Wire,
    /// Fixed addresses by MAC.
    pub(crate) reservation: Vec<ReservationWire>,
}

impl Default for DhcpWire {
    fn default() -> Self {
        DhcpWire {
            interface: None,
            address: None,
            pool: None,
            lease_time: 3600,
            cache_threshold: 25,
            new_client_offers: None,
            offers_per_client: 6,
            router: None,
            dns: Vec::new(),
            pid_prefixes: vec!["C11".into()],
            port: 67,
            option43: Option43Wire::default(),
            reservation: Vec::new(),
        }
    }
}

/// The whole file as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct ConfigWire {
    /// HTTP.
    pub(crate) http: HttpWire,
    /// Paths.
    pub(crate) paths: PathsWire,
    /// Device state.
    pub(crate) state: StateWire,
    /// How routers prove their serial.
    pub(crate) identity: IdentityWire,
    /// Workflow.
    pub(crate) workflow: WorkflowWire,
    /// Backoffs.
    pub(crate) backoff: BackoffWire,
    /// Logging.
    pub(crate) log: LogWire,
    /// DHCP responder.
    pub(crate) dhcp: DhcpWire,
    /// Limits per host.
    pub(crate) limits: LimitsWire,
}
