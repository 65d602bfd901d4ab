//! The fleet store: several benches on one real PostgreSQL database (started by the test:
//! `initdb` and `pg_ctl` as the `postgres` user on a free loopback port). Each bench drives
//! its own routers and shows the whole fleet; a router moved to another bench continues
//! where it was; a server killed with SIGKILL loses nothing it answered. These need root (to
//! run PostgreSQL as `postgres`), so they are `#[ignore]`d; `.ci/run` runs them.

mod common;

use std::time::{Duration, Instant};

use common::{Bench, Postgres, text};

/// A bench on the fleet database at `url`, whose claims last `claim_secs`.
fn fleet_bench(url: &str, name: &str, claim_secs: u32) -> Bench {
    let b = Bench::new("");
    b.patch_config(
        "claim-timeout = 120",
        &format!("url = \"{url}\"\nbench = \"{name}\"\nclaim-timeout = {claim_secs}"),
    );
    b
}

/// `/api/status` of a bench: (serial, bench, state) per router.
fn fleet_view(b: &Bench) -> Vec<(String, String, String)> {
    let (s, body) = common::http_get(b.port, "/api/status?limit=1000").unwrap();
    assert_eq!(s, 200);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    let mut out: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["serial"].as_str().unwrap().to_string(),
                r["bench"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
#[ignore = "needs root (PostgreSQL run as the postgres user): run by .ci/run"]
fn postgres_keeps_every_answered_change_across_kill_9() {
    let pg = Postgres::start();
    let url = pg.database("killed");
    let mut b = fleet_bench(&url, "bench-k", 3);
    b.start();
    common::finishes_across_kill_9(&mut b, "PGK", 12);
    // The state directory holds no device state of its own: it is all in the database.
    assert!(!b.path("state/state.db").exists());
}

#[test]
#[ignore = "needs root (PostgreSQL run as the postgres user): run by .ci/run"]
fn two_benches_share_one_fleet_and_a_moved_router_continues_where_it_was() {
    let pg = Postgres::start();
    let url = pg.database("fleet");
    // Bench A lets go of a router 3 s after it last heard from it; bench B holds on 60 s.
    let mut a = fleet_bench(&url, "bench-a", 3);
    let mut b = fleet_bench(&url, "bench-b", 60);
    a.start();
    b.start();
    // Routers on each bench at once; bench B is killed mid-run and comes back.
    let mut sim_a = a.simulate(4, &["--serial-prefix", "FLA"]).spawn().unwrap();
    let mut sim_b = b.simulate(4, &["--serial-prefix", "FLB"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    b.kill9();
    std::thread::sleep(Duration::from_millis(300));
    b.start();
    assert!(sim_a.wait().unwrap().success(), "{}", a.server_log());
    assert!(sim_b.wait().unwrap().success(), "{}", b.server_log());
    // Both views show the whole fleet, each router with the bench that drove it.
    let want: Vec<(String, String, String)> = (1..=4)
        .map(|n| (format!("FLA{n:05}"), "bench-a".into(), "FINISHED".into()))
        .chain((1..=4).map(|n| (format!("FLB{n:05}"), "bench-b".into(), "FINISHED".into())))
        .collect();
    assert_eq!(fleet_view(&a), want);
    assert_eq!(fleet_view(&b), want);
    // Each bench's status table holds its own routers only.
    let csv_a = std::fs::read_to_string(a.path("DEVICE_STATUS.csv")).unwrap();
    assert!(
        csv_a.contains("FLA00001") && !csv_a.contains("FLB00001"),
        "{csv_a}"
    );
    // `status` names the bench of each router.
    let out = a.run(&["status"]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        status.contains("BENCH") && status.contains("bench-b"),
        "{status}"
    );
    // So does `report`, after the steps (then identity, the last column).
    let out = a.run(&["report"]);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        report
            .lines()
            .next()
            .unwrap_or("")
            .ends_with(",bench,identity"),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("FLB00001,") && l.ends_with(",bench-b,address-bound")),
        "{report}"
    );

    // A router is unplugged from bench A half-way and plugged into bench B.
    // Slower than the other runs, so it is caught half-way.
    let mut moving = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(a.config())
        .args(["simulate", "--server", &a.url(), "--devices", "1"])
        .args(["--time-scale", "0.05", "--serial-prefix", "MOV"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = a
            .device("MOV00001")
            .map(|d| d["state"].as_str().unwrap_or("").to_string());
        if state.as_deref().is_some_and(|s| s != "NEW_DEVICE") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "MOV00001 never started on bench A"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = moving.kill();
    let _ = moving.wait();
    let on_a = a.device("MOV00001").unwrap();
    let out = b.simulate(1, &["--serial-prefix", "MOV"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), b.server_log());
    let log_b = b.server_log();
    assert!(
        log_b.contains("driven by bench bench-a"),
        "bench B first told it to wait: {log_b}"
    );
    // Bench B went on from bench A's record: its history and first contact are there.
    let on_b = b.device("MOV00001").unwrap();
    assert_eq!(on_b["first_seen"], on_a["first_seen"]);
    assert_eq!(on_b["bench"], "bench-b");
    let texts = common::history_texts(&on_b);
    let first_a = common::history_texts(&on_a)[0].clone();
    assert_eq!(texts[0], first_a, "{texts:#?}");
    assert!(
        texts
            .iter()
            .any(|t| t == "driven by bench bench-b from now on (bench bench-a drove it before)"),
        "{texts:#?}"
    );
    assert_eq!(on_b["state"], "FINISHED");
    // An operator on bench A cannot act on it while bench B drives it.
    let out = a.run(&["device", "reset", "MOV00001"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("driven by bench bench-b"),
        "{}",
        text(&out)
    );
    // Bench A sees it as bench B's now, and its own table drops it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let csv = std::fs::read_to_string(a.path("DEVICE_STATUS.csv")).unwrap();
        let view = fleet_view(&a);
        let theirs = view
            .iter()
            .any(|(s, bench, _)| s == "MOV00001" && bench == "bench-b");
        if theirs && !csv.contains("MOV00001") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bench A still shows MOV00001 as its own: {view:?}\n{csv}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(pg);
}
