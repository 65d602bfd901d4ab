//! Storage faults while serving: a state directory that refuses writes and a full disk. The
//! server logs each failure with what to do, keeps serving from memory, and never corrupts
//! what it had saved. These need root (`chattr +i`, a tmpfs in a private mount namespace), so
//! they are `#[ignore]`d; `.ci/run` runs them, and run without root they fail saying so.

mod common;

use std::process::Command;

use common::{Bench, text};

/// Clears the immutable flag again, whatever happens in the test.
struct Immutable(std::path::PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root (chattr +i): run by .ci/run"]
fn read_only_state_directory_is_logged_and_serving_goes_on() {
    common::require("read-only state directory", &["chattr"], true);
    let mut b = Bench::new("");
    b.start();
    let out = b.simulate(1, &["--serial-prefix", "ROK"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let saved = pnp_appliance::store::read_saved(&b.path("state")).unwrap();
    // The database and its write-ahead log no longer accept writes (readers still may).
    let files = [b.path("state/state.db"), b.path("state/state.db-wal")];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let st = Command::new("chattr")
        .arg("+i")
        .args(&files)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "chattr +i is not supported on the file system of {}: run the tests on ext4 or xfs",
        files[0].display()
    );
    let _guard = (Immutable(files[0].clone()), Immutable(files[1].clone()));
    let out = b.simulate(2, &["--serial-prefix", "RON"]).output().unwrap();
    assert!(
        out.status.success(),
        "serving must go on from memory: {}\n{}",
        text(&out),
        b.server_log()
    );
    let log = b.server_log();
    assert!(log.contains("cannot persist device record"), "{log}");
    assert!(
        log.contains("free disk space or fix permissions"),
        "the log says what to do: {log}"
    );
    // What was saved is untouched, and nothing half-written appeared.
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(after == before, "the saved state changed while read-only");
    let now = pnp_appliance::store::read_saved(&b.path("state")).unwrap();
    assert_eq!(now, saved);
    assert_eq!(now.len(), 1);

    // The record says it is not saved; once the disk takes writes again, its next change
    // writes it whole, saying what happened, so nothing of that time is lost at a restart.
    let lines = common::history_texts;
    let d = b.device("RON00001").unwrap();
    assert!(
        lines(&d).iter().any(|l| l.starts_with("NOT SAVED")),
        "{:#?}",
        lines(&d)
    );
    drop(_guard);
    let out = b.run(&["device", "reset", "RON00001"]);
    assert!(out.status.success(), "{}", text(&out));
    b.kill9();
    b.start();
    let after = lines(&b.device("RON00001").unwrap());
    for want in [
        "new device",
        "NOT SAVED",
        "could not save this record from",
        "reset by operator",
    ] {
        assert!(
            after.iter().any(|l| l.contains(want)),
            "{want:?} lost at the restart: {after:#?}"
        );
    }
}

#[test]
#[ignore = "needs root (a tmpfs in a private mount namespace): run by .ci/run"]
fn full_disk_while_persisting_keeps_whole_entries() {
    common::require("full disk", &["unshare", "mount", "nsenter"], true);
    let mut b = Bench::new("");
    let state = b.path("state");
    std::fs::create_dir_all(&state).unwrap();
    // The server runs in its own mount namespace with a 192 KiB tmpfs as its state directory:
    // room for the database, its WAL and its 32 KiB shared-memory index, and a few commits.
    let script = format!(
        "mount -t tmpfs -o size=192k tmpfs {} && exec \"$0\" \"$@\"",
        state.display()
    );
    b.start_wrapped(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]);
    let out = b
        .simulate(12, &["--serial-prefix", "FULL"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "serving must go on: {}\n{}",
        text(&out),
        b.server_log()
    );
    let log = b.server_log();
    assert!(
        log.contains("cannot persist device record")
            && (log.contains("full") || log.contains("No space left on device")),
        "{log}"
    );
    // What is on the full disk is whole: the database and its WAL, copied out of the
    // namespace, pass SQLite's integrity check and hold whole records (a failed commit is
    // rolled back, never left half-written).
    let pid = b.server.as_ref().unwrap().id().to_string();
    let copy = tempfile::tempdir().unwrap();
    for name in ["state.db", "state.db-wal"] {
        let cat = Command::new("nsenter")
            .args(["--target", &pid, "--mount", "--", "cat"])
            .arg(state.join(name))
            .output()
            .unwrap();
        assert!(cat.status.success(), "{name}: {}", text(&cat));
        std::fs::write(copy.path().join(name), cat.stdout).unwrap();
    }
    let db = rusqlite::Connection::open(copy.path().join("state.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(db);
    let saved = pnp_appliance::store::read_saved(copy.path()).unwrap();
    assert!(
        !saved.is_empty(),
        "some changes were saved before the disk filled"
    );
    assert!(saved.iter().all(|d| d.serial.starts_with("FULL")));
}
