//! `pnp-appliance simulate`: emulated ISR1k routers driving a real PnP server over HTTP.
//!
//! Owns a device emulator faithful to `docs/pnp-protocol.md` §12: HELLO, then work requests
//! with `<reason>` after every boot and a fresh correlator each time; real HTTP downloads checked
//! against the md5 (1816 on mismatch, 1803 on 404, 1817 when already running it); a reload after
//! an image install once the next backoff is honoured; several file systems with 64-bit sizes;
//! plausible CLI output for every command the workflow sends; backoffs acknowledged and honoured
//! (scaled by `--time-scale`); capability answered with the services it knows, and, with
//! `--sudi-pki`, device-auth signed by a test SUDI (`docs/identity.md` §1; some forged or for
//! another serial on request); unknown requests answered with a §7 fault. A supervisor reads the
//! server's `/api/devices` and stops when every router is FINISHED or FAILED.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use md5::{Digest, Md5};

use crate::domain::ios::normalize_version;
use crate::pnp::xml::{self, Element, escape};

/// Settings of a simulation run.
#[derive(Debug, Clone)]
pub(crate) struct SimOptions {
    /// Server base URL, e.g. `http://127.0.0.1:8080`.
    pub(crate) server: String,
    /// Number of routers.
    pub(crate) devices: usize,
    /// Multiplies every wait (backoffs, idle polls, boot time).
    pub(crate) time_scale: f64,
    /// Give up after this long.
    pub(crate) timeout: Duration,
    /// This many routers (the first ones) have too little bootflash.
    pub(crate) low_bootflash: usize,
    /// This many routers (the last ones) lose power halfway through their first image download
    /// and boot again.
    pub(crate) vanish: usize,
    /// Serial prefix; serials are `<prefix><index:05>`.
    pub(crate) serial_prefix: String,
    /// Product id.
    pub(crate) pid: String,
    /// Version the routers run out of the box (IOS-XE short form).
    pub(crate) start_version: String,
    /// Seconds (scaled) a router spends carrying out each job before it answers, as a real
    /// router's CLI takes a moment; 0 answers at once (load as heavy as it gets).
    pub(crate) command_secs: f64,
    /// Each job takes `command_secs` × (1 ± up to this fraction), drawn per router and job
    /// (0..=1; 0: every router in lockstep).
    pub(crate) jitter: f64,
    /// Routers power on at random moments over this many seconds (scaled); 0: all at once.
    pub(crate) boot_spread: f64,
    /// Each router downloads at most this many KB/s, divided by the time scale (the real one:
    /// ~600 KB/s, `docs/pnp-protocol.md` §8.1); 0: as fast as the server sends.
    pub(crate) download_kbps: f64,
    /// Seconds (scaled) a reload into a new image takes (the real one: ~8 min).
    pub(crate) reload_secs: f64,
    /// This many routers (the first ones) arrive with old images filling bootflash to 193 MB
    /// free, as the public C1117 log shows: the target image fits only after a cleanup.
    pub(crate) full_bootflash: usize,
    /// This many routers (the last ones) have a Python script that dies with a traceback.
    pub(crate) failing_script: usize,
    /// Every router talks from this address (routers behind NAT or a relay); `None`: each from
    /// its own loopback address when the server is on loopback, else this host's.
    pub(crate) source: Option<std::net::IpAddr>,
    /// The routers carry SUDIs issued by the test PKI in this directory (created there when
    /// missing; its `sudi-roots.pem` goes in the server's `[identity] extra-roots`) and offer
    /// device-auth; `None`: they do not offer it.
    pub(crate) sudi_pki: Option<std::path::PathBuf>,
    /// This many routers (the first ones) sign the challenge with another key than their
    /// certificate's.
    pub(crate) forged_sudi: usize,
    /// This many routers (the ones after the forged) carry a SUDI issued for another serial.
    pub(crate) wrong_sudi: usize,
    /// The SUDIs are on RSA-2048 keys (as the ISR1k's), else P-256.
    pub(crate) sudi_rsa: bool,
    /// Copies (images, files, configs) go over the PnP agent's kept-alive connection, as a
    /// persistent HTTP client would reuse it; `false`: each copy on a connection of its own.
    pub(crate) copy_on_pnp_connection: bool,
    /// This many routers (the last ones) take the trustpoint of a certificate-install but
    /// never reconnect over HTTPS (a port blocked between them and the appliance).
    pub(crate) https_stuck: usize,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub(crate) struct SimSummary {
    /// Routers by final server state.
    pub(crate) states: HashMap<String, String>,
    /// Fail reasons reported by the server.
    pub(crate) reasons: HashMap<String, String>,
    /// Wall time.
    pub(crate) elapsed: Duration,
    /// Protocol exchanges completed.
    pub(crate) exchanges: u64,
    /// Problems the emulator noticed in server replies.
    pub(crate) anomalies: Vec<String>,
    /// Round-trip time of every PnP POST (work request or response), sorted.
    pub(crate) latencies: Vec<Duration>,
}

impl SimSummary {
    /// The `q` quantile (0..=1) of exchange latency.
    pub(crate) fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    /// True when every router is FINISHED.
    pub(crate) fn all_finished(&self, n: usize) -> bool {
        self.states.len() == n && self.states.values().all(|s| s == "FINISHED")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gs {
    Missing,
    Deployed,
    Starting(Instant),
    Running,
}

struct Router {
    serial: String,
    pid: String,
    udi: String,
    version: String,
    image_file: String,
    config_reg: String,
    bootflash_size: i64,
    bootflash_used: i64,
    files: HashMap<String, i64>,
    running_config: String,
    startup_config: String,
    /// Its Python script dies with a traceback.
    failing_script: bool,
    applets: HashSet<String>,
    startup_saved: bool,
    guestshell: Gs,
    /// `(message, startupConfigPresent)` for the first request after a boot.
    boot_reason: Option<(String, bool)>,
    /// Version and image file to boot after the post-install backoff.
    reload_into: Option<(String, String)>,
    seq: u64,
    terminated: bool,
    /// Loses power halfway through the next image download (once).
    vanish: bool,
    /// Draws its job times and power-on moment (seeded by its index: runs are repeatable).
    rng: rand::rngs::StdRng,
    /// Its PnP agent's HTTP client (kept alive between polls), bound to its own source address
    /// when the server is on loopback.
    client: reqwest::Client,
    /// The client its `copy` command downloads with. How IOS-XE's agent holds its connections
    /// was never captured (`docs/pnp-protocol.md` §3.1: "handle persistent and one-shot
    /// connections"). By default each copy opens a connection of its own and closes it, as a
    /// CLI `copy http:` with its own HTTP client would (assumed, not seen);
    /// `--copy-on-pnp-connection` reuses the agent's.
    copy: reqwest::Client,
    /// Its SUDI (with `--sudi-pki`), and whether it forges its signatures.
    sudi: Option<(crate::domain::sudi::test_pki::TestSudi, bool)>,
    /// Where it speaks PnP: the server's HTTP URL, or the HTTPS one a certificate-install
    /// named (until its next reload, when PnP starts over from its DHCP profile).
    server: String,
    /// Its index (its source address).
    index: usize,
    /// Takes trustpoints but never reconnects over HTTPS.
    https_stuck: bool,
    /// The CA it took as trustpoint `pnplabel`.
    trustpoint: Option<Vec<u8>>,
}

struct Shared {
    opts: SimOptions,
    /// The server is on loopback: each router talks from its own 127.1.x address.
    loopback: bool,
    client: reqwest::Client,
    stop: AtomicBool,
    exchanges: AtomicU64,
    anomalies: std::sync::Mutex<Vec<String>>,
    latencies: std::sync::Mutex<Vec<Duration>>,
}

impl Shared {
    fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.opts.time_scale).clamp(0.005, 3600.0))
    }

