//! The device record: everything the appliance knows about one router, and its workflow state.
//!
//! Owns the [`State`] names (stable strings, the reference server's names plus `FAILED`) and the
//! [`Device`] record that is persisted as JSON, shown in `DEVICE_STATUS.csv` and changed only by
//! the pure workflow functions (the `workflow` module beside this one) under the registry's lock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::{DateTime, Local};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::identity::{Binding, Claim, Sudi};
use super::job::Job;

/// Where a router is in the provisioning workflow. The names are stable: they appear in
/// `DEVICE_STATUS.csv`, logs, JSON and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Seen for the first time; nothing sent yet.
    NewDevice,
    /// Setting the config-register, then `write memory`.
    ConfigReg,
    /// device-info to compare the running version with the target.
    CheckImageVer,
    /// The target image must be installed.
    UpgradeNeeded,
    /// Too little bootflash for the image: the cleanup commands run, then the space is read
    /// again.
    ImageCleanup,
    /// Still too little bootflash for the image; long backoffs until an operator resumes it.
    ImageNoSpace,
    /// image-install sent; the device is downloading and verifying.
    #[serde(rename = "UPGRADE_INPROGRESS")]
    UpgradeInProgress,
    /// Install succeeded; the next poll gets a backoff while the device reloads.
    UpgradeReloadNeeded,
    /// Waiting for the device to come back from the reload, then device-info.
    UpgradeReloading,
    /// The device runs the target version.
    UpgradeDone,
    /// Guestshell tarball to `bootflash:`.
    GsTarballTransfer,
    /// Python script to `bootflash:guest-share/`.
    PyScriptTransfer,
    /// Day-0 config merged into the running config.
    ConfigStart,
    /// `write memory` after the day-0 config.
    ConfigSaveStartup,
    /// device-info to read bootflash free space.
    CheckBootflashSize,
    /// Too little bootflash; long backoffs until an operator resumes the device.
    BootflashNoSpace,
    /// `event manager run <applet>`.
    RunEventManager,
    /// A backoff while Guestshell comes up.
    WaitForGuestshell,
    /// `show app-hosting list`.
    CheckGuestshell,
    /// `app-hosting install appid guestshell package ...`.
    InstallGuestshell,
    /// `guestshell enable`.
    EnableGuestshell,
    /// `guestshell run python3 ...`.
    RunPyScript,
    /// Last checks on the device (version, config-register, startup config, Guestshell, the
    /// operator's checks) before FINISHED.
    Verify,
    /// Done; the device is told to stop polling.
    Finished,
    /// Stopped with a reason; an operator may resume it.
    Failed,
    /// `[identity] require-sudi`: the router could not prove its serial by its SUDI; long
    /// backoffs until an operator vouches for it (`device resume`).
    IdentityUnproven,
}

impl State {
    /// Every state, in workflow order.
    pub(crate) const ALL: [State; 26] = [
        State::NewDevice,
        State::ConfigReg,
        State::CheckImageVer,
        State::UpgradeNeeded,
        State::ImageCleanup,
        State::ImageNoSpace,
        State::UpgradeInProgress,
        State::UpgradeReloadNeeded,
        State::UpgradeReloading,
        State::UpgradeDone,
        State::GsTarballTransfer,
        State::PyScriptTransfer,
        State::ConfigStart,
        State::ConfigSaveStartup,
        State::CheckBootflashSize,
        State::BootflashNoSpace,
        State::RunEventManager,
        State::WaitForGuestshell,
        State::CheckGuestshell,
        State::InstallGuestshell,
        State::EnableGuestshell,
        State::RunPyScript,
        State::Verify,
        State::Finished,
        State::Failed,
        State::IdentityUnproven,
    ];

