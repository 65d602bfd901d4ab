//! The fleet store: one PostgreSQL database shared by several benches.
//!
//! Owns the PostgreSQL connections, their schema migrations, their SQL and the claims. Each
//! bench writes its own routers' rows (`devices.bench` is who drove a router last) and reads
//! every bench's for the fleet's views. **Claims**: one bench at a time drives a router. A
//! bench holds a router's claim while it hears from it: each exchange renews it for
//! `[state] claim-timeout` (120 s by default; in memory, written at most every half of that), so the claim of a bench that
//! goes silent, or of a router unplugged from it, runs out, and the bench the router turns up
//! at takes it and continues from the record where the other left it. A router that speaks to
//! two benches at once is driven by the one that holds the claim; the other tells it to wait.
//!
//! A commit is one transaction of a few statements whatever the batch's size (rows passed as
//! arrays to `unnest`), so the group commit costs a few round trips, not one per change.
//! The synchronous client (`postgres`) runs on the writer's thread and, for claims and views,
//! on blocking threads: never on the async workers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use postgres::{Client, NoTls};

use crate::domain::device::Device;
use crate::store::db::{Backend, Change, Row};

/// Schema versions, applied in order at start under an advisory lock (two benches starting
/// together migrate once). Never edit one that has shipped: add the next.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE devices (
        serial TEXT PRIMARY KEY,
        bench TEXT NOT NULL,
        state TEXT NOT NULL,
        pid TEXT NOT NULL,
        ip TEXT,
        last_contact TIMESTAMPTZ NOT NULL,
        logged BIGINT NOT NULL,
        record JSONB NOT NULL
    );
    CREATE INDEX devices_bench ON devices (bench);
    CREATE TABLE history (
        serial TEXT NOT NULL,
        n BIGINT NOT NULL,
        event JSONB NOT NULL,
        PRIMARY KEY (serial, n)
    );
    CREATE TABLE leases (bench TEXT PRIMARY KEY, leases JSONB NOT NULL);
    CREATE TABLE claims (serial TEXT PRIMARY KEY, bench TEXT NOT NULL, until TIMESTAMPTZ NOT NULL);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
)];

/// Key of the advisory lock that serialises migrations between benches.
const MIGRATION_LOCK: i64 = 0x706e_7061_7070; // "pnpapp"

/// A connection to the fleet database, as this bench.
pub(crate) struct Pg {
    client: Client,
    bench: String,
    /// How long this bench's claims last.
    claim_timeout: std::time::Duration,
    /// [`WRITE_ROWS`], prepared once (planned once, not at every commit).
    write_rows: Option<postgres::Statement>,
}

/// Whether this bench may drive a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// It may: the claim is this bench's. `from`: the bench that drove it before (its claim
    /// ran out), whose record this bench must read first.
    Ours { from: Option<String> },
    /// Another bench drives it, for `secs` more unless it hears from the router again.
    Held { bench: String, secs: i64 },
}

/// The URL without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(c) => {
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(s) => s.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            format!(
                "postgresql://{}@{}:{}/{}",
                c.get_user().unwrap_or(""),
                hosts.join(","),
                c.get_ports().first().copied().unwrap_or(5432),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "the [state] url".into(),
    }
}

fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

impl Pg {
    /// Connects to `url` as `bench`, whose claims last `claim_timeout`, and brings the
    /// schema up to date.
    pub(crate) fn connect(
        url: &str,
        bench: &str,
        claim_timeout: std::time::Duration,
    ) -> Result<Pg, String> {
        let shown = redacted(url);
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| format!("{shown}: not a PostgreSQL URL: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.application_name(&format!("pnp-appliance {bench}"));
        let client = config.connect(NoTls).map_err(|e| {
            format!(
                "cannot connect to the fleet database {shown}: {e} (check the server runs, the address, user and password in [state] url, and pg_hba.conf)"
            )
        })?;
        let mut pg = Pg {
            client,
            bench: bench.to_string(),
            claim_timeout,
            write_rows: None,
        };
        pg.migrate().map_err(|e| format!("{shown}: {e}"))?;
        Ok(pg)
    }

    fn migrate(&mut self) -> Result<(), String> {
        let e = |e: postgres::Error| e.to_string();
        let mut tx = self.client.transaction().map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(e)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .map_err(e)?;
        let v: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(e)?
            .get(0);
        if v > latest() {
            return Err(format!(
                "the fleet database has schema version {v}, newer than this pnp-appliance knows ({}): upgrade this bench's pnp-appliance",
                latest()
            ));
        }
        for (n, sql) in MIGRATIONS.iter().filter(|m| m.0 > v) {
            tx.batch_execute(sql).map_err(e)?;
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[n])
                .map_err(e)?;
            tracing::info!(version = n, "fleet database schema migrated");
        }
        tx.commit().map_err(e)
    }