    fn anomaly(&self, text: String) {
        if let Ok(mut a) = self.anomalies.lock()
            && a.len() < 100
        {
            a.push(text);
        }
    }
}

/// Padded file-name form of a short version: `17.9.4a` → `17.09.04a`.
fn padded(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("17");
    let pad = |p: Option<&str>| {
        let p = p.unwrap_or("0");
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        let rest = &p[digits.len()..];
        format!("{:0>2}{rest}", digits)
    };
    format!("{major}.{}.{}", pad(parts.next()), pad(parts.next()))
}

impl Router {
    fn new(opts: &SimOptions, index: usize, (client, copy): Clients) -> Router {
        let serial = format!("{}{:05}", opts.serial_prefix, index + 1);
        let version = normalize_version(&opts.start_version).unwrap_or_else(|| "17.9.4a".into());
        let bootflash_size: i64 = 7_605_936_128;
        let image_file = format!("bootflash:c1100-universalk9.{}.SPA.bin", padded(&version));
        // On bootflash from the factory: the running image, and for some old ones beside it.
        let mut files = HashMap::from([(image_file.clone(), 706_422_748_i64)]);
        if index < opts.full_bootflash {
            files.insert(
                "bootflash:c1100-universalk9.17.03.04a.SPA.bin".into(),
                655_970_456,
            );
            files.insert(
                "bootflash:c1100-universalk9.16.12.04.SPA.bin".into(),
                bootflash_size - (193 << 20) - 706_422_748 - 655_970_456 - 600_000_000,
            );
        }
        let on_files: i64 = files.values().sum();
        let used = if index < opts.low_bootflash {
            bootflash_size - 400 * 1024 * 1024
        } else if index < opts.full_bootflash {
            // What the files above leave: 193 MB free.
            on_files + 600_000_000
        } else {
            1_200_000_000
        };
        Router {
            udi: format!("PID:{},VID:V01,SN:{serial}", opts.pid),
            pid: opts.pid.clone(),
            image_file,
            serial,
            version,
            config_reg: "0x2102".into(),
            bootflash_size,
            bootflash_used: used,
            files,
            running_config: String::new(),
            startup_config: String::new(),
            failing_script: index >= opts.devices.saturating_sub(opts.failing_script),
            applets: HashSet::new(),
            startup_saved: false,
            guestshell: Gs::Missing,
            boot_reason: Some(("factory-reset".into(), false)),
            reload_into: None,
            seq: 0,
            terminated: false,
            vanish: index >= opts.devices.saturating_sub(opts.vanish),
            rng: rand::SeedableRng::seed_from_u64(index as u64),
            client,
            copy,
            sudi: None,
            server: opts.server.clone(),
            index,
            https_stuck: index >= opts.devices.saturating_sub(opts.https_stuck),
            trustpoint: None,
        }
    }

    /// Seconds (unscaled) the next job takes: `command_secs`, varied by `jitter`.
    fn job_secs(&mut self, opts: &SimOptions) -> f64 {
        use rand::Rng;
        let vary = if opts.jitter > 0.0 {
            self.rng.random_range(-opts.jitter..=opts.jitter)
        } else {
            0.0
        };
        opts.command_secs * (1.0 + vary)
    }

    fn free(&self) -> i64 {
        self.bootflash_size - self.bootflash_used
    }

    fn correlator(&mut self) -> String {
        self.seq += 1;
        format!(
            "CiscoPnP-1.0-R{}-I1-P{}-T{}-2",
            self.serial.len(),
            std::process::id() % 1000,
            self.seq
        )
    }

    fn work_request(&mut self, correlator: &str) -> String {
        let reason = match self.boot_reason.take() {
            Some((message, startup)) => format!(
                "<reason><reload><message>{message}</message><code>PnP Service Info 2408</code><startupConfigPresent>{startup}</startupConfigPresent></reload></reason>"
            ),
            None => String::new(),
        };
        format!(
            "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{udi}\"><info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{correlator}\"><deviceId><udi>{udi}</udi><macAddress></macAddress><hostname>Router</hostname><authRequired>false</authRequired><viaProxy>false</viaProxy><securityAdvise>Password in clear text in unsecured transport</securityAdvise></deviceId>{reason}</info></pnp>",
            udi = escape(&self.udi)
        )
    }

    fn response(&self, service: &str, correlator: &str, ok: bool, inner: &str) -> String {
        format!(
            "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{}\"><response xmlns=\"urn:cisco:pnp:{service}\" correlator=\"{}\" success=\"{}\">{inner}</response></pnp>",
            escape(&self.udi),
            escape(correlator),
            u8::from(ok)
        )
    }

    fn error(&self, service: &str, correlator: &str, code: u32, msg: &str) -> String {
        let sev = if matches!(service, "file-transfer") {
            "ERROR"
        } else {
            "XSVC_ERROR"
        };
        self.response(
            service,
            correlator,
            false,
            &format!(
                "<errorInfo><errorSeverity>{sev}</errorSeverity><errorCode>PnP Service Error {code}</errorCode><errorMessage>{}</errorMessage></errorInfo>",
                escape(msg)
            ),
        )
    }

