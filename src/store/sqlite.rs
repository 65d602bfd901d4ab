//! The embedded store: one SQLite database, `<state>/state.db`.
//!
//! Owns the SQLite connection, its schema migrations and its SQL. WAL mode with
//! `synchronous=FULL`: a commit syncs the WAL, so a committed change survives `kill -9` and
//! power loss (<https://www.sqlite.org/pragma.html#pragma_synchronous>, "WAL mode"), and
//! readers in other processes (`status` while a server runs) never block the writer. The WAL
//! is folded into the database by a thread of its own, never by a commit. One
//! connection writes, from the writer thread of [`crate::store::db`]; `read_only` opens
//! another for views that must write nothing. The library is bundled (rusqlite `bundled`), so
//! the binary needs no system SQLite.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::domain::device::Device;
use crate::store::db::{Backend, Change};

/// The database file in the state directory.
pub(crate) const FILE: &str = "state.db";

/// Schema versions, applied in order at start, each in its own transaction with its row in
/// `schema_migrations`. Never edit one that has shipped: add the next.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE devices (
        serial TEXT PRIMARY KEY,
        bench TEXT NOT NULL,
        state TEXT NOT NULL,
        pid TEXT NOT NULL,
        ip TEXT,
        last_contact TEXT NOT NULL,
        logged INTEGER NOT NULL,
        record TEXT NOT NULL
    );
    CREATE TABLE history (
        serial TEXT NOT NULL,
        n INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (serial, n)
    ) WITHOUT ROWID;
    CREATE TABLE leases (bench TEXT PRIMARY KEY, leases TEXT NOT NULL);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
)];

/// The SQLite backend: the writing connection and this bench's name.
pub(crate) struct Sqlite {
    conn: Connection,
    bench: String,
    /// Stops the checkpoint thread when dropped (writing connections only).
    _checkpoints: Option<std::sync::mpsc::Sender<()>>,
}

/// How often the checkpoint thread folds the WAL into the database. A checkpoint copies the
/// newest version of each page the WAL holds, so the record pages a thousand routers rewrite
/// all the time are copied (and synced) once per interval, not once per change: seldom is
/// cheaper. 10 s of changes at the paced benchmark's rate is a WAL of a few MB.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Nice value of the checkpoint thread (background work: it yields the CPU to the threads
/// answering routers; Linux applies it to this thread only).
const CHECKPOINT_NICE: i32 = 10;

/// Starts the thread that folds the WAL into the database, on a connection of its own, until
/// the returned sender is dropped. SQLite's automatic checkpoint runs in the committing
/// thread: about every 1000 pages one commit also copied the WAL into the database and synced
/// it, and the routers waiting on that commit waited for it (the paced benchmark's p99 of
/// 74 ms, BENCHMARKS.md). A PASSIVE checkpoint beside the writer never blocks it
/// (<https://www.sqlite.org/wal.html#checkpointing>).
fn start_checkpoints(path: &Path) -> Result<std::sync::mpsc::Sender<()>, String> {
    let conn = Connection::open(path).map_err(err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err(path))?;
    let shown = path.display().to_string();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("state-checkpoint".into())
        .spawn(move || {
            let _ = rustix::process::nice(CHECKPOINT_NICE);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "cannot fold the WAL of {shown} into it: it keeps growing until this works (free disk space)");
                }
            }
        })
        .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
    Ok(tx)
}

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// The newest schema version this build knows.
fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// The schema version of `conn` (0: none yet).
fn version(conn: &Connection) -> rusqlite::Result<i64> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
}

fn newer(path: &Path, v: i64) -> String {
    format!(
        "{} has schema version {v}, newer than this pnp-appliance knows ({}): run the newer pnp-appliance, or point [paths] state at another directory",
        path.display(),
        latest()
    )
}

