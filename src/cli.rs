//! The command line: `serve`, `simulate`, `device resume`.
//!
//! Owns argument parsing (clap; every flag also read from an `APPLIANCE_*` variable, the flag
//! winning) and dispatch. Errors are printed with their fix and give exit status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Cisco PnP provisioning appliance for ISR1100 routers.
#[derive(Debug, Parser)]
#[command(name = "pnp-appliance", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        env = "APPLIANCE_CONFIG",
        default_value = "appliance.toml",
        global = true
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    },
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
        /// Serial prefix (serials are PREFIX00001, ...).
        #[arg(long, env = "APPLIANCE_SIM_SERIAL_PREFIX", default_value = "SIM")]
        serial_prefix: String,
        /// Product id of the routers.
        #[arg(long, env = "APPLIANCE_SIM_PID", default_value = "C1131-8PWB")]
        pid: String,
        /// IOS-XE version the routers run out of the box.
        #[arg(long, env = "APPLIANCE_SIM_START_VERSION", default_value = "17.9.4a")]
        start_version: String,
    },
    /// Act on one router's record.
    Device {
        /// The action.
        #[command(subcommand)]
        action: DeviceAction,
    },
}

/// Operator actions on a device.
#[derive(Debug, Subcommand)]
pub enum DeviceAction {
    /// Continue a router parked in BOOTFLASH_NO_SPACE, or retry a FAILED one.
    Resume {
        /// Serial number.
        serial: String,
    },
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
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
    match cli.command {
        Command::Serve {
            listen,
            advertise,
            log_level,
            interface,
        } => {
            let mut cfg = load(&cli.config)?;
            if let Some(l) = listen {
                cfg.listen = l.parse().map_err(|_| {
                    anyhow::anyhow!("--listen {l:?} is not address:port (e.g. 0.0.0.0:8080)")
                })?;
            }
            if advertise.is_some() {
                cfg.advertise = advertise;
            }
            if let Some(l) = log_level {
                cfg.log_level = l;
            }
            if interface.is_some() {
                cfg.dhcp.interface = interface;
            }
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
            serial_prefix,
            pid,
            start_version,
        } => {
            crate::logging::init_console("warn");
            if !(time_scale > 0.0 && time_scale.is_finite()) {
                anyhow::bail!("--time-scale must be a positive number (e.g. 0.01)");
            }
            if !crate::pnp::message::is_safe_serial(&format!("{serial_prefix}00001")) {
                anyhow::bail!("--serial-prefix may hold only letters, digits, '.', '_' and '-'");
            }
            let opts = crate::simulate::SimOptions {
                server: server.trim_end_matches('/').to_string(),
                devices,
                time_scale,
                timeout: Duration::from_secs(timeout),
                low_bootflash,
                serial_prefix,
                pid,
                start_version,
            };
            let summary = runtime()?.block_on(crate::simulate::run(opts))?;
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
                "simulate: {devices} routers, {finished} FINISHED, {} not finished, {} exchanges, {:.1} s",
                devices - finished,
                summary.exchanges,
                summary.elapsed.as_secs_f64()
            );
            Ok(if summary.all_finished(devices) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::DhcpConfig { format, interface } => {
            let mut cfg = load(&cli.config)?;
            if interface.is_some() {
                cfg.dhcp.interface = interface;
            }
            let input = crate::dhcp::snippet_input(&cfg).map_err(anyhow::Error::msg)?;
            print!("{}", crate::dhcp::snippet::render(format, &input));
            Ok(ExitCode::SUCCESS)
        }
        Command::Device { action } => {
            crate::logging::init_console("warn");
            let cfg = load(&cli.config)?;
            match action {
                DeviceAction::Resume { serial } => {
                    let msg = runtime()?.block_on(crate::ops::resume(&cfg, &serial))?;
                    println!("{msg}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