    /// The records this bench drove last, with their history, and what could not be read.
    pub(crate) fn load_bench(&mut self) -> Result<(HashMap<String, Device>, Vec<String>), String> {
        self.load_where("d.bench = $1", &[&self.bench.clone()], true)
    }

    /// One record with its history (`None`: no such router in the fleet).
    pub(crate) fn fetch(&mut self, serial: &str) -> Result<Option<Device>, String> {
        let (mut devices, problems) = self.load_where("d.serial = $1", &[&serial], true)?;
        for p in problems {
            tracing::warn!("{p}");
        }
        Ok(devices.remove(serial))
    }

    /// The records `filter` selects (on `devices d`), with their history when `history`.
    fn load_where(
        &mut self,
        filter: &str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
        history: bool,
    ) -> Result<(HashMap<String, Device>, Vec<String>), String> {
        let e = |e: postgres::Error| e.to_string();
        let records: Vec<(String, String, String)> = self
            .client
            .query(
                &format!("SELECT d.serial, d.record::text, d.bench FROM devices d WHERE {filter}"),
                args,
            )
            .map_err(e)?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let history: Vec<(String, String)> = if !history {
            Vec::new()
        } else {
            self.client
            .query(
                &format!(
                    "SELECT h.serial, h.event::text FROM history h JOIN devices d ON d.serial = h.serial WHERE {filter} ORDER BY h.serial, h.n"
                ),
                args,
            )
            .map_err(e)?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
        };
        let benches: HashMap<String, String> = records
            .iter()
            .map(|(s, _, b)| (s.clone(), b.clone()))
            .collect();
        let mut problems = Vec::new();
        let mut devices = crate::store::db::assemble(
            records.into_iter().map(|(s, r, _)| (s, r)),
            history,
            &mut problems,
            "fleet database",
        );
        for (serial, d) in devices.iter_mut() {
            if let Some(b) = benches.get(serial) {
                d.bench.clone_from(b);
            }
        }
        Ok((devices, problems))
    }

    /// Every router of the fleet, without history, each with the bench that drove it last.
    pub(crate) fn fleet(&mut self) -> Result<Vec<Device>, String> {
        let (devices, problems) = self.load_where("true", &[], false)?;
        for p in problems {
            tracing::warn!("{p}");
        }
        Ok(devices.into_values().collect())
    }

    /// Which of `serials` another bench than `bench` drove last.
    pub(crate) fn moved_away(
        &mut self,
        serials: &[String],
        bench: &str,
    ) -> Result<Vec<String>, String> {
        Ok(self
            .client
            .query(
                "SELECT serial FROM devices WHERE serial = ANY($1) AND bench <> $2",
                &[&serials, &bench],
            )
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// This bench's saved lease table.
    pub(crate) fn leases(&mut self) -> Result<Option<String>, String> {
        Ok(self
            .client
            .query_opt(
                "SELECT leases::text FROM leases WHERE bench = $1",
                &[&self.bench],
            )
            .map_err(|e| e.to_string())?
            .map(|r| r.get(0)))
    }

    /// Takes or renews this bench's claim of `serial` unless another bench holds it.
    pub(crate) fn claim(&mut self, serial: &str) -> Result<Claim, String> {
        let e = |e: postgres::Error| e.to_string();
        let timeout = self.claim_timeout;
        let mut tx = self.client.transaction().map_err(e)?;
        // A claim is a lease, not a record: lost in a crash of the database server it only
        // runs out sooner. Its commit does not wait for the disk.
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .map_err(e)?;
        // A serial no bench has a record of is not claimed yet (it is, once its record is
        // written and the claim renewed): a host sending made-up serials adds no rows here.
        let known: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE serial = $1)",
                &[&serial],
            )
            .map_err(e)?
            .get(0);
        if !known {
            tx.commit().map_err(e)?;
            return Ok(Claim::Ours { from: None });
        }
        // The row is locked until the transaction ends: two benches claiming at once queue.
        tx.execute(
            "INSERT INTO claims (serial, bench, until) VALUES ($1, $2, now()) ON CONFLICT DO NOTHING",
            &[&serial, &self.bench],
        )
        .map_err(e)?;
        let row = tx
            .query_one(
                "SELECT bench, extract(epoch FROM until - now())::bigint FROM claims WHERE serial = $1 FOR UPDATE",
                &[&serial],
            )
            .map_err(e)?;
        let (holder, left): (String, i64) = (row.get(0), row.get(1));
        if holder != self.bench && left > 0 {
            tx.commit().map_err(e)?;
            return Ok(Claim::Held {
                bench: holder,
                secs: left,
            });
        }
        tx.execute(
            "UPDATE claims SET bench = $2, until = now() + make_interval(secs => $3) WHERE serial = $1",
            &[&serial, &self.bench, &timeout.as_secs_f64()],
        )
        .map_err(e)?;
        // The bench that drove it last (its claim ran out): its record is the one to go on from.
        let last: Option<String> = tx
            .query_opt("SELECT bench FROM devices WHERE serial = $1", &[&serial])
            .map_err(e)?
            .map(|r| r.get(0));
        tx.commit().map_err(e)?;
        Ok(Claim::Ours {
            from: last.filter(|b| *b != self.bench),
        })
    }
}