impl Sqlite {
    /// Opens (creating) the database at `path` and brings its schema up to date.
    pub(crate) fn open(path: &Path, bench: &str) -> Result<Sqlite, String> {
        let e = err(path);
        let mut conn = Connection::open(path).map_err(&e)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&e)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(&e)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "{}: WAL mode refused (journal mode {mode}): keep the state directory on a local file system",
                path.display()
            ));
        }
        // Checkpoints run on their own thread (start_checkpoints), not in a commit.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")
            .map_err(&e)?;
        let v = version(&conn).map_err(&e)?;
        if v > latest() {
            return Err(newer(path, v));
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);",
        )
        .map_err(&e)?;
        for (n, sql) in MIGRATIONS.iter().filter(|m| m.0 > v) {
            let tx = conn.transaction().map_err(&e)?;
            tx.execute_batch(sql).map_err(&e)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![n, chrono::Utc::now().to_rfc3339()],
            )
            .map_err(&e)?;
            tx.commit().map_err(&e)?;
            tracing::info!(path = %path.display(), version = n, "state schema migrated");
        }
        Ok(Sqlite {
            conn,
            bench: bench.to_string(),
            _checkpoints: Some(start_checkpoints(path)?),
        })
    }

    /// Opens `path` for reading only (nothing is written, not even a migration); `None` when
    /// there is no database yet.
    pub(crate) fn read_only(path: &Path) -> Result<Option<Sqlite>, String> {
        if !path.exists() {
            return Ok(None);
        }
        let e = err(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(&e)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&e)?;
        let v = version(&conn).map_err(&e)?;
        if v > latest() {
            return Err(newer(path, v));
        }
        if v == 0 {
            return Ok(None);
        }
        Ok(Some(Sqlite {
            conn,
            bench: String::new(),
            _checkpoints: None,
        }))
    }

    /// The (text, text) rows `sql` selects.
    fn pairs(&self, sql: &str) -> Result<Vec<(String, String)>, String> {
        let e = |e: rusqlite::Error| format!("{FILE}: {e}");
        let mut stmt = self.conn.prepare(sql).map_err(e)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?
            .collect::<Result<_, _>>()
            .map_err(e)
    }

    /// Every record with its history, and what could not be read.
    pub(crate) fn load(&self) -> Result<(HashMap<String, Device>, Vec<String>), String> {
        let records = self.pairs("SELECT serial, record FROM devices")?;
        let history = self.pairs("SELECT serial, event FROM history ORDER BY serial, n")?;
        let mut problems = Vec::new();
        let devices = crate::store::db::assemble(records, history, &mut problems, FILE);
        Ok((devices, problems))
    }

    /// The lease table saved by this bench (or, after the host was renamed, the one there is).
    pub(crate) fn leases(&self) -> Result<Option<String>, String> {
        self.conn
            .query_row(
                "SELECT leases FROM leases ORDER BY bench = ?1 DESC LIMIT 1",
                params![self.bench],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| format!("{FILE}: {e}"))
    }

    /// The value of `key` in `meta`.
    pub(crate) fn read_meta(&self, key: &str) -> Result<Option<String>, String> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| format!("{FILE}: {e}"))
    }
}

impl Backend for Sqlite {
    fn meta(&mut self, key: &str) -> Result<Option<String>, String> {
        self.read_meta(key)
    }

