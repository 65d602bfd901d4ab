//! The command line: `serve`, `simulate`, `device resume`.
//!
//! Owns argument parsing (clap; every flag also read from an `APPLIANCE_*` variable, the flag
//! winning) and dispatch. Errors are printed with their fix and give exit status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Overrides};
use crate::domain::workflow::Action;

/// Cisco PnP provisioning appliance for ISR1100 routers.
#[derive(Debug, Parser)]
// One help layout for every command: each option's text on the line below it (clap would
// switch to that layout by itself only where a text is long, so commands looked different).
#[command(name = "pnp-appliance", version, about, next_line_help = true)]
pub(crate) struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        env = "APPLIANCE_CONFIG",
        default_value = "appliance.toml",
        global = true
    )]
    pub(crate) config: PathBuf,
    /// The fleet database shared by several benches, `postgresql://…` (`[state] url`).
    #[arg(long, env = "APPLIANCE_STATE_URL", global = true)]
    pub(crate) state_url: Option<String>,
    /// This bench's name in the fleet (`[state] bench`; default the host name).
    #[arg(long, env = "APPLIANCE_BENCH", global = true)]
    pub(crate) bench: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the PnP server (HTTP) until SIGINT/SIGTERM.
    Serve {
        /// Listen address, overrides [http] listen.
        #[arg(long, env = "APPLIANCE_LISTEN")]
        listen: Option<String>,
        /// Address put in URLs sent to routers, overrides [http] advertise.
        #[arg(long, env = "APPLIANCE_ADVERTISE")]
        advertise: Option<String>,
        /// Log level (info, debug, ...), overrides [log] level.
        #[arg(long, env = "APPLIANCE_LOG_LEVEL")]
        log_level: Option<String>,
        /// Answer PnP routers' DHCP on this interface, overrides [dhcp] interface.
        #[arg(long, env = "APPLIANCE_INTERFACE")]
        interface: Option<String>,
        /// When the interface has no IPv4 address (a laptop on an isolated switch), add this
        /// one for the run, e.g. 198.51.100.1/24; overrides [dhcp] address.
        #[arg(long, env = "APPLIANCE_ADDRESS")]
        address: Option<String>,
    },
    /// Pre-flight: files, md5s, day-0 configs, addresses and ports; exit status 1 on a problem.
    Check,
    /// Print a DHCP server configuration that gives PnP routers option 43.
    DhcpConfig {
        /// Which DHCP server.
        #[arg(long, value_enum, env = "APPLIANCE_DHCP_FORMAT", default_value = "isc")]
        format: crate::dhcp::snippet::Format,
        /// Take the address and subnet from this interface, overrides [dhcp] interface.
        #[arg(long, env = "APPLIANCE_INTERFACE")]
        interface: Option<String>,
    },
    /// Emulate ISR1k routers against a running server and report how they ended.
    Simulate {
        /// Server base URL.
        #[arg(
            long,
            env = "APPLIANCE_SIM_SERVER",
            default_value = "http://127.0.0.1:8080"
        )]
        server: String,
        /// Number of routers.
        #[arg(long, env = "APPLIANCE_SIM_DEVICES", default_value_t = 5)]
        devices: usize,
        /// Multiplies every wait (0.01 = 100 times faster).
        #[arg(long, env = "APPLIANCE_SIM_TIME_SCALE", default_value_t = 1.0)]
        time_scale: f64,
        /// Give up after this many seconds.
        #[arg(long, env = "APPLIANCE_SIM_TIMEOUT", default_value_t = 3600)]
        timeout: u64,
        /// How many routers (the first) report too little bootflash.
        #[arg(long, env = "APPLIANCE_SIM_LOW_BOOTFLASH", default_value_t = 0)]
        low_bootflash: usize,
        /// How many routers (the last) lose power halfway through their first image download.
        #[arg(long, env = "APPLIANCE_SIM_VANISH", default_value_t = 0)]
        vanish: usize,
        /// Serial prefix (serials are PREFIX00001, ...).
        #[arg(long, env = "APPLIANCE_SIM_SERIAL_PREFIX", default_value = "SIM")]
        serial_prefix: String,
        /// Product id of the routers.
        #[arg(long, env = "APPLIANCE_SIM_PID", default_value = "C1131-8PWB")]
        pid: String,
        /// Seconds each router takes to carry out a job before answering (scaled like every
        /// wait); 0 = at once, the heaviest load.
        #[arg(long, env = "APPLIANCE_SIM_COMMAND_SECS", default_value_t = 0.0)]
        command_secs: f64,
        /// Each job takes --command-secs varied by up to this fraction either way, drawn per
        /// router and job (0 to 1; 0 = every router in lockstep).
        #[arg(long, env = "APPLIANCE_SIM_JITTER", default_value_t = 0.0)]
        jitter: f64,
        /// Routers power on at random moments over this many seconds (scaled like every wait;
        /// 0 = all at once).
        #[arg(long, env = "APPLIANCE_SIM_BOOT_SPREAD", default_value_t = 0.0)]
        boot_spread: f64,
        /// IOS-XE version the routers run out of the box.
        #[arg(long, env = "APPLIANCE_SIM_START_VERSION", default_value = "17.9.4a")]
        start_version: String,
        /// Each router downloads at most this many KB/s, divided by --time-scale (a real ISR1k
        /// over HTTP: ~600 KB/s); 0 = as fast as the server sends.
        #[arg(long, env = "APPLIANCE_SIM_DOWNLOAD_KBPS", default_value_t = 600.0)]
        download_kbps: f64,
        /// Seconds a reload into a new image takes (scaled like every wait; a real ISR1k: ~8
        /// min).
        #[arg(long, env = "APPLIANCE_SIM_RELOAD_SECS", default_value_t = 480.0)]
        reload_secs: f64,
        /// How many routers (the first) arrive with old images filling bootflash to 193 MB free:
        /// the target image fits only once a cleanup deletes them.
        #[arg(long, env = "APPLIANCE_SIM_FULL_BOOTFLASH", default_value_t = 0)]
        full_bootflash: usize,
        /// How many routers (the last) have a Python script that dies with a traceback.
        #[arg(long, env = "APPLIANCE_SIM_FAILING_SCRIPT", default_value_t = 0)]
        failing_script: usize,
        /// Every router talks from this one address, as routers behind NAT or a DHCP relay do
        /// (default: each from its own 127.1.0.x when the server is on loopback).
        #[arg(long, env = "APPLIANCE_SIM_SOURCE")]
        source: Option<std::net::IpAddr>,
        /// The routers carry SUDIs from the test PKI in this directory (created there when
        /// missing) and offer device-auth; put its sudi-roots.pem in the server's
        /// [identity] extra-roots.
        #[arg(long, env = "APPLIANCE_SIM_SUDI_PKI")]
        sudi_pki: Option<std::path::PathBuf>,
        /// With --sudi-pki: how many routers (the first) sign the challenge with another key
        /// than their certificate's.
        #[arg(long, env = "APPLIANCE_SIM_FORGED_SUDI", default_value_t = 0)]
        forged_sudi: usize,
        /// With --sudi-pki: how many routers (after the forged ones) carry a SUDI issued for
        /// another serial.
        #[arg(long, env = "APPLIANCE_SIM_WRONG_SUDI", default_value_t = 0)]
        wrong_sudi: usize,
        /// With --sudi-pki: SUDIs on RSA-2048 keys, signing PKCS#1 v1.5 as an ISR1k's does
        /// (default: ECDSA P-256).
        #[arg(long, env = "APPLIANCE_SIM_SUDI_RSA")]
        sudi_rsa: bool,
        /// How many routers (the last) take the trustpoint of a certificate-install but never
        /// reconnect over HTTPS (as behind a firewall that blocks the HTTPS port).
        #[arg(long, env = "APPLIANCE_SIM_HTTPS_STUCK", default_value_t = 0)]
        https_stuck: usize,
        /// Copies (images, files, day-0 configs) reuse the PnP agent's kept-alive connection
        /// (default: each copy opens a connection of its own, as a CLI `copy http:` does).
        #[arg(long, env = "APPLIANCE_SIM_COPY_ON_PNP_CONNECTION")]
        copy_on_pnp_connection: bool,
    },
    /// Act on one router's record, or show it.
    Device {
        /// The running server, e.g. http://127.0.0.1:9090 (default: where the server started
        /// on this config's state directory listens).
        #[arg(long, env = "APPLIANCE_SERVER", global = true)]
        server: Option<String>,
        /// The action.
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// The bench: routers that need you (why, and the fix), in progress (step, download), finished.
    Status {
        /// The running server, e.g. http://127.0.0.1:9090 (default: where the server started
        /// on this config's state directory listens).
        #[arg(long, env = "APPLIANCE_SERVER")]
        server: Option<String>,
        /// Print the rows as JSON (stable, see README).
        #[arg(long, env = "APPLIANCE_STATUS_JSON")]
        json: bool,
        /// Refresh every 2 seconds until interrupted.
        #[arg(long, env = "APPLIANCE_STATUS_WATCH")]
        watch: bool,
    },
    /// One row per router: versions before/after, each step's result and time.
    Report {
        /// The running server, e.g. http://127.0.0.1:9090 (default: where the server started
        /// on this config's state directory listens).
        #[arg(long, env = "APPLIANCE_SERVER")]
        server: Option<String>,
        /// Output format.
        #[arg(
            long,
            value_enum,
            env = "APPLIANCE_REPORT_FORMAT",
            default_value = "csv"
        )]
        format: ReportFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short, env = "APPLIANCE_REPORT_OUTPUT")]
        output: Option<PathBuf>,
    },
}

