//! The device registry: the one owner of device state, and its persistence.
//!
//! Owns the in-memory records and their persistence: every durable change goes to the state
//! database (`<state>/state.db`, SQLite: [`crate::store::sqlite`]) through one writer thread
//! that commits every change waiting in one transaction ([`crate::store::db`]), and a change is
//! committed before the reply that depends on it leaves, so `kill -9` at any moment loses
//! nothing that was answered. The state of earlier versions (journal and record files) is
//! imported at the first start and moved aside ([`crate::store::legacy`]). Also owns
//! `DEVICE_STATUS.csv` (rewritten atomically in the background, coalescing bursts; operator
//! edits of its state column applied). DHCP, PnP and the operator commands change records only
//! through [`Registry::update`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

mod atomic;
pub(crate) mod bench_tls;
pub(crate) mod db;
mod legacy;
pub(crate) mod postgres;
pub(crate) mod server_record;
pub(crate) mod sqlite;
mod status_csv;
pub(crate) mod token;

use atomic::sweep_temp_files;
pub(crate) use atomic::write_atomic;
pub(crate) use status_csv::{STATUS_COLUMNS, status_table};

pub(crate) use crate::config::Location;
use crate::domain::device::Device;
use crate::store::db::{Backend, Change, Row, Writer};
use crate::store::postgres::{Claim, Pg};
use crate::store::sqlite::Sqlite;
use crate::sync::lock;

/// (mtime, length) of our last status CSV write, and the state cell we wrote per serial.
type CsvWritten = (
    Option<(std::time::SystemTime, u64)>,
    HashMap<String, String>,
);

/// The fleet database's side of the registry (PostgreSQL only).
struct Fleet {
    /// The connection for claims and the fleet's views (the writer has its own).
    conn: Arc<Mutex<Pg>>,
    /// The URL without its password, for messages.
    shown: String,
    /// The claims this bench holds: when each is next renewed in the database.
    claims: Mutex<HashMap<String, std::time::Instant>>,
    /// How long a claim lasts.
    timeout: Duration,
}

impl Fleet {
    /// Runs `f` on the fleet connection on a blocking thread (the client blocks).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Pg) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    }
}

/// Why this bench may not drive a router now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Elsewhere {
    #[error(
        "driven by bench {bench}, which heard from it lately (its claim lasts {secs} s more unless it hears from it again): act on it there, on that bench's dashboard or with `pnp-appliance device ... --server http://<that bench>:<port>`"
    )]
    /// Another bench drives it (it heard from it lately).
    Claimed {
        /// That bench.
        bench: String,
        /// Seconds its claim lasts unless it hears from the router again.
        secs: i64,
    },
    /// The fleet database cannot be reached to claim it.
    #[error("{0} (check the fleet database is up and reachable)")]
    Unreachable(String),
}

