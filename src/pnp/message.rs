//! PnP messages: what a device sends, typed; what we send, rendered.
//!
//! Owns the mapping between the PnP XML envelope (`docs/pnp-protocol.md` §4–§7, Cisco PnP XSD
//! 2017) and Rust values. Parsing is tolerant exactly as §11 asks: local names, the service taken
//! from the literal `xmlns` of `<response>`, one or many repeated children, unknown elements and
//! attributes ignored. Rendering follows the shapes of the XSD samples and of the requests a
//! server used successfully against ISR1k routers (`vectors/derived/*.ianz94.xml`).

use super::xml::{self, Element, XmlError, escape};
use crate::domain::job::{
    ConfigLine, DeviceInfo, ErrorInfo, FileSystem, Job, JobResult, LineResult, MAX_BACKOFF_SECS,
    Output, ReloadReason, Service, SudiAnswer, WorkRequest,
};

/// Why a well-formed XML body is still not a PnP message we can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Not XML we accept.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The root is not `<pnp>`.
    #[error("root element is <{0}>, expected <pnp>")]
    NotPnp(String),
    /// `udi` missing or without a usable `SN:` field.
    #[error("bad or missing udi {0:?}: expected PID:<pid>,VID:<vid>,SN:<serial>")]
    BadUdi(String),
    /// No `info`/`response` child, or one missing a required attribute.
    #[error("not a PnP {0}")]
    Shape(&'static str),
}

/// The unique device identifier, kept verbatim for echoing and split into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udi {
    /// The attribute exactly as sent (echoed unchanged).
    pub(crate) raw: String,
    /// Product id, e.g. `C1131-8PWB`.
    pub pid: String,
    /// Version id (hardware revision), may be empty.
    pub vid: String,
    /// Serial number; safe to use as a file name (checked).
    pub serial: String,
}

impl Udi {
    /// Splits `PID:<pid>,VID:<vid>,SN:<sn>` on `,` then on each field's first `:` (§4: PIDs hold
    /// `-` and `/`, VID may be empty). The serial must be a safe file-name component.
    pub(crate) fn parse(raw: &str) -> Result<Udi, ProtocolError> {
        let (mut pid, mut vid, mut serial) = (String::new(), String::new(), None);
        for field in raw.split(',') {
            let Some((key, value)) = field.split_once(':') else {
                continue;
            };
            match key.trim() {
                "PID" => pid = value.trim().to_string(),
                "VID" => vid = value.trim().to_string(),
                "SN" => serial = Some(value.trim().to_string()),
                _ => {}
            }
        }
        // PID and VID end up in files, tables and terminals: 64 printable ASCII characters at
        // most, like the serial (real ones: `C1131-8PWB`, `ISR4451-X/K9`, `V01`).
        let plain = |s: &str| s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
        // The whole udi is echoed in every answer and kept in the record.
        let raw_ok = raw.len() <= 256 && raw.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        match serial {
            Some(sn) if raw_ok && is_safe_serial(&sn) && plain(&pid) && plain(&vid) => Ok(Udi {
                raw: raw.to_string(),
                pid,
                vid,
                serial: sn,
            }),
            _ => Err(ProtocolError::BadUdi(raw.chars().take(120).collect())),
        }
    }
}

/// A serial we accept: 1–64 of `[A-Za-z0-9._-]`, not starting with `.` (used in file names).
pub(crate) fn is_safe_serial(sn: &str) -> bool {
    !sn.is_empty()
        && sn.len() <= 64
        && !sn.starts_with('.')
        && sn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A protocol fault (§7.2): the device did not understand our request; no correlator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The udi, when the root carried a usable one.
    pub(crate) udi: Option<Udi>,
    /// `faultcode`.
    pub code: String,
    /// `faultstring` plus any `details` text.
    pub text: String,
}

