//! Logging: console plus `logs/pnp_debug.log`, rotated daily, one `key=value` line per event.
//!
//! Owns the tracing subscriber. The level comes from `RUST_LOG` when set, else from the config
//! (`[log] level`). The log directory is created and checked before the subscriber is installed,
//! so a bad directory is a start-up error with its fix, not a silent loss of logs.

use std::path::Path;
use std::sync::OnceLock;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

static GUARD: OnceLock<WorkerGuard> = OnceLock::new();

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Console-only logging (commands other than `serve`).
pub fn init_console(level: &str) {
    let _ = tracing_subscriber::registry()
        .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
        .with(filter(level))
        .try_init();
}

/// Console plus rotated `pnp_debug.log` in `dir`, keeping `keep` files.
pub fn init_with_file(level: &str, dir: &Path, keep: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create log directory {}: {e} (fix permissions or set [paths] logs)",
            dir.display()
        )
    })?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("pnp_debug")
        .filename_suffix("log")
        .max_log_files(keep)
        .build(dir)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open log file in {}: {e} (fix permissions or set [paths] logs)",
                dir.display()
            )
        })?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let _ = GUARD.set(guard);
    let _ = tracing_subscriber::registry()
        .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
        .with(fmt::layer().with_writer(writer).with_ansi(false))
        .with(filter(level))
        .try_init();
    Ok(())
}
