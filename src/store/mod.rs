//! The device registry: the one owner of device state, and its persistence.
//!
//! Owns the in-memory records and their persistence: every durable change goes to the journal
//! (`crate::store::journal`, group-committed, fsynced before a reply leaves, so `kill -9` at any moment
//! loses nothing that was answered) and from there into one JSON file per router under
//! `<state>/devices/` (rewritten atomically at start-up and compaction); and `DEVICE_STATUS.csv`
//! (rewritten atomically in the background, coalescing bursts). DHCP, PnP and the operator commands change
//! records only through [`Registry::update`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

mod atomic;
pub mod journal;
pub(crate) mod server_record;
mod status_csv;
pub(crate) mod token;

use atomic::sweep_temp_files;
pub(crate) use atomic::write_atomic;
pub(crate) use status_csv::{STATUS_COLUMNS, status_table};

use crate::domain::device::Device;
use crate::sync::lock;

/// (mtime, length) of our last status CSV write, and the state cell we wrote per serial.
type CsvWritten = (
    Option<(std::time::SystemTime, u64)>,
    HashMap<String, String>,
);

struct Shared {
    dir: PathBuf,
    journal: crate::store::journal::Journal,
    /// Exclusive lock on the state directory while this registry writes to it.
    _lock: std::fs::File,
    status_csv: PathBuf,
    devices: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Device>>>>,
    /// Records whose only changes (last contact) are not on disk yet.
    dirty: Mutex<HashSet<String>>,
    /// Records whose durable changes could not be written (full disk, read-only), since when:
    /// written whole at their next change, with a history line saying so.
    unsaved: Mutex<HashMap<String, chrono::DateTime<chrono::Local>>>,
    changed: Notify,
    /// How long durable changes take to commit (handed to the journal until on disk).
    commit_latency: crate::metrics::Latency,
    /// What we last wrote to the status CSV: its (mtime, length) and each serial's state cell,
    /// to tell an operator's edit from our own writes.
    csv_written: Mutex<CsvWritten>,
}

/// Cheap handle to the registry.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