/// Anything a device POSTs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceMessage {
    /// A work request (`<info>`), from the router `udi`.
    WorkRequest {
        /// Who is asking.
        udi: Udi,
        /// What the workflow reads of it.
        request: WorkRequest,
    },
    /// A job result (`<response>`), from the router `udi`.
    Response {
        /// Who answers.
        udi: Udi,
        /// The answer, reduced to what the workflow reads.
        result: JobResult,
    },
    /// A protocol fault.
    Fault(Fault),
}

const NS_PREFIX: &str = "urn:cisco:pnp:";

/// Longest text kept of one field a device sends (a version, an error message, a reload
/// reason): real ones are a line.
const FIELD_BYTES: usize = 1024;
/// Longest CLI output kept of one answer (a `show` the workflow reads; a script's output).
const OUTPUT_BYTES: usize = 64 << 10;
/// Most cli-config result entries read (a day-0 config is a few hundred lines).
const MAX_CONFIG_LINES: usize = 8192;
/// Longest correlator accepted: it is echoed and kept (real ones are ~40 characters).
const CORRELATOR_BYTES: usize = 256;

/// `text` bounded to `max` bytes, marked when cut.
fn bounded(text: String, max: usize) -> String {
    match crate::domain::device::cut_text(&text, max) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(cut) => cut,
    }
}

/// A field's text at `path`, bounded to [`FIELD_BYTES`].
fn field(e: &Element, path: &[&str]) -> Option<String> {
    e.text_at(path).map(|t| bounded(t, FIELD_BYTES))
}

fn correlator_of(e: &Element, missing: &'static str) -> Result<String, ProtocolError> {
    let c = e.attr("correlator").ok_or(ProtocolError::Shape(missing))?;
    if c.len() > CORRELATOR_BYTES || c.chars().any(char::is_control) {
        return Err(ProtocolError::Shape(
            "correlator longer than 256 bytes or holding control characters",
        ));
    }
    Ok(c.to_string())
}

/// Parses a device's POST body into a [`DeviceMessage`]. Every text kept from it is bounded
/// (fields to 1 KB, CLI output to 64 KB, marked when cut).
pub fn parse_device_message(body: &[u8]) -> Result<DeviceMessage, ProtocolError> {
    let root = xml::parse(body)?;
    if root.name != "pnp" {
        return Err(ProtocolError::NotPnp(root.name.chars().take(40).collect()));
    }
    let udi_raw = root.attr("udi").unwrap_or_default().to_string();
    if let Some(resp) = root.child("response") {
        let service = bounded(
            resp.attr("xmlns")
                .and_then(|ns| ns.strip_prefix(NS_PREFIX))
                .unwrap_or_default()
                .to_string(),
            64,
        );
        if service == "fault" || resp.child("fault").is_some() {
            return Ok(DeviceMessage::Fault(parse_fault(&root, resp)));
        }
        let udi = Udi::parse(&udi_raw)?;
        let correlator = correlator_of(resp, "response: no correlator")?;
        let success = match resp.attr("success").map(str::trim) {
            Some("1") | Some("true") => true,
            Some("0") | Some("false") => false,
            _ => return Err(ProtocolError::Shape("response: success is not 1 or 0")),
        };
        if service.is_empty() {
            return Err(ProtocolError::Shape(
                "response: no urn:cisco:pnp:<service> xmlns",
            ));
        }
        let error = resp.child("errorInfo").map(parse_error_info);
        let known = Service::parse(&service);
        let output = match known {
            Some(Service::DeviceInfo) if success => Output::DeviceInfo(device_info(resp)),
            Some(Service::CliExec) if success => Output::Cli(exec_output(resp)),
            Some(Service::CliConfig) if success => Output::Config(config_lines(resp)),
            Some(Service::Capability) if success => Output::Capabilities(capabilities(resp)),
            Some(Service::DeviceAuth) if success => Output::DeviceAuth(sudi_answer(resp)),
            _ => Output::None,
        };
        return Ok(DeviceMessage::Response {
            udi,
            result: JobResult {
                service: known,
                service_name: service,
                correlator,
                success,
                error,
                output,
            },
        });
    }
    if let Some(info) = root.child("info") {
        let udi = Udi::parse(&udi_raw)?;
        let correlator = correlator_of(info, "work request: no correlator")?;
        let reason = info.path(&["reason", "reload"]).map(|r| ReloadReason {
            message: field(r, &["message"]).unwrap_or_default(),
            code: field(r, &["code"]).unwrap_or_default(),
            startup_config_present: r
                .text_at(&["startupConfigPresent"])
                .map(|t| t.eq_ignore_ascii_case("true")),
        });
        return Ok(DeviceMessage::WorkRequest {
            udi,
            request: WorkRequest { correlator, reason },
        });
    }
    Err(ProtocolError::Shape(
        "message: <pnp> holds neither <info> nor <response>",
    ))
}

