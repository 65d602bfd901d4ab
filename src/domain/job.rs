//! The jobs the workflow sends a router, and what a router answers, as typed values.
//!
//! A [`Job`] names what it does (set the config-register, save the config, install this image
//! ...) with its parameters; the PnP codec (the `pnp` module, a layer up) renders it as the service's
//! XML (`docs/pnp-protocol.md` §6) and reads the router's `<response>` into a [`JobResult`],
//! already reduced to what the workflow reads ([`Output`]). Nothing here knows XML.

use serde::{Deserialize, Serialize};

/// The longest backoff the PnP schema can say: `callbackAfter` hours 0..47, minutes and
/// seconds 0..59 (Cisco PnP XSD 2017, `backoff`).
pub(crate) const MAX_BACKOFF_SECS: u64 = 47 * 3600 + 59 * 60 + 59;

/// A PnP service (`urn:cisco:pnp:<service>`, `docs/pnp-protocol.md` §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// `cli-config` (§6.2).
    CliConfig,
    /// `cli-exec` (§6.3).
    CliExec,
    /// `device-info` (§6.1).
    DeviceInfo,
    /// `image-install` (§6.5).
    ImageInstall,
    /// `file-transfer` (§6.6).
    FileTransfer,
    /// `config-upgrade` (§6.4).
    ConfigUpgrade,
    /// `backoff` (§6.7), `terminate` included.
    Backoff,
    /// `capability` (§6.10): which services the router's agent offers.
    Capability,
    /// `device-auth` (§6.14, `docs/identity.md` §1): the router signs our challenge with its
    /// SUDI key.
    DeviceAuth,
    /// `certificate-install` (§6.13, `docs/identity.md` §3): the bench CA as trustpoint, the
    /// clock, and the move to HTTPS.
    CertificateInstall,
}

impl Service {
    /// Every service we send.
    pub(crate) const ALL: [Service; 10] = [
        Service::CliConfig,
        Service::CliExec,
        Service::DeviceInfo,
        Service::ImageInstall,
        Service::FileTransfer,
        Service::ConfigUpgrade,
        Service::Backoff,
        Service::Capability,
        Service::DeviceAuth,
        Service::CertificateInstall,
    ];

    /// The name in `urn:cisco:pnp:<name>`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Service::CliConfig => "cli-config",
            Service::CliExec => "cli-exec",
            Service::DeviceInfo => "device-info",
            Service::ImageInstall => "image-install",
            Service::FileTransfer => "file-transfer",
            Service::ConfigUpgrade => "config-upgrade",
            Service::Backoff => "backoff",
            Service::Capability => "capability",
            Service::DeviceAuth => "device-auth",
            Service::CertificateInstall => "certificate-install",
        }
    }

    /// The service of a name, if it is one we send.
    pub(crate) fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job the workflow sends, with everything needed to render it. Kept in the record while
/// in flight (so it survives a restart), hence serialisable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum Job {
    /// cli-config `config-register <value>`.
    SetConfigRegister {
        /// e.g. `0x2102`.
        value: String,
    },
    /// cli-exec `write memory`.
    WriteMemory,
    /// device-info `type="all"`.
    DeviceInfo,
    /// image-install with md5 and destination, no reload element (§6.5, §8: ISR1k reloads by
    /// itself).
    ImageInstall {
        /// File name under `images/`.
        file: String,
        /// Full URL of the image.
        url: String,
        /// Lower-case hex md5.
        md5: String,
        /// e.g. `bootflash:c1100-....bin`.
        destination: String,
    },
    /// file-transfer of a file under `files/`.
    FileTransfer {
        /// File name under `files/`.
        file: String,
        /// Full URL.
        url: String,
        /// e.g. `bootflash:guest-share/x.py`.
        destination: String,
    },
    /// config-upgrade of a day-0 config, merged into the running config, `noReload` (§6.4).
    ConfigUpgrade {
        /// The config's file name (`<SERIAL>.cfg` or the default).
        file: String,
        /// Full URL.
        url: String,
    },
    /// cli-exec `event manager run <applet>`.
    RunEemApplet {
        /// Applet name.
        applet: String,
    },
    /// cli-exec `show app-hosting list`.
    ShowAppHosting,
    /// cli-exec `app-hosting install appid guestshell package <package>`.
    InstallGuestshell {
        /// Where the tarball is on the router.
        package: String,
    },
    /// cli-exec `guestshell enable`.
    EnableGuestshell,
    /// cli-exec of the configured script command.
    RunScript {
        /// The command line.
        command: String,
    },
    /// cli-exec `dir bootflash:`: which old images a cleanup may delete.
    ListBootflash,
    /// cli-exec of one command that frees bootflash for the image (answering its `[y/n]`).
    Cleanup {
        /// The command line, e.g. `install remove inactive`.
        command: String,
    },
    /// cli-exec of one verification command before FINISHED.
    Check {
        /// The command line, e.g. `show startup-config | include ^hostname`.
        command: String,
    },
    /// backoff with `callbackAfter`.
    Backoff {
        /// Delay in seconds (the codec clamps it to the schema's 47h59m59s).
        seconds: u64,
        /// Free text reason.
        reason: String,
    },
    /// backoff `terminate`: the agent deletes its PnP profile.
    Terminate {
        /// Free text reason.
        reason: String,
    },
    /// capability: what the router's agent offers (asked at first contact: device-auth only
    /// where it is offered).
    Capability,
    /// device-auth with a fresh random challenge for the router to sign with its SUDI key.
    DeviceAuth {
        /// The challenge text (hex of 16 random bytes).
        challenge: String,
    },
    /// certificate-install: set the clock (the IOS PKI refuses to work without one, errors
    /// 3308/3309), install the bench CA as trustpoint `pnplabel`, reconnect over HTTPS.
    CertificateInstall {
        /// Where the router fetches the CA (plain HTTP: it is public).
        ca_url: String,
        /// The clock to set, UTC (the time the job is sent).
        clock: chrono::DateTime<chrono::Utc>,
        /// The address (or name) to reconnect to.
        host: String,
        /// The HTTPS port.
        port: u16,
    },
}