    /// The stable name, e.g. `UPGRADE_INPROGRESS`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::NewDevice => "NEW_DEVICE",
            State::ConfigReg => "CONFIG_REG",
            State::CheckImageVer => "CHECK_IMAGE_VER",
            State::UpgradeNeeded => "UPGRADE_NEEDED",
            State::ImageCleanup => "IMAGE_CLEANUP",
            State::ImageNoSpace => "IMAGE_NO_SPACE",
            State::UpgradeInProgress => "UPGRADE_INPROGRESS",
            State::UpgradeReloadNeeded => "UPGRADE_RELOAD_NEEDED",
            State::UpgradeReloading => "UPGRADE_RELOADING",
            State::UpgradeDone => "UPGRADE_DONE",
            State::GsTarballTransfer => "GS_TARBALL_TRANSFER",
            State::PyScriptTransfer => "PY_SCRIPT_TRANSFER",
            State::ConfigStart => "CONFIG_START",
            State::ConfigSaveStartup => "CONFIG_SAVE_STARTUP",
            State::CheckBootflashSize => "CHECK_BOOTFLASH_SIZE",
            State::BootflashNoSpace => "BOOTFLASH_NO_SPACE",
            State::RunEventManager => "RUN_EVENT_MANAGER",
            State::WaitForGuestshell => "WAIT_FOR_GUESTSHELL",
            State::CheckGuestshell => "CHECK_GUESTSHELL",
            State::InstallGuestshell => "INSTALL_GUESTSHELL",
            State::EnableGuestshell => "ENABLE_GUESTSHELL",
            State::RunPyScript => "RUN_PY_SCRIPT",
            State::Verify => "VERIFY",
            State::Finished => "FINISHED",
            State::Failed => "FAILED",
            State::IdentityUnproven => "IDENTITY_UNPROVEN",
        }
    }

    /// Parses a stable name (case-insensitive, surrounding blanks ignored).
    pub(crate) fn parse(s: &str) -> Option<State> {
        let s = s.trim();
        State::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The job we sent and are waiting for an answer to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The job.
    pub(crate) job: Job,
    /// The correlator the job carried.
    pub(crate) correlator: String,
    /// When it was sent.
    pub(crate) sent_at: DateTime<Local>,
    /// The server restarted while it was in flight: if it fails or goes unanswered, that is
    /// the server's doing and does not count against the router's retries.
    #[serde(default)]
    pub(crate) interrupted: bool,
}

/// `Device::ip` as the address text, `""` for none: the shape records had when the address was
/// a string, which `DEVICE_STATUS.csv` readers and the API keep seeing.
mod ip_or_empty {
    use super::*;

    pub(super) fn serialize<S: Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
        match ip {
            Some(ip) => s.collect_str(ip),
            None => s.serialize_str(""),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// Reads `pending`; the untyped job of a record written before jobs were typed (`service`,
/// `summary` strings) reads as none: the router's answer to it is then ignored and its next work
/// request gets the job of its state again, so nothing is lost but one round trip.
fn pending_or_legacy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Pending>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Typed(Pending),
        Legacy(serde::de::IgnoredAny),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        Some(Either::Typed(p)) => Some(p),
        Some(Either::Legacy(_)) | None => None,
    })
}

/// A router's move to HTTPS: when it took the trustpoint, when it came back over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TlsMove {
    /// It answered certificate-install (took the bench CA, told to reconnect).
    pub(crate) taken: DateTime<Local>,
    /// Its first request over HTTPS since.
    pub(crate) back: Option<DateTime<Local>>,
    /// It has not come back over HTTPS in time: why, and what to check.
    pub(crate) late: Option<String>,
}

/// The router's DHCP lease, as handed out by the built-in responder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeviceLease {
    /// Leased address.
    pub(crate) ip: Ipv4Addr,
    /// Hardware address.
    pub(crate) mac: String,
    /// Expiry.
    pub(crate) expires: DateTime<Local>,
}

/// One line of a device's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub(crate) at: DateTime<Local>,
    /// State at that moment.
    pub(crate) state: State,
    /// What happened, including the device's own error text or output.
    pub(crate) text: String,
}

/// How one workflow step ended (for `report`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StepResult {
    /// `done`, `skipped`, `failed: ...`, or a short outcome (`upgrade needed`, `no space`).
    pub(crate) result: String,
    /// When.
    pub(crate) at: DateTime<Local>,
}

/// What the router's day-0 config is, rendered for it at its first contact (so a missing
/// inventory row fails it before any file moves): the file, and what verification expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Day0 {
    /// `<SERIAL>.cfg` or the default config.
    pub(crate) file: String,
    /// Its `hostname ...` line, checked in the startup config before FINISHED.
    pub(crate) hostname: Option<String>,
    /// Each `[[workflow.verify]]` expectation, rendered with the router's variables.
    pub(crate) expects: Vec<String>,
}

