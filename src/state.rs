//! The device registry: the one owner of device state, and its persistence.
//!
//! Owns the in-memory records, their JSON files under `<state>/devices/` (one per router, written
//! temp file + fsync + rename + directory fsync before a reply leaves, so `kill -9` at any
//! moment leaves either the old or the new record), and `DEVICE_STATUS.csv` (rewritten
//! atomically in the background, coalescing bursts). DHCP, PnP and the operator commands change
//! records only through [`Registry::update`].

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::device::Device;

/// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync
/// of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
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

struct Shared {
    dir: PathBuf,
    status_csv: PathBuf,
    devices: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Device>>>>,
    /// Records whose only changes (last contact) are not on disk yet.
    dirty: Mutex<HashSet<String>>,
    changed: Notify,
}

/// Cheap handle to the registry.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the map half-updated (single inserts), so
    // poisoning is safe to ignore.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// Opens the state directory, creating it, and loads every record. Unreadable records are
    /// reported and skipped (left on disk for the operator).
    pub fn open(state_dir: &Path, status_csv: &Path) -> anyhow::Result<(Registry, Vec<String>)> {
        let dir = state_dir.join("devices");
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create state directory {}: {e} (check permissions or set [paths] state)",
                dir.display()
            )
        })?;
        let mut devices = HashMap::new();
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Device>(&b).map_err(|e| e.to_string()))
            {
                Ok(d) if !d.serial.is_empty() => {
                    devices.insert(d.serial.clone(), Arc::new(tokio::sync::Mutex::new(d)));
                }
                Ok(_) => problems.push(format!(
                    "{}: record without serial, skipped",
                    path.display()
                )),
                Err(e) => problems.push(format!(
                    "{}: unreadable device record ({e}); skipped: fix or delete it",
                    path.display()
                )),
            }
        }
        let registry = Registry {
            shared: Arc::new(Shared {
                dir,
                status_csv: status_csv.to_path_buf(),
                devices: Mutex::new(devices),
                dirty: Mutex::new(HashSet::new()),
                changed: Notify::new(),
            }),
        };
        Ok((registry, problems))
    }

    fn path_of(&self, serial: &str) -> PathBuf {
        self.shared.dir.join(format!("{serial}.json"))
    }

    fn entry(&self, serial: &str) -> Option<Arc<tokio::sync::Mutex<Device>>> {
        lock(&self.shared.devices).get(serial).cloned()
    }

    /// Runs `f` on the record of `serial` (created with `create` if new), serialised per device.
    /// The changed record is persisted before this returns when anything durable changed.
    pub async fn update<R>(
        &self,
        serial: &str,
        create: impl FnOnce() -> Option<Device>,
        f: impl FnOnce(&mut Device) -> R,
    ) -> Option<R> {
        let entry = match self.entry(serial) {
            Some(e) => e,
            None => {
                let dev = create()?;
                lock(&self.shared.devices)
                    .entry(serial.to_string())
                    .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(dev)))
                    .clone()
            }
        };
        let mut guard = entry.lock().await;
        let before = guard.clone();
        let mut after = before.clone();
        let result = f(&mut after);
        let is_new = before.history.is_empty() && !after.history.is_empty();
        if is_new || !before.same_durable(&after) {
            let path = self.path_of(serial);
            let json = serde_json::to_vec_pretty(&after).unwrap_or_default();
            let write = tokio::task::spawn_blocking(move || write_atomic(&path, &json)).await;
            match write {
                Ok(Ok(())) => {
                    lock(&self.shared.dirty).remove(serial);
                }
                Ok(Err(e)) => tracing::error!(
                    serial,
                    error = %e,
                    "cannot persist device record: state is kept in memory only; free disk space or fix permissions of {}",
                    self.shared.dir.display()
                ),
                Err(e) => tracing::error!(serial, error = %e, "persist task failed"),
            }
        } else if before != after {
            lock(&self.shared.dirty).insert(serial.to_string());
        }
        *guard = after;
        drop(guard);
        self.shared.changed.notify_one();
        Some(result)
    }

    /// A copy of one record.
    pub async fn get(&self, serial: &str) -> Option<Device> {
        let entry = self.entry(serial)?;
        let d = entry.lock().await.clone();
        Some(d)
    }

    /// Copies of all records, newest contact first.
    pub async fn snapshot(&self) -> Vec<Device> {
        let entries: Vec<_> = lock(&self.shared.devices).values().cloned().collect();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(e.lock().await.clone());
        }
        out.sort_by(|a, b| {
            b.last_contact
                .cmp(&a.last_contact)
                .then(a.serial.cmp(&b.serial))
        });
        out
    }

    /// Writes records whose only change was contact bookkeeping, and the status CSV.
    pub async fn flush(&self) {
        let dirty: Vec<String> = lock(&self.shared.dirty).drain().collect();
        for serial in dirty {
            if let Some(d) = self.get(&serial).await {
                let path = self.path_of(&serial);
                let json = serde_json::to_vec_pretty(&d).unwrap_or_default();
                let _ = tokio::task::spawn_blocking(move || write_atomic(&path, &json)).await;
            }
        }
        self.write_status().await;
    }

    async fn write_status(&self) {
        let devices = self.snapshot().await;
        let path = self.shared.status_csv.clone();
        let text = status_table(&devices);
        match tokio::task::spawn_blocking(move || write_atomic(&path, text.as_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                error = %e,
                "cannot write {}: check the directory is writable and has space",
                self.shared.status_csv.display()
            ),
            Err(e) => tracing::warn!(error = %e, "status writer task failed"),
        }
    }

    /// Background task: rewrites the status CSV after changes (at most every 250 ms) and flushes
    /// contact-only changes every few seconds, until `cancel`.
    pub async fn run_writer(self, cancel: tokio_util::sync::CancellationToken) {
        let mut last_flush = tokio::time::Instant::now();
        self.write_status().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.shared.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            if last_flush.elapsed() > Duration::from_secs(5) {
                self.flush().await;
                last_flush = tokio::time::Instant::now();
            } else {
                self.write_status().await;
            }
        }
        self.flush().await;
    }
}