fn parse_error_info(e: &Element) -> ErrorInfo {
    let code_text = field(e, &["errorCode"]).unwrap_or_default();
    ErrorInfo {
        code: code_text
            .split_whitespace()
            .last()
            .and_then(|t| t.parse().ok()),
        code_text,
        message: field(e, &["errorMessage"]).unwrap_or_default(),
    }
}

fn parse_fault(root: &Element, resp: &Element) -> Fault {
    let fault = resp.child("fault").unwrap_or(resp);
    let mut details = Vec::new();
    fault.descendants("details", &mut details);
    let mut text = fault.text_at(&["faultstring"]).unwrap_or_default();
    for d in details {
        let t = d.text.trim();
        if !t.is_empty() {
            text.push_str(" (");
            text.push_str(t);
            text.push(')');
        }
        if text.len() > FIELD_BYTES {
            break;
        }
    }
    Fault {
        udi: root.attr("udi").and_then(|u| Udi::parse(u).ok()),
        code: field(fault, &["faultcode"]).unwrap_or_default(),
        text: bounded(text, FIELD_BYTES),
    }
}

/// Extracts [`DeviceInfo`] from a device-info `<response>`.
fn device_info(resp: &Element) -> DeviceInfo {
    let image = resp.child("imageInfo");
    let mut file_systems = Vec::new();
    if let Some(list) = resp.child("fileSystemList") {
        for fs in list.children_named("fileSystem").take(64) {
            let num = |k: &str| {
                fs.attr(k)
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .unwrap_or(0)
            };
            file_systems.push(FileSystem {
                name: bounded(
                    fs.attr("name")
                        .unwrap_or_default()
                        .trim_end_matches(':')
                        .to_string(),
                    64,
                ),
                free: num("freespace"),
            });
        }
    }
    DeviceInfo {
        version: image.and_then(|i| field(i, &["versionString"])),
        image_file: image.and_then(|i| field(i, &["imageFile"])),
        config_reg: image.and_then(|i| field(i, &["configReg"])),
        file_systems,
    }
}

/// All CLI output of a cli-exec `<response>`: every `dialogueLog/received/text`, joined.
fn exec_output(resp: &Element) -> String {
    let mut logs = Vec::new();
    resp.descendants("dialogueLog", &mut logs);
    let mut out = String::new();
    for log in logs {
        if let Some(text) = log.path(&["received", "text"]) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text.text.trim_matches(['\r', '\n']));
        }
        if out.len() > OUTPUT_BYTES {
            break;
        }
    }
    bounded(out, OUTPUT_BYTES)
}

/// Every `resultEntry` of a cli-config `<response>` (§6.2); an entry without one of the four
/// result elements reads as `notExecuted`.
fn config_lines(resp: &Element) -> Vec<ConfigLine> {
    let mut entries = Vec::new();
    resp.descendants("resultEntry", &mut entries);
    entries
        .into_iter()
        .take(MAX_CONFIG_LINES)
        .map(|e| ConfigLine {
            line: bounded(
                e.attr("cliString").unwrap_or_default().to_string(),
                FIELD_BYTES,
            ),
            result: if e.child("success").is_some() {
                LineResult::Success
            } else if e.child("failure").is_some() {
                LineResult::Failure
            } else if e.child("invalid").is_some() {
                LineResult::Invalid
            } else {
                LineResult::NotExecuted
            },
            text: field(e, &["text"]).unwrap_or_default(),
        })
        .collect()
}

