//! The device-state journal: every durable change appended and fsynced, many per fsync.
//!
//! Owns `state/journal.log` and the per-device files it is folded into. One JSON line per
//! change: `{"update":{"device":<record without history>,"log":[<new history lines>]}}` or
//! `{"forget":"<serial>"}` (`{"put":<whole record>}` lines of older versions are still read).
//! A line carries only the history lines added by that change, numbered by the record's
//! `logged` count, so it stays small however long the history is, and replaying a line twice
//! adds nothing twice ([`apply`]). One thread takes every change waiting and commits them with
//! a single `fdatasync` (group commit), then answers each waiter: a change is durable when
//! [`Journal::update`] returns, so a reply that follows it survives `kill -9` and power loss.
//! Once the journal passes [`COMPACT_BYTES`] it is renamed `journal.1.log` and folded into
//! `devices/<SERIAL>.json` by a background thread (each file rewritten atomically) while new
//! changes go to a fresh journal; at start-up and shutdown both are folded in the foreground.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::domain::device::{Device, Event};
use crate::store::write_atomic;

/// Nice value of the background fold thread (CFS gives a nice-0 thread ~10× its share).
const FOLD_NICE: i32 = 10;

/// Journal size that triggers folding into the per-device files.
pub(crate) const COMPACT_BYTES: u64 = 16 << 20;

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entry {
    /// A changed record.
    Update {
        /// Everything but its history (written empty).
        device: Box<Device>,
        /// The history lines this change added: the last `log.len()` of the `device.logged`
        /// lines ever logged.
        log: Vec<Event>,
    },
    /// The whole new record, history included (written by older versions; still read).
    Put(Box<Device>),
    /// The record was deleted.
    Forget(String),
}

impl Entry {
    /// The serial the entry is about.
    pub fn serial(&self) -> &str {
        match self {
            Entry::Update { device, .. } => &device.serial,
            Entry::Put(d) => &d.serial,
            Entry::Forget(s) => s,
        }
    }
}

/// [`Entry::Update`] borrowing what it writes.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum EntryRef<'a> {
    Update {
        device: &'a Device,
        log: &'a [Event],
    },
}

/// The journal line for `device` after a change that logged its last `new_lines` history lines.
/// The record is written without its history (taken out and put back here).
pub(crate) fn update_line(device: &mut Device, new_lines: usize) -> Result<Vec<u8>, String> {
    let history = std::mem::take(&mut device.history);
    let log = &history[history.len().saturating_sub(new_lines)..];
    let mut line = Vec::with_capacity(1024);
    let written = serde_json::to_writer(&mut line, &EntryRef::Update { device, log });
    device.history = history;
    written.map_err(|e| e.to_string())?;
    line.push(b'\n');
    Ok(line)
}

/// Applies one entry to `devices` (pure: the same for start-up, folding and read-only views).
/// History lines already present (numbered at or below the old record's `logged`) are skipped,
/// so applying an entry twice is harmless; the history is trimmed to its caps
/// ([`crate::domain::device::trim_history`]).
pub(crate) fn apply(devices: &mut HashMap<String, Device>, entry: Entry) {
    match entry {
        Entry::Update { mut device, log } => {
            let (mut history, old_logged) = devices
                .remove(&device.serial)
                .map(|old| (old.history, old.logged))
                .unwrap_or_default();
            let first = device.logged.saturating_sub(log.len() as u64) + 1;
            history.extend(
                log.into_iter()
                    .zip(first..)
                    .filter(|(_, n)| *n > old_logged)
                    .map(|(e, _)| e),
            );
            crate::domain::device::trim_history(&mut history);
            device.history = history;
            // An older entry replayed over a newer file (a fold cut short) leaves the count
            // at the newer one's, so the lines after it are not added again.
            device.logged = device.logged.max(old_logged);
            devices.insert(device.serial.clone(), *device);
        }
        Entry::Put(d) => {
            devices.insert(d.serial.clone(), *d);
        }
        Entry::Forget(s) => {
            devices.remove(&s);
        }
    }
}

enum Msg {
    Append(Job),
    /// Fold everything into the record files and empty the journal now.
    Compact(tokio::sync::oneshot::Sender<Result<(), String>>),
}