    fn commit_with(&mut self, changes: &[Change], meta: &[(&str, &str)]) -> Result<(), String> {
        let e = |e: rusqlite::Error| e.to_string();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO devices (serial, bench, state, pid, ip, last_contact, logged, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (serial) DO UPDATE SET bench = excluded.bench, state = excluded.state,
                       pid = excluded.pid, ip = excluded.ip, last_contact = excluded.last_contact,
                       logged = excluded.logged, record = excluded.record",
                )
                .map_err(e)?;
            let mut line = tx
                .prepare_cached(
                    "INSERT INTO history (serial, n, event) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .map_err(e)?;
            let mut trim = tx
                .prepare_cached("DELETE FROM history WHERE serial = ?1 AND n < ?2")
                .map_err(e)?;
            for c in changes {
                match c {
                    Change::Update(row) => {
                        upsert
                            .execute(params![
                                row.serial,
                                self.bench,
                                row.state,
                                row.pid,
                                row.ip,
                                row.last_contact,
                                row.logged,
                                row.record
                            ])
                            .map_err(e)?;
                        for (n, event) in &row.log {
                            line.execute(params![row.serial, n, event]).map_err(e)?;
                        }
                        if let Some(from) = row.keep_from {
                            trim.execute(params![row.serial, from]).map_err(e)?;
                        }
                    }
                    Change::Forget(serial) => {
                        tx.execute("DELETE FROM history WHERE serial = ?1", params![serial])
                            .map_err(e)?;
                        tx.execute("DELETE FROM devices WHERE serial = ?1", params![serial])
                            .map_err(e)?;
                    }
                    Change::Leases(json) => {
                        tx.execute(
                            "INSERT INTO leases (bench, leases) VALUES (?1, ?2)
                             ON CONFLICT (bench) DO UPDATE SET leases = excluded.leases",
                            params![self.bench, json],
                        )
                        .map_err(e)?;
                    }
                }
            }
            for (k, v) in meta {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![k, v],
                )
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Folds the WAL into the database and empties it, so the file alone holds the state.
    fn checkpoint(&mut self) -> Result<(), String> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::Row;

    #[test]
    fn changes_read_back_trimmed_forgotten_and_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let now = chrono::Local::now();
        let mut db = Sqlite::open(&path, "bench-a").unwrap();
        let mut d = Device::new("S1", "u", "C1111-8P", "v", now);
        let mut expected = Vec::new();
        // Past the line cap: the database keeps what the record keeps.
        for i in 0..crate::domain::device::HISTORY_LIMIT + 7 {
            d.log(now, format!("line {i}"));
            let row = Row::of(&mut d, 1).unwrap();
            expected.push(Change::Update(Box::new(row)));
        }
        let mut other = Device::new("S2", "u", "C1111-8P", "v", now);
        other.log(now, "x");
        expected.push(Change::Update(Box::new(Row::of(&mut other, 1).unwrap())));
        db.commit(&expected[..10]).unwrap();
        db.commit(&expected[10..]).unwrap();
        // Written twice: nothing twice.
        db.commit(&expected[expected.len() - 2..]).unwrap();
        db.commit(&[Change::Leases("{\"leases\":[]}".into())])
            .unwrap();
        let (got, problems) = db.load().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(got["S1"], d);
        assert_eq!(got["S2"], other);
        let rows: i64 = db
            .conn
            .query_row(
                "SELECT count(*) FROM history WHERE serial = 'S1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows as usize, crate::domain::device::HISTORY_LIMIT);
        db.commit(&[Change::Forget("S2".into())]).unwrap();
        db.checkpoint().unwrap();
        drop(db);
        // Reopened: no migration twice, the state read-only from another connection.
        let db = Sqlite::open(&path, "bench-a").unwrap();
        assert_eq!(version(&db.conn).unwrap(), latest());
        let ro = Sqlite::read_only(&path).unwrap().unwrap();
        let (got, _) = ro.load().unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["S1"]);
        assert_eq!(db.leases().unwrap().as_deref(), Some("{\"leases\":[]}"));
        assert!(
            Sqlite::read_only(&dir.path().join("none.db"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let db = Sqlite::open(&path, "b").unwrap();
        db.conn
            .execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'x')",
                [],
            )
            .unwrap();
        drop(db);
        for e in [
            Sqlite::open(&path, "b").err().unwrap(),
            Sqlite::read_only(&path).err().unwrap(),
        ] {
            assert!(
                e.contains("schema version 99") && e.contains("run the newer"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_failed_transaction_leaves_nothing_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::open(&dir.path().join(FILE), "b").unwrap();
        let now = chrono::Local::now();
        let mut d = Device::new("S1", "u", "p", "v", now);
        d.log(now, "x");
        let good = Change::Update(Box::new(Row::of(&mut d, 1).unwrap()));
        db.conn.execute_batch("DROP TABLE leases").unwrap();
        let e = db
            .commit(&[good.clone(), Change::Leases("{}".into())])
            .unwrap_err();
        assert!(e.contains("leases"), "{e}");
        assert!(db.load().unwrap().0.is_empty());
        db.commit(&[good]).unwrap();
        assert_eq!(db.load().unwrap().0.len(), 1);
    }
}
