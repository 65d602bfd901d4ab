//! Where the running server listens, recorded in the state directory (`server.json`), so that
//! `status`, `device` and `report` on the same config find a server started with `--listen`
//! elsewhere than the file says.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// Base URL a client on this host uses.
    url: String,
    /// The server's process id: a record left by a killed server is ignored.
    pid: u32,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("server.json")
}

/// Records that this process serves at `url`.
pub(crate) fn write(state_dir: &Path, url: &str) -> std::io::Result<()> {
    let rec = Record {
        url: url.to_string(),
        pid: std::process::id(),
    };
    let json = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
    crate::store::write_atomic(&path(state_dir), &json)
}

/// Removes the record at a clean stop.
pub(crate) fn remove(state_dir: &Path) {
    let _ = std::fs::remove_file(path(state_dir));
}

/// The URL of a server whose process still runs.
pub(crate) fn read(state_dir: &Path) -> Option<String> {
    let rec: Record = serde_json::from_slice(&std::fs::read(path(state_dir)).ok()?).ok()?;
    Path::new(&format!("/proc/{}", rec.pid))
        .exists()
        .then_some(rec.url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn written_read_while_alive_removed() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(super::read(t.path()), None);
        super::write(t.path(), "http://127.0.0.1:9090").unwrap();
        assert_eq!(
            super::read(t.path()).as_deref(),
            Some("http://127.0.0.1:9090")
        );
        // A record whose process is gone (pid 0 never names a process in /proc).
        std::fs::write(
            t.path().join("server.json"),
            r#"{"url":"http://127.0.0.1:1","pid":0}"#,
        )
        .unwrap();
        assert_eq!(super::read(t.path()), None);
        super::remove(t.path());
        assert!(!t.path().join("server.json").exists());
    }
}
