//! What a database backend does for the registry, and the one writer that commits to it.
//!
//! Owns the shape of a durable change ([`Change`]: a record with only the history lines it
//! added, a deletion, this bench's lease table) and the group commit: one thread takes every
//! change waiting, commits them in one transaction, then answers each waiter. A change is
//! durable when [`Writer::send`] returns, so a reply that follows it survives `kill -9` and
//! power loss (SQLite with `synchronous=FULL` syncs its WAL at each commit; PostgreSQL syncs
//! its WAL at commit by default). The SQL lives with each backend (`sqlite.rs`,
//! `postgres.rs`); the schema is the same in both:
//!
//! - `devices`: one row per router, the record without its history as JSON (`record`), and
//!   the columns one queries by (`state`, `pid`, `ip`, `last_contact`, `bench`);
//! - `history`: one row per history line, numbered per serial (`n`, the record's `logged`
//!   count when it was added), so a change writes only its new lines and writing one twice
//!   adds nothing;
//! - `leases`: each bench's DHCP lease table, as JSON;
//! - `claims` (PostgreSQL): which bench drives a router, until when;
//! - `schema_migrations`: the versions applied, run at start.

use std::sync::mpsc;

use crate::domain::device::{Device, Event};

/// One durable change.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A changed record.
    Update(Box<Row>),
    /// The record was deleted (its history too).
    Forget(String),
    /// This bench's lease table, serialised.
    Leases(String),
}

/// A record as its rows: the columns, the record without history, the new history lines.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) serial: String,
    pub(crate) state: String,
    pub(crate) pid: String,
    pub(crate) ip: Option<String>,
    /// RFC 3339, UTC.
    pub(crate) last_contact: String,
    pub(crate) logged: i64,
    /// JSON of the record with an empty history.
    pub(crate) record: String,
    /// New history lines: (number, JSON of the event).
    pub(crate) log: Vec<(i64, String)>,
    /// Lines numbered below this are no longer in the record's history (trimmed to its caps):
    /// deleted with this change. `None` when the change added no line.
    pub(crate) keep_from: Option<i64>,
}

impl Row {
    /// The rows of `device` after a change that logged its last `new_lines` history lines. The
    /// record is written without its history (taken out and put back here).
    pub(crate) fn of(device: &mut Device, new_lines: usize) -> Result<Row, String> {
        let history = std::mem::take(&mut device.history);
        let record = serde_json::to_string(&*device);
        device.history = history;
        let record = record.map_err(|e| e.to_string())?;
        let logged = i64::try_from(device.logged).unwrap_or(i64::MAX);
        let kept = device.history.len();
        let new = new_lines.min(kept);
        // The history holds the last `kept` of the `logged` lines ever logged.
        let first_kept = logged - kept as i64 + 1;
        let log = device.history[kept - new..]
            .iter()
            .zip(first_kept + (kept - new) as i64..)
            .map(|(e, n)| serde_json::to_string(e).map(|j| (n, j)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Row {
            serial: device.serial.clone(),
            state: device.state.as_str().to_string(),
            pid: device.pid.clone(),
            ip: device.ip.map(|ip| ip.to_string()),
            last_contact: device.last_contact.to_utc().to_rfc3339(),
            logged,
            record,
            keep_from: (new > 0).then_some(first_kept),
            log,
        })
    }
}

/// Builds the records from their rows as a backend reads them: `(serial, record JSON)` and,
/// per serial in order, `(serial, event JSON)`. Unreadable rows are reported and skipped.
pub(crate) fn assemble(
    records: impl IntoIterator<Item = (String, String)>,
    history: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<String>,
    source: &str,
) -> std::collections::HashMap<String, Device> {
    let mut devices = std::collections::HashMap::new();
    for (serial, json) in records {
        match serde_json::from_str::<Device>(&json) {
            Ok(d) if d.serial == serial => {
                devices.insert(serial, d);
            }
            Ok(_) => problems.push(format!(
                "{source}: the record of {serial:?} holds another serial: skipped (`pnp-appliance device forget {serial}` removes it)"
            )),
            Err(e) => problems.push(format!(
                "{source}: the record of {serial:?} is unreadable ({e}): skipped (`pnp-appliance device forget {serial}` removes it)"
            )),
        }
    }
    let mut unreadable = 0;
    for (serial, json) in history {
        let Some(d) = devices.get_mut(&serial) else {
            continue;
        };
        match serde_json::from_str::<Event>(&json) {
            Ok(e) => d.history.push(e),
            Err(_) => unreadable += 1,
        }
    }
    if unreadable > 0 {
        problems.push(format!(
            "{source}: {unreadable} history lines are unreadable: skipped"
        ));
    }
    for d in devices.values_mut() {
        crate::domain::device::trim_history(&mut d.history);
    }
    devices
}

/// A database the writer commits to (one connection, used by the writer thread only).
pub(crate) trait Backend: Send + 'static {
    /// Commits `changes` and the `meta` rows in one transaction: all of them or none.
    fn commit_with(&mut self, changes: &[Change], meta: &[(&str, &str)]) -> Result<(), String>;
    /// Commits `changes` in one transaction.
    fn commit(&mut self, changes: &[Change]) -> Result<(), String> {
        self.commit_with(changes, &[])
    }
    /// The value of `key` in `meta`.
    fn meta(&mut self, key: &str) -> Result<Option<String>, String>;
    /// Work the writer does when asked at shutdown (SQLite folds its WAL into the database).
    fn checkpoint(&mut self) -> Result<(), String> {
        Ok(())
    }
}