    fn device_info(&self, correlator: &str) -> String {
        let inner = format!(
            "<thisProfileName>pnp-zero-touch</thisProfileName><udi><primary-chassis>{udi}</primary-chassis></udi><imageInfo><versionString>{v}</versionString><imageFile>{img}</imageFile><imageHash></imageHash><returnToRomReason>reload</returnToRomReason><bootVariable></bootVariable><bootLdrVariable></bootLdrVariable><configVariable></configVariable><configReg>{cr}</configReg><configRegNext></configRegNext></imageInfo><hardwareInfo><hostname>Router</hostname><vendor>Cisco</vendor><platformName>{pid}</platformName><processorType>ARM</processorType><hwRevision>1.0</hwRevision><mainMemSize>4025475072</mainMemSize><ioMemSize>0</ioMemSize><boardId>{sn}</boardId><boardReworkId></boardReworkId><processorRev></processorRev><midplaneVersion></midplaneVersion><location></location><deviceType></deviceType></hardwareInfo><fileSystemList><fileSystem name=\"bootflash\" type=\"disk\" size=\"{size}\" freespace=\"{free}\" readable=\"true\" writable=\"true\"/><fileSystem name=\"webui\" type=\"disk\" size=\"0\" freespace=\"0\" readable=\"true\" writable=\"false\"/><fileSystem name=\"nvram\" type=\"nvram\" size=\"33554432\" freespace=\"33539072\" readable=\"true\" writable=\"true\"/></fileSystemList><profileInfo><profile profile-name=\"pnp-zero-touch\" discovery-created=\"true\" created-by=\"DHCP\"><primary-server><protocol>http</protocol><server-address><ipv4>198.51.100.1</ipv4></server-address><port>8080</port></primary-server></profile></profileInfo><stackInfo><stackable>false</stackable></stackInfo><deviceModeInfo><isControllerManaged>false</isControllerManaged><mustReloadToChange>true</mustReloadToChange><initialDeviceMode>autonomous</initialDeviceMode><newDeviceMode>autonomous</newDeviceMode></deviceModeInfo>",
            udi = escape(&self.udi),
            v = self.version,
            img = escape(&self.image_file),
            cr = self.config_reg,
            pid = escape(&self.pid),
            sn = self.serial,
            size = self.bootflash_size,
            free = self.free(),
        );
        self.response("device-info", correlator, true, &inner)
    }

    fn exec_reply(&self, correlator: &str, cmd: &str, output: &str) -> String {
        self.response(
            "cli-exec",
            correlator,
            true,
            &format!(
                "<execLog><dialogueLog><sent>{}</sent><received><text>{}</text></received></dialogueLog></execLog>",
                escape(cmd),
                escape(output)
            ),
        )
    }

    fn gs_tick(&mut self) {
        if let Gs::Starting(at) = self.guestshell
            && Instant::now() >= at
        {
            self.guestshell = Gs::Running;
        }
    }