/// Most capabilities read of one answer (the 3945 sample lists 26).
const MAX_CAPABILITIES: usize = 128;
/// Longest `sudi-cert` kept: base64 of a PEM of a few certificates (one is ~2 KB).
const SUDI_CERT_BYTES: usize = 24 << 10;

/// `supportedCapabilities/capability` of a capability `<response>` (§6.10).
fn capabilities(resp: &Element) -> Vec<String> {
    let mut caps = Vec::new();
    resp.descendants("capability", &mut caps);
    caps.into_iter()
        .take(MAX_CAPABILITIES)
        .map(|c| bounded(c.text.trim().to_string(), 128))
        .filter(|c| !c.is_empty())
        .collect()
}

/// The fields of a device-auth `<response>`, found by local name anywhere under it: the NSO
/// netsim client leaves out the `<auth>` wrapper (`docs/identity.md` §1). Note the schema's
/// `hashing-method` (the request says `hash-method`).
fn sudi_answer(resp: &Element) -> SudiAnswer {
    let text = |name: &str, max: usize| {
        let mut found = Vec::new();
        resp.descendants(name, &mut found);
        found
            .first()
            .map(|e| bounded(e.text.trim().to_string(), max))
    };
    SudiAnswer {
        signature: text("challenge-response", 4096).unwrap_or_default(),
        cert: text("sudi-cert", SUDI_CERT_BYTES).unwrap_or_default(),
        hashing: text("hashing-method", 64),
    }
}

fn pnp(udi: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{}\">\n{}</pnp>\n",
        escape(udi),
        inner
    )
}