/// The batch's changes as each serial's last state: what to delete first, then the rows.
fn coalesce(changes: &[Change]) -> (BTreeSet<&str>, BTreeMap<&str, Row>, Option<&str>) {
    let mut forget = BTreeSet::new();
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    let mut leases = None;
    for c in changes {
        match c {
            Change::Update(row) => match rows.get_mut(row.serial.as_str()) {
                Some(prev) => {
                    let mut log = std::mem::take(&mut prev.log);
                    log.extend(row.log.iter().cloned());
                    let keep_from = prev.keep_from.max(row.keep_from);
                    *prev = Row {
                        log,
                        keep_from,
                        ..(**row).clone()
                    };
                }
                None => {
                    rows.insert(&row.serial, (**row).clone());
                }
            },
            Change::Forget(serial) => {
                rows.remove(serial.as_str());
                forget.insert(serial.as_str());
            }
            Change::Leases(json) => leases = Some(json.as_str()),
        }
    }
    (forget, rows, leases)
}

impl Backend for Pg {
    fn meta(&mut self, key: &str) -> Result<Option<String>, String> {
        Ok(self
            .client
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .map_err(|e| e.to_string())?
            .map(|r| r.get(0)))
    }

    fn commit_with(&mut self, changes: &[Change], meta: &[(&str, &str)]) -> Result<(), String> {
        let e = |e: postgres::Error| e.to_string();
        let (forget, rows, leases) = coalesce(changes);
        let rows: Vec<&Row> = rows.values().collect();
        // The usual batch (changed records only) is one statement: atomic by itself, one
        // round trip and one WAL flush. Anything else gets a transaction around it.
        let alone = forget.is_empty() && leases.is_none() && meta.is_empty();
        if alone {
            return self.write_rows(&rows);
        }
        let mut tx = self.client.transaction().map_err(e)?;
        if !forget.is_empty() {
            let serials: Vec<&str> = forget.into_iter().collect();
            tx.execute("DELETE FROM history WHERE serial = ANY($1)", &[&serials])
                .map_err(e)?;
            tx.execute("DELETE FROM devices WHERE serial = ANY($1)", &[&serials])
                .map_err(e)?;
            tx.execute(
                "DELETE FROM claims WHERE serial = ANY($1) AND bench = $2",
                &[&serials, &self.bench],
            )
            .map_err(e)?;
        }
        if let Some(json) = leases {
            tx.execute(
                "INSERT INTO leases (bench, leases) VALUES ($1, $2::text::jsonb)
                 ON CONFLICT (bench) DO UPDATE SET leases = excluded.leases",
                &[&self.bench, &json],
            )
            .map_err(e)?;
        }
        for (k, v) in meta {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[k, v],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)?;
        self.write_rows(&rows)
    }
}