/// One check made on the device before FINISHED, kept as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Evidence {
    /// What was checked, e.g. `running version`.
    pub(crate) check: String,
    /// The command or job that read it.
    pub(crate) command: String,
    /// What had to be there.
    pub(crate) expect: String,
    /// What the router printed (cut to a few lines).
    pub(crate) seen: String,
    /// Whether it held.
    pub(crate) ok: bool,
    /// When.
    pub(crate) at: DateTime<Local>,
}

/// History kept per device (oldest dropped first).
pub(crate) const HISTORY_LIMIT: usize = 300;
/// Bytes of history text kept per device (oldest lines dropped first): 300 lines of a router's
/// own long error texts must not make a record of many megabytes.
pub(crate) const HISTORY_BYTES: usize = 256 << 10;
/// Longest history line; longer texts are cut, and say so.
pub(crate) const LINE_BYTES: usize = 4 << 10;

/// `text` cut to at most `max` bytes (on a character boundary), marked `… [cut: N bytes]` when
/// it was longer: for everything a router sends that is kept or shown.
pub(crate) fn cut_text(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… [cut: {} bytes]", &text[..end], text.len()))
}

/// Drops the oldest lines until the history holds at most [`HISTORY_LIMIT`] lines and
/// [`HISTORY_BYTES`] of text.
pub(crate) fn trim_history(history: &mut Vec<Event>) {
    let excess = history.len().saturating_sub(HISTORY_LIMIT);
    history.drain(..excess);
    let mut bytes: usize = history.iter().map(|e| e.text.len()).sum();
    let mut drop = 0;
    while bytes > HISTORY_BYTES && drop < history.len() {
        bytes -= history[drop].text.len();
        drop += 1;
    }
    history.drain(..drop);
}

/// Everything known about one router. Persisted as JSON; unknown fields default so older files
/// still load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    /// Serial number (`SN:` of the udi): the key.
    pub serial: String,
    /// Full udi as the device sends it.
    pub(crate) udi: String,
    /// Product id, e.g. `C1131-8PWB`.
    pub(crate) pid: String,
    /// Hardware revision (`VID:`).
    pub(crate) vid: String,
    /// Address the device last talked to us from (`""` in JSON until it has talked).
    #[serde(with = "ip_or_empty")]
    pub ip: Option<IpAddr>,
    /// First contact.
    pub(crate) first_seen: DateTime<Local>,
    /// Last contact.
    pub(crate) last_contact: DateTime<Local>,
    /// Workflow state.
    pub state: State,
    /// Why it is FAILED.
    pub(crate) fail_reason: Option<String>,
    /// The state it failed in (resume returns there).
    pub(crate) failed_in: Option<State>,
    /// Last error the device reported for the current step.
    pub last_error: Option<String>,
    /// The job in flight.
    #[serde(deserialize_with = "pending_or_legacy")]
    pub(crate) pending: Option<Pending>,
    /// Failed attempts at the current step.
    pub attempts: u32,
    /// Image installs tried since the last success.
    pub(crate) upgrade_attempts: u32,
    /// `show app-hosting list` checks since the EEM applet ran.
    pub(crate) guestshell_checks: u32,
    /// config-register applied (the CONFIG_REG step's first half).
    pub(crate) config_reg_applied: bool,
    /// A `write memory` succeeded: the router has a startup config from us.
    pub(crate) startup_saved: bool,
    /// Running version from device-info.
    pub(crate) current_version: String,
    /// Version it ran when we first asked.
    pub(crate) initial_version: String,
    /// Boot image from device-info (`bootflash:packages.conf` in install mode).
    pub(crate) image_file: String,
    /// Target image file name, when one applies.
    pub(crate) target_image: String,
    /// Bootflash free bytes from the last device-info.
    pub(crate) bootflash_free: Option<i64>,
    /// Guestshell tarball copied.
    pub(crate) tarball_done: bool,
    /// Python script copied.
    pub(crate) script_done: bool,
    /// Day-0 config applied (file name).
    pub(crate) config_file: Option<String>,
    /// Output of the Python script.
    pub(crate) script_output: Option<String>,
    /// When it reached FINISHED.
    pub(crate) finished_at: Option<DateTime<Local>>,
    /// Its DHCP lease from our responder, when it has one.
    pub(crate) lease: Option<DeviceLease>,
    /// The host this serial is bound to: only it may move the record or get its config.
    pub(crate) binding: Option<Binding>,
    /// The newest request for this serial from another host, refused, for the operator.
    pub(crate) claim: Option<Claim>,
    /// What its agent answered to capability (asked once at first contact).
    pub(crate) capabilities: Option<Arc<Vec<String>>>,
    /// What its SUDI proved, or why it did not (device-auth).
    pub(crate) sudi: Option<Sudi>,
    /// Its move to HTTPS (`[http] https`).
    pub(crate) tls: Option<TlsMove>,
    /// Its day-0 config as rendered at first contact. Shared (`Arc`) like the other parts that
    /// rarely change, so the copy every update takes to see what changed costs no allocation.
    pub(crate) day0: Option<Arc<Day0>>,
    /// Cleanup jobs still to run before the image fits.
    pub(crate) cleanup: Vec<Job>,
    /// The cleanup ran since the last space check (it runs once; then the router parks).
    pub(crate) cleanup_done: bool,
    /// Checks made before FINISHED, in order.
    pub(crate) evidence: Arc<Vec<Evidence>>,
    /// Outcome of each step, by state name.
    pub(crate) steps: Arc<std::collections::BTreeMap<String, StepResult>>,
    /// What happened, oldest first (the last [`HISTORY_LIMIT`] lines).
    pub(crate) history: Vec<Event>,
    /// History lines ever logged: numbers them, so a change writes only its new lines and
    /// writing one twice adds none twice.
    pub(crate) logged: u64,
    /// The bench that drives it (set by the store: the host name, or `[state] bench`).
    pub(crate) bench: String,
}

