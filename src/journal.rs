//! The device-state journal: every durable change appended and fsynced, many per fsync.
//!
//! Owns `state/journal.log`: one JSON line per change (`{"put":<record>}` or
//! `{"forget":"<serial>"}`), written by one thread that takes every change waiting and commits
//! them with a single `fdatasync` (group commit), then answers each waiter. A caller's change is
//! durable when `append` returns, so a reply that follows it survives `kill -9` and power loss;
//! yet throughput is not one fsync per router exchange. At start-up the journal is replayed over
//! the per-device files (a torn last line from a crash is ignored), those files are rewritten
//! atomically and the journal emptied; it is compacted the same way while running once it grows
//! past [`COMPACT_BYTES`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::state::write_atomic;

/// Journal size that triggers compaction into the per-device files.
pub const COMPACT_BYTES: u64 = 16 << 20;

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entry {
    /// The whole new record.
    Put(Box<Device>),
    /// The record was deleted.
    Forget(String),
}

enum Msg {
    Append(Job),
    /// Write every record into its file and empty the journal now.
    Compact(tokio::sync::oneshot::Sender<Result<(), String>>),
}

struct Job {
    serial: String,
    /// `None`: forget.
    record: Option<Vec<u8>>,
    line: Vec<u8>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Handle to the journal writer.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Msg>,
}

/// Reads the journal's entries; a torn last line (crash mid-write) is skipped silently, any
/// other unreadable line is reported.
pub fn replay(path: &Path) -> std::io::Result<(Vec<Entry>, Vec<String>)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e),
    };
    let lines: Vec<Vec<u8>> = std::io::BufReader::new(file)
        .split(b'\n')
        .collect::<std::io::Result<_>>()?;
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) => entries.push(e),
            Err(_) if i == last => {}
            Err(e) => problems.push(format!(
                "{} line {}: unreadable journal entry ({e}); skipped",
                path.display(),
                i + 1
            )),
        }
    }
    Ok((entries, problems))
}

fn record_path(dir: &Path, serial: &str) -> PathBuf {
    dir.join(format!("{serial}.json"))
}

/// Writes the latest records into their files and empties the journal. On a write error the
/// journal is left as it is (nothing is lost) and the error returned.
/// The journal being folded into the record files in the background.
pub fn rotated_path(journal: &Path) -> PathBuf {
    journal.with_file_name("journal.1.log")
}

/// Writes `latest` into the record files (each temp + fsync + rename, then the directory).
fn write_records(records: &Path, latest: &HashMap<String, Option<Vec<u8>>>) -> std::io::Result<()> {
    for (serial, record) in latest.iter() {
        let path = record_path(records, serial);
        match record {
            Some(bytes) => write_atomic(&path, bytes)?,
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
    }
    if !latest.is_empty() {
        File::open(records)?.sync_all()?;
    }
    Ok(())
}

/// Writes the latest records into their files and empties the journal (and a rotated journal
/// left by a failed background compaction). On a write error nothing is emptied.
fn compact(
    file: &mut File,
    journal: &Path,
    records: &Path,
    latest: &mut HashMap<String, Option<Vec<u8>>>,
) -> std::io::Result<()> {
    write_records(records, latest)?;
    file.set_len(0)?;
    file.sync_all()?;
    match std::fs::remove_file(rotated_path(journal)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    latest.clear();
    Ok(())
}

type Background = std::thread::JoinHandle<Result<(), HashMap<String, Option<Vec<u8>>>>>;

/// Waits for a background compaction; if it failed, its records come back into `latest`
/// (newer ones win) and its rotated journal stays on disk, to be replayed or folded later.
fn join_background(
    background: &mut Option<Background>,
    latest: &mut HashMap<String, Option<Vec<u8>>>,
) {
    if let Some(h) = background.take()
        && let Ok(Err(snapshot)) = h.join()
    {
        for (k, v) in snapshot {
            latest.entry(k).or_insert(v);
        }
    }
}

/// Starts folding the journal into the record files without holding up appends: the journal
/// is renamed to `journal.1.log`, a new one started, and a thread writes the records and then
/// removes the rotated file. Skipped while a previous fold is still running or failed.
fn rotate(
    file: &mut File,
    len: &mut u64,
    journal: &Path,
    records: &Path,
    latest: &mut HashMap<String, Option<Vec<u8>>>,
    background: &mut Option<Background>,
) -> std::io::Result<()> {
    if background.as_ref().is_some_and(|h| !h.is_finished()) {
        return Ok(());
    }
    join_background(background, latest);
    let rotated = rotated_path(journal);
    if rotated.exists() {
        // A failed fold left it: fold everything now, in the foreground.
        compact(file, journal, records, latest)?;
        *len = 0;
        return Ok(());
    }
    file.sync_all()?;
    std::fs::rename(journal, &rotated)?;
    let dir = journal.parent().unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()?;
    *file = OpenOptions::new().create(true).append(true).open(journal)?;
    *len = 0;
    let snapshot = std::mem::take(latest);
    let records = records.to_path_buf();
    *background = Some(std::thread::Builder::new().name("journal-fold".into()).spawn(move || {
        match write_records(&records, &snapshot).and_then(|()| std::fs::remove_file(&rotated)) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "cannot fold {} into {}: it is kept and replayed at the next start; free disk space or fix permissions", rotated.display(), records.display());
                Err(snapshot)
            }
        }
    })?);
    Ok(())
}

