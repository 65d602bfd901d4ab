//! Files replaced whole: a temp file beside the target, fsync, rename, fsync of the directory,
//! so a reader (or a restart after `kill -9`) sees the old file or the new one, never half of
//! one; and the sweep of temp files a crash left behind.

use std::io::Write;
use std::path::Path;

/// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync
/// of the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(temp_name(name, std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The temp file [`write_atomic`] writes `name` through, in process `pid`.
pub(super) fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.tmp{pid}")
}

/// The writing process of a [`temp_name`], if `file` is one.
pub(super) fn temp_writer(file: &str) -> Option<u32> {
    let (_, pid) = file.strip_prefix('.')?.rsplit_once(".tmp")?;
    pid.parse().ok()
}

/// Removes from `dir` the temp files of writes that a crash or `kill -9` cut off before their
/// rename: never read (the file they were replacing is intact), they would only take disk.
/// A temp file whose writer still runs (another command writing here) is left alone. Returns
/// a line per file for the log.
pub(super) fn sweep_temp_files(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for entry in rd.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(temp_writer) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        notes.push(match std::fs::remove_file(&path) {
            Ok(()) => format!(
                "{}: removed, the temp file of a write cut off by a crash (what it was replacing is intact)",
                path.display()
            ),
            Err(e) => format!(
                "{}: temp file of a write cut off by a crash, cannot remove it ({e}): delete it",
                path.display()
            ),
        });
    }
    notes
}
