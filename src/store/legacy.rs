//! The state earlier versions kept in files, read once to import it into the database.
//!
//! Owns the reading of `<state>/devices/<SERIAL>.json` (one record per file),
//! `journal.log` and `journal.1.log` (one JSON change per line, replayed over the files:
//! `{"update":{"device":<record without history>,"log":[<new lines>]}}`, `{"put":<record>}`,
//! `{"forget":"<serial>"}`) and `leases.json`, and moving them aside once imported
//! ([`move_aside`]). Nothing here writes a record: the registry commits what this reads.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::device::{Device, Event};

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Entry {
    /// A changed record.
    Update {
        /// Everything but its history (written empty).
        device: Box<Device>,
        /// The history lines this change added: the last `log.len()` of the `device.logged`
        /// lines ever logged.
        log: Vec<Event>,
    },
    /// The whole new record, history included.
    Put(Box<Device>),
    /// The record was deleted.
    Forget(String),
}

/// The files of the old state in `state_dir`, those that exist.
pub(crate) fn present(state_dir: &Path) -> Vec<PathBuf> {
    ["devices", "journal.log", "journal.1.log", "leases.json"]
        .iter()
        .map(|n| state_dir.join(n))
        .filter(|p| p.exists())
        .collect()
}

/// Applies one entry to `devices`. History lines already present (numbered at or below the
/// old record's `logged`) are skipped, so an entry replayed twice (a fold cut short) adds
/// nothing twice.
fn apply(devices: &mut HashMap<String, Device>, entry: Entry) {
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

/// Reads a journal's entries; a torn last line (crash mid-write) is skipped silently, any
/// other unreadable line is reported.
fn replay(path: &Path, problems: &mut Vec<String>) -> std::io::Result<Vec<Entry>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut lines = std::io::BufReader::new(file).split(b'\n').peekable();
    let mut entries = Vec::new();
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
                "{} line {i}: unreadable journal entry ({e}); skipped",
                path.display()
            )),
        }
    }
    Ok(entries)
}

/// Reads every record file of `dir`; unreadable ones are reported and skipped.
fn load_files(dir: &Path, problems: &mut Vec<String>) -> HashMap<String, Device> {
    let mut devices = HashMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return devices;
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
                "{}: record without serial, not imported",
                path.display()
            )),
            Err(e) => problems.push(format!(
                "{}: unreadable device record ({e}); not imported (it is kept with the old files)",
                path.display()
            )),
        }
    }
    devices
}

/// What the old files hold: the records (files with the journals replayed over them), the
/// lease table's text, and what could not be read.
pub(crate) struct Old {
    pub(crate) devices: HashMap<String, Device>,
    pub(crate) leases: Option<String>,
    pub(crate) problems: Vec<String>,
}

/// Reads the old state of `state_dir` (writing nothing).
pub(crate) fn read(state_dir: &Path) -> std::io::Result<Old> {
    let mut problems = Vec::new();
    let mut devices = load_files(&state_dir.join("devices"), &mut problems);
    // A fold cut short left journal.1.log: it is older than journal.log.
    for name in ["journal.1.log", "journal.log"] {
        for e in replay(&state_dir.join(name), &mut problems)? {
            apply(&mut devices, e);
        }
    }
    let leases = match std::fs::read_to_string(state_dir.join("leases.json")) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(Old {
        devices,
        leases,
        problems,
    })
}

/// Moves the old files into `<state>/before-sqlite-<UTC time>/`, kept for the operator;
/// returns that directory.
pub(crate) fn move_aside(state_dir: &Path) -> std::io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut aside = state_dir.join(format!("before-sqlite-{stamp}"));
    // A second move within the same second gets its own directory.
    for n in 2.. {
        if !aside.exists() {
            break;
        }
        aside = state_dir.join(format!("before-sqlite-{stamp}-{n}"));
    }
    std::fs::create_dir_all(&aside)?;
    for path in present(state_dir) {
        if let Some(name) = path.file_name() {
            std::fs::rename(&path, aside.join(name))?;
        }
    }
    std::fs::File::open(state_dir)?.sync_all()?;
    Ok(aside)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The journal line an earlier version wrote for `device` after a change that logged its
    /// last `new_lines` lines.
    pub(crate) fn journal_line(device: &Device, new_lines: usize) -> String {
        let mut d = device.clone();
        let log = d
            .history
            .split_off(d.history.len().saturating_sub(new_lines));
        d.history.clear();
        let e = Entry::Update {
            device: Box::new(d),
            log,
        };
        serde_json::to_string(&e).unwrap() + "\n"
    }

    fn dev(serial: &str, lines: u32) -> Device {
        let now = chrono::Local::now();
        let mut d = Device::new(serial, "u", "p", "v", now);
        for i in 0..lines {
            d.log(now, format!("line {}", i + 1));
        }
        d
    }

    #[test]
    fn files_and_journals_replay_into_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("devices");
        std::fs::create_dir_all(&records).unwrap();
        let now = chrono::Local::now();
        let mut kept = dev("KEPT", 2);
        let old = dev("OLD", 2);
        for d in [&kept, &old] {
            std::fs::write(
                records.join(format!("{}.json", d.serial)),
                serde_json::to_vec(d).unwrap(),
            )
            .unwrap();
        }
        std::fs::write(records.join("BAD.json"), b"{not json").unwrap();
        kept.log(now, "line 3");
        let new = dev("NEW", 1);
        // The rotated journal (older) carries line 3 too: replayed twice, added once.
        std::fs::write(dir.path().join("journal.1.log"), journal_line(&kept, 1)).unwrap();
        let journal = journal_line(&kept, 1)
            + &journal_line(&new, 1)
            + "{\"forget\":\"OLD\"}\n"
            + "{\"uXdate\":1}\n"
            + "{\"update\":{\"device\":{\"serial\":\"S9";
        std::fs::write(dir.path().join("journal.log"), journal).unwrap();
        std::fs::write(dir.path().join("leases.json"), "{\"leases\":[]}").unwrap();
        let old_state = read(dir.path()).unwrap();
        assert_eq!(old_state.devices.len(), 2);
        assert_eq!(old_state.devices["KEPT"], kept);
        assert_eq!(old_state.devices["NEW"], new);
        // The bad file and the damaged line; the torn last line is silent.
        assert_eq!(old_state.problems.len(), 2, "{:?}", old_state.problems);
        assert_eq!(old_state.leases.as_deref(), Some("{\"leases\":[]}"));
        assert_eq!(present(dir.path()).len(), 4);
        let aside = move_aside(dir.path()).unwrap();
        assert!(present(dir.path()).is_empty());
        assert!(aside.join("devices/KEPT.json").exists() && aside.join("journal.log").exists());
    }
}