    fn run_cli(&mut self, sh: &Shared, cmd: &str) -> String {
        self.gs_tick();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            ["write", "memory"] | ["copy", "running-config", "startup-config"] => {
                self.startup_saved = true;
                self.startup_config.clone_from(&self.running_config);
                "Building configuration...\n[OK]".into()
            }
            [
                "show",
                which @ ("running-config" | "startup-config"),
                "|",
                "include",
                pattern @ ..,
            ] => {
                let config = if *which == "running-config" {
                    &self.running_config
                } else {
                    &self.startup_config
                };
                match regex::Regex::new(&pattern.join(" ")) {
                    Ok(re) => config
                        .lines()
                        .filter(|l| re.is_match(l))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    Err(_) => format!("{cmd}\n   ^\n% Invalid input detected at '^' marker."),
                }
            }
            ["dir", "bootflash:"] => {
                let mut names: Vec<(&String, &i64)> = self.files.iter().collect();
                names.sort();
                let mut out = String::from("Directory of bootflash:/\n\n");
                for (i, (name, size)) in names.into_iter().enumerate() {
                    let short = name.strip_prefix("bootflash:").unwrap_or(name);
                    if !short.contains('/') {
                        out.push_str(&format!(
                            "{:>5}  -rw-   {size:>12}  Mar 3 2024 10:11:12 +00:00  {short}\n",
                            i + 12
                        ));
                    }
                }
                out.push_str(&format!(
                    "\n{} kbytes total ({} kbytes free)",
                    self.bootflash_size / 1024,
                    self.free() / 1024
                ));
                out
            }
            ["delete", "/force", path] => {
                let key = if path.starts_with("bootflash:") {
                    path.to_string()
                } else {
                    format!("bootflash:{path}")
                };
                if key == self.image_file {
                    return format!("%Error deleting {path} (Device or resource busy)");
                }
                match self.files.remove(&key) {
                    Some(size) => {
                        self.bootflash_used -= size;
                        String::new()
                    }
                    None => format!("%Error deleting {path} (No such file or directory)"),
                }
            }
            ["install", "remove", "inactive"] => {
                // Bundle mode (these routers boot a .bin): nothing installed is inactive.
                "install_remove: START\nNo inactive package(s) in software\nSUCCESS: install_remove"
                    .into()
            }
            ["event", "manager", "run", applet] => {
                if !self.applets.contains(*applet) {
                    return format!(
                        "EEM policy {applet} not registered with event manager\n%Error: applet not found"
                    );
                }
                // The applet enables iox and installs guestshell from the tarball on bootflash.
                let tarball = self
                    .files
                    .keys()
                    .any(|f| f.starts_with("bootflash:guestshell") && f.ends_with(".tar"));
                if tarball {
                    self.guestshell = Gs::Starting(Instant::now() + sh.scaled(30.0));
                }
                String::new()
            }
            ["show", "app-hosting", "list"] => match self.guestshell {
                Gs::Missing => "No App found".into(),
                Gs::Deployed => app_list("DEPLOYED"),
                Gs::Starting(_) => app_list("ACTIVATED"),
                Gs::Running => app_list("RUNNING"),
            },
            [
                "app-hosting",
                "install",
                "appid",
                "guestshell",
                "package",
                pkg,
            ] => {
                if self.files.contains_key(*pkg) {
                    self.guestshell = Gs::Deployed;
                    "Installing package 'bootflash:guestshell.tar' for 'guestshell'. Use 'show app-hosting list' for progress.".into()
                } else {
                    format!("%Error: package {pkg} not found")
                }
            }
            ["guestshell", "enable"] => match self.guestshell {
                Gs::Missing => "%Error: guestshell is not installed".into(),
                Gs::Running => "Guestshell enabled successfully".into(),
                _ => {
                    self.guestshell = Gs::Starting(Instant::now() + sh.scaled(10.0));
                    "Interface will be selected if configured in app-hosting\nPlease wait for completion\nguestshell installed successfully\nGuestshell enabled successfully".into()
                }
            },
            ["guestshell", "run", "python3", path, ..] => {
                if self.guestshell != Gs::Running {
                    return "% Error: guestshell is not running".into();
                }
                let on_flash = path
                    .strip_prefix("/bootflash/")
                    .or_else(|| path.strip_prefix("/flash/"))
                    .map(|p| format!("bootflash:{p}"))
                    .unwrap_or_else(|| path.to_string());
                match self.files.get(&on_flash) {
                    Some(_) if self.failing_script => format!(
                        "Traceback (most recent call last):\n  File \"{path}\", line 1, in <module>\n    import cli\nModuleNotFoundError: No module named 'cli'"
                    ),
                    Some(size) => format!(
                        "pnp script {on_flash} ({size} bytes) ran on {}\nhostname configured, done",
                        self.serial
                    ),
                    None => format!(
                        "python3: can't open file '{path}': [Errno 2] No such file or directory"
                    ),
                }
            }
            _ => format!("{cmd}\n   ^\n% Invalid input detected at '^' marker."),
        }
    }

    /// Downloads `url`; returns (bytes, md5) or the HTTP status / error text (status 1 = the
    /// router lost power mid-transfer).
    async fn download(&mut self, sh: &Shared, url: &str) -> Result<(i64, String), (u16, String)> {
        let cut_at = if self.vanish { Some(()) } else { None };
        let resp = self
            .copy
            .get(url)
            .send()
            .await
            .map_err(|e| (0, format!("download failed: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err((
                status.as_u16(),
                format!("%Error opening {url} (HTTP {status})"),
            ));
        }
        let (chunks, digest) = hasher();
        let mut total = 0i64;
        let resp_len = resp.content_length();
        let mut stream = resp.bytes_stream();
        let started = Instant::now();
        // Bytes per second this router reads at, as its real counterpart would.
        let rate = (sh.opts.download_kbps > 0.0)
            .then(|| sh.opts.download_kbps * 1024.0 / sh.opts.time_scale);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| (0, format!("download interrupted: {e}")))?;
            total += chunk.len() as i64;
            if let Some(rate) = rate {
                let due = Duration::from_secs_f64(total as f64 / rate);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            if cut_at.is_some() && resp_len.is_some_and(|l| total as u64 * 2 >= l) {
                self.vanish = false;
                return Err((1, "power lost mid-download".into()));
            }
            if total > self.free() {
                return Err((507, "%Error copying: No space left on device".into()));
            }
            if chunks.send(chunk).await.is_err() {
                return Err((0, HASHER_GONE.into()));
            }
        }
        drop(chunks);
        let md5 = digest.await.map_err(|_| (0, HASHER_GONE.to_string()))?;
        Ok((total, md5))
    }

    fn store(&mut self, dest: &str, size: i64) {
        if let Some(old) = self.files.insert(dest.to_string(), size) {
            self.bootflash_used -= old;
        }
        self.bootflash_used += size;
    }

    async fn handle(&mut self, sh: &Shared, req: &Element) -> String {
        let correlator = req.attr("correlator").unwrap_or_default().to_string();
        let service = req
            .attr("xmlns")
            .and_then(|n| n.strip_prefix("urn:cisco:pnp:"))
            .unwrap_or_default()
            .to_string();
        let loc = |path: &[&str]| req.text_at(path).unwrap_or_default();
        match service.as_str() {
            "capability" => {
                // §6.10: the services this agent answers, named `cisco:pnp:<service>`.
                let mut caps = vec![
                    "capability",
                    "cli-config",
                    "cli-exec",
                    "config-upgrade",
                    "device-info",
                    "file-transfer",
                    "image-install",
                    "backoff",
                    "work-info",
                ];
                if self.sudi.is_some() {
                    caps.push("device-auth");
                }
                let list: String = caps
                    .iter()
                    .map(|c| format!("<capability>cisco:pnp:{c}</capability>"))
                    .collect();
                self.response(
                    "capability",
                    &correlator,
                    true,
                    &format!("<supportedCapabilities>{list}</supportedCapabilities><supportedFeatures><feature>cisco:pnp:service-log</feature></supportedFeatures>"),
                )
            }
            "device-auth" if self.sudi.is_some() => {
                let challenge = loc(&["deviceAuth", "challenge-request"]);
                let answered = self
                    .sudi
                    .as_ref()
                    .map(|(s, forge)| s.answer(&challenge, *forge));
                match answered {
                    Some(Ok((sig, cert, method))) => self.response(
                        "device-auth",
                        &correlator,
                        true,
                        &format!("<auth><challenge-response>{sig}</challenge-response><sudi-cert>{cert}</sudi-cert><encryption-method>{method}</encryption-method><hashing-method>SHA256</hashing-method></auth>"),
                    ),
                    // XSD: 3406 PKI_SIGN_FAILED.
                    _ => self.error("device-auth", &correlator, 3406, "PKI sign failed"),
                }
            }
            "certificate-install" => self.certificate_install(sh, req, &correlator).await,
            "device-info" => self.device_info(&correlator),
            "cli-config" => {
                let mut cmds = Vec::new();
                req.descendants("cmd", &mut cmds);
                let mut entries = String::new();
                for (i, c) in cmds.iter().enumerate() {
                    let line = c.text.trim();
                    if let Some(v) = line.strip_prefix("config-register ") {
                        self.config_reg = v.trim().to_string();
                    }
                    self.running_config.push_str(line);
                    self.running_config.push('\n');
                    entries.push_str(&format!(
                        "<resultEntry lineNumber=\"{}\" cliString=\"{}\"><success change=\"CHANGE\" mode=\"IMMEDIATE\"/></resultEntry>",
                        i + 1,
                        escape(line)
                    ));
                }
                self.response("cli-config", &correlator, true, &entries)
            }
            "cli-exec" => {
                let cmd = loc(&["execCLI", "cmd"]);
                let out = self.run_cli(sh, &cmd);
                self.exec_reply(&correlator, &cmd, &out)
            }
            "image-install" => {
                let url = loc(&["image", "copy", "source", "location"]);
                let md5 = loc(&["image", "copy", "source", "checksum"]).to_ascii_lowercase();
                let dest = loc(&["image", "copy", "destination", "location"]);
                let target = normalize_version(&url);
                if target.as_deref() == Some(self.version.as_str()) {
                    return self.error(
                        "image-install",
                        &correlator,
                        1817,
                        "Running Image checksum same as provided checksum. Upgrade not needed",
                    );
                }
                if url.ends_with("packages.conf") {
                    return self.error("image-install", &correlator, 1806, "Invalid image format");
                }
                match self.download(sh, &url).await {
                    Err((1, _)) => {
                        // Power cut: no answer; the router boots again.
                        tokio::time::sleep(sh.scaled(20.0)).await;
                        self.boot_reason = Some(("power-on".into(), self.startup_saved));
                        String::new()
                    }
                    Err((404, m)) => self.error("image-install", &correlator, 1803, &m),
                    Err((507, m)) => self.error("image-install", &correlator, 1825, &m),
                    Err((_, m)) => self.error("image-install", &correlator, 1829, &m),
                    Ok((_, got)) if got != md5 => self.error(
                        "image-install",
                        &correlator,
                        1816,
                        &format!("Error verifying checksum: expected {md5}, computed {got}"),
                    ),
                    Ok((size, _)) => {
                        self.store(&dest, size);
                        let version = target.unwrap_or_else(|| self.version.clone());
                        self.reload_into = Some((version, dest));
                        self.response("image-install", &correlator, true, "")
                    }
                }
            }
            "file-transfer" => {
                let url = loc(&["fileTransfer", "copy", "source", "location"]);
                let dest = loc(&["fileTransfer", "copy", "destination", "location"]);
                match self.download(sh, &url).await {
                    Ok((size, _)) => {
                        self.store(&dest, size);
                        self.response("file-transfer", &correlator, true, "")
                    }
                    Err((_, m)) => self.error("file-transfer", &correlator, 1702, &m),
                }
            }
            "config-upgrade" => {
                let url = loc(&["config", "copy", "source", "location"]);
                match self.copy.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let text = r.text().await.unwrap_or_default();
                        for line in text.lines() {
                            if let Some(name) = line.trim().strip_prefix("event manager applet ")
                                && let Some(n) = name.split_whitespace().next()
                            {
                                self.applets.insert(n.to_string());
                            }
                        }
                        self.running_config.push_str(&text);
                        self.response("config-upgrade", &correlator, true, "")
                    }
                    Ok(r) => self.error(
                        "config-upgrade",
                        &correlator,
                        1412,
                        &format!("running-config copy failed: HTTP {}", r.status()),
                    ),
                    Err(e) => self.error(
                        "config-upgrade",
                        &correlator,
                        1412,
                        &format!("copy failed: {e}"),
                    ),
                }
            }
            _ => format!(
                "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{}\"><response xmlns=\"urn:cisco:pnp:fault\"><fault><faultcode>XSVC:Client</faultcode><faultstring>An unknown XML tag has been received</faultstring><detail><XSVC-ERR:error xmlns:XSVC-ERR=\"urn:cisco:pnp:error\"><XSVC-ERR:details>{}</XSVC-ERR:details></XSVC-ERR:error></detail></fault></response></pnp>",
                escape(&self.udi),
                escape(&service)
            ),
        }
    }

    /// Backoff seconds from a backoff request (15 min when callbackAfter is empty); `None` for
    /// terminate; `defaultMinutes` is treated as the next wait.
    fn backoff_secs(req: &Element) -> Option<f64> {
        let b = req.child("backoff")?;
        if b.child("terminate").is_some() {
            return None;
        }
        if let Some(m) = b
            .text_at(&["defaultMinutes"])
            .and_then(|m| m.parse::<f64>().ok())
        {
            return Some(m * 60.0);
        }
        let num = |k: &str| {
            b.text_at(&["callbackAfter", k])
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let secs = num("hours") * 3600.0 + num("minutes") * 60.0 + num("seconds");
        Some(if secs == 0.0 { 900.0 } else { secs })
    }

    /// certificate-install (§6.13): the clock is taken as set; the CA is fetched from its URI
    /// and becomes trustpoint `pnplabel`; with a reconnect, PnP goes to that HTTPS server
    /// from the next request, trusting only that CA (as the NSO netsim client does).
    async fn certificate_install(
        &mut self,
        sh: &Shared,
        req: &Element,
        correlator: &str,
    ) -> String {
        let cert = |p: &[&str]| req.text_at(&[&["certificateInstall", "cert"], p].concat());
        let Some(uri) = cert(&["install", "trustpoint", "copy", "source", "uri"]) else {
            return self.error(
                "certificate-install",
                correlator,
                3313,
                "TRUSTPOINT_NOT_CONFIGURED",
            );
        };
        if cert(&["set", "clock", "year"]).is_none() {
            // The IOS PKI refuses to work without an authoritative clock.
            return self.error("certificate-install", correlator, 3309, "CLOCK_NOT_SET");
        }
        let ca = match self.client.get(&uri).send().await {
            Ok(r) if r.status().is_success() => {
                r.bytes().await.map(|b| b.to_vec()).unwrap_or_default()
            }
            Ok(r) => {
                return self.error(
                    "certificate-install",
                    correlator,
                    3313,
                    &format!("trustpoint download: HTTP {}", r.status()),
                );
            }
            Err(e) => {
                return self.error(
                    "certificate-install",
                    correlator,
                    3313,
                    &format!("trustpoint download: {e}"),
                );
            }
        };
        let protocol = cert(&["reconnect", "primary-server", "protocol"]);
        let addr = |k: &str| cert(&["reconnect", "primary-server", "server-address", k]);
        let host = addr("ipv4").or_else(|| addr("host"));
        let port = addr("port").and_then(|p| p.trim().parse::<u16>().ok());
        if protocol.as_deref() != Some("https") || host.is_none() || port.is_none() {
            return self.error(
                "certificate-install",
                correlator,
                3306,
                "WRONG_PRIMARY_TRANSPORT",
            );
        }
        let clients = match reqwest::Certificate::from_pem(&ca)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                router_clients(&sh.opts, sh.loopback, self.index, Some(c))
                    .map_err(|e| e.to_string())
            }) {
            Ok(c) => c,
            Err(e) => {
                return self.error(
                    "certificate-install",
                    correlator,
                    3313,
                    &format!("trustpoint: {e}"),
                );
            }
        };
        self.trustpoint = Some(ca);
        (self.client, self.copy) = clients;
        if !self.https_stuck {
            self.server = format!(
                "https://{}:{}",
                host.unwrap_or_default(),
                port.unwrap_or_default()
            );
        }
        self.response("certificate-install", correlator, true, "")
    }

    async fn reboot(&mut self, sh: &Shared) {
        if let Some((version, image)) = self.reload_into.take() {
            // PnP starts over from the DHCP profile: plain HTTP.
            self.server.clone_from(&sh.opts.server);
            tokio::time::sleep(sh.scaled(sh.opts.reload_secs)).await;
            self.version = version;
            self.image_file = image;
            self.guestshell = Gs::Missing;
            self.boot_reason = Some(("reload".into(), self.startup_saved));
        }
    }
}