struct Shared {
    /// The state directory.
    dir: PathBuf,
    /// This bench's name.
    bench: String,
    writer: Writer,
    fleet: Option<Fleet>,
    /// Exclusive lock on the state directory while this registry writes to it.
    _lock: std::fs::File,
    status_csv: PathBuf,
    devices: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Device>>>>,
    /// The lease table as saved when the registry opened (the DHCP task takes it from here).
    leases: Mutex<Option<String>>,
    /// Records whose only changes (last contact) are not on disk yet.
    dirty: Mutex<HashSet<String>>,
    /// Records whose durable changes could not be written (full disk, read-only), since when:
    /// written whole at their next change, with a history line saying so.
    unsaved: Mutex<HashMap<String, chrono::DateTime<chrono::Local>>>,
    changed: Notify,
    /// How long durable changes take to commit (handed to the writer until committed).
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

/// The order every list of records is in: newest contact first, then by serial.
fn newest_first(devices: &mut [Device]) {
    devices.sort_by(|a, b| {
        b.last_contact
            .cmp(&a.last_contact)
            .then(a.serial.cmp(&b.serial))
    });
}

/// The saved records, read without writing anything (no lock, no migration): for status and
/// report while no server answers. Before the first start of this version, the old files.
pub fn read_saved(state_dir: &Path) -> anyhow::Result<Vec<Device>> {
    let db = Sqlite::read_only(&state_dir.join(sqlite::FILE)).map_err(anyhow::Error::msg)?;
    let imported = match &db {
        Some(db) => db
            .read_meta("imported")
            .map_err(anyhow::Error::msg)?
            .is_some(),
        None => false,
    };
    let devices = match db {
        Some(db) if imported || legacy::present(state_dir).is_empty() => {
            db.load().map_err(anyhow::Error::msg)?.0
        }
        _ => legacy::read(state_dir)?.devices,
    };
    let mut out: Vec<Device> = devices.into_values().collect();
    newest_first(&mut out);
    Ok(out)
}

/// The saved lease table's text (JSON), read without writing anything (`None`: no table saved).
pub fn read_saved_leases(state_dir: &Path) -> anyhow::Result<Option<String>> {
    match Sqlite::read_only(&state_dir.join(sqlite::FILE)).map_err(anyhow::Error::msg)? {
        Some(db) => db.leases().map_err(anyhow::Error::msg),
        None => Ok(legacy::read(state_dir)?.leases),
    }
}

/// The whole fleet's records without history, read from the fleet database at `at` (writes
/// nothing): for status and report while no server of this bench answers.
pub(crate) fn read_fleet(at: &Location) -> anyhow::Result<Vec<Device>> {
    let Some(url) = &at.url else {
        return read_saved(&at.dir);
    };
    let mut out = off_runtime(|| Pg::connect(url, &at.bench, at.claim_timeout)?.fleet())
        .map_err(anyhow::Error::msg)?;
    newest_first(&mut out);
    Ok(out)
}

/// Imports the state files of an earlier version into `db` (once: the import is recorded
/// under `key` in the same transaction) and moves them aside. Returns what the operator
/// should know.
fn import(db: &mut impl Backend, state_dir: &Path, key: &str) -> anyhow::Result<Vec<String>> {
    if legacy::present(state_dir).is_empty() {
        return Ok(Vec::new());
    }
    let mut problems = Vec::new();
    if db.meta(key).map_err(anyhow::Error::msg)?.is_none() {
        let old = legacy::read(state_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the state files of the earlier version in {}: {e}; nothing was imported (fix their permissions and start again)",
                state_dir.display()
            )
        })?;
        let routers = old.devices.len();
        let mut changes = Vec::with_capacity(routers + 1);
        for mut d in old.devices.into_values() {
            changes.push(Change::Update(Box::new(
                Row::of(&mut d, usize::MAX).map_err(anyhow::Error::msg)?,
            )));
        }
        if let Some(leases) = old.leases {
            changes.push(Change::Leases(leases));
        }
        let note = format!(
            "{routers} routers from the files of {} at {}",
            state_dir.display(),
            crate::domain::bench::utc(chrono::Local::now())
        );
        db.commit_with(&changes, &[(key, &note)])
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot import the earlier state into {}: {e}; the old files are untouched (free disk space and start again)",
                    sqlite::FILE
                )
            })?;
        tracing::info!(
            routers,
            "imported the state of an earlier version into {}",
            sqlite::FILE
        );
        problems.extend(old.problems);
    }
    match legacy::move_aside(state_dir) {
        Ok(aside) => tracing::info!(
            "the earlier version's state files are moved to {} (imported; delete them when you no longer need them)",
            aside.display()
        ),
        Err(e) => problems.push(format!(
            "cannot move the earlier version's state files aside in {}: {e}; they are imported already and not read again (move them yourself)",
            state_dir.display()
        )),
    }
    Ok(problems)
}

/// Runs `f` on a thread of its own: the PostgreSQL client blocks on a runtime of its own,
/// which it may not do on a thread that drives async tasks.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

impl Drop for Fleet {
    /// The client closes its connection blocking: on a thread of its own, not on an async
    /// worker.
    fn drop(&mut self) {
        let conn = self.conn.clone();
        let _ = std::thread::Builder::new()
            .name("fleet-close".into())
            .spawn(move || drop(conn));
    }
}