impl Journal {
    /// Starts the writer on `journal` (appending), compacting into `records` as it grows;
    /// `pending` are records replayed but not yet in their files.
    pub fn start(
        journal: &Path,
        records: &Path,
        pending: HashMap<String, Option<Vec<u8>>>,
    ) -> std::io::Result<Journal> {
        Journal::start_with(journal, records, pending, COMPACT_BYTES)
    }

    /// [`Journal::start`] folding into the records whenever the journal passes `compact_bytes`.
    pub fn start_with(
        journal: &Path,
        records: &Path,
        pending: HashMap<String, Option<Vec<u8>>>,
        compact_bytes: u64,
    ) -> std::io::Result<Journal> {
        let mut file = OpenOptions::new().create(true).append(true).open(journal)?;
        let mut len = file.metadata()?.len();
        let records = records.to_path_buf();
        let journal_path = journal.to_path_buf();
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                let mut latest = pending;
                let mut background: Option<Background> = None;
                while let Ok(first) = rx.recv() {
                    // Appends waiting are committed together; a compaction request ends the batch.
                    let mut batch = Vec::new();
                    let mut compact_after = Vec::new();
                    match first {
                        Msg::Append(j) => batch.push(j),
                        Msg::Compact(done) => compact_after.push(done),
                    }
                    while compact_after.is_empty() && batch.len() < 4096 {
                        match rx.try_recv() {
                            Ok(Msg::Append(j)) => batch.push(j),
                            Ok(Msg::Compact(done)) => compact_after.push(done),
                            Err(_) => break,
                        }
                    }
                    let buf: Vec<u8> = batch.iter().flat_map(|j| j.line.iter().copied()).collect();
                    let result = if buf.is_empty() {
                        Ok(())
                    } else {
                        match file.write_all(&buf).and_then(|()| file.sync_data()) {
                            Ok(()) => {
                                len += buf.len() as u64;
                                Ok(())
                            }
                            Err(e) => {
                                // Never leave half a line behind a failed write (full disk).
                                let _ = file.set_len(len);
                                Err(e.to_string())
                            }
                        }
                    };
                    for job in batch {
                        if result.is_ok() {
                            latest.insert(job.serial, job.record);
                        }
                        let _ = job.done.send(result.clone());
                    }
                    for done in compact_after {
                        join_background(&mut background, &mut latest);
                        let r = compact(&mut file, &journal_path, &records, &mut latest)
                            .map_err(|e| e.to_string());
                        if r.is_ok() {
                            len = 0;
                        }
                        let _ = done.send(r);
                    }
                    if len > compact_bytes
                        && let Err(e) = rotate(
                            &mut file,
                            &mut len,
                            &journal_path,
                            &records,
                            &mut latest,
                            &mut background,
                        ) {
                            tracing::error!(
                                error = %e,
                                "cannot compact {}: the journal keeps growing; free disk space or fix permissions of {}",
                                journal_path.display(),
                                records.display()
                            );
                        }
                }
            })?;
        Ok(Journal { tx })
    }

    async fn send(
        &self,
        serial: &str,
        record: Option<Vec<u8>>,
        line: Vec<u8>,
    ) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Append(Job {
                serial: serial.to_string(),
                record,
                line,
                done,
            }))
            .map_err(|_| "journal writer stopped".to_string())?;
        wait.await
            .map_err(|_| "journal writer stopped".to_string())?
    }

    /// Writes every record changed since the last compaction into its file and empties the
    /// journal (at shutdown, so the files alone tell the whole state).
    pub async fn compact(&self) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Compact(done))
            .map_err(|_| "journal writer stopped".to_string())?;
        wait.await
            .map_err(|_| "journal writer stopped".to_string())?
    }

    /// Appends the new record of a device; returns when it is on disk.
    pub async fn put(&self, device: &Device) -> Result<(), String> {
        let record = serde_json::to_vec_pretty(device).map_err(|e| e.to_string())?;
        let mut line = b"{\"put\":".to_vec();
        serde_json::to_writer(&mut line, device).map_err(|e| e.to_string())?;
        line.extend_from_slice(b"}\n");
        self.send(&device.serial, Some(record), line).await
    }

    /// Appends the deletion of a record; returns when it is on disk.
    pub async fn forget(&self, serial: &str) -> Result<(), String> {
        let mut line =
            serde_json::to_vec(&Entry::Forget(serial.to_string())).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.send(serial, None, line).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_appends_replay_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let records = dir.path().join("devices");
        std::fs::create_dir_all(&records).unwrap();
        let j = Journal::start(&path, &records, HashMap::new()).unwrap();
        let now = chrono::Local::now();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                let mut d = Device::new(&format!("S{i}"), "u", "p", "v", now);
                d.attempts = i;
                j.put(&d).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        j.forget("S3").await.unwrap();
        // A crash mid-write leaves a torn last line: ignored on replay.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"put\":{\"serial\":\"S9").unwrap();
        let (entries, problems) = replay(&path).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(entries.len(), 51);
        assert!(matches!(entries.last(), Some(Entry::Forget(s)) if s == "S3"));
        // A damaged line in the middle is reported, the rest still read.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("{\"put\"", "{\"pXt\"", 1);
        std::fs::write(&path, text).unwrap();
        let (entries, problems) = replay(&path).unwrap();
        assert_eq!((entries.len(), problems.len()), (50, 1));
    }

    #[test]
    fn compaction_writes_records_and_empties_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("devices");
        std::fs::create_dir_all(&records).unwrap();
        std::fs::write(records.join("OLD.json"), b"{}").unwrap();
        let path = dir.path().join("journal.log");
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"x\n").unwrap();
        let mut latest = HashMap::from([
            ("NEW".to_string(), Some(b"{\"serial\":\"NEW\"}".to_vec())),
            ("OLD".to_string(), None),
        ]);
        compact(&mut file, &path, &records, &mut latest).unwrap();
        assert_eq!(
            std::fs::read(records.join("NEW.json")).unwrap(),
            b"{\"serial\":\"NEW\"}"
        );
        assert!(!records.join("OLD.json").exists());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(latest.is_empty());
    }

    #[tokio::test]
    async fn folding_in_the_background_keeps_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let records = dir.path().join("devices");
        std::fs::create_dir_all(&records).unwrap();
        // Fold after every few hundred bytes: many rotations while appends go on.
        let j = Journal::start_with(&path, &records, HashMap::new(), 300).unwrap();
        let now = chrono::Local::now();
        for round in 0..20u32 {
            for i in 0..10u32 {
                let mut d = Device::new(&format!("S{i}"), "u", "p", "v", now);
                d.attempts = round;
                j.put(&d).await.unwrap();
            }
        }
        j.forget("S3").await.unwrap();
        // What a restart would see: files, then the rotated journal, then the journal.
        let saved = |dir: &Path| {
            let mut map: HashMap<String, u32> = HashMap::new();
            for e in std::fs::read_dir(dir.join("devices")).unwrap() {
                let p = e.unwrap().path();
                // Temp files of a fold in progress, and records deleted while listing, are
                // what a restart would not read either.
                if p.file_name().unwrap().to_string_lossy().starts_with('.') {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&p) else {
                    continue;
                };
                let d: Device = serde_json::from_slice(&bytes).unwrap();
                map.insert(d.serial.clone(), d.attempts);
            }
            for p in [
                rotated_path(&dir.join("journal.log")),
                dir.join("journal.log"),
            ] {
                for e in replay(&p).unwrap().0 {
                    match e {
                        Entry::Put(d) => {
                            map.insert(d.serial.clone(), d.attempts);
                        }
                        Entry::Forget(s) => {
                            map.remove(&s);
                        }
                    }
                }
            }
            map
        };
        let view = saved(dir.path());
        assert_eq!(view.len(), 9);
        assert!(view.values().all(|a| *a == 19), "{view:?}");
        // After an explicit compaction the files alone hold everything.
        j.compact().await.unwrap();
        assert!(!rotated_path(&path).exists());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(saved(dir.path()), view);
        assert!(!records.join("S3.json").exists());
    }
}