fn app_list(state: &str) -> String {
    format!(
        "App id                                   State\n---------------------------------------------------------\nguestshell                               {state}"
    )
}

const HASHER_GONE: &str = "cannot verify the download: hashing thread gone";

/// A real router verifies its image on its own CPU. Here each download is hashed on its own
/// thread at the lowest priority (nice 19): the hashing takes only CPU nobody else wants, so the
/// latency measured is the server's and not the simulator's 50 GB of md5. Returns where to send
/// the chunks (bounded: a slow hash slows the download, like a router writing to flash) and the
/// hex digest once the sender is dropped.
fn hasher() -> (
    tokio::sync::mpsc::Sender<bytes::Bytes>,
    tokio::sync::oneshot::Receiver<String>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let (done, digest) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("sim-md5".into())
        .stack_size(256 << 10)
        .spawn(move || {
            let _ = rustix::process::nice(19);
            let mut h = Md5::new();
            while let Some(c) = rx.blocking_recv() {
                h.update(&c);
            }
            let _ = done.send(hex::encode(h.finalize()));
        });
    // Without a thread the receiver is dropped: the download reports it cannot verify.
    drop(spawned);
    (tx, digest)
}

async fn post(
    sh: &Shared,
    client: &reqwest::Client,
    server: &str,
    path: &str,
    body: String,
) -> Result<(u16, String), String> {
    let started = Instant::now();
    let resp = client
        .post(format!("{server}{path}"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if let Ok(mut l) = sh.latencies.lock() {
        l.push(started.elapsed());
    }
    Ok((status, text))
}

async fn run_router(sh: Arc<Shared>, mut r: Router) {
    let idle = || sh.scaled(30.0);
    if sh.opts.boot_spread > 0.0 {
        use rand::Rng;
        let at = r.rng.random_range(0.0..=sh.opts.boot_spread);
        tokio::time::sleep(sh.scaled(at)).await;
    }
    while !sh.stop.load(Ordering::Relaxed) {
        if r.client
            .get(format!("{}/pnp/HELLO", sh.opts.server))
            .send()
            .await
            .is_ok_and(|x| x.status().is_success())
        {
            break;
        }
        tokio::time::sleep(idle()).await;
    }
    while !sh.stop.load(Ordering::Relaxed) && !r.terminated {
        let correlator = r.correlator();
        let wr = r.work_request(&correlator);
        let (status, body) =
            match post(&sh, &r.client, &r.server.clone(), "/pnp/WORK-REQUEST", wr).await {
                Ok(x) => x,
                Err(_) => {
                    // Server gone (restart): keep polling like the agent does.
                    tokio::time::sleep(idle()).await;
                    continue;
                }
            };
        sh.exchanges.fetch_add(1, Ordering::Relaxed);
        if status != 200 {
            sh.anomaly(format!(
                "{}: work-request got HTTP {status}: {}",
                r.serial,
                body.trim()
            ));
            tokio::time::sleep(idle()).await;
            continue;
        }
        if body.trim().is_empty() {
            tokio::time::sleep(idle()).await;
            continue;
        }
        let req = match xml::parse(body.as_bytes()) {
            Ok(root) => match root.child("request") {
                Some(q) => q.clone(),
                None => {
                    sh.anomaly(format!("{}: reply without <request>", r.serial));
                    tokio::time::sleep(idle()).await;
                    continue;
                }
            },
            Err(e) => {
                sh.anomaly(format!("{}: unparsable reply: {e}", r.serial));
                tokio::time::sleep(idle()).await;
                continue;
            }
        };
        if req.attr("correlator") != Some(correlator.as_str()) {
            sh.anomaly(format!(
                "{}: job does not echo correlator {correlator}",
                r.serial
            ));
        }
        let is_backoff = req.attr("xmlns") == Some("urn:cisco:pnp:backoff");
        let reply = if is_backoff {
            r.response("backoff", &correlator, true, "")
        } else {
            if sh.opts.command_secs > 0.0 {
                let secs = r.job_secs(&sh.opts);
                tokio::time::sleep(sh.scaled(secs)).await;
            }
            r.handle(&sh, &req).await
        };
        if reply.is_empty() {
            // The router lost power: it answers nothing and starts over with HELLO.
            continue;
        }
        match post(
            &sh,
            &r.client,
            &r.server.clone(),
            "/pnp/WORK-RESPONSE",
            reply,
        )
        .await
        {
            Ok((200, bye)) => {
                let echoed = xml::parse(bye.as_bytes()).ok().and_then(|b| {
                    b.child("info")
                        .and_then(|i| i.attr("correlator").map(str::to_string))
                });
                if echoed.as_deref() != Some(correlator.as_str()) && !bye.trim().is_empty() {
                    sh.anomaly(format!("{}: bye does not echo correlator", r.serial));
                }
            }
            Ok((status, text)) => sh.anomaly(format!(
                "{}: work-response got HTTP {status}: {}",
                r.serial,
                text.trim()
            )),
            Err(_) => {}
        }
        if is_backoff {
            match Router::backoff_secs(&req) {
                None => r.terminated = true,
                Some(secs) => {
                    let until = Instant::now() + sh.scaled(secs);
                    while Instant::now() < until && !sh.stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(
                            (until - Instant::now()).min(Duration::from_millis(200)),
                        )
                        .await;
                    }
                    r.reboot(&sh).await;
                }
            }
        } else if r.reload_into.is_some()
            && req.attr("xmlns") != Some("urn:cisco:pnp:image-install")
        {
            // The router reloads by itself after the poll that follows the install (§8).
            r.reboot(&sh).await;
        }
    }
}

async fn poll_states(
    sh: &Shared,
    serials: &[String],
) -> Option<(HashMap<String, String>, HashMap<String, String>)> {
    // The list comes in pages of at most 2000 records.
    let mut list: Vec<serde_json::Value> = Vec::new();
    loop {
        let page: Vec<serde_json::Value> = sh
            .client
            .get(format!(
                "{}/api/devices?offset={}&limit=2000",
                sh.opts.server,
                list.len()
            ))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let last = page.len() < 2000;
        list.extend(page);
        if last {
            break;
        }
    }
    let wanted: HashSet<&String> = serials.iter().collect();
    let mut states = HashMap::new();
    let mut reasons = HashMap::new();
    for d in &list {
        let serial = d
            .get("serial")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string();
        if !wanted.contains(&serial) {
            continue;
        }
        let state = d
            .get("state")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string();
        if let Some(reason) = d.get("fail_reason").and_then(|s| s.as_str()) {
            reasons.insert(serial.clone(), reason.to_string());
        }
        states.insert(serial, state);
    }
    Some((states, reasons))
}

/// Fails within seconds when nothing answers HELLO at `server`, instead of routers polling
/// for the whole timeout.
async fn reachable(client: &reqwest::Client, server: &str) -> anyhow::Result<()> {
    let url = format!("{}/pnp/HELLO", server.trim_end_matches('/'));
    let mut last = String::new();
    for _ in 0..5 {
        match client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!(
        "no PnP server answers at {server} ({last}): start `pnp-appliance serve` there, or give the right --server URL"
    )
}

/// `18 FINISHED, 2 BOOTFLASH_NO_SPACE (waiting for `device resume`), 20 in all`: the states
/// in workflow order, with what an operator must do for parked ones.
fn progress_line(states: &HashMap<String, String>) -> String {
    let mut counts: Vec<(usize, &str, usize)> = Vec::new();
    for s in states.values() {
        let order = crate::domain::device::State::parse(s)
            .and_then(|st| {
                crate::domain::device::State::ALL
                    .iter()
                    .position(|x| *x == st)
            })
            .unwrap_or(usize::MAX);
        match counts.iter_mut().find(|c| c.1 == s) {
            Some(c) => c.2 += 1,
            None => counts.push((order, s, 1)),
        }
    }
    counts.sort();
    let parts: Vec<String> = counts
        .iter()
        .map(|(_, s, n)| match *s {
            "BOOTFLASH_NO_SPACE" | "IMAGE_NO_SPACE" => {
                format!("{n} {s} (waiting for `pnp-appliance device resume SERIAL`)")
            }
            _ => format!("{n} {s}"),
        })
        .collect();
    if parts.is_empty() {
        return "no router has reached the server yet".into();
    }
    format!("{}; {} in all", parts.join(", "), states.len())
}

/// Whether `server` (a base URL) names an IPv4 loopback address.
fn server_on_loopback(server: &str) -> bool {
    reqwest::Url::parse(server)
        .ok()
        .and_then(|u| {
            u.host_str()
                .and_then(|h| h.parse::<std::net::Ipv4Addr>().ok())
        })
        .is_some_and(|ip| ip.is_loopback())
}

/// A router's PnP client and the client its copies download with.
type Clients = (reqwest::Client, reqwest::Client);

/// Router `i`'s clients ([`Router::copy`]), trusting `trustpoint` (only it) for HTTPS. Against
/// a server on loopback each router talks from its own address (127.1.0.2 + i: all of
/// 127.0.0.0/8 is this host), as routers on a bench do, so the server's per-address binding
/// and limits see one router per address; elsewhere they share this host's address (and its
/// per-address limits); `--source` puts them all behind that one.
fn router_clients(
    opts: &SimOptions,
    loopback: bool,
    i: usize,
    trustpoint: Option<reqwest::Certificate>,
) -> anyhow::Result<Clients> {
    let pnp = router_client(opts.source, loopback, i, trustpoint.clone(), 2)?;
    if opts.copy_on_pnp_connection {
        return Ok((pnp.clone(), pnp));
    }
    // No idle connection kept: each copy connects, downloads and closes.
    let copy = router_client(opts.source, loopback, i, trustpoint, 0)?;
    Ok((pnp, copy))
}

/// One HTTP client of router `i`, keeping at most `idle` connections open between requests.
fn router_client(
    source: Option<std::net::IpAddr>,
    loopback: bool,
    i: usize,
    trustpoint: Option<reqwest::Certificate>,
    idle: usize,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(idle)
        // Below the server's header timeout (10 s by default, which also ends a kept-alive
        // connection left idle), so a pooled connection is never one it just closed.
        .pool_idle_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
        // Like a router's copy command: a transfer that stops moving fails (and is retried by
        // the workflow) instead of hanging for ever.
        .read_timeout(Duration::from_secs(60));
    if let Some(ca) = trustpoint {
        b = b.add_root_certificate(ca);
    }
    if let Some(ip) = source {
        b = b.local_address(ip);
    } else if loopback {
        let n = u32::try_from(i).unwrap_or(u32::MAX).min(0x00fe_fffd);
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 1, 0, 2)) + n);
        b = b.local_address(std::net::IpAddr::V4(ip));
    }
    Ok(b.build()?)
}