/// What opening a backend gives the registry.
type Opened = (
    Writer,
    HashMap<String, Device>,
    Vec<String>,
    Option<String>,
    Option<Fleet>,
);

/// A copy of `d` with an empty history (its `logged` count kept), without cloning the history.
fn without_history(d: &mut Device) -> Device {
    let history = std::mem::take(&mut d.history);
    let copy = d.clone();
    d.history = history;
    copy
}

impl Registry {
    /// Opens the state directory, creating it, and loads every record (importing the files of
    /// an earlier version first). Unreadable records are reported and skipped.
    pub(crate) fn open(at: &Location) -> anyhow::Result<(Registry, Vec<String>)> {
        let (state_dir, status_csv) = (at.dir.as_path(), at.status_csv.as_path());
        std::fs::create_dir_all(state_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create state directory {}: {e} (check permissions or set [paths] state)",
                state_dir.display()
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
        // What writes cut off by a crash left (the md5 cache's, the token's).
        let mut problems = sweep_temp_files(state_dir);
        let opened = match &at.url {
            None => Self::open_sqlite(at),
            Some(url) => Self::open_fleet(at, url),
        }?;
        let (writer, devices, mut more, leases, fleet) = opened;
        problems.append(&mut more);
        let registry = Registry {
            shared: Arc::new(Shared {
                dir: state_dir.to_path_buf(),
                bench: at.bench.clone(),
                writer,
                fleet,
                _lock: lock_file,
                status_csv: status_csv.to_path_buf(),
                devices: Mutex::new(
                    devices
                        .into_iter()
                        .map(|(k, d)| (k, Arc::new(tokio::sync::Mutex::new(d))))
                        .collect(),
                ),
                leases: Mutex::new(leases),
                dirty: Mutex::new(HashSet::new()),
                unsaved: Mutex::new(HashMap::new()),
                changed: Notify::new(),
                commit_latency: crate::metrics::Latency::default(),
                csv_written: Mutex::new((None, HashMap::new())),
            }),
        };
        Ok((registry, problems))
    }

    /// The SQLite store in the state directory.
    fn open_sqlite(at: &Location) -> anyhow::Result<Opened> {
        let mut db = Sqlite::open(&at.dir.join(sqlite::FILE), &at.bench).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the state database: {e} (check permissions and free space of {}, or set [paths] state)",
                at.dir.display()
            )
        })?;
        let mut problems = import(&mut db, &at.dir, "imported")?;
        let (devices, mut more) = db.load().map_err(|e| {
            anyhow::anyhow!("cannot read the state database: {e} (check permissions)")
        })?;
        problems.append(&mut more);
        let leases = db.leases().map_err(anyhow::Error::msg)?;
        let writer = Writer::start(db, "state-writer")
            .map_err(|e| anyhow::anyhow!("cannot start the state writer thread: {e}"))?;
        Ok((writer, devices, problems, leases, None))
    }

    /// The fleet database: this bench's routers loaded, a second connection for claims and
    /// views.
    fn open_fleet(at: &Location, url: &str) -> anyhow::Result<Opened> {
        off_runtime(|| Self::open_fleet_blocking(at, url))
    }

    fn open_fleet_blocking(at: &Location, url: &str) -> anyhow::Result<Opened> {
        let mut db = Pg::connect(url, &at.bench, at.claim_timeout).map_err(anyhow::Error::msg)?;
        let mut problems = import(&mut db, &at.dir, &format!("imported:{}", at.bench))?;
        let (devices, mut more) = db.load_bench().map_err(|e| {
            anyhow::anyhow!("cannot read this bench's routers from the fleet database: {e}")
        })?;
        problems.append(&mut more);
        let leases = db.leases().map_err(anyhow::Error::msg)?;
        let reader = Pg::connect(url, &at.bench, at.claim_timeout).map_err(anyhow::Error::msg)?;
        let writer = Writer::start(db, "state-writer")
            .map_err(|e| anyhow::anyhow!("cannot start the state writer thread: {e}"))?;
        tracing::info!(
            bench = at.bench.as_str(),
            database = crate::store::postgres::redacted(url).as_str(),
            routers = devices.len(),
            "fleet database open"
        );
        let fleet = Fleet {
            conn: Arc::new(Mutex::new(reader)),
            shown: crate::store::postgres::redacted(url),
            claims: Mutex::new(HashMap::new()),
            timeout: at.claim_timeout,
        };
        Ok((writer, devices, problems, leases, Some(fleet)))
    }

    /// Whether this bench may drive `serial` now: always with SQLite; with a fleet database,
    /// when it holds the router's claim (taken or renewed here). A router that comes from
    /// another bench is read from the database first, so it continues where it was.
    pub(crate) async fn claim(&self, serial: &str) -> Result<(), Elsewhere> {
        let Some(fleet) = &self.shared.fleet else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        let held = lock(&fleet.claims).get(serial).copied();
        if let Some(renew) = held {
            if now >= renew {
                // Half its time is left: renewed beside this exchange, not in its way.
                lock(&fleet.claims).insert(serial.to_string(), now + fleet.timeout / 2);
                let this = self.clone();
                let serial = serial.to_string();
                tokio::spawn(async move { this.renew(&serial).await });
            }
            return Ok(());
        }
        let s = serial.to_string();
        let known = self.entry(serial).is_some();
        let claimed = fleet
            .run(move |pg| {
                let claim = pg.claim(&s)?;
                let record = match &claim {
                    Claim::Ours { from } if from.is_some() || !known => pg.fetch(&s)?,
                    _ => None,
                };
                Ok((claim, record))
            })
            .await;
        match claimed {
            Ok((Claim::Held { bench, secs }, _)) => Err(Elsewhere::Claimed { bench, secs }),
            Ok((Claim::Ours { from }, record)) => {
                lock(&fleet.claims).insert(serial.to_string(), now + fleet.timeout / 2);
                if let Some(d) = record {
                    if let Some(from) = &from {
                        tracing::info!(
                            serial,
                            from = from.as_str(),
                            "router came from another bench: continuing from its record there"
                        );
                    }
                    self.replace(d).await;
                }
                Ok(())
            }
            Err(e) => Err(Elsewhere::Unreachable(format!(
                "cannot claim {serial} in the fleet database {}: {e}",
                fleet.shown
            ))),
        }
    }

    /// Renews this bench's claim of `serial` in the fleet database. A claim this bench held
    /// goes on while the database is away (its changes kept in memory, marked NOT SAVED).
    async fn renew(&self, serial: &str) {
        let Some(fleet) = &self.shared.fleet else {
            return;
        };
        let s = serial.to_string();
        let renewed = fleet.run(move |pg| pg.claim(&s)).await;
        match renewed {
            Ok(Claim::Ours { .. }) => {}
            Ok(Claim::Held { bench, .. }) => {
                lock(&fleet.claims).remove(serial);
                tracing::warn!(
                    serial,
                    bench = bench.as_str(),
                    "bench {bench} took this router over (this bench had not heard from it for the claim timeout): it is driven there"
                );
            }
            Err(e) => tracing::warn!(
                serial,
                error = %e,
                "cannot renew the claim in the fleet database {}: going on with it",
                fleet.shown
            ),
        }
    }

    /// An operator's change of `serial` ([`Registry::update`] of an existing record), once
    /// this bench may drive it ([`Registry::claim`]): with a fleet database, a router another
    /// bench drives is acted on there.
    pub(crate) async fn act<R>(
        &self,
        serial: &str,
        f: impl FnOnce(&mut Device) -> R,
    ) -> Result<Option<R>, Elsewhere> {
        self.claim(serial).await?;
        Ok(self.update(serial, || None, f).await)
    }

    /// [`Registry::remove`] once this bench may drive `serial`.
    pub(crate) async fn forget(&self, serial: &str) -> Result<bool, Elsewhere> {
        self.claim(serial).await?;
        Ok(self.remove(serial).await)
    }

    /// Puts `d` (read from the fleet database) in place of this bench's copy.
    async fn replace(&self, d: Device) {
        let entry = lock(&self.shared.devices)
            .entry(d.serial.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Device::default())))
            .clone();
        *entry.lock().await = d;
    }

    /// The lease table saved when the registry opened, taken (the DHCP task owns it then).
    pub(crate) fn take_saved_leases(&self) -> Option<String> {
        lock(&self.shared.leases).take()
    }

    /// Commits this bench's lease table; returns once it is durable. For the lease saver's
    /// thread (outside the runtime).
    pub(crate) fn save_leases_blocking(&self, json: String) -> Result<(), String> {
        self.shared.writer.send_blocking(Change::Leases(json))
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
        if after.bench != self.shared.bench {
            if !after.bench.is_empty() {
                after.log(
                    chrono::Local::now(),
                    format!(
                        "driven by bench {} from now on (bench {} drove it before)",
                        self.shared.bench, after.bench
                    ),
                );
            }
            after.bench.clone_from(&self.shared.bench);
        }
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
            // Only the lines logged by this change are written; a record this call created
            // goes whole (its first lines were logged by `create`), and so does one whose
            // earlier writes failed. Lines are numbered, so a racing creator writing them too
            // adds none twice.
            let new_lines = if created || unsaved.is_some() {
                usize::MAX
            } else {
                usize::try_from(after.logged.saturating_sub(before.logged)).unwrap_or(usize::MAX)
            };
            let started = std::time::Instant::now();
            let committed = self.commit_record(after, new_lines).await;
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

    /// Commits `device` whose last `new_lines` history lines are new.
    async fn commit_record(&self, device: &mut Device, new_lines: usize) -> Result<(), String> {
        let row = Row::of(device, new_lines)?;
        self.shared.writer.send(Change::Update(Box::new(row))).await
    }

    fn persist_failed(&self, serial: &str, e: &str) {
        tracing::error!(
            serial,
            error = %e,
            "cannot persist device record: state is kept in memory only; free disk space or fix permissions of {}",
            self.shared.dir.display()
        );
    }

    /// Deletes the record of `serial` (memory and disk); false when unknown.
    pub(crate) async fn remove(&self, serial: &str) -> bool {
        let Some(entry) = lock(&self.shared.devices).remove(serial) else {
            return false;
        };
        // Wait for any exchange in progress on it to finish first.
        let _guard = entry.lock().await;
        if let Some(fleet) = &self.shared.fleet {
            lock(&fleet.claims).remove(serial);
        }
        if let Err(e) = self
            .shared
            .writer
            .send(Change::Forget(serial.to_string()))
            .await
        {
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
    /// Commit latency of durable changes so far (`/metrics`).
    pub(crate) fn commit_latency(&self) -> crate::metrics::Exported {
        self.shared.commit_latency.exported()
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        lock(&self.shared.devices).len()
    }

    /// A copy of one record: this bench's, else (fleet database) another bench's.
    pub async fn get(&self, serial: &str) -> Option<Device> {
        if let Some(entry) = self.entry(serial) {
            let d = entry.lock().await.clone();
            return Some(d);
        }
        let fleet = self.shared.fleet.as_ref()?;
        let s = serial.to_string();
        match fleet.run(move |pg| pg.fetch(&s)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(serial, error = %e, "cannot read the record from the fleet database {}", fleet.shown);
                None
            }
        }
    }

    /// The fleet's records without history, newest contact first: this bench's from memory,
    /// the other benches' from the fleet database (with SQLite, this bench's alone). When the
    /// database cannot be read, this bench's, with a warning.
    pub(crate) async fn fleet_summaries(&self) -> Vec<Device> {
        let mine = self.summaries().await;
        let Some(fleet) = &self.shared.fleet else {
            return mine;
        };
        let others = match fleet.run(|pg| pg.fleet()).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the fleet from {}: showing this bench's routers only", fleet.shown);
                return mine;
            }
        };
        let mut by_serial: HashMap<String, Device> =
            others.into_iter().map(|d| (d.serial.clone(), d)).collect();
        for d in mine {
            // The database's copy wins when another bench drives the router now.
            let theirs = by_serial
                .get(&d.serial)
                .is_some_and(|o| o.bench != self.shared.bench);
            if !theirs {
                by_serial.insert(d.serial.clone(), d);
            }
        }
        let mut out: Vec<Device> = by_serial.into_values().collect();
        newest_first(&mut out);
        out
    }

    /// Drops from memory the routers another bench drives now (fleet database): this bench's
    /// status table and views stop showing them as its own.
    async fn drop_moved(&self) {
        let Some(fleet) = &self.shared.fleet else {
            return;
        };
        let serials: Vec<String> = lock(&self.shared.devices).keys().cloned().collect();
        let bench = self.shared.bench.clone();
        let Ok(moved) = fleet.run(move |pg| pg.moved_away(&serials, &bench)).await else {
            return;
        };
        for serial in moved {
            lock(&self.shared.devices).remove(&serial);
            lock(&fleet.claims).remove(&serial);
            lock(&self.shared.dirty).remove(&serial);
            tracing::info!(
                serial = serial.as_str(),
                "router is driven by another bench now: dropped from this bench's table"
            );
        }
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
        newest_first(&mut out);
        out
    }

    /// Writes records whose only change was contact bookkeeping, and the status CSV.
    pub(crate) async fn flush(&self) {
        self.drop_moved().await;
        let dirty: Vec<String> = lock(&self.shared.dirty).drain().collect();
        for serial in dirty {
            let Some(entry) = self.entry(&serial) else {
                continue;
            };
            let mut d = without_history(&mut *entry.lock().await);
            if let Err(e) = self.commit_record(&mut d, 0).await {
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

    /// Final flush at shutdown: contact times, status table, and the database's WAL folded in.
    pub(crate) async fn close(&self) {
        self.flush().await;
        if let Err(e) = self.shared.writer.checkpoint().await {
            tracing::warn!(error = %e, "cannot fold the state database's WAL at shutdown: it is read at the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::atomic::{temp_name, temp_writer};
    use super::*;
    use crate::domain::device::State;

    /// SQLite in `dir`.
    fn local(dir: &Path, status_csv: &Path) -> Location {
        Location {
            dir: dir.to_path_buf(),
            status_csv: status_csv.to_path_buf(),
            bench: "bench".into(),
            url: None,
            claim_timeout: Duration::from_secs(120),
        }
    }

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
        // Above the kernel's largest PID (2^22): a writer that cannot be running.
        let dead = 5_000_000;
        let state = dir.path();
        let cases = [
            (state.join(temp_name("md5-cache.json", dead)), false),
            (state.join(temp_name("server.json", dead)), false),
            (
                state.join(temp_name("admin-token", std::process::id())),
                true,
            ),
            (state.join(temp_name("md5-cache.json", 1)), true), // init runs: its write may be live
            (state.join(".notes.tmpx"), true),
            (state.join(".hidden"), true),
        ];
        for (path, _) in &cases {
            std::fs::write(path, b"half").unwrap();
        }
        let (_reg, problems) = Registry::open(&local(state, &state.join("s.csv"))).unwrap();
        for (path, kept) in &cases {
            assert_eq!(path.exists(), *kept, "{}", path.display());
        }
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.contains("cut off by a crash")));
        assert_eq!(temp_writer(&temp_name("a.tmp7.json", 42)), Some(42));
        assert_eq!(temp_writer("S1.json"), None);
    }

    async fn new_device(reg: &Registry, serial: &str, state: State) {
        let now = chrono::Local::now();
        reg.update(
            serial,
            || Some(Device::new(serial, "u", "p", "v", now)),
            |d| {
                d.state = state;
                d.log(now, "x");
            },
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn update_persists_and_reopen_restores() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("s.csv");
        let at = local(dir.path(), &csv);
        let (reg, problems) = Registry::open(&at).unwrap();
        assert!(problems.is_empty());
        new_device(&reg, "S1", State::ConfigStart).await;
        new_device(&reg, "BAD", State::ConfigStart).await;
        assert!(reg.update("S2", || None, |_| ()).await.is_none());
        // A second writer is refused while this one holds the state directory.
        assert!(Registry::open(&at).is_err());
        // No close(): as after kill -9, the database alone brings the change back.
        drop(reg);
        // A record damaged on disk is reported and skipped, the others read.
        rusqlite::Connection::open(dir.path().join(sqlite::FILE))
            .unwrap()
            .execute(
                "UPDATE devices SET record = '{not json' WHERE serial = 'BAD'",
                [],
            )
            .unwrap();
        let (reg2, problems) = Registry::open(&at).unwrap();
        assert_eq!(reg2.get("S1").await.unwrap().state, State::ConfigStart);
        assert!(reg2.get("BAD").await.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("\"BAD\" is unreadable"),
            "{problems:?}"
        );
        let saved = read_saved(dir.path()).unwrap();
        assert_eq!(saved.len(), 1);
        drop(reg2);
        // Forgotten records stay forgotten after a restart.
        let (reg, _) = Registry::open(&at).unwrap();
        assert!(reg.remove("S1").await);
        assert!(!reg.remove("S1").await);
        drop(reg);
        let (reg, _) = Registry::open(&at).unwrap();
        assert!(reg.get("S1").await.is_none());
        assert!(read_saved(dir.path()).unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_files_of_an_earlier_version_are_imported_once_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let devices = state.join("devices");
        std::fs::create_dir_all(&devices).unwrap();
        let now = chrono::Local::now();
        // What an earlier version left after kill -9: record files, a journal not yet folded
        // into them, the lease table.
        let mut a = Device::new("OLD1", "u", "C1111-8P", "v", now);
        a.log(now, "new device");
        std::fs::write(devices.join("OLD1.json"), serde_json::to_vec(&a).unwrap()).unwrap();
        a.state = State::BootflashNoSpace;
        a.log(now, "parked");
        let mut b = Device::new("OLD2", "u", "C1111-8P", "v", now);
        b.log(now, "new device");
        let journal = legacy::tests::journal_line(&a, 1) + &legacy::tests::journal_line(&b, 1);
        std::fs::write(state.join("journal.log"), journal).unwrap();
        std::fs::write(state.join("leases.json"), "{\"leases\":{}}").unwrap();
        // Read-only views see the old state before the first start.
        assert_eq!(read_saved(&state).unwrap().len(), 2);
        assert!(read_saved_leases(&state).unwrap().is_some());
        let at = local(&state, &dir.path().join("s.csv"));
        let (reg, problems) = Registry::open(&at).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(reg.get("OLD1").await.unwrap(), a);
        assert_eq!(reg.get("OLD2").await.unwrap(), b);
        assert_eq!(reg.take_saved_leases().as_deref(), Some("{\"leases\":{}}"));
        assert!(legacy::present(&state).is_empty(), "moved aside");
        let aside: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("before-sqlite-"))
            .collect();
        assert_eq!(aside.len(), 1, "kept, not deleted");
        assert!(state.join(&aside[0]).join("devices/OLD1.json").exists());
        // A router moves on; then a crash put the old files back before they were moved (as
        // if the move had not happened): they are not imported over the newer state again.
        new_device(&reg, "NEW", State::ConfigStart).await;
        reg.update("OLD1", || None, |d| d.state = State::RunEventManager)
            .await
            .unwrap();
        drop(reg);
        std::fs::rename(state.join(&aside[0]).join("devices"), &devices).unwrap();
        let (reg, _) = Registry::open(&at).unwrap();
        assert_eq!(reg.get("OLD1").await.unwrap().state, State::RunEventManager);
        assert_eq!(reg.len(), 3);
        assert!(legacy::present(&state).is_empty());
        assert_eq!(read_saved(&state).unwrap().len(), 3);
    }

    #[tokio::test]
    async fn whole_history_survives_restarts_and_folds_without_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("s.csv");
        let now = chrono::Local::now();
        let mut expected = None;
        for round in 0..4 {
            let (reg, problems) = Registry::open(&local(dir.path(), &csv)).unwrap();
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
            // Contact-only changes are written at a flush, without history.
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
        let (reg, _) = Registry::open(&local(dir.path(), &csv)).unwrap();
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
        let (reg, _) = Registry::open(&local(dir.path(), &csv)).unwrap();
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