/// `report` formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    /// CSV with a header.
    Csv,
    /// JSON array.
    Json,
}

/// Operator actions on a device.
#[derive(Debug, Subcommand)]
pub(crate) enum DeviceAction {
    /// Continue a router parked in BOOTFLASH_NO_SPACE or IMAGE_NO_SPACE, vouch for one in
    /// IDENTITY_UNPROVEN, or retry a FAILED one.
    Resume(Acting),
    /// Send the current step's job again (FAILED: retry the failed step).
    Retry(Acting),
    /// Provision the router again from the start.
    Reset(Acting),
    /// Delete the router's record.
    Forget(Acting),
    /// Bind the serial to the address that claimed it ("SERIAL claimed from X, bound to Y"):
    /// only when the router really moved.
    AcceptMove(Acting),
    /// Everything about one router: record, transfers, full history, script output.
    Show {
        /// Serial number.
        serial: String,
        /// The record as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What an action on a router takes: the serial, and the token where it acts.
#[derive(Debug, clap::Args)]
pub(crate) struct Acting {
    /// Serial number.
    serial: String,
    /// Admin token, overrides [http] admin-token (default: the server's generated one in the
    /// state directory).
    #[arg(long, env = "APPLIANCE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

impl DeviceAction {
    /// The action and what it was given; `None` for `show`, which only reads.
    fn acting(&self) -> Option<(&Acting, Action)> {
        Some(match self {
            DeviceAction::Resume(a) => (a, Action::Resume),
            DeviceAction::Retry(a) => (a, Action::Retry),
            DeviceAction::Reset(a) => (a, Action::Reset),
            DeviceAction::Forget(a) => (a, Action::Forget),
            DeviceAction::AcceptMove(a) => (a, Action::AcceptMove),
            DeviceAction::Show { .. } => return None,
        })
    }
}

/// What the command line says of the configuration: its flags (and `APPLIANCE_*` variables),
/// to be applied to the file's values before they are validated.
fn overrides(cli: &Cli) -> Overrides {
    let mut o = Overrides {
        state_url: cli.state_url.clone(),
        bench: cli.bench.clone(),
        ..Overrides::default()
    };
    match &cli.command {
        Command::Serve {
            listen,
            advertise,
            log_level,
            interface,
            address,
        } => {
            o.listen.clone_from(listen);
            o.advertise.clone_from(advertise);
            o.log_level.clone_from(log_level);
            o.interface.clone_from(interface);
            o.address.clone_from(address);
        }
        Command::DhcpConfig { interface, .. } => o.interface.clone_from(interface),
        Command::Device { server, action } => {
            o.server.clone_from(server);
            o.admin_token = action.acting().and_then(|(a, _)| a.admin_token.clone());
        }
        Command::Status { server, .. } | Command::Report { server, .. } => {
            o.server.clone_from(server)
        }
        _ => {}
    }
    o
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ov = overrides(&cli);
    let load = |path: &std::path::Path| -> anyhow::Result<Config> { Ok(Config::load(path, &ov)?) };
    match cli.command {
        Command::Serve { .. } => {
            let cfg = load(&cli.config)?;
            crate::logging::init_with_file(&cfg.log_level, &cfg.log_dir, cfg.log_keep)?;
            runtime()?.block_on(async move {
                let (app, _) = crate::serve::prepare(cfg).await?;
                let listener = crate::serve::bind(app.cfg.listen).await?;
                let dhcp = crate::serve::prepare_dhcp(&app.cfg)?;
                let cancel = CancellationToken::new();
                tokio::spawn(crate::serve::on_signal(cancel.clone()));
                crate::serve::run(app, listener, dhcp, cancel).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            server,
            devices,
            time_scale,
            timeout,
            low_bootflash,
            vanish,
            serial_prefix,
            pid,
            start_version,
            command_secs,
            jitter,
            boot_spread,
            download_kbps,
            reload_secs,
            full_bootflash,
            failing_script,
            source,
            sudi_pki,
            forged_sudi,
            wrong_sudi,
            sudi_rsa,
            https_stuck,
            copy_on_pnp_connection,
        } => {
            crate::logging::init_console("warn");
            if !(time_scale > 0.0 && time_scale.is_finite()) {
                anyhow::bail!("--time-scale must be a positive number (e.g. 0.01)");
            }
            if !(0.0..=3600.0).contains(&command_secs) {
                anyhow::bail!("--command-secs must be between 0 and 3600 (e.g. 2)");
            }
            if !(0.0..=1.0).contains(&jitter) {
                anyhow::bail!("--jitter must be between 0 and 1 (e.g. 0.5: jobs take ±50 %)");
            }
            if !(0.0..=1e7).contains(&download_kbps) {
                anyhow::bail!(
                    "--download-kbps must be between 0 (no limit) and 10000000 (e.g. 600)"
                );
            }
            if !(0.0..=86400.0).contains(&reload_secs) {
                anyhow::bail!("--reload-secs must be between 0 and 86400 seconds (e.g. 480)");
            }
            if !(0.0..=86400.0).contains(&boot_spread) {
                anyhow::bail!("--boot-spread must be between 0 and 86400 seconds (e.g. 30)");
            }
            if sudi_pki.is_none() && (forged_sudi + wrong_sudi > 0 || sudi_rsa) {
                anyhow::bail!(
                    "--forged-sudi and --wrong-sudi need --sudi-pki DIR (the test PKI the routers' SUDIs come from)"
                );
            }
            if !crate::pnp::message::is_safe_serial(&format!("{serial_prefix}00001")) {
                anyhow::bail!("--serial-prefix may hold only letters, digits, '.', '_' and '-'");
            }
            let opts = crate::sim::SimOptions {
                server: server.trim_end_matches('/').to_string(),
                devices,
                time_scale,
                timeout: Duration::from_secs(timeout),
                low_bootflash,
                vanish,
                serial_prefix,
                pid,
                start_version,
                command_secs,
                jitter,
                boot_spread,
                download_kbps,
                reload_secs,
                full_bootflash,
                failing_script,
                source,
                sudi_pki,
                forged_sudi,
                wrong_sudi,
                sudi_rsa,
                https_stuck,
                copy_on_pnp_connection,
            };
            let summary = runtime()?.block_on(crate::sim::run(opts))?;
            let mut serials: Vec<_> = summary.states.keys().cloned().collect();
            serials.sort();
            println!("{:<14} {:<22} reason", "serial", "state");
            for s in &serials {
                println!(
                    "{:<14} {:<22} {}",
                    s,
                    summary.states[s],
                    summary.reasons.get(s).map(String::as_str).unwrap_or("")
                );
            }
            for a in &summary.anomalies {
                println!("anomaly: {a}");
            }
            let finished = summary.states.values().filter(|s| *s == "FINISHED").count();
            println!(
                "simulate: {devices} routers, {finished} FINISHED, {} not finished, {} exchanges, {:.1} s, exchange latency p50 {:.2} ms p99 {:.2} ms",
                devices - finished,
                summary.exchanges,
                summary.elapsed.as_secs_f64(),
                summary.latency(0.5).as_secs_f64() * 1e3,
                summary.latency(0.99).as_secs_f64() * 1e3,
            );
            Ok(if summary.all_finished(devices) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Check => {
            crate::logging::init_console("warn");
            let cfg = load(&cli.config)?;
            let (findings, text) = crate::ops::check::run(&cfg);
            print!("pnp-appliance check: {}\n{text}", cfg.source.display());
            Ok(if findings.iter().all(|f| f.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::DhcpConfig { format, .. } => {
            let cfg = load(&cli.config)?;
            let settings = crate::ops::check::dhcp_settings(&cfg).map_err(anyhow::Error::msg)?;
            print!("{}", crate::dhcp::snippet::render(format, &settings));
            if let Some(h) = &cfg.https {
                // On stderr: stdout stays a config a DHCP server reads.
                eprintln!(
                    "note: [http] https is on. Option 43 still says K4 (HTTP, port {}): routers start over plain HTTP, take this appliance's CA by certificate-install and move to HTTPS port {} by themselves. K5 is not used: it needs a Cisco-signed trustpool bundle. Let routers reach both ports.",
                    cfg.listen.port(),
                    h.listen.port()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Device { action, .. } => {
            crate::logging::init_console("warn");
            let cfg = load(&cli.config)?;
            let rt = runtime()?;
            if let DeviceAction::Show { serial, json } = &action {
                print!("{}", rt.block_on(show(&cfg, serial, *json))?);
            } else if let Some((a, act)) = action.acting() {
                println!("{}", rt.block_on(crate::ops::act(&cfg, &a.serial, act))?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, watch, .. } => {
            crate::logging::init_console("warn");
            let cfg = load(&cli.config)?;
            let rt = runtime()?;
            loop {
                let (rows, live) = rt.block_on(status_rows(&cfg))?;
                let text = if json {
                    format!("{}\n", serde_json::to_string_pretty(&rows)?)
                } else {
                    let waiting = rt.block_on(waiting_rows(&cfg))?;
                    let mut screen = screen();
                    if watch {
                        // The clock line on top.
                        screen.height = screen.height.map(|h| h.saturating_sub(1));
                    }
                    crate::ops::status::table(&rows, &waiting, screen, live)
                };
                if watch {
                    // Redrawn in place: home, each line cleared to its end, the rest below
                    // cleared (no flash of an empty screen between two frames).
                    let mut frame = format!(
                        "\x1b[H{}  {} (Ctrl-C to stop)\x1b[K\n",
                        crate::domain::bench::utc(chrono::Local::now()),
                        cfg.source.display()
                    );
                    for line in text.lines() {
                        frame.push_str(line);
                        frame.push_str("\x1b[K\n");
                    }
                    frame.push_str("\x1b[J");
                    print!("{frame}");
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                    std::thread::sleep(Duration::from_secs(2));
                } else {
                    print!("{text}");
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        Command::Report { format, output, .. } => {
            crate::logging::init_console("warn");
            let cfg = load(&cli.config)?;
            let devices = runtime()?.block_on(all_devices(&cfg))?;
            let rows = crate::ops::status::report(&devices);
            let text = match format {
                ReportFormat::Csv => crate::ops::status::report_csv(&rows),
                ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&rows)?),
            };
            match output {
                Some(path) => {
                    crate::store::write_atomic(&path, text.as_bytes())
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    eprintln!(
                        "report: {} routers written to {}",
                        rows.len(),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The terminal `status` prints to: its size when stdout is one, else `COLUMNS` and `LINES`
/// when set, else no limit (a pipe or a file gets every row at full length).
fn screen() -> crate::ops::status::Screen {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let tty = rustix::termios::tcgetwinsize(std::io::stdout())
        .ok()
        .filter(|w| w.ws_col > 0 && w.ws_row > 0);
    crate::ops::status::Screen {
        width: tty
            .map(|w| usize::from(w.ws_col))
            .or_else(|| env("COLUMNS")),
        height: tty.map(|w| usize::from(w.ws_row)).or_else(|| env("LINES")),
    }
}

/// Status rows from the running server (with transfers), else from the saved records.
async fn status_rows(cfg: &Config) -> anyhow::Result<(Vec<crate::http::api::StatusRow>, bool)> {
    if let Some(body) = crate::ops::fetch_list(cfg, "/api/status").await? {
        return Ok((serde_json::from_str(&body)?, true));
    }
    let devices = crate::ops::offline_devices(cfg).await?;
    Ok((crate::http::api::rows(&devices, None), false))
}

/// Routers leased by our DHCP that have not spoken PnP yet: from the running server, else
/// from the saved lease table.
async fn waiting_rows(cfg: &Config) -> anyhow::Result<Vec<crate::http::api::Waiting>> {
    if let Some((200, body)) = crate::ops::fetch(cfg, "/api/waiting").await? {
        return Ok(serde_json::from_str(&body)?);
    }
    let saved = crate::store::read_saved_leases(&cfg.state_dir).unwrap_or_default();
    let leases = crate::dhcp::parse_leases(saved).unwrap_or_default();
    let now = crate::dhcp::unix_now();
    Ok(crate::http::api::waiting(&leases, now))
}

/// Every record, from the running server or the saved state.
async fn all_devices(cfg: &Config) -> anyhow::Result<Vec<crate::domain::device::Device>> {
    if let Some(body) = crate::ops::fetch_list(cfg, "/api/devices").await? {
        return Ok(serde_json::from_str(&body)?);
    }
    crate::ops::offline_devices(cfg).await
}

async fn show(cfg: &Config, serial: &str, json: bool) -> anyhow::Result<String> {
    let device = match crate::ops::fetch(cfg, &format!("/api/devices/{serial}")).await? {
        Some((200, body)) => serde_json::from_str::<crate::domain::device::Device>(&body)?,
        Some((404, _)) => {
            anyhow::bail!("no device with serial {serial} (`pnp-appliance status` lists them)")
        }
        Some((code, body)) => anyhow::bail!("server answered {code}: {}", body.trim()),
        None => crate::ops::offline_devices(cfg)
            .await?
            .into_iter()
            .find(|d| d.serial == serial)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no device with serial {serial} (`pnp-appliance status` lists them)"
                )
            })?,
    };
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&device)?));
    }
    let transfers = match crate::ops::fetch_list(cfg, "/api/status").await? {
        Some(body) => serde_json::from_str::<Vec<crate::http::api::StatusRow>>(&body)?
            .into_iter()
            .find(|r| r.serial == serial)
            .and_then(|r| r.transfer)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    Ok(crate::ops::status::show(&device, &transfers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("pnp-appliance").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_become_overrides_of_the_commands_they_belong_to() {
        let o = overrides(&parse(&[
            "serve",
            "--listen",
            "127.0.0.1:9090",
            "--advertise",
            "198.51.100.1",
            "--log-level",
            "debug",
            "--interface",
            "eth1",
        ]));
        assert_eq!(o.listen.as_deref(), Some("127.0.0.1:9090"));
        assert_eq!(o.advertise.as_deref(), Some("198.51.100.1"));
        assert_eq!(o.log_level.as_deref(), Some("debug"));
        assert_eq!(o.interface.as_deref(), Some("eth1"));
        let o = overrides(&parse(&["dhcp-config", "--interface", "eth2"]));
        assert_eq!(o.interface.as_deref(), Some("eth2"));
        assert_eq!(o.listen, None);
        let o = overrides(&parse(&[
            "device",
            "resume",
            "S1",
            "--admin-token",
            "0123456789abcdef",
        ]));
        assert_eq!(o.admin_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(o.interface, None);
        // Options only where they act: no --admin-token on commands that never act.
        for args in [
            &["status", "--admin-token", "x"][..],
            &["--admin-token", "x", "check"],
            &["device", "show", "S1", "--admin-token", "x"],
            &["device", "--admin-token", "x", "show", "S1"],
        ] {
            let argv = std::iter::once("pnp-appliance").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
        // A bad flag is refused by the config's validation, naming the flag.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.toml");
        std::fs::write(&path, "").unwrap();
        let o = overrides(&parse(&["serve", "--advertise", "a b"]));
        let e = Config::load(&path, &o).unwrap_err().to_string();
        assert!(e.starts_with("--advertise (APPLIANCE_ADVERTISE):"), "{e}");
    }
}