/// The test SUDI PKI kept in `dir` (`sudi-roots.pem`, what `[identity] extra-roots` takes;
/// `sudi-ca.pem` and `sudi-ca.key`, the issuing CA), made there when missing; and whether it
/// was made now.
fn open_or_create_pki(
    dir: &std::path::Path,
) -> Result<(crate::domain::sudi::test_pki::TestPki, bool), String> {
    use crate::domain::sudi::test_pki::TestPki;
    let (roots, ca_cert, ca_key) = (
        dir.join("sudi-roots.pem"),
        dir.join("sudi-ca.pem"),
        dir.join("sudi-ca.key"),
    );
    let say = |p: &std::path::Path, e: &dyn std::fmt::Display| format!("{}: {e}", p.display());
    if ca_key.exists() {
        let key = std::fs::read_to_string(&ca_key).map_err(|e| say(&ca_key, &e))?;
        let cert = std::fs::read_to_string(&ca_cert).map_err(|e| say(&ca_cert, &e))?;
        return Ok((
            TestPki::from_pem(&cert, &key).map_err(|e| say(dir, &e))?,
            false,
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| say(dir, &e))?;
    let (pki, pem) = TestPki::generate()?;
    for (path, text) in [
        (&roots, pem.roots),
        (&ca_cert, pem.ca_cert),
        (&ca_key, pem.ca_key),
    ] {
        std::fs::write(path, text).map_err(|e| say(path, &e))?;
    }
    Ok((pki, true))
}

/// Runs the simulation; prints progress to stderr and returns the summary.
pub(crate) async fn run(opts: SimOptions) -> anyhow::Result<SimSummary> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?;
    crate::serve::raise_open_files_limit();
    reachable(&client, &opts.server).await?;
    let loopback = server_on_loopback(&opts.server);
    let pki = match &opts.sudi_pki {
        Some(dir) => {
            let (pki, created) =
                open_or_create_pki(dir).map_err(|e| anyhow::anyhow!("--sudi-pki: {e}"))?;
            if created {
                eprintln!(
                    "simulate: created a test SUDI PKI in {}: add {} to the server's [identity] extra-roots",
                    dir.display(),
                    dir.join("sudi-roots.pem").display()
                );
            }
            Some(pki)
        }
        None => None,
    };
    let mut routers = Vec::with_capacity(opts.devices);
    for i in 0..opts.devices {
        let mut r = Router::new(&opts, i, router_clients(&opts, loopback, i, None)?);
        if let Some(pki) = &pki {
            let forge = i < opts.forged_sudi;
            let wrong = !forge && i < opts.forged_sudi + opts.wrong_sudi;
            let named = if wrong {
                format!("{}X", r.serial)
            } else {
                r.serial.clone()
            };
            let sudi = pki
                .device(&r.pid, &named, opts.sudi_rsa)
                .map_err(|e| anyhow::anyhow!("--sudi-pki: {e}"))?;
            r.sudi = Some((sudi, forge));
        }
        routers.push(r);
    }
    let sh = Arc::new(Shared {
        loopback,
        opts: opts.clone(),
        client,
        stop: AtomicBool::new(false),
        exchanges: AtomicU64::new(0),
        anomalies: std::sync::Mutex::new(Vec::new()),
        latencies: std::sync::Mutex::new(Vec::new()),
    });
    let start = Instant::now();
    let serials: Vec<String> = routers.iter().map(|r| r.serial.clone()).collect();
    let mut tasks = Vec::new();
    for r in routers {
        tasks.push(tokio::spawn(run_router(sh.clone(), r)));
    }
    let mut last = (HashMap::new(), HashMap::new());
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Some(s) = poll_states(&sh, &serials).await {
            last = s;
        }
        let done = last.0.len() == serials.len()
            && last.0.values().all(|s| s == "FINISHED" || s == "FAILED");
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "simulate: {:.0}s: {}",
                start.elapsed().as_secs_f64(),
                progress_line(&last.0)
            );
            last_print = Instant::now();
        }
        if done || start.elapsed() > opts.timeout {
            break;
        }
    }
    sh.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let anomalies = sh.anomalies.lock().map(|a| a.clone()).unwrap_or_default();
    let mut latencies = sh.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort();
    Ok(SimSummary {
        states: last.0,
        reasons: last.1,
        elapsed: start.elapsed(),
        exchanges: sh.exchanges.load(Ordering::Relaxed),
        anomalies,
        latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_times_vary_within_the_jitter_and_repeat_per_router() {
        let mut opts = SimOptions {
            server: String::new(),
            devices: 3,
            time_scale: 1.0,
            timeout: Duration::from_secs(1),
            low_bootflash: 0,
            vanish: 0,
            serial_prefix: "J".into(),
            pid: "C1131-8PWB".into(),
            start_version: "17.9.4a".into(),
            command_secs: 2.0,
            jitter: 0.0,
            boot_spread: 0.0,
            download_kbps: 0.0,
            reload_secs: 20.0,
            full_bootflash: 0,
            failing_script: 0,
            source: None,
            sudi_pki: None,
            forged_sudi: 0,
            wrong_sudi: 0,
            sudi_rsa: false,
            https_stuck: 0,
            copy_on_pnp_connection: false,
        };
        let mut r = Router::new(&opts, 0, (reqwest::Client::new(), reqwest::Client::new()));
        assert!((0..10).all(|_| r.job_secs(&opts) == 2.0));
        opts.jitter = 0.5;
        let draw = |index| {
            let mut r = Router::new(
                &opts,
                index,
                (reqwest::Client::new(), reqwest::Client::new()),
            );
            (0..200).map(|_| r.job_secs(&opts)).collect::<Vec<f64>>()
        };
        let a = draw(0);
        assert!(a.iter().all(|s| (1.0..=3.0).contains(s)), "{a:?}");
        assert!(a.iter().any(|s| *s < 1.5) && a.iter().any(|s| *s > 2.5));
        assert_eq!(a, draw(0), "same router, same times");
        assert_ne!(a, draw(1), "routers differ");
    }

    #[test]
    fn progress_names_states_in_workflow_order_and_what_parked_routers_wait_for() {
        let states: HashMap<String, String> = [
            ("A", "FINISHED"),
            ("B", "BOOTFLASH_NO_SPACE"),
            ("C", "FINISHED"),
            ("D", "CONFIG_REG"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(
            progress_line(&states),
            "1 CONFIG_REG, 1 BOOTFLASH_NO_SPACE (waiting for `pnp-appliance device resume SERIAL`), 2 FINISHED; 4 in all"
        );
        assert_eq!(
            progress_line(&HashMap::new()),
            "no router has reached the server yet"
        );
    }

    #[test]
    fn padded_versions() {
        assert_eq!(padded("17.9.4a"), "17.09.04a");
        assert_eq!(padded("17.12.3"), "17.12.03");
        assert_eq!(
            normalize_version(&padded("17.14.1a")).as_deref(),
            Some("17.14.1a")
        );
    }

    #[test]
    fn app_hosting_output_is_read_by_the_server_classifier() {
        use crate::domain::ios::{Guestshell, guestshell_state};
        assert_eq!(guestshell_state(&app_list("RUNNING")), Guestshell::Running);
        assert_eq!(
            guestshell_state(&app_list("DEPLOYED")),
            Guestshell::Installed
        );
        assert_eq!(guestshell_state("No App found"), Guestshell::Missing);
    }
}