struct Job {
    line: Vec<u8>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Handle to the journal writer.
#[derive(Clone)]
pub(crate) struct Journal {
    tx: mpsc::Sender<Msg>,
}

/// Reads the journal's entries; a torn last line (crash mid-write) is skipped silently, any
/// other unreadable line is reported.
pub(crate) fn replay(path: &Path) -> std::io::Result<(Vec<Entry>, Vec<String>)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e),
    };
    // Parsed as read: the raw lines are not held beside the entries.
    let mut lines = std::io::BufReader::new(file).split(b'\n').peekable();
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut i = 0;
    while let Some(line) = lines.next() {
        let line = line?;
        i += 1;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(e) => entries.push(e),
            Err(_) if lines.peek().is_none() => {}
            Err(e) => problems.push(format!(
                "{} line {}: unreadable journal entry ({e}); skipped",
                path.display(),
                i
            )),
        }
    }
    Ok((entries, problems))
}

fn record_path(dir: &Path, serial: &str) -> PathBuf {
    dir.join(format!("{serial}.json"))
}

/// The journal being folded into the record files in the background.
pub(crate) fn rotated_path(journal: &Path) -> PathBuf {
    journal.with_file_name("journal.1.log")
}

/// Reads one record file: `None` when there is none. An unreadable one is moved aside to
/// `<SERIAL>.json.unreadable` (kept for the operator) and reported, and the journal's entries
/// rebuild the record from what they hold.
fn read_record(
    records: &Path,
    serial: &str,
    problems: &mut Vec<String>,
) -> std::io::Result<Option<Device>> {
    let path = record_path(records, serial);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<Device>(&bytes) {
        Ok(d) => Ok(Some(d)),
        Err(e) => {
            let aside = records.join(format!("{serial}.json.unreadable"));
            std::fs::rename(&path, &aside)?;
            problems.push(format!(
                "{}: unreadable device record ({e}); moved to {} and rebuilt from the journal",
                path.display(),
                aside.display()
            ));
            Ok(None)
        }
    }
}