impl Default for Device {
    fn default() -> Self {
        let epoch = DateTime::<Local>::from(std::time::UNIX_EPOCH);
        Device {
            serial: String::new(),
            udi: String::new(),
            pid: String::new(),
            vid: String::new(),
            ip: None,
            first_seen: epoch,
            last_contact: epoch,
            state: State::NewDevice,
            fail_reason: None,
            failed_in: None,
            last_error: None,
            pending: None,
            attempts: 0,
            upgrade_attempts: 0,
            guestshell_checks: 0,
            config_reg_applied: false,
            startup_saved: false,
            current_version: String::new(),
            initial_version: String::new(),
            image_file: String::new(),
            target_image: String::new(),
            bootflash_free: None,
            tarball_done: false,
            script_done: false,
            config_file: None,
            script_output: None,
            finished_at: None,
            lease: None,
            binding: None,
            claim: None,
            capabilities: None,
            sudi: None,
            tls: None,
            day0: None,
            cleanup: Vec::new(),
            cleanup_done: false,
            evidence: Arc::default(),
            steps: Arc::default(),
            history: Vec::new(),
            logged: 0,
            bench: String::new(),
        }
    }
}

impl Device {
    /// A record for a router seen for the first time.
    pub fn new(serial: &str, udi: &str, pid: &str, vid: &str, now: DateTime<Local>) -> Device {
        Device {
            serial: serial.to_string(),
            udi: udi.to_string(),
            pid: pid.to_string(),
            vid: vid.to_string(),
            first_seen: now,
            last_contact: now,
            ..Device::default()
        }
    }

    /// Forgets everything the workflow did, for a router that starts over (wiped, or reset by
    /// an operator): identity, first contact, address, binding, lease, the day-0 config it was given and
    /// history stay.
    pub(crate) fn start_over(&mut self) {
        let fresh = Device::new(
            &self.serial,
            &self.udi,
            &self.pid,
            &self.vid,
            self.first_seen,
        );
        *self = Device {
            day0: self.day0.take(),
            ip: self.ip.take(),
            lease: self.lease.take(),
            binding: self.binding.take(),
            claim: self.claim.take(),
            // The chassis is the same: a proof stays; anything else is asked again.
            sudi: self.sudi.take().filter(Sudi::verified),
            last_contact: self.last_contact,
            history: std::mem::take(&mut self.history),
            logged: self.logged,
            ..fresh
        };
    }

    /// Appends a history line at `now`.
    /// Lines longer than [`LINE_BYTES`] are cut; the oldest lines go when the history is over
    /// its line or byte cap ([`trim_history`]).
    pub(crate) fn log(&mut self, now: DateTime<Local>, text: impl Into<String>) {
        let mut text = text.into();
        if text.len() > LINE_BYTES {
            text = cut_text(&text, LINE_BYTES).into_owned();
        }
        self.history.push(Event {
            at: now,
            state: self.state,
            text,
        });
        trim_history(&mut self.history);
        self.logged += 1;
    }