/// Renders `job` as a `<request>` for the device `udi`, echoing its `correlator`.
pub fn render_request(udi: &str, correlator: &str, job: &Job) -> String {
    let body = if let Some(lines) = job.config_lines() {
        // §6.2: configApply with the lines as cli-config-data.
        let cmds: String = lines
            .iter()
            .map(|l| format!("        <cmd>{}</cmd>\n", escape(l)))
            .collect();
        format!(
            "    <configApply details=\"all\">\n      <config-data>\n      <cli-config-data>\n{cmds}      </cli-config-data>\n      </config-data>\n    </configApply>\n"
        )
    } else if let Some(cmd) = job.exec_command() {
        // §6.3: execCLI, the XSD's maxWait and xsd attributes as ISR1k peers send them; a
        // `dialogue` answers the command's prompt (match "embedded": anywhere in the output).
        let dialogue = job.dialogue().map_or_else(String::new, |(expect, reply)| {
            format!(
                "      <dialogue>\n        <expect match=\"embedded\">{}</expect>\n        <reply>{}</reply>\n      </dialogue>\n",
                escape(expect),
                escape(reply)
            )
        });
        format!(
            "    <execCLI maxWait=\"PT60S\" xsd=\"false\">\n      <cmd>{}</cmd>\n{dialogue}    </execCLI>\n",
            escape(&cmd)
        )
    } else {
        match job {
            Job::DeviceInfo => "    <deviceInfo type=\"all\"/>\n".into(),
            Job::ImageInstall {
                url,
                md5,
                destination,
                ..
            } => format!(
                "    <image>\n      <copy>\n        <source>\n          <location>{}</location>\n          <checksum>{}</checksum>\n        </source>\n        <destination>\n          <location>{}</location>\n        </destination>\n      </copy>\n    </image>\n",
                escape(url),
                escape(md5),
                escape(destination)
            ),
            Job::FileTransfer {
                url, destination, ..
            } => format!(
                "    <fileTransfer>\n      <copy>\n        <source>\n          <location>{}</location>\n        </source>\n        <destination>\n          <location>{}</location>\n        </destination>\n      </copy>\n    </fileTransfer>\n",
                escape(url),
                escape(destination)
            ),
            Job::ConfigUpgrade { url, .. } => format!(
                "    <config details=\"all\">\n      <copy>\n        <source>\n          <location>{}</location>\n        </source>\n      </copy>\n    </config>\n    <noReload/>\n",
                escape(url)
            ),
            Job::Backoff { seconds, reason } => {
                // XSD backoff: hours 0..47, minutes 0..59, seconds 0..59; all absent means 15 min.
                let s = (*seconds).clamp(1, MAX_BACKOFF_SECS);
                format!(
                    "    <backoff>\n      <reason>{}</reason>\n      <callbackAfter>\n        <hours>{}</hours>\n        <minutes>{}</minutes>\n        <seconds>{}</seconds>\n      </callbackAfter>\n    </backoff>\n",
                    escape(reason),
                    s / 3600,
                    (s / 60) % 60,
                    s % 60
                )
            }
            Job::Terminate { reason } => format!(
                "    <backoff>\n      <reason>{}</reason>\n      <terminate/>\n    </backoff>\n",
                escape(reason)
            ),
            // §6.10: an empty request.
            Job::Capability => String::new(),
            // XSD pnp_certificate_install_body (docs/identity.md §3): the clock first (the
            // schema's years are 1993..2035), the trustpoint from a URI, then the reconnect.
            Job::CertificateInstall {
                ca_url,
                clock,
                host,
                port,
            } => {
                use chrono::{Datelike, Timelike};
                let address = match host.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(v4)) => format!("<ipv4>{v4}</ipv4>"),
                    Ok(std::net::IpAddr::V6(v6)) => format!("<ipv6>{v6}</ipv6>"),
                    Err(_) => format!("<host>{}</host>", escape(host)),
                };
                format!(
                    "    <certificateInstall>\n      <cert>\n        <set>\n          <clock><year>{}</year><month>{}</month><day>{}</day><hour>{}</hour><min>{}</min><sec>{}</sec></clock>\n        </set>\n        <install>\n          <trustpoint>\n            <label>pnplabel</label>\n            <copy><source><uri>{}</uri></source></copy>\n          </trustpoint>\n        </install>\n        <reconnect>\n          <primary-server>\n            <protocol>https</protocol>\n            <server-address>{address}<port>{port}</port></server-address>\n          </primary-server>\n        </reconnect>\n      </cert>\n    </certificateInstall>\n",
                    clock.year().clamp(1993, 2035),
                    clock.month(),
                    clock.day(),
                    clock.hour(),
                    clock.minute(),
                    clock.second(),
                    escape(ca_url)
                )
            }
            // XSD pnp_device_auth_body: what we accept, as Cisco's device_validation.py asks.
            Job::DeviceAuth { challenge } => format!(
                "    <deviceAuth>\n      <challenge-request>{}</challenge-request>\n      <encryption-method>RSA,ECDSA</encryption-method>\n      <hash-method>SHA256,SHA512</hash-method>\n    </deviceAuth>\n",
                escape(challenge)
            ),
            // Rendered above as cli-config / cli-exec.
            Job::SetConfigRegister { .. }
            | Job::WriteMemory
            | Job::RunEemApplet { .. }
            | Job::ShowAppHosting
            | Job::InstallGuestshell { .. }
            | Job::EnableGuestshell
            | Job::RunScript { .. }
            | Job::ListBootflash
            | Job::Cleanup { .. }
            | Job::Check { .. } => String::new(),
        }
    };
    pnp(
        udi,
        &format!(
            "  <request xmlns=\"urn:cisco:pnp:{}\" correlator=\"{}\">\n{body}  </request>\n",
            job.service(),
            escape(correlator)
        ),
    )
}