/// Writes changed records, their new history lines and their trims in one statement, and
/// takes or renews this bench's claims of them (a claim another bench holds is left to it). A bench's copy may be stale (the router went to another
/// bench since): a row another bench drives under a live claim is never overwritten, and the
/// copy's lines are not added to it (the serials written come back; the others are logged).
const WRITE_ROWS: &str = "
WITH u AS (
  SELECT * FROM unnest($1::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                       $8::text[], $9::bigint[]) AS u(s, st, p, i, lc, l, r, k)
), up AS (
  INSERT INTO devices (serial, bench, state, pid, ip, last_contact, logged, record)
  SELECT s, $2, st, p, i, lc::timestamptz, l, r::jsonb FROM u
  ON CONFLICT (serial) DO UPDATE SET bench = excluded.bench, state = excluded.state,
    pid = excluded.pid, ip = excluded.ip, last_contact = excluded.last_contact,
    logged = excluded.logged, record = excluded.record
  WHERE devices.bench = excluded.bench OR NOT EXISTS (
    SELECT 1 FROM claims c
    WHERE c.serial = excluded.serial AND c.bench <> excluded.bench AND c.until > now())
  RETURNING serial
), h AS (
  INSERT INTO history (serial, n, event)
  SELECT hs, hn, he::jsonb FROM unnest($10::text[], $11::bigint[], $12::text[]) AS x(hs, hn, he)
  WHERE hs IN (SELECT serial FROM up)
  ON CONFLICT DO NOTHING
), t AS (
  DELETE FROM history hh USING u
  WHERE hh.serial = u.s AND u.k IS NOT NULL AND hh.n < u.k AND u.s IN (SELECT serial FROM up)
), c AS (
  INSERT INTO claims (serial, bench, until)
  SELECT serial, $2, now() + make_interval(secs => $13) FROM up
  ON CONFLICT (serial) DO UPDATE SET until = excluded.until WHERE claims.bench = excluded.bench
)
SELECT serial FROM up";

