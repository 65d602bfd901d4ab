//! Logging: console plus `logs/pnp_debug.log`, rotated by size, one `key=value` line per event.
//!
//! Owns the tracing subscriber and the log file. The level comes from `RUST_LOG` when set, else
//! from the config (`[log] level`). The file always has the same name, so `tail -F
//! logs/pnp_debug.log` follows it; when it passes [`ROTATE_BYTES`] it becomes
//! `pnp_debug.log.1` (older ones shift up, `keep` of them are kept). The directory is created
//! and the file opened before the subscriber is installed, so a bad directory is a start-up error
//! with its fix, not a silent loss of logs.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Size at which the log file is rotated.
pub(crate) const ROTATE_BYTES: u64 = 20 * 1024 * 1024;

static GUARD: OnceLock<WorkerGuard> = OnceLock::new();

/// A file writer that rotates `name` to `name.1`, `name.2`, ... by size.
pub(crate) struct RotatingFile {
    path: PathBuf,
    file: File,
    written: u64,
    limit: u64,
    keep: usize,
    /// The last write ended a line: rotating here never splits one.
    line_start: bool,
}

impl RotatingFile {
    /// Opens (appending) `path`, rotating at `limit` bytes and keeping `keep` old files.
    pub(crate) fn open(path: &Path, limit: u64, keep: usize) -> std::io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            written,
            limit,
            keep: keep.max(1),
            line_start: true,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut s = self.path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let _ = std::fs::remove_file(self.numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
        }
        std::fs::rename(&self.path, self.numbered(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.line_start && self.written > 0 && self.written + buf.len() as u64 > self.limit {
            // A failed rotation keeps writing to the current file rather than losing lines.
            let _ = self.rotate();
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if n > 0 {
            self.line_start = buf[n - 1] == b'\n';
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

fn console<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
}

/// Console-only logging (commands other than `serve`).
pub(crate) fn init_console(level: &str) {
    let _ = tracing_subscriber::registry()
        .with(console())
        .with(filter(level))
        .try_init();
}

/// Console plus `dir/pnp_debug.log` (rotated by size, `keep` old files kept).
pub(crate) fn init_with_file(level: &str, dir: &Path, keep: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create log directory {}: {e} (fix permissions or set [paths] logs)",
            dir.display()
        )
    })?;
    let path = dir.join("pnp_debug.log");
    let file = RotatingFile::open(&path, ROTATE_BYTES, keep).map_err(|e| {
        anyhow::anyhow!(
            "cannot open log file {}: {e} (fix permissions or set [paths] logs)",
            path.display()
        )
    })?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let _ = GUARD.set(guard);
    let _ = tracing_subscriber::registry()
        .with(console())
        .with(fmt::layer().with_writer(writer).with_ansi(false))
        .with(filter(level))
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pnp_debug.log");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            writeln!(f, "{i:0>59}").unwrap(); // 60 bytes a line: rotates every other line
        }
        f.flush().unwrap();
        for name in ["pnp_debug.log", "pnp_debug.log.1", "pnp_debug.log.2"] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            // Never a split line; at most one line past the limit.
            assert!(text.lines().all(|l| l.len() == 59), "{name}: {text:?}");
            assert!(
                !text.is_empty() && text.len() <= 100 + 60,
                "{name}: {text:?}"
            );
        }
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(
            current.trim_end().ends_with('9'),
            "newest line in the current file"
        );
        assert!(dir.path().join("pnp_debug.log.1").exists());
        assert!(dir.path().join("pnp_debug.log.2").exists());
        assert!(!dir.path().join("pnp_debug.log.3").exists());
    }
}