    /// Records how step `step` ended.
    pub(crate) fn step(&mut self, step: State, result: impl Into<String>, now: DateTime<Local>) {
        Arc::make_mut(&mut self.steps).insert(
            step.as_str().to_string(),
            StepResult {
                result: result.into(),
                at: now,
            },
        );
    }

    /// True when `other` differs from `self` only in contact bookkeeping (last contact, ip),
    /// i.e. nothing that must be persisted before replying. History is compared by its count
    /// ([`Device::log`] is the only way a line is added), so `self` may be a copy made without
    /// its history.
    pub(crate) fn same_durable(&self, other: &Device) -> bool {
        // Every field but `last_contact` and `ip` (destructured so a new field cannot be
        // forgotten here).
        let Device {
            serial,
            udi,
            pid,
            vid,
            ip: _,
            first_seen,
            last_contact: _,
            state,
            fail_reason,
            failed_in,
            last_error,
            pending,
            attempts,
            upgrade_attempts,
            guestshell_checks,
            config_reg_applied,
            startup_saved,
            current_version,
            initial_version,
            image_file,
            target_image,
            bootflash_free,
            tarball_done,
            script_done,
            config_file,
            script_output,
            finished_at,
            lease,
            binding,
            claim,
            capabilities,
            sudi,
            tls,
            day0,
            cleanup,
            cleanup_done,
            evidence,
            steps,
            history: _,
            logged,
            bench,
        } = self;
        *serial == other.serial
            && *udi == other.udi
            && *pid == other.pid
            && *vid == other.vid
            && *first_seen == other.first_seen
            && *state == other.state
            && *fail_reason == other.fail_reason
            && *failed_in == other.failed_in
            && *last_error == other.last_error
            && *pending == other.pending
            && *attempts == other.attempts
            && *upgrade_attempts == other.upgrade_attempts
            && *guestshell_checks == other.guestshell_checks
            && *config_reg_applied == other.config_reg_applied
            && *startup_saved == other.startup_saved
            && *current_version == other.current_version
            && *initial_version == other.initial_version
            && *image_file == other.image_file
            && *target_image == other.target_image
            && *bootflash_free == other.bootflash_free
            && *tarball_done == other.tarball_done
            && *script_done == other.script_done
            && *config_file == other.config_file
            && *script_output == other.script_output
            && *finished_at == other.finished_at
            && *lease == other.lease
            && *binding == other.binding
            && claim.as_ref().map(Claim::durable) == other.claim.as_ref().map(Claim::durable)
            && *capabilities == other.capabilities
            && *sudi == other.sudi
            && *tls == other.tls
            && *day0 == other.day0
            && *cleanup == other.cleanup
            && *cleanup_done == other.cleanup_done
            && *evidence == other.evidence
            && *steps == other.steps
            && *logged == other.logged
            && *bench == other.bench
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_contact_bookkeeping_is_not_durable() {
        let now = chrono::Local::now();
        let a = Device::new("S", "u", "p", "v", now);
        let mut b = a.clone();
        b.last_contact = now + chrono::Duration::seconds(5);
        b.ip = "198.51.100.9".parse().ok();
        assert!(a.same_durable(&b));
        b.attempts = 1;
        assert!(!a.same_durable(&b));
        let mut c = a.clone();
        c.log(now, "x");
        assert!(!a.same_durable(&c));
    }

    #[test]
    fn a_legacy_untyped_pending_job_reads_as_none() {
        let now = chrono::Local::now();
        let mut d = Device::new("S", "u", "p", "v", now);
        d.pending = Some(Pending {
            job: Job::WriteMemory,
            correlator: "C1".into(),
            sent_at: now,
            interrupted: false,
        });
        let json = serde_json::to_value(&d).unwrap();
        let back: Device = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.pending, d.pending);
        let mut old = json;
        old["pending"] = serde_json::json!({"service": "cli-exec", "correlator": "C1",
            "summary": "cli-exec \"write memory\"", "sent_at": now, "interrupted": false});
        let back: Device = serde_json::from_value(old).unwrap();
        assert_eq!(back.pending, None);
        assert_eq!(back.serial, "S");
    }

    #[test]
    fn names_round_trip_through_serde_and_parse() {
        for st in State::ALL {
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.as_str()));
            assert_eq!(
                State::parse(&format!("  {}  ", st.as_str().to_lowercase())),
                Some(st)
            );
        }
        assert_eq!(State::parse("NOPE"), None);
    }
}