impl Pg {
    fn write_rows(&mut self, rows: &[&Row]) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let e = |e: postgres::Error| e.to_string();
        let stmt = match &self.write_rows {
            Some(s) => s.clone(),
            None => {
                let s = self.client.prepare(WRITE_ROWS).map_err(e)?;
                self.write_rows = Some(s.clone());
                s
            }
        };
        let col = |f: fn(&Row) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<&str>>();
        let serials = col(|r| &r.serial);
        let ips: Vec<Option<&str>> = rows.iter().map(|r| r.ip.as_deref()).collect();
        let logged: Vec<i64> = rows.iter().map(|r| r.logged).collect();
        let keep: Vec<Option<i64>> = rows.iter().map(|r| r.keep_from).collect();
        let (mut hs, mut hn, mut he) = (Vec::new(), Vec::new(), Vec::new());
        for r in rows {
            for (n, event) in &r.log {
                hs.push(r.serial.as_str());
                hn.push(*n);
                he.push(event.as_str());
            }
        }
        let written: BTreeSet<String> = self
            .client
            .query(
                &stmt,
                &[
                    &serials,
                    &self.bench,
                    &col(|r| &r.state),
                    &col(|r| &r.pid),
                    &ips,
                    &col(|r| &r.last_contact),
                    &logged,
                    &col(|r| &r.record),
                    &keep,
                    &hs,
                    &hn,
                    &he,
                    &self.claim_timeout.as_secs_f64(),
                ],
            )
            .map_err(e)?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        if written.len() < rows.len() {
            let skipped: Vec<&str> = serials
                .iter()
                .filter(|s| !written.contains(**s))
                .copied()
                .collect();
            tracing::warn!(
                serials = ?skipped,
                "not written: another bench drives these routers now (its claim is live); this bench's copy is stale and is dropped at the next flush"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(serial: &str, state: &str, log: &[i64], keep_from: Option<i64>) -> Change {
        Change::Update(Box::new(Row {
            serial: serial.into(),
            state: state.into(),
            pid: "p".into(),
            ip: None,
            last_contact: "2026-12-01T00:00:00Z".into(),
            logged: log.last().copied().unwrap_or(0),
            record: "{}".into(),
            log: log.iter().map(|n| (*n, format!("e{n}"))).collect(),
            keep_from,
        }))
    }

    #[test]
    fn a_batch_becomes_each_serials_last_state() {
        let changes = [
            row("A", "s1", &[1], Some(1)),
            row("B", "s1", &[1], Some(1)),
            row("A", "s2", &[2, 3], Some(2)),
            Change::Leases("l1".into()),
            Change::Forget("B".into()),
            Change::Forget("C".into()),
            row("C", "s9", &[1], Some(1)),
            Change::Leases("l2".into()),
        ];
        let (forget, rows, leases) = coalesce(&changes);
        assert_eq!(forget.into_iter().collect::<Vec<_>>(), ["B", "C"]);
        assert_eq!(rows.keys().copied().collect::<Vec<_>>(), ["A", "C"]);
        let a = &rows["A"];
        assert_eq!(a.state, "s2");
        assert_eq!(a.log.iter().map(|l| l.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(a.keep_from, Some(2));
        assert_eq!(rows["C"].state, "s9", "forgotten, then new again");
        assert_eq!(leases, Some("l2"));
    }

    /// A PostgreSQL server in a temporary directory, run as `postgres` (needs root and
    /// Debian's postgresql); stopped on drop.
    struct Server {
        dir: tempfile::TempDir,
        bin: std::path::PathBuf,
        port: u16,
    }

    impl Server {
        fn start() -> Server {
            let bin = std::fs::read_dir("/usr/lib/postgresql")
                .expect("needs Debian's postgresql: `sudo ./scripts/install-deps.sh`")
                .flatten()
                .map(|e| e.path().join("bin"))
                .find(|b| b.join("initdb").exists())
                .expect("no initdb under /usr/lib/postgresql");
            let dir = tempfile::tempdir().unwrap();
            let run = |args: &[&str]| {
                let out = std::process::Command::new(args[0])
                    .args(&args[1..])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            let d = dir.path().display().to_string();
            run(&["chown", "postgres:postgres", &d]);
            let initdb = bin.join("initdb").display().to_string();
            let pg_ctl = bin.join("pg_ctl").display().to_string();
            let data = format!("{d}/data");
            run(&[
                "runuser",
                "-u",
                "postgres",
                "--",
                &initdb,
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
                "-D",
                &data,
            ]);
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let opts = format!("-p {port} -c listen_addresses=127.0.0.1 -k {d}");
            let log = format!("{d}/log");
            run(&[
                "runuser", "-u", "postgres", "--", &pg_ctl, "-w", "-D", &data, "-o", &opts, "-l",
                &log, "start",
            ]);
            Server { dir, bin, port }
        }

        fn url(&self) -> String {
            format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let data = self.dir.path().join("data");
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(data)
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }

    fn device(serial: &str, lines: &[&str]) -> Device {
        let now = chrono::Local::now();
        let mut d = Device::new(serial, "u", "C1111-8P", "v", now);
        for l in lines {
            d.log(now, *l);
        }
        d
    }

    #[test]
    #[ignore = "needs root (PostgreSQL run as the postgres user): run by .ci/run"]
    fn a_stale_copy_never_overwrites_the_bench_that_holds_the_claim() {
        let server = Server::start();
        let timeout = std::time::Duration::from_secs(60);
        let (mut a, mut b) = (
            Pg::connect(&server.url(), "bench-a", timeout).unwrap(),
            Pg::connect(&server.url(), "bench-b", timeout).unwrap(),
        );
        // Bench A drives the router, then it goes to bench B (A's claim ran out: set here).
        assert_eq!(a.claim("S1").unwrap(), Claim::Ours { from: None });
        let mut on_a = device("S1", &["new device", "a1"]);
        a.commit(&[Change::Update(Box::new(Row::of(&mut on_a, 2).unwrap()))])
            .unwrap();
        let held = b.claim("S1").unwrap();
        assert!(
            matches!(&held, Claim::Held { bench, secs } if bench == "bench-a" && (50..=60).contains(secs)),
            "{held:?}"
        );
        a.client
            .execute("UPDATE claims SET until = now() - interval '1 s'", &[])
            .unwrap();
        assert_eq!(
            b.claim("S1").unwrap(),
            Claim::Ours {
                from: Some("bench-a".into())
            }
        );
        let mut on_b = b.fetch("S1").unwrap().unwrap();
        assert_eq!(on_b.history, on_a.history, "B goes on from A's record");
        on_b.log(chrono::Local::now(), "b3");
        b.commit(&[Change::Update(Box::new(Row::of(&mut on_b, 1).unwrap()))])
            .unwrap();
        // A's stale copy logs its own third line: neither the row nor the history change.
        on_a.log(chrono::Local::now(), "stale a3");
        a.commit(&[Change::Update(Box::new(Row::of(&mut on_a, 1).unwrap()))])
            .unwrap();
        let now = b.fetch("S1").unwrap().unwrap();
        assert_eq!(now.bench, "bench-b");
        let texts: Vec<&str> = now.history.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["new device", "a1", "b3"]);
        assert_eq!(a.moved_away(&["S1".into()], "bench-a").unwrap(), ["S1"]);
        // The whole fleet, as either bench sees it.
        let fleet = a.fleet().unwrap();
        assert_eq!(fleet.len(), 1);
        assert_eq!(fleet[0].bench, "bench-b");
        // A second start migrates nothing twice.
        let mut again = Pg::connect(&server.url(), "bench-c", timeout).unwrap();
        let v: i64 = again
            .client
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(v, latest());
    }

    #[test]
    fn the_url_is_shown_without_its_password() {
        let shown = redacted("postgresql://pnp:s3cret@db.example:5433/fleet");
        assert_eq!(shown, "postgresql://pnp@db.example:5433/fleet");
        assert_eq!(redacted("nonsense"), "the [state] url");
    }
}