enum Msg {
    Change(Change, tokio::sync::oneshot::Sender<Result<(), String>>),
    Checkpoint(tokio::sync::oneshot::Sender<Result<(), String>>),
}

/// Most changes one transaction takes (a burst of a thousand routers is a few of them).
const BATCH: usize = 1024;

/// Handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
}

impl Writer {
    /// Starts the writer thread on `backend`.
    pub(crate) fn start(mut backend: impl Backend, name: &str) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut changes = Vec::new();
                let mut waiters = Vec::new();
                while let Ok(first) = rx.recv() {
                    let mut checkpoints = Vec::new();
                    let mut next = Some(first);
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Change(c, done) => {
                                changes.push(c);
                                waiters.push(done);
                            }
                            Msg::Checkpoint(done) => checkpoints.push(done),
                        }
                        if checkpoints.is_empty() && changes.len() < BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !changes.is_empty() {
                        let result = backend.commit(&changes);
                        changes.clear();
                        for w in waiters.drain(..) {
                            let _ = w.send(result.clone());
                        }
                    }
                    for done in checkpoints {
                        let _ = done.send(backend.checkpoint());
                    }
                }
            })?;
        Ok(Writer { tx })
    }

    fn queue(
        &self,
        change: Change,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), String>>, String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Change(change, done))
            .map_err(|_| "state writer stopped".to_string())?;
        Ok(wait)
    }

    /// Commits `change`; returns once it is durable.
    pub(crate) async fn send(&self, change: Change) -> Result<(), String> {
        self.queue(change)?
            .await
            .map_err(|_| "state writer stopped".to_string())?
    }

    /// [`Writer::send`] from a thread outside the runtime (the lease saver).
    pub(crate) fn send_blocking(&self, change: Change) -> Result<(), String> {
        self.queue(change)?
            .blocking_recv()
            .map_err(|_| "state writer stopped".to_string())?
    }

    /// Runs the backend's shutdown work after every change queued before it.
    pub(crate) async fn checkpoint(&self) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Checkpoint(done))
            .map_err(|_| "state writer stopped".to_string())?;
        wait.await.map_err(|_| "state writer stopped".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(lines: u32) -> Device {
        let now = chrono::Local::now();
        let mut d = Device::new("S1", "u", "C1111-8P", "v", now);
        for i in 0..lines {
            d.log(now, format!("line {i}"));
        }
        d
    }

    #[test]
    fn a_row_carries_only_the_new_lines_numbered_by_the_count_ever_logged() {
        // (lines logged, of them new, numbers written, lines kept from)
        let cases: [(u32, usize, Vec<i64>, Option<i64>); 5] = [
            (3, 1, vec![3], Some(1)),
            (3, 0, vec![], None),
            (3, usize::MAX, vec![1, 2, 3], Some(1)),
            // Past the line cap the oldest lines are gone: numbers go on, kept start moves.
            (
                crate::domain::device::HISTORY_LIMIT as u32 + 5,
                2,
                vec![
                    crate::domain::device::HISTORY_LIMIT as i64 + 4,
                    crate::domain::device::HISTORY_LIMIT as i64 + 5,
                ],
                Some(6),
            ),
            (0, usize::MAX, vec![], None),
        ];
        for (lines, new, numbers, keep_from) in cases {
            let mut d = dev(lines);
            let history = d.history.clone();
            let row = Row::of(&mut d, new).unwrap();
            assert_eq!(d.history, history, "the history is put back");
            let got: Vec<i64> = row.log.iter().map(|(n, _)| *n).collect();
            assert_eq!(got, numbers, "{lines} lines, {new} new");
            assert_eq!(row.keep_from, keep_from, "{lines} lines, {new} new");
            assert!(
                !row.record.contains("line 0"),
                "the record goes without history"
            );
            // The rows read back give the record as it is in memory.
            let mut problems = Vec::new();
            let all = Row::of(&mut d, usize::MAX).unwrap();
            let back = assemble(
                [(row.serial.clone(), row.record.clone())],
                all.log.iter().map(|(_, j)| ("S1".to_string(), j.clone())),
                &mut problems,
                "test",
            );
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(back["S1"], d);
        }
    }

    #[test]
    fn unreadable_rows_are_reported_and_skipped() {
        let mut d = dev(1);
        let row = Row::of(&mut d, 1).unwrap();
        let mut problems = Vec::new();
        let back = assemble(
            [
                ("S1".to_string(), row.record.clone()),
                ("S2".to_string(), "{not json".to_string()),
                ("S3".to_string(), row.record.clone()),
            ],
            [
                ("S1".to_string(), row.log[0].1.clone()),
                ("S1".to_string(), "[]".to_string()),
                ("S9".to_string(), row.log[0].1.clone()),
            ],
            &mut problems,
            "state.db",
        );
        assert_eq!(back.len(), 1);
        assert_eq!(back["S1"].history.len(), 1);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("\"S2\" is unreadable")
                && problems[0].contains("device forget S2")
        );
        assert!(problems[1].contains("another serial"));
        assert!(problems[2].contains("1 history lines"));
    }
}