/// Column titles and widths of the reference `DEVICE_STATUS.csv` (ianz94's layout).
pub const STATUS_COLUMNS: [(&str, usize); 12] = [
    ("Serial Number", 15),
    ("Platform", 16),
    ("HW rev.", 9),
    ("IP Address", 16),
    ("First Seen", 24),
    ("Last Contact", 24),
    ("Current Version", 22),
    ("Target Image", 40),
    ("Guestshell Tarball", 20),
    ("Python Script", 15),
    ("Config Update", 15),
    ("Device State", 22),
];

/// Time format of the status table.
pub const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

fn done(b: bool) -> &'static str {
    if b { "Done" } else { "Not yet" }
}

/// Renders the status table: `|`-separated, each cell centred in its fixed width.
pub fn status_table(devices: &[Device]) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b'|')
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let cell = |s: &str, width: usize| format!("{s:^width$}");
    let header: Vec<String> = STATUS_COLUMNS.iter().map(|(t, w)| cell(t, *w)).collect();
    let _ = w.write_record(&header);
    for d in devices {
        let values = [
            d.serial.clone(),
            d.pid.clone(),
            d.vid.clone(),
            d.ip.clone(),
            d.first_seen.format(TIME_FORMAT).to_string(),
            d.last_contact.format(TIME_FORMAT).to_string(),
            d.current_version.clone(),
            d.target_image.clone(),
            done(d.tarball_done).to_string(),
            done(d.script_done).to_string(),
            done(d.config_file.is_some()).to_string(),
            d.state.as_str().to_string(),
        ];
        let row: Vec<String> = values
            .iter()
            .zip(STATUS_COLUMNS)
            .map(|(v, (_, width))| cell(v, width))
            .collect();
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::State;

    #[test]
    fn status_table_matches_reference_header_and_centres_cells() {
        let t = status_table(&[]);
        assert_eq!(
            t,
            " Serial Number |    Platform    | HW rev. |   IP Address   |       First Seen       |      Last Contact      |   Current Version    |              Target Image              | Guestshell Tarball | Python Script | Config Update |     Device State     \n"
        );
        let now = chrono::Local::now();
        let mut d = Device::new(
            "FGL1",
            "PID:C1131-8PWB,VID:V01,SN:FGL1",
            "C1131-8PWB",
            "V01",
            now,
        );
        d.state = State::Finished;
        d.tarball_done = true;
        let t = status_table(&[d]);
        let row = t.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split('|').collect();
        assert_eq!(cells.len(), 12);
        assert_eq!(cells[0], "     FGL1      ");
        assert_eq!(cells[8].trim(), "Done");
        assert_eq!(cells[9].trim(), "Not yet");
        assert_eq!(cells[11].trim(), "FINISHED");
        assert_eq!(cells[4].trim(), now.format(TIME_FORMAT).to_string());
    }

    #[tokio::test]
    async fn update_persists_and_reopen_restores() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("s.csv");
        let (reg, problems) = Registry::open(dir.path(), &csv).unwrap();
        assert!(problems.is_empty());
        let now = chrono::Local::now();
        reg.update(
            "S1",
            || Some(Device::new("S1", "u", "p", "v", now)),
            |d| {
                d.state = State::ConfigStart;
                d.log(now, "x");
            },
        )
        .await
        .unwrap();
        std::fs::write(dir.path().join("devices/bad.json"), b"{not json").unwrap();
        let (reg2, problems) = Registry::open(dir.path(), &csv).unwrap();
        assert_eq!(reg2.get("S1").await.unwrap().state, State::ConfigStart);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(reg.update("S2", || None, |_| ()).await.is_none());
    }
}