/// Folds `journals` (oldest first) into the record files: each record they touch is read,
/// brought up to date and rewritten atomically (or deleted), then the directory is synced.
/// Returns what could not be read. On an error nothing is lost: the journals are untouched.
///
/// Records are done one at a time (an entry only ever touches its own serial's record), so a
/// fold holds one record with its history, not every record the journal touched (~45 MB for
/// 1000 records at their history cap; a round's peak comes before its fold, so that peak did
/// not move: `bench/history.sh`, BENCHMARKS.md "Soak").
pub(crate) fn fold(journals: &[PathBuf], records: &Path) -> std::io::Result<Vec<String>> {
    let mut problems = Vec::new();
    // Each serial's entries, in journal order.
    let mut by_serial: HashMap<String, Vec<Entry>> = HashMap::new();
    for path in journals {
        let (entries, mut p) = replay(path)?;
        problems.append(&mut p);
        for e in entries {
            by_serial.entry(e.serial().to_string()).or_default().push(e);
        }
    }
    let touched = !by_serial.is_empty();
    for (serial, entries) in by_serial {
        let mut one = HashMap::new();
        if let Some(d) = read_record(records, &serial, &mut problems)? {
            one.insert(serial.clone(), d);
        }
        for e in entries {
            apply(&mut one, e);
        }
        let path = record_path(records, &serial);
        match one.get(&serial) {
            Some(d) => write_atomic(&path, &serde_json::to_vec_pretty(d)?)?,
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
    }
    if touched {
        File::open(records)?.sync_all()?;
    }
    Ok(problems)
}

/// Folds `journal.1.log` (if any) and `journal` into the record files, then empties the
/// journal and removes the rotated one. On an error nothing is emptied.
pub(crate) fn compact(journal: &Path, records: &Path) -> std::io::Result<Vec<String>> {
    let rotated = rotated_path(journal);
    let problems = fold(&[rotated.clone(), journal.to_path_buf()], records)?;
    match OpenOptions::new().write(true).open(journal) {
        Ok(f) => {
            f.set_len(0)?;
            f.sync_all()?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_file(&rotated) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    Ok(problems)
}

fn report(problems: Vec<String>) {
    for p in problems {
        tracing::warn!("{p}");
    }
}

/// Starts folding the journal into the record files without holding up appends: the journal
/// is renamed to `journal.1.log`, a new one started, and a thread folds the rotated one and
/// then removes it. A rotated journal left by a failed fold is folded in the foreground with
/// the current one.
fn rotate(
    file: &mut File,
    len: &mut u64,
    journal: &Path,
    records: &Path,
    background: &mut Option<std::thread::JoinHandle<()>>,
) -> std::io::Result<()> {
    let rotated = rotated_path(journal);
    if rotated.exists() {
        report(compact(journal, records)?);
        *len = 0;
        return Ok(());
    }
    file.sync_all()?;
    std::fs::rename(journal, &rotated)?;
    let dir = journal.parent().unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()?;
    *file = OpenOptions::new().create(true).append(true).open(journal)?;
    *len = 0;
    let records = records.to_path_buf();
    *background = Some(std::thread::Builder::new().name("journal-fold".into()).spawn(move || {
        // Background work: it yields the CPU to the threads answering routers (Linux: this
        // thread only; failing leaves it at normal priority).
        let _ = rustix::process::nice(FOLD_NICE);
        match fold(std::slice::from_ref(&rotated), &records).and_then(|p| std::fs::remove_file(&rotated).map(|()| p)) {
            Ok(problems) => report(problems),
            Err(e) => tracing::error!(error = %e, "cannot fold {} into {}: it is kept and replayed at the next start; free disk space or fix permissions", rotated.display(), records.display()),
        }
    })?);
    Ok(())
}

impl Journal {
    /// Starts the writer on `journal` (appending), folding into `records` as it grows.
    pub(crate) fn start(journal: &Path, records: &Path) -> std::io::Result<Journal> {
        Journal::start_with(journal, records, COMPACT_BYTES)
    }

    /// [`Journal::start`] folding into the records whenever the journal passes `compact_bytes`.
    pub(crate) fn start_with(
        journal: &Path,
        records: &Path,
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
                let mut background: Option<std::thread::JoinHandle<()>> = None;
                // After a failed fold (full disk), the next try waits for another
                // `compact_bytes` of journal rather than re-reading it at every commit.
                let mut fold_at = compact_bytes;
                let mut buf: Vec<u8> = Vec::new();
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
                    // One buffer for every batch (kept, not reallocated).
                    buf.clear();
                    for j in &batch {
                        buf.extend_from_slice(&j.line);
                    }
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
                        let _ = job.done.send(result.clone());
                    }
                    for done in compact_after {
                        if let Some(h) = background.take() {
                            let _ = h.join();
                        }
                        let r = compact(&journal_path, &records).map(report).map_err(|e| e.to_string());
                        if r.is_ok() {
                            len = 0;
                            fold_at = compact_bytes;
                        }
                        let _ = done.send(r);
                    }
                    if len > fold_at && background.as_ref().is_none_or(|h| h.is_finished()) {
                        if let Some(h) = background.take() {
                            let _ = h.join();
                        }
                        match rotate(&mut file, &mut len, &journal_path, &records, &mut background) {
                            Ok(()) => fold_at = compact_bytes,
                            Err(e) => {
                                fold_at = len + compact_bytes;
                                tracing::error!(
                                    error = %e,
                                    "cannot fold {} into {}: the journal keeps growing; free disk space or fix permissions",
                                    journal_path.display(),
                                    records.display()
                                );
                            }
                        }
                    }
                }
            })?;
        Ok(Journal { tx })
    }

    async fn send(&self, line: Vec<u8>) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Append(Job { line, done }))
            .map_err(|_| "journal writer stopped".to_string())?;
        wait.await
            .map_err(|_| "journal writer stopped".to_string())?
    }

    /// Folds everything into the record files and empties the journal (at shutdown, so the
    /// files alone tell the whole state).
    pub(crate) async fn compact(&self) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Compact(done))
            .map_err(|_| "journal writer stopped".to_string())?;
        wait.await
            .map_err(|_| "journal writer stopped".to_string())?
    }

    /// Appends a changed record whose last `new_lines` history lines are new (see
    /// [`update_line`]); returns when it is on disk.
    pub(crate) async fn update(&self, device: &mut Device, new_lines: usize) -> Result<(), String> {
        let line = update_line(device, new_lines)?;
        self.send(line).await
    }

    /// Appends the deletion of a record; returns when it is on disk.
    pub(crate) async fn forget(&self, serial: &str) -> Result<(), String> {
        let mut line =
            serde_json::to_vec(&Entry::Forget(serial.to_string())).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.send(line).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::device::HISTORY_LIMIT;

    fn dev(serial: &str, lines: u32) -> Device {
        let now = chrono::Local::now();
        let mut d = Device::new(serial, "u", "p", "v", now);
        for i in 0..lines {
            d.log(now, format!("line {}", i + 1));
        }
        d
    }

    fn entry(d: &mut Device, new_lines: usize) -> Entry {
        serde_json::from_slice(&update_line(d, new_lines).unwrap()).unwrap()
    }

    fn texts(d: &Device) -> Vec<&str> {
        d.history.iter().map(|e| e.text.as_str()).collect()
    }

    #[test]
    fn update_lines_carry_only_new_history_and_apply_once() {
        let mut d = dev("S1", 3);
        let line = update_line(&mut d, 1).unwrap();
        // The record in memory keeps its history; the line carries one history line.
        assert_eq!(d.history.len(), 3);
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(
            text.ends_with('\n') && text.matches("line ").count() == 1,
            "{text}"
        );

        let now = chrono::Local::now();
        let mut map = HashMap::new();
        // A new record: its whole history comes in the line.
        apply(&mut map, entry(&mut d, 3));
        assert_eq!(texts(&map["S1"]), ["line 1", "line 2", "line 3"]);
        // Two more lines, then the same entry replayed again (crash during a fold).
        d.log(now, "line 4");
        d.log(now, "line 5");
        d.attempts = 7;
        let line = update_line(&mut d, 2).unwrap();
        for _ in 0..2 {
            apply(&mut map, serde_json::from_slice(&line).unwrap());
        }
        assert_eq!(map["S1"].history.len(), 5);
        assert_eq!(map["S1"].attempts, 7);
        assert_eq!(map["S1"], d);
        // A contact-only change carries no history and keeps what is there.
        d.ip = "198.51.100.7".parse().ok();
        apply(&mut map, entry(&mut d, 0));
        assert_eq!(map["S1"], d);
        // An older entry replayed after a newer one adds no line twice.
        let mut older = dev("S1", 4);
        apply(&mut map, entry(&mut older, 1));
        assert_eq!(
            texts(&map["S1"]),
            ["line 1", "line 2", "line 3", "line 4", "line 5"]
        );
        // ... and the newer ones that follow it bring the record back, without repeats.
        apply(&mut map, serde_json::from_slice(&line).unwrap());
        apply(&mut map, entry(&mut d, 0));
        assert_eq!(map["S1"], d);
        // A record whose earlier lines were lost (no file) keeps what the journal has.
        let mut map2 = HashMap::new();
        apply(&mut map2, entry(&mut d, 2));
        assert_eq!(texts(&map2["S1"]), ["line 4", "line 5"]);
        // Forget, and the whole records older versions wrote.
        apply(&mut map, Entry::Forget("S1".into()));
        assert!(map.is_empty());
        apply(&mut map, Entry::Put(Box::new(d.clone())));
        assert_eq!(map["S1"], d);
    }

    #[test]
    fn history_is_trimmed_to_its_limit_like_in_memory() {
        let mut d = dev("S1", 10);
        let mut map = HashMap::new();
        apply(&mut map, entry(&mut d, 10));
        let now = chrono::Local::now();
        for i in 10..HISTORY_LIMIT + 25 {
            d.log(now, format!("line {}", i + 1));
        }
        apply(&mut map, entry(&mut d, HISTORY_LIMIT + 15));
        assert_eq!(map["S1"].history.len(), HISTORY_LIMIT);
        assert_eq!(map["S1"], d);
        assert_eq!(map["S1"].history[0].text, "line 26");
    }

    #[tokio::test]
    async fn concurrent_appends_replay_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let records = dir.path().join("devices");
        std::fs::create_dir_all(&records).unwrap();
        let j = Journal::start(&path, &records).unwrap();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                let mut d = dev(&format!("S{i}"), 2);
                d.attempts = i;
                j.update(&mut d, 2).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        j.forget("S3").await.unwrap();
        // A crash mid-write leaves a torn last line: ignored on replay.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"update\":{\"device\":{\"serial\":\"S9")
            .unwrap();
        let (entries, problems) = replay(&path).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(entries.len(), 51);
        assert!(matches!(entries.last(), Some(Entry::Forget(s)) if s == "S3"));
        // A damaged line in the middle is reported, the rest still read.
        let text =
            std::fs::read_to_string(&path)
                .unwrap()
                .replacen("{\"update\"", "{\"uXdate\"", 1);
        std::fs::write(&path, text).unwrap();
        let (entries, problems) = replay(&path).unwrap();
        assert_eq!((entries.len(), problems.len()), (50, 1));
    }

    #[test]
    fn compaction_rebuilds_whole_records_and_empties_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("devices");
        std::fs::create_dir_all(&records).unwrap();
        // An existing record with two lines, another to delete, and one unreadable.
        let mut old = dev("OLD", 2);
        let mut kept = dev("KEPT", 2);
        for d in [&old, &kept] {
            let path = records.join(format!("{}.json", d.serial));
            std::fs::write(path, serde_json::to_vec(d).unwrap()).unwrap();
        }
        std::fs::write(records.join("BAD.json"), b"{not json").unwrap();
        let path = dir.path().join("journal.log");
        let now = chrono::Local::now();
        kept.log(now, "line 3");
        let mut new = dev("NEW", 1);
        let mut bad = dev("BAD", 1);
        let mut text = Vec::new();
        text.extend(update_line(&mut kept, 1).unwrap());
        text.extend(update_line(&mut new, 1).unwrap());
        text.extend(update_line(&mut bad, 1).unwrap());
        text.extend(b"{\"forget\":\"OLD\"}\n");
        std::fs::write(&path, text).unwrap();
        // Older lines wait in a rotated journal: folded first.
        old.attempts = 3;
        std::fs::write(rotated_path(&path), update_line(&mut old, 0).unwrap()).unwrap();

        let problems = compact(&path, &records).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(records.join("BAD.json.unreadable").exists());
        let read = |s: &str| -> Device {
            serde_json::from_slice(&std::fs::read(records.join(format!("{s}.json"))).unwrap())
                .unwrap()
        };
        assert_eq!(read("KEPT"), kept);
        assert_eq!(texts(&read("KEPT")), ["line 1", "line 2", "line 3"]);
        assert_eq!(read("NEW"), new);
        assert_eq!(read("BAD"), bad);
        assert!(!records.join("OLD.json").exists());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(!rotated_path(&path).exists());
        // Nothing left to fold: a second compaction changes nothing.
        assert!(compact(&path, &records).unwrap().is_empty());
        assert_eq!(read("KEPT"), kept);
    }

    #[tokio::test]
    async fn folding_in_the_background_keeps_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let records = dir.path().join("devices");
        std::fs::create_dir_all(&records).unwrap();
        // Fold after every few hundred bytes: many rotations while appends go on.
        let j = Journal::start_with(&path, &records, 300).unwrap();
        let now = chrono::Local::now();
        let mut devices: Vec<Device> = (0..10).map(|i| dev(&format!("S{i}"), 0)).collect();
        for round in 0..20u32 {
            for d in devices.iter_mut() {
                d.attempts = round;
                d.log(now, format!("round {round}"));
                j.update(d, 1).await.unwrap();
            }
        }
        j.forget("S3").await.unwrap();
        // What a restart would see: files, then the rotated journal, then the journal.
        let saved = |dir: &Path| {
            let mut map: HashMap<String, Device> = HashMap::new();
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
                map.insert(d.serial.clone(), d);
            }
            for p in [
                rotated_path(&dir.join("journal.log")),
                dir.join("journal.log"),
            ] {
                for e in replay(&p).unwrap().0 {
                    apply(&mut map, e);
                }
            }
            map
        };
        // A restart reads a directory frozen at one moment; this reader reads files, then the
        // rotated journal, then the journal, while the last fold may still run, and a fold that
        // completes between those reads hides lines it moved. Appends are over, so the
        // directory settles: read until two reads 20 ms apart agree.
        let mut view = saved(dir.path());
        loop {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let again = saved(dir.path());
            if again == view {
                break;
            }
            view = again;
        }
        assert_eq!(view.len(), 9);
        for d in devices.iter().filter(|d| d.serial != "S3") {
            assert_eq!(view[&d.serial], *d);
            assert_eq!(d.history.len(), 20);
        }
        // After an explicit compaction the files alone hold everything.
        j.compact().await.unwrap();
        assert!(!rotated_path(&path).exists());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(saved(dir.path()), view);
        assert!(!records.join("S3.json").exists());
    }
}
