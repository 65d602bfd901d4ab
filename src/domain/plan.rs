//! The validated workflow settings ([`Plan`]): what each step sends, or that it is skipped.
//!
//! Built once from the configuration (the `config` module), image md5s filled in at start-up, then
//! only read by the workflow.

/// One target image, chosen by PID prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageTarget {
    /// PID prefix this image is for (`""` = every PID).
    pub(crate) pid_prefix: String,
    /// File name under `images/`.
    pub(crate) file: String,
    /// Normalised version, e.g. `17.12.3a`.
    pub(crate) version: String,
    /// Lower-case md5, `None` when the file is missing on the appliance.
    pub(crate) md5: Option<String>,
    /// Size in bytes (with the md5, at start-up).
    pub(crate) size: Option<u64>,
}

/// What frees bootflash when the image does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cleanup {
    /// By the router's boot mode: `install remove inactive` in install mode (`packages.conf`);
    /// in bundle mode, `delete /force` of every `.bin` in `dir bootflash:` other than the
    /// running image and the target.
    Auto,
    /// No cleanup: a router whose image does not fit parks in IMAGE_NO_SPACE.
    Off,
    /// These commands, in order.
    Commands(Vec<String>),
}

/// A regular expression from the configuration, compared by its text.
#[derive(Debug, Clone)]
pub(crate) struct Pattern(pub(crate) regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// An operator's check before FINISHED (`[[workflow.verify]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifyCheck {
    /// The command run with cli-exec.
    pub(crate) command: String,
    /// The line its output must hold, a template of the router's variables.
    pub(crate) expect: String,
}

/// A file under `files/` copied to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileCopy {
    /// File name under `files/`.
    pub(crate) file: String,
    /// Destination directory on the device, e.g. `bootflash:guest-share/`.
    pub(crate) destination: String,
    /// Whether the file exists on the appliance.
    pub(crate) present: bool,
}

impl FileCopy {
    /// Full destination path: directory plus file name.
    pub(crate) fn target(&self) -> String {
        if self.destination.ends_with(':') || self.destination.ends_with('/') {
            format!("{}{}", self.destination, self.file)
        } else {
            format!("{}/{}", self.destination, self.file)
        }
    }
}

/// Backoff delays in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backoffs {
    /// After a successful image install, while the device reloads.
    pub(crate) after_image_install: u64,
    /// While Guestshell comes up.
    pub(crate) wait_for_guestshell: u64,
    /// While parked in BOOTFLASH_NO_SPACE.
    pub(crate) no_space: u64,
    /// For a FINISHED device.
    pub(crate) finished: u64,
    /// For a FAILED device.
    pub(crate) failed: u64,
}

/// `[identity]`: how a router proves its serial (see [`crate::domain::sudi`]).
#[derive(Debug, Clone)]
pub(crate) struct IdentityPolicy {
    /// Ask each new router's capabilities and, where it offers device-auth, for its SUDI.
    pub(crate) device_auth: bool,
    /// Routers that cannot prove their serial park in IDENTITY_UNPROVEN.
    pub(crate) require_sudi: bool,
    /// The SUDI roots (Cisco's and `extra-roots`).
    pub(crate) trust: std::sync::Arc<crate::domain::sudi::Trust>,
}

impl PartialEq for IdentityPolicy {
    fn eq(&self, other: &IdentityPolicy) -> bool {
        self.device_auth == other.device_auth
            && self.require_sudi == other.require_sudi
            && *self.trust == *other.trust
    }
}

impl Eq for IdentityPolicy {}

/// The validated workflow settings: what each step does, or `None` to skip it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Value for `config-register`, e.g. `0x2102`.
    pub(crate) config_register: Option<String>,
    /// Target images by PID prefix (longest prefix wins).
    pub(crate) images: Vec<ImageTarget>,
    /// Destination for images, e.g. `bootflash:`.
    pub(crate) image_destination: String,
    /// Guestshell tarball.
    pub(crate) tarball: Option<FileCopy>,
    /// Python script.
    pub(crate) script: Option<FileCopy>,
    /// Command that runs the script; `{file}` is replaced by the script's file name.
    pub(crate) script_command: String,
    /// A line of the script's output that means it succeeded (else it failed).
    pub(crate) script_success: Option<Pattern>,
    /// A line of the script's output that means it failed.
    pub(crate) script_failure: Option<Pattern>,
    /// Bytes kept free on bootflash beyond the image itself.
    pub(crate) image_margin: u64,
    /// What frees bootflash when the image does not fit.
    pub(crate) image_cleanup: Cleanup,
    /// The operator's checks before FINISHED.
    pub(crate) verify: Vec<VerifyCheck>,
    /// Push a day-0 config.
    pub(crate) day0_config: bool,
    /// Minimum bootflash free bytes (0 skips the check).
    pub(crate) min_bootflash_free: i64,
    /// EEM applet that installs Guestshell.
    pub(crate) eem_applet: Option<String>,
    /// Retries of a failed job before FAILED.
    pub(crate) max_retries: u32,
    /// `show app-hosting list` checks before FAILED.
    pub(crate) guestshell_max_checks: u32,
    /// Send `terminate` to finished devices instead of a long backoff.
    pub(crate) terminate_when_finished: bool,
    /// Backoff delays.
    pub(crate) backoff: Backoffs,
    /// How routers prove their serial.
    pub(crate) identity: IdentityPolicy,
}

impl Plan {
    /// Whether routers get a day-0 config rendered for them: to push it, or to render the
    /// operator's checks with their variables.
    pub(crate) fn renders_day0(&self) -> bool {
        self.day0_config || !self.verify.is_empty()
    }

    /// The image for `pid`: the longest matching prefix.
    pub(crate) fn image_for(&self, pid: &str) -> Option<&ImageTarget> {
        self.images
            .iter()
            .filter(|i| pid.starts_with(&i.pid_prefix))
            .max_by_key(|i| i.pid_prefix.len())
    }
}