impl Job {
    /// The PnP service the job is sent as.
    pub fn service(&self) -> Service {
        match self {
            Job::SetConfigRegister { .. } => Service::CliConfig,
            Job::WriteMemory
            | Job::RunEemApplet { .. }
            | Job::ShowAppHosting
            | Job::InstallGuestshell { .. }
            | Job::EnableGuestshell
            | Job::RunScript { .. }
            | Job::ListBootflash
            | Job::Cleanup { .. }
            | Job::Check { .. } => Service::CliExec,
            Job::DeviceInfo => Service::DeviceInfo,
            Job::ImageInstall { .. } => Service::ImageInstall,
            Job::FileTransfer { .. } => Service::FileTransfer,
            Job::ConfigUpgrade { .. } => Service::ConfigUpgrade,
            Job::Backoff { .. } | Job::Terminate { .. } => Service::Backoff,
            Job::Capability => Service::Capability,
            Job::DeviceAuth { .. } => Service::DeviceAuth,
            Job::CertificateInstall { .. } => Service::CertificateInstall,
        }
    }

    /// The command line of a cli-exec job.
    pub(crate) fn exec_command(&self) -> Option<String> {
        Some(match self {
            Job::WriteMemory => "write memory".into(),
            Job::RunEemApplet { applet } => format!("event manager run {applet}"),
            Job::ShowAppHosting => "show app-hosting list".into(),
            Job::InstallGuestshell { package } => {
                format!("app-hosting install appid guestshell package {package}")
            }
            Job::EnableGuestshell => "guestshell enable".into(),
            Job::RunScript { command } | Job::Cleanup { command } | Job::Check { command } => {
                command.clone()
            }
            Job::ListBootflash => "dir bootflash:".into(),
            _ => return None,
        })
    }

    /// The prompt a cli-exec job answers and the answer (§6.3 `dialogue`): `install remove`
    /// asks `Do you want to remove the above files? [y/n]`. Other commands get none (`delete
    /// /force` does not prompt), so no reply can reach a prompt it was not meant for.
    pub(crate) fn dialogue(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Job::Cleanup { command } if command.starts_with("install remove") => {
                Some(("[y/n]", "y"))
            }
            _ => None,
        }
    }

    /// The configuration lines of a cli-config job.
    pub(crate) fn config_lines(&self) -> Option<Vec<String>> {
        match self {
            Job::SetConfigRegister { value } => Some(vec![format!("config-register {value}")]),
            _ => None,
        }
    }

    /// Short text for logs and history, e.g. `cli-exec "write memory"`.
    pub(crate) fn summary(&self) -> String {
        if let Some(cmd) = self.exec_command() {
            return format!("cli-exec {cmd:?}");
        }
        if let Some(lines) = self.config_lines() {
            return format!("cli-config {:?}", lines.join("; "));
        }
        match self {
            Job::DeviceInfo => "device-info all".into(),
            Job::ImageInstall { url, .. } => format!("image-install {}", without_token(url)),
            Job::FileTransfer {
                url, destination, ..
            } => format!("file-transfer {} -> {destination}", without_token(url)),
            // The token is a secret of the job: summaries reach the API, pages and logs.
            Job::ConfigUpgrade { url, .. } => format!("config-upgrade {}", without_token(url)),
            Job::Backoff { seconds, .. } => format!("backoff {seconds}s"),
            Job::Terminate { .. } => "backoff terminate".into(),
            Job::Capability => "capability".into(),
            Job::DeviceAuth { .. } => "device-auth (SUDI challenge)".into(),
            Job::CertificateInstall { host, port, .. } => {
                format!("certificate-install pnplabel, reconnect https://{host}:{port}")
            }
            _ => String::new(),
        }
    }
}