/// Renders the bye that answers every work response (§6.8).
pub fn render_bye(udi: &str, correlator: &str) -> String {
    pnp(
        udi,
        &format!(
            "  <info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{}\">\n    <workInfo>\n      <bye/>\n    </workInfo>\n  </info>\n",
            escape(correlator)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"PID:C1131-8PWB,VID:V01,SN:FGL1\"><response xmlns=\"urn:cisco:pnp:device-info\" correlator=\"C1\" success=\"1\"><imageInfo><versionString>17.3.4a</versionString></imageInfo><fileSystemList><fileSystem name=\"bootflash\" size=\"6286540800\" freespace=\"5438058496\"/></fileSystemList></response></pnp>";

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Arbitrary bytes: a clean error or a message, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_device_message(&bytes);
        }

        /// A valid device answer with bytes overwritten, inserted or cut never panics, and
        /// whatever still parses extracts without panicking either.
        #[test]
        fn mutated_messages_never_panic(
            edits in proptest::collection::vec((0usize..400, any::<u8>()), 0..10),
            insert in proptest::option::of((0usize..400, "[<>&;\"'/=a-z:#x0-9 ]{0,12}")),
            cut in 0usize..500,
        ) {
            let mut b = SAMPLE.as_bytes().to_vec();
            for (i, v) in edits {
                if let Some(x) = b.get_mut(i) { *x = v; }
            }
            if let Some((at, text)) = insert {
                let at = at.min(b.len());
                b.splice(at..at, text.bytes());
            }
            b.truncate(cut.max(1));
            if let Ok(DeviceMessage::Response { result, .. }) = parse_device_message(&b) {
                let _ = result.output;
            }
        }
    }

    #[test]
    fn udi_table() {
        let ok = [
            (
                "PID:C1131-8PWB,VID:V01,SN:FGL2548L0AW",
                "C1131-8PWB",
                "V01",
                "FGL2548L0AW",
            ),
            (
                "PID:ISR4451-X/K9,VID:V08,SN:FCZ230640AB",
                "ISR4451-X/K9",
                "V08",
                "FCZ230640AB",
            ),
            ("PID:7206VXR,VID:,SN:34835437", "7206VXR", "", "34835437"),
            ("SN:X1, PID:A:B", "A:B", "", "X1"),
        ];
        for (raw, pid, vid, sn) in ok {
            let u = Udi::parse(raw).unwrap();
            assert_eq!(
                (u.pid.as_str(), u.vid.as_str(), u.serial.as_str()),
                (pid, vid, sn)
            );
            assert_eq!(u.raw, raw);
        }
        for bad in [
            "",
            "PID:X,VID:Y",
            "SN:",
            "SN:../etc",
            "SN:a/b",
            "SN:.hidden",
            "garbage",
            "PID:C1131\n| FAKE | row,SN:X1",
            "PID:C1131\u{1b}[2J,SN:X1",
            "PID:C1131-8PWB,VID:V 01,SN:X1",
            &format!("PID:{},SN:X1", "P".repeat(65)),
        ] {
            assert!(Udi::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_info_code_is_last_token() {
        let el = xml::parse(b"<errorInfo><errorCode>PnP Service Error 1817</errorCode><errorMessage>same</errorMessage></errorInfo>").unwrap();
        let e = parse_error_info(&el);
        assert_eq!(e.code, Some(1817));
        assert_eq!(e.to_string(), "PnP Service Error 1817: same");
    }

    #[test]
    fn backoff_splits_seconds_and_clamps() {
        let x = render_request(
            "U",
            "C",
            &Job::Backoff {
                seconds: 3725,
                reason: "r".into(),
            },
        );
        assert!(
            x.contains("<hours>1</hours>")
                && x.contains("<minutes>2</minutes>")
                && x.contains("<seconds>5</seconds>"),
            "{x}"
        );
        let x = render_request(
            "U",
            "C",
            &Job::Backoff {
                seconds: 999_999,
                reason: "r".into(),
            },
        );
        assert!(
            x.contains("<hours>47</hours>") && x.contains("<minutes>59</minutes>"),
            "{x}"
        );
    }
}