/// Reads every per-device file of `dir`; unreadable ones are reported and skipped.
fn load_files(dir: &Path) -> (HashMap<String, Device>, Vec<String>) {
    let mut devices = HashMap::new();
    let mut problems = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (devices, problems);
    };
    for entry in rd.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Device>(&b).map_err(|e| e.to_string()))
        {
            Ok(d) if !d.serial.is_empty() => {
                devices.insert(d.serial.clone(), d);
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
    (devices, problems)
}

/// The saved state: the record files with the journals replayed over them, and what could
/// not be read.
fn load_state(state_dir: &Path) -> std::io::Result<(HashMap<String, Device>, Vec<String>)> {
    let (mut devices, mut problems) = load_files(&state_dir.join("devices"));
    let journal = state_dir.join("journal.log");
    // A fold cut short leaves journal.1.log: it is older than journal.log.
    for path in [crate::store::journal::rotated_path(&journal), journal] {
        let (entries, mut p) = crate::store::journal::replay(&path)?;
        problems.append(&mut p);
        for e in entries {
            crate::store::journal::apply(&mut devices, e);
        }
    }
    Ok((devices, problems))
}

/// The saved records, read without writing anything (no lock, no compaction): for status and
/// report while no server answers.
pub fn read_saved(state_dir: &Path) -> anyhow::Result<Vec<Device>> {
    let mut out: Vec<Device> = load_state(state_dir)?.0.into_values().collect();
    out.sort_by(|a, b| {
        b.last_contact
            .cmp(&a.last_contact)
            .then(a.serial.cmp(&b.serial))
    });
    Ok(out)
}

/// A copy of `d` with an empty history (its `logged` count kept), without cloning the history.
fn without_history(d: &mut Device) -> Device {
    let history = std::mem::take(&mut d.history);
    let copy = d.clone();
    d.history = history;
    copy
}

impl Registry {
    /// Opens the state directory, creating it, and loads every record. Unreadable records are
    /// reported and skipped (left on disk for the operator).
    pub(crate) fn open(
        state_dir: &Path,
        status_csv: &Path,
    ) -> anyhow::Result<(Registry, Vec<String>)> {
        let dir = state_dir.join("devices");
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create state directory {}: {e} (check permissions or set [paths] state)",
                dir.display()
            )
        })?;
        let lock_path = state_dir.join("lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {}: {e} (check permissions)",
                    lock_path.display()
                )
            })?;
        if lock_file.try_lock().is_err() {
            anyhow::bail!(
                "{} is in use by another pnp-appliance (a running `serve` that did not answer on its HTTP port, or another command): stop it, or use the one that runs",
                state_dir.display()
            );
        }
        // What writes cut off by a crash left (the lease table's too, in `state_dir`).
        let mut problems = sweep_temp_files(state_dir);
        problems.append(&mut sweep_temp_files(&dir));
        // Fold the journal into the files, then read them; if it cannot be folded (full
        // disk, read-only), it is kept and replayed over the files in memory.
        let journal_path = state_dir.join("journal.log");
        problems.append(&mut match crate::store::journal::compact(&journal_path, &dir) {
            Ok(p) => p,
            Err(e) => vec![format!(
                "cannot fold {} into {}: {e}; it is kept and replayed (free disk space or fix permissions)",
                journal_path.display(),
                dir.display()
            )],
        });
        let (devices, mut more) = load_state(state_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e} (check permissions)",
                journal_path.display()
            )
        })?;
        problems.append(&mut more);
        let journal = crate::store::journal::Journal::start(&journal_path, &dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot open {}: {e} (check permissions or set [paths] state)",
                journal_path.display()
            )
        })?;
        let registry = Registry {
            shared: Arc::new(Shared {
                dir,
                journal,
                _lock: lock_file,
                status_csv: status_csv.to_path_buf(),
                devices: Mutex::new(
                    devices
                        .into_iter()
                        .map(|(k, d)| (k, Arc::new(tokio::sync::Mutex::new(d))))
                        .collect(),
                ),
                dirty: Mutex::new(HashSet::new()),
                unsaved: Mutex::new(HashMap::new()),
                changed: Notify::new(),
                commit_latency: crate::metrics::Latency::default(),
                csv_written: Mutex::new((None, HashMap::new())),
            }),
        };
        Ok((registry, problems))
    }

    fn entry(&self, serial: &str) -> Option<Arc<tokio::sync::Mutex<Device>>> {
        lock(&self.shared.devices).get(serial).cloned()
    }

    /// Runs `f` on the record of `serial` (created with `create` if new), serialised per device.
    /// The changed record is persisted before this returns when anything durable changed.
    pub(crate) async fn update<R>(
        &self,
        serial: &str,
        create: impl FnOnce() -> Option<Device>,
        f: impl FnOnce(&mut Device) -> R,
    ) -> Option<R> {
        let (entry, created) = match self.entry(serial) {
            Some(e) => (e, false),
            None => {
                let dev = create()?;
                let e = lock(&self.shared.devices)
                    .entry(serial.to_string())
                    .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(dev)))
                    .clone();
                (e, true)
            }
        };
        let mut guard = entry.lock().await;
        let before = without_history(&mut guard);
        let result = f(&mut guard);
        let after = &mut *guard;
        let unsaved = lock(&self.shared.unsaved).get(serial).copied();
        if created || unsaved.is_some() || !before.same_durable(after) {
            let now = chrono::Local::now();
            if let Some(since) = unsaved {
                after.log(
                    now,
                    format!(
                        "the appliance could not save this record from {} until now (disk full or read-only): its history of that time is saved now",
                        crate::domain::bench::utc(since)
                    ),
                );
            }
            // Only the lines logged by this change go to the journal; a record this call created
            // goes whole (its first lines were logged by `create`), and so does one whose
            // earlier writes failed. Lines are numbered, so a racing creator writing them too
            // adds none twice.
            let new_lines = if created || unsaved.is_some() {
                usize::MAX
            } else {
                usize::try_from(after.logged.saturating_sub(before.logged)).unwrap_or(usize::MAX)
            };
            let started = std::time::Instant::now();
            let committed = self.shared.journal.update(after, new_lines).await;
            self.shared.commit_latency.record(started.elapsed());
            match committed {
                Ok(()) => {
                    lock(&self.shared.dirty).remove(serial);
                    lock(&self.shared.unsaved).remove(serial);
                }
                Err(e) => {
                    self.persist_failed(serial, &e);
                    if unsaved.is_none() {
                        lock(&self.shared.unsaved).insert(serial.to_string(), now);
                        after.log(
                            now,
                            format!(
                                "NOT SAVED: {e}; this record's changes are kept in memory only and lost if the appliance stops before the disk is fixed"
                            ),
                        );
                    }
                }
            }
        } else if before != *after {
            lock(&self.shared.dirty).insert(serial.to_string());
        }
        drop(guard);
        self.shared.changed.notify_one();
        Some(result)
    }

    fn persist_failed(&self, serial: &str, e: &str) {
        tracing::error!(
            serial,
            error = %e,
            "cannot persist device record: state is kept in memory only; free disk space or fix permissions of {}",
            self.shared.dir.parent().unwrap_or(&self.shared.dir).display()
        );
    }

    /// Deletes the record of `serial` (memory and disk); false when unknown.
    pub(crate) async fn remove(&self, serial: &str) -> bool {
        let Some(entry) = lock(&self.shared.devices).remove(serial) else {
            return false;
        };
        // Wait for any exchange in progress on it to finish first.
        let _guard = entry.lock().await;
        if let Err(e) = self.shared.journal.forget(serial).await {
            self.persist_failed(serial, &e);
        }
        lock(&self.shared.dirty).remove(serial);
        self.shared.changed.notify_one();
        true
    }

    /// Applies operator edits of the "Device State" column of the status CSV made since our
    /// last write (the reference server's documented way to unstick a router).
    pub(crate) async fn apply_csv_edits(&self) {
        let path = &self.shared.status_csv;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let stamp = meta.modified().ok().map(|m| (m, meta.len()));
        let (last_stamp, written) = {
            let g = lock(&self.shared.csv_written);
            (g.0, g.1.clone())
        };
        if last_stamp.is_none() || stamp == last_stamp {
            return;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let now = chrono::Local::now();
        // Read with the same CSV dialect the table is written in (`|`, quotes where needed), so
        // a quoted cell holding `|` or a newline is one cell, never a row of its own.
        let mut rows = csv::ReaderBuilder::new()
            .delimiter(b'|')
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        for record in rows.records() {
            let Ok(record) = record else {
                tracing::warn!(
                    "{}: a row is not readable CSV: ignored (keep each row on one line and the `|` separators)",
                    path.display()
                );
                continue;
            };
            if record.len() < STATUS_COLUMNS.len() {
                continue;
            }
            let (Some(serial), Some(cell)) = (record.get(0), record.get(STATUS_COLUMNS.len() - 1))
            else {
                continue;
            };
            if written.get(serial).map(String::as_str) == Some(cell) {
                continue;
            }
            match crate::domain::device::State::parse(cell) {
                Some(state) => {
                    let done = self
                        .update(
                            serial,
                            || None,
                            |d| {
                                crate::domain::workflow::set_state(
                                    d,
                                    state,
                                    now,
                                    "edited in DEVICE_STATUS.csv",
                                )
                            },
                        )
                        .await;
                    match done {
                        Some(()) => {
                            tracing::info!(serial, state = %state, "operator edit in {} applied", path.display())
                        }
                        None => tracing::warn!(
                            serial,
                            "{}: no device with serial {serial}: row ignored",
                            path.display()
                        ),
                    }
                }
                None => tracing::warn!(
                    serial,
                    "{}: {cell:?} is not a device state: edit ignored (use a name such as RUN_EVENT_MANAGER, or `pnp-appliance device resume {serial}`)",
                    path.display()
                ),
            }
        }
    }
    /// Number of records.
    /// Commit latency of durable changes so far (`/metrics`).
    pub(crate) fn commit_latency(&self) -> crate::metrics::Exported {
        self.shared.commit_latency.exported()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.shared.devices).len()
    }

    /// A copy of one record.
    pub async fn get(&self, serial: &str) -> Option<Device> {
        let entry = self.entry(serial)?;
        let d = entry.lock().await.clone();
        Some(d)
    }

    /// A copy of one record without its history (cheap: for serving a router's files).
    pub(crate) async fn summary(&self, serial: &str) -> Option<Device> {
        let entry = self.entry(serial)?;
        let d = without_history(&mut *entry.lock().await);
        Some(d)
    }

    /// Copies of all records without their history (cheap: for tables), newest contact first.
    pub(crate) async fn summaries(&self) -> Vec<Device> {
        self.copies(without_history).await
    }

    async fn copies(&self, copy: impl Fn(&mut Device) -> Device) -> Vec<Device> {
        let entries: Vec<_> = lock(&self.shared.devices).values().cloned().collect();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(copy(&mut *e.lock().await));
        }
        out.sort_by(|a, b| {
            b.last_contact
                .cmp(&a.last_contact)
                .then(a.serial.cmp(&b.serial))
        });
        out
    }

    /// Writes records whose only change was contact bookkeeping, and the status CSV.
    pub(crate) async fn flush(&self) {
        let dirty: Vec<String> = lock(&self.shared.dirty).drain().collect();
        for serial in dirty {
            let Some(entry) = self.entry(&serial) else {
                continue;
            };
            let mut d = without_history(&mut *entry.lock().await);
            if let Err(e) = self.shared.journal.update(&mut d, 0).await {
                self.persist_failed(&serial, &e);
            }
        }
        self.write_status().await;
    }

    async fn write_status(&self) {
        // An operator's edit is read before it could be overwritten.
        self.apply_csv_edits().await;
        let devices = self.summaries().await;
        let path = self.shared.status_csv.clone();
        let written = path.clone();
        // Rendered with the write, off the runtime's workers: a thousand rows take a few ms,
        // every 250 ms while routers move, and PnP exchanges would wait behind them.
        let job = move || {
            let text = status_table(&devices);
            let states: HashMap<String, String> = devices
                .iter()
                .map(|d| (d.serial.clone(), d.state.as_str().to_string()))
                .collect();
            write_atomic(&path, text.as_bytes()).map(|()| states)
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(Ok(states)) => {
                let stamp = std::fs::metadata(&written)
                    .ok()
                    .and_then(|m| m.modified().ok().map(|t| (t, m.len())));
                *lock(&self.shared.csv_written) = (stamp, states);
            }
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
    pub(crate) async fn run_writer(self, cancel: tokio_util::sync::CancellationToken) {
        let mut last_flush = tokio::time::Instant::now();
        self.write_status().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.shared.changed.notified() => {}
                // Wakes to notice operator edits of the CSV.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            if last_flush.elapsed() > Duration::from_secs(5) {
                self.flush().await;
                last_flush = tokio::time::Instant::now();
            } else {
                self.write_status().await;
            }
        }
        self.close().await;
    }

    /// Final flush at shutdown: contact times, status table, and every record into its file.
    pub(crate) async fn close(&self) {
        self.flush().await;
        if let Err(e) = self.shared.journal.compact().await {
            tracing::warn!(error = %e, "cannot compact the journal at shutdown: it is replayed at the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::atomic::{temp_name, temp_writer};
    use super::*;
    use crate::domain::device::State;

    /// Writes `text` over the status table as an operator's editor would, after our own write:
    /// an edit can keep the length, so only the modification time tells it from our write, and
    /// it is set a second later instead of waiting out the file system's timestamp granularity.
    fn edit_as_operator(csv: &Path, text: &str) {
        let written = std::fs::metadata(csv).unwrap().modified().unwrap();
        std::fs::write(csv, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(csv)
            .unwrap()
            .set_modified(written + std::time::Duration::from_secs(1))
            .unwrap();
    }

    #[tokio::test]
    async fn temp_files_of_cut_off_writes_are_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let devices = dir.path().join("devices");
        std::fs::create_dir_all(&devices).unwrap();
        let saved = Device::new("S1", "u", "p", "v", chrono::Local::now());
        write_atomic(
            &devices.join("S1.json"),
            &serde_json::to_vec(&saved).unwrap(),
        )
        .unwrap();
        // Above the kernel's largest PID (2^22): a writer that cannot be running.
        let dead = 5_000_000;
        let cases = [
            (devices.join(temp_name("S1.json", dead)), false),
            (dir.path().join(temp_name("leases.json", dead)), false),
            (devices.join(temp_name("S2.json", std::process::id())), true),
            (devices.join(temp_name("S3.json", 1)), true), // init runs: its write may be live
            (devices.join(".notes.tmpx"), true),
            (devices.join(".hidden"), true),
        ];
        for (path, _) in &cases {
            std::fs::write(path, b"half").unwrap();
        }
        let (reg, problems) = Registry::open(dir.path(), &dir.path().join("s.csv")).unwrap();
        for (path, kept) in &cases {
            assert_eq!(path.exists(), *kept, "{}", path.display());
        }
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.contains("cut off by a crash")));
        assert_eq!(reg.get("S1").await.unwrap().serial, "S1");
        assert_eq!(temp_writer(&temp_name("a.tmp7.json", 42)), Some(42));
        assert_eq!(temp_writer("S1.json"), None);
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
        assert!(reg.update("S2", || None, |_| ()).await.is_none());
        // A second writer is refused while this one holds the state directory.
        assert!(Registry::open(dir.path(), &csv).is_err());
        // No close(): as after kill -9, the journal alone brings the change back.
        drop(reg);
        std::fs::write(dir.path().join("devices/bad.json"), b"{not json").unwrap();
        let (reg2, problems) = Registry::open(dir.path(), &csv).unwrap();
        assert_eq!(reg2.get("S1").await.unwrap().state, State::ConfigStart);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let saved = read_saved(dir.path()).unwrap();
        assert_eq!(saved.len(), 1);
        drop(reg2);
        // Forgotten records stay forgotten after a restart.
        let (reg, _) = Registry::open(dir.path(), &csv).unwrap();
        assert!(
            dir.path().join("devices/S1.json").exists(),
            "compacted at start-up"
        );
        assert!(reg.remove("S1").await);
        assert!(!reg.remove("S1").await);
        drop(reg);
        let (reg, _) = Registry::open(dir.path(), &csv).unwrap();
        assert!(reg.get("S1").await.is_none());
        assert!(!dir.path().join("devices/S1.json").exists());
    }

    #[tokio::test]
    async fn whole_history_survives_restarts_and_folds_without_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("s.csv");
        let now = chrono::Local::now();
        let mut expected = None;
        for round in 0..4 {
            let (reg, problems) = Registry::open(dir.path(), &csv).unwrap();
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(reg.get("S1").await, expected, "after restart {round}");
            for i in 0..3 {
                reg.update(
                    "S1",
                    || Some(Device::new("S1", "u", "p", "v", now)),
                    |d| {
                        d.attempts = round * 10 + i;
                        d.log(now, format!("round {round} line {i}"));
                    },
                )
                .await
                .unwrap();
            }
            // Contact-only changes go to the journal at a flush, without history.
            reg.update(
                "S1",
                || None,
                |d| d.ip = format!("198.51.100.{round}").parse().ok(),
            )
            .await
            .unwrap();
            reg.flush().await;
            expected = reg.get("S1").await;
            // Every other round stops cleanly (all folded), the others as after kill -9.
            if round % 2 == 0 {
                reg.close().await;
            }
        }
        let d = expected.unwrap();
        assert_eq!(d.history.len(), 12);
        assert_eq!(d.logged, 12);
        assert_eq!(d.ip, "198.51.100.3".parse().ok());
        assert_eq!(d.history[11].text, "round 3 line 2");
        assert_eq!(read_saved(dir.path()).unwrap(), vec![d]);
    }

    #[tokio::test]
    async fn operator_edit_of_the_csv_is_applied_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("DEVICE_STATUS.csv");
        let (reg, _) = Registry::open(dir.path(), &csv).unwrap();
        let now = chrono::Local::now();
        for (serial, state) in [("S1", State::BootflashNoSpace), ("S2", State::ConfigStart)] {
            reg.update(
                serial,
                || Some(Device::new(serial, "u", "p", "v", now)),
                |d| {
                    d.state = state;
                    d.log(now, "x");
                },
            )
            .await;
        }
        reg.flush().await;
        let text = std::fs::read_to_string(&csv).unwrap();
        // The operator changes S1's state cell, keeping the layout; S2 gets a typo.
        let edited = text
            .replace("  BOOTFLASH_NO_SPACE  ", "  RUN_EVENT_MANAGER   ")
            .replace("    CONFIG_START    ", "    CONFIG_STRAT    ");
        assert_ne!(edited, text);
        assert_eq!(edited.len(), text.len());
        edit_as_operator(&csv, &edited);
        reg.flush().await;
        assert_eq!(reg.get("S1").await.unwrap().state, State::RunEventManager);
        assert_eq!(reg.get("S2").await.unwrap().state, State::ConfigStart);
        let rewritten = std::fs::read_to_string(&csv).unwrap();
        assert!(rewritten.contains("RUN_EVENT_MANAGER") && !rewritten.contains("CONFIG_STRAT"));
        // Our own rewrite is not mistaken for an edit.
        reg.flush().await;
        assert_eq!(reg.get("S1").await.unwrap().state, State::RunEventManager);
    }

    #[tokio::test]
    async fn a_quoted_cell_cannot_smuggle_an_edit_of_another_router() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("DEVICE_STATUS.csv");
        let (reg, _) = Registry::open(dir.path(), &csv).unwrap();
        let now = chrono::Local::now();
        for serial in ["S1", "S2"] {
            reg.update(
                serial,
                || Some(Device::new(serial, "u", "p", "v", now)),
                |d| {
                    d.state = State::BootflashNoSpace;
                    d.log(now, "x");
                },
            )
            .await;
        }
        reg.flush().await;
        let text = std::fs::read_to_string(&csv).unwrap();
        // S1's platform cell, quoted as the writer quotes, holds a newline and a whole fake row
        // moving S2 to FINISHED; split by lines, that row would be taken for an edit.
        let fake = format!(
            "\"p\nS2{}\"",
            "|x".repeat(STATUS_COLUMNS.len() - 2) + "|FINISHED|y"
        );
        let edited: String = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("S1") {
                    let mut cells: Vec<String> = l.split('|').map(str::to_string).collect();
                    cells[1] = fake.clone();
                    cells.join("|")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        edit_as_operator(&csv, &format!("{edited}\n"));
        reg.flush().await;
        assert_eq!(reg.get("S2").await.unwrap().state, State::BootflashNoSpace);
        assert_eq!(reg.get("S1").await.unwrap().state, State::BootflashNoSpace);
    }
}