/// The path of a per-job download URL, `/dl/<serial>/<tag>/<dir>/<file>`: the download is
/// attributed to the job whose tag it carries (see `files::transfers`), not to an address.
pub(crate) fn download_path(serial: &str, tag: &str, dir: &str, file: &str) -> String {
    format!("/dl/{serial}/{tag}/{dir}/{file}")
}

/// `(serial, tag, rest)` of a per-job download path, `rest` being `images/<file>` or
/// `files/<file>`.
pub(crate) fn download_parts(path: &str) -> Option<(&str, &str, &str)> {
    let mut parts = path.strip_prefix("/dl/")?.splitn(3, '/');
    let (serial, tag, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let known = rest.starts_with("images/") || rest.starts_with("files/");
    (!serial.is_empty() && !tag.is_empty() && known).then_some((serial, tag, rest))
}

/// [`download_parts`] of a whole URL (`http://host:port/dl/...`), with the length of what
/// comes before the path.
pub(crate) fn download_parts_of_url(url: &str) -> Option<(usize, (&str, &str, &str))> {
    let i = url.find("/dl/")?;
    Some((i, download_parts(&url[i..])?))
}

/// A per-job URL (`.../day0/<SERIAL>/<token>/<file>`, `.../dl/<SERIAL>/<tag>/<dir>/<file>`)
/// with `<token>` in place of its token.
fn without_token(url: &str) -> String {
    if let Some((i, (serial, _, rest))) = download_parts_of_url(url) {
        return format!("{}/dl/{serial}/<token>/{rest}", &url[..i]);
    }
    match url.rsplitn(3, '/').collect::<Vec<_>>()[..] {
        [file, _token, head] if head.contains("/day0/") => format!("{head}/<token>/{file}"),
        _ => url.to_string(),
    }
}

impl Job {
    /// The job as it may be shown outside the appliance: its URL without its token.
    pub(crate) fn shown(&self) -> Job {
        let mut job = self.clone();
        if let Job::ConfigUpgrade { url, .. }
        | Job::ImageInstall { url, .. }
        | Job::FileTransfer { url, .. } = &mut job
        {
            *url = without_token(url);
        }
        job
    }

    /// The download URL of an image-install or file-transfer job.
    pub(crate) fn download_url(&self) -> Option<&str> {
        match self {
            Job::ImageInstall { url, .. } | Job::FileTransfer { url, .. } => Some(url),
            _ => None,
        }
    }
}

/// `<reason><reload>` of the first work request after a boot (§5, REAL CSR 17.3 capture).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadReason {
    /// e.g. `factory-reset`, `reload`.
    pub message: String,
    /// e.g. `PnP Service Info 2408`.
    pub(crate) code: String,
    /// `startupConfigPresent`; `Some(false)` = factory-fresh.
    pub startup_config_present: Option<bool>,
}

/// What the workflow reads of a work request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkRequest {
    /// Device-chosen correlator, echoed in our job.
    pub correlator: String,
    /// Present on the first request after each boot.
    pub reason: Option<ReloadReason>,
}

/// `errorInfo` of a `success="0"` response (§6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ErrorInfo {
    /// Numeric code: last token of `PnP Service Error NNNN` (as thl-cmk reads it).
    pub(crate) code: Option<u32>,
    /// `errorCode` text as sent.
    pub(crate) code_text: String,
    /// `errorMessage`.
    pub(crate) message: String,
}

impl std::fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code_text.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.code_text, self.message),
            (false, true) => f.write_str(&self.code_text),
            (true, false) => f.write_str(&self.message),
            (true, true) => f.write_str("device reported failure without errorInfo"),
        }
    }
}

