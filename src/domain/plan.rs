//! The validated workflow settings ([`Plan`]): what each step sends, or that it is skipped.
//!
//! Built once from the configuration (`crate::config`), image md5s filled in at start-up, then
//! only read by the workflow.

/// One target image, chosen by PID prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTarget {
    /// PID prefix this image is for (`""` = every PID).
    pub pid_prefix: String,
    /// File name under `images/`.
    pub file: String,
    /// Normalised version, e.g. `17.12.3a`.
    pub version: String,
    /// Lower-case md5, `None` when the file is missing on the appliance.
    pub md5: Option<String>,
}

/// A file under `files/` copied to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// File name under `files/`.
    pub file: String,
    /// Destination directory on the device, e.g. `bootflash:guest-share/`.
    pub destination: String,
    /// Whether the file exists on the appliance.
    pub present: bool,
}

impl FileCopy {
    /// Full destination path: directory plus file name.
    pub fn target(&self) -> String {
        if self.destination.ends_with(':') || self.destination.ends_with('/') {
            format!("{}{}", self.destination, self.file)
        } else {
            format!("{}/{}", self.destination, self.file)
        }
    }
}

/// Backoff delays in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoffs {
    /// After a successful image install, while the device reloads.
    pub after_image_install: u64,
    /// While Guestshell comes up.
    pub wait_for_guestshell: u64,
    /// While parked in BOOTFLASH_NO_SPACE.
    pub no_space: u64,
    /// For a FINISHED device.
    pub finished: u64,
    /// For a FAILED device.
    pub failed: u64,
}

/// The validated workflow settings: what each step does, or `None` to skip it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Value for `config-register`, e.g. `0x2102`.
    pub config_register: Option<String>,
    /// Target images by PID prefix (longest prefix wins).
    pub images: Vec<ImageTarget>,
    /// Destination for images, e.g. `bootflash:`.
    pub image_destination: String,
    /// Guestshell tarball.
    pub tarball: Option<FileCopy>,
    /// Python script.
    pub script: Option<FileCopy>,
    /// Command that runs the script; `{file}` is replaced by the script's file name.
    pub script_command: String,
    /// Push a day-0 config.
    pub day0_config: bool,
    /// Minimum bootflash free bytes (0 skips the check).
    pub min_bootflash_free: i64,
    /// EEM applet that installs Guestshell.
    pub eem_applet: Option<String>,
    /// Retries of a failed job before FAILED.
    pub max_retries: u32,
    /// `show app-hosting list` checks before FAILED.
    pub guestshell_max_checks: u32,
    /// Send `terminate` to finished devices instead of a long backoff.
    pub terminate_when_finished: bool,
    /// Backoff delays.
    pub backoff: Backoffs,
}

impl Plan {
    /// The image for `pid`: the longest matching prefix.
    pub fn image_for(&self, pid: &str) -> Option<&ImageTarget> {
        self.images
            .iter()
            .filter(|i| pid.starts_with(&i.pid_prefix))
            .max_by_key(|i| i.pid_prefix.len())
    }
}