/// One file system of a device-info answer (§6.1: sizes are 64-bit, names colon-free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSystem {
    /// e.g. `bootflash`.
    pub name: String,
    /// Free bytes.
    pub(crate) free: i64,
}

/// What we use of a device-info answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// `imageInfo/versionString`, trimmed.
    pub version: Option<String>,
    /// `imageInfo/imageFile`, e.g. `bootflash:packages.conf`.
    pub image_file: Option<String>,
    /// `imageInfo/configReg`, e.g. `0x2102`.
    pub config_reg: Option<String>,
    /// Every `fileSystemList/fileSystem`.
    pub file_systems: Vec<FileSystem>,
}

impl DeviceInfo {
    /// Free bytes on `bootflash` (else `flash`, as thl-cmk looks for either).
    pub fn bootflash_free(&self) -> Option<i64> {
        ["bootflash", "flash"]
            .iter()
            .find_map(|n| self.file_systems.iter().find(|f| f.name == *n))
            .map(|f| f.free)
    }
}

/// The service-specific part of a successful answer, as the codec read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Output {
    /// A device-info answer.
    DeviceInfo(DeviceInfo),
    /// What a cli-exec printed: every `dialogueLog/received/text`, joined.
    Cli(String),
    /// Each line of a cli-config as the device reports it (`resultEntry`, §6.2).
    Config(Vec<ConfigLine>),
    /// `supportedCapabilities/capability` of a capability answer (§6.10), e.g.
    /// `cisco:pnp:device-auth`.
    Capabilities(Vec<String>),
    /// A device-auth answer (`docs/identity.md` §1).
    DeviceAuth(SudiAnswer),
    /// Nothing the workflow reads (image-install, file-transfer, config-upgrade, backoff).
    #[default]
    None,
}

/// What a router answers to device-auth, as sent (bounded; verified by the workflow).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SudiAnswer {
    /// `challenge-response`: base64 of the signature over the challenge.
    pub(crate) signature: String,
    /// `sudi-cert`: base64 of the PEM text of its SUDI certificate.
    pub(crate) cert: String,
    /// `hashing-method`, e.g. `SHA256` (absent from some agents).
    pub(crate) hashing: Option<String>,
}

/// How the device reports one line of a cli-config (`resultEntry`: exactly one of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineResult {
    /// `<success/>`.
    Success,
    /// `<failure/>`.
    Failure,
    /// `<invalid/>`.
    Invalid,
    /// `<notExecuted/>`.
    NotExecuted,
}

/// One `resultEntry` of a cli-config answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLine {
    /// `cliString`: the line as applied.
    pub line: String,
    /// What the device says of it.
    pub result: LineResult,
    /// `text`: the CLI's output for it, which can hold an IOS error even on `<success/>`.
    pub text: String,
}

/// A router's answer to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// The service from `xmlns="urn:cisco:pnp:<svc>"`, when it is one we send.
    pub service: Option<Service>,
    /// The service name as sent (for messages about a service we do not know).
    pub service_name: String,
    /// Echo of our job's correlator.
    pub(crate) correlator: String,
    /// `success="1"`.
    pub success: bool,
    /// Failure details when `success="0"`.
    pub(crate) error: Option<ErrorInfo>,
    /// What the answer holds for the workflow.
    pub output: Output,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_name_their_service_command_and_summary() {
        let cases = [
            (
                Job::SetConfigRegister {
                    value: "0x2102".into(),
                },
                Service::CliConfig,
                "cli-config \"config-register 0x2102\"",
            ),
            (
                Job::WriteMemory,
                Service::CliExec,
                "cli-exec \"write memory\"",
            ),
            (
                Job::RunEemApplet {
                    applet: "InstallGuestShell".into(),
                },
                Service::CliExec,
                "cli-exec \"event manager run InstallGuestShell\"",
            ),
            (
                Job::ConfigUpgrade {
                    file: "default.cfg".into(),
                    url: "http://h/day0/S/5ec2e7/default.cfg".into(),
                },
                Service::ConfigUpgrade,
                "config-upgrade http://h/day0/S/<token>/default.cfg",
            ),
            (
                Job::Terminate { reason: "r".into() },
                Service::Backoff,
                "backoff terminate",
            ),
        ];
        for (job, service, summary) in cases {
            assert_eq!(job.service(), service, "{job:?}");
            assert_eq!(job.summary(), summary);
            let json = serde_json::to_string(&job).unwrap();
            assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), job, "{json}");
        }
        for s in Service::ALL {
            assert_eq!(Service::parse(s.as_str()), Some(s));
        }
        assert_eq!(Service::parse("fault"), None);
    }
}
