//! End to end: the real server binary provisioning emulated routers (`pnp-appliance simulate`).

mod common;

use std::time::{Duration, Instant};

use common::{Bench, IMAGE, text};

fn status_rows(b: &Bench) -> Vec<Vec<String>> {
    std::fs::read_to_string(b.path("DEVICE_STATUS.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

#[test]
fn twenty_routers_finish_concurrently() {
    let mut b = Bench::new("");
    b.start();
    let out = b
        .simulate(
            20,
            &[
                "--serial-prefix",
                "TWENTY",
                // Routers out of lockstep: power-on over 30 s, jobs of 1 s ± 50 % (scaled 0.01).
                "--boot-spread",
                "30",
                "--command-secs",
                "1",
                "--jitter",
                "0.5",
            ],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), b.server_log());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("20 FINISHED, 0 not finished"), "{stdout}");
    assert!(!stdout.contains("anomaly"), "{stdout}");
    // The status table is current (rewritten within a second of the last change) and in the
    // reference layout.
    let rows = common::wait_for(Duration::from_secs(10), || {
        let rows = status_rows(&b);
        (rows.len() == 20
            && rows
                .iter()
                .all(|r| r.get(11).is_some_and(|s| s == "FINISHED")))
        .then_some(rows)
    })
    .unwrap_or_else(|| panic!("status table not current: {:?}", status_rows(&b)));
    for r in &rows {
        assert_eq!(r.len(), 12);
        assert_eq!(r[6], "17.12.3a", "{r:?}");
        assert_eq!(r[7], IMAGE);
        assert_eq!(&r[8..12], ["Done", "Done", "Done", "FINISHED"]);
    }
    // The Python script's output is in the record; the log has one line per exchange.
    let d = b.device("TWENTY00007").unwrap();
    assert!(
        d["script_output"]
            .as_str()
            .unwrap()
            .contains("ran on TWENTY00007"),
        "{d}"
    );
    let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("work-request")
            && l.contains("ip=127.1.0.")
            && l.contains("state=")
            && l.contains("job=")),
        "log lacks key=value lines"
    );
    // /metrics counts the downloads' bytes (20 images of 2 MB at least).
    let (_, metrics) = common::http_get(b.port, "/metrics").unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    let bytes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pnp_download_bytes_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(bytes >= 40_000_000.0, "{bytes}");
    // Every download line names the router.
    let downloads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("download finished"))
        .collect();
    assert!(!downloads.is_empty());
    assert!(
        downloads.iter().all(|l| l.contains("serial=\"TWENTY")),
        "{downloads:#?}"
    );
    assert!(log.lines().any(|l| l.contains("work-response")
        && l.contains("job=image-install")
        && l.contains("result=\"success\"")));
    // Every line of an exchange names its router and correlator (the exchange's span), without
    // each line spelling them out.
    let exchange_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" work-request ") || l.contains(" work-response "))
        .collect();
    assert!(exchange_lines.len() >= 20 * 10, "{}", exchange_lines.len());
    for l in &exchange_lines {
        let span = l
            .split_once("pnp{serial=")
            .unwrap_or_else(|| panic!("no pnp span: {l}"))
            .1;
        let (serial, rest) = span.split_once(' ').unwrap();
        assert!(serial.starts_with("TWENTY"), "{l}");
        assert!(rest.starts_with("correlator="), "{l}");
        assert_eq!(l.matches("serial=").count(), 1, "serial written twice: {l}");
    }
}

#[test]
fn low_bootflash_parks_until_resumed() {
    let mut b = Bench::new("");
    b.start();
    let mut sim = b
        .simulate(2, &["--serial-prefix", "LOWFLASH", "--low-bootflash", "1"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = b
            .device("LOWFLASH00001")
            .and_then(|d| d["state"].as_str().map(str::to_string));
        if state.as_deref() == Some("BOOTFLASH_NO_SPACE") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never parked: {state:?}\n{}",
            b.server_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Parked for a while: still there, no steps after it. (A wait for something not to
    // happen: it has no event to poll for.)
    std::thread::sleep(Duration::from_secs(2));
    let d = b.device("LOWFLASH00001").unwrap();
    assert_eq!(d["state"], "BOOTFLASH_NO_SPACE");
    // Said once at WARN, with the serial, the reason and the fix.
    let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap_or_default();
    let parked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("router needs the operator"))
        .collect();
    assert_eq!(parked.len(), 1, "{parked:#?}");
    assert!(
        parked[0].contains("WARN")
            && parked[0].contains("LOWFLASH00001 is parked in BOOTFLASH_NO_SPACE")
            && parked[0].contains("device resume LOWFLASH00001"),
        "{}",
        parked[0]
    );
    let out = b.run(&["device", "resume", "LOWFLASH00001"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("BOOTFLASH_NO_SPACE -> RUN_EVENT_MANAGER"),
        "{}",
        text(&out)
    );
    let status = sim.wait().unwrap();
    assert!(
        status.success(),
        "simulate failed after resume\n{}",
        b.server_log()
    );
    let d = b.device("LOWFLASH00001").unwrap();
    assert_eq!(d["state"], "FINISHED");
}

#[test]
fn corrupted_image_fails_md5_is_retried_then_failed() {
    let mut b = Bench::new("");
    b.start();
    // Corrupt the image after start-up: the server still announces the good md5.
    let path = b.path(&format!("images/{IMAGE}"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = b
        .simulate(1, &["--serial-prefix", "CORRUPT"])
        .output()
        .unwrap();
    // It ran to the end and reports the router as not finished.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 routers, 0 FINISHED, 1 not finished"),
        "{}",
        text(&out)
    );
    assert!(
        !out.status.success(),
        "simulate should exit non-zero: {}",
        text(&out)
    );
    let d = b.device("CORRUPT00001").unwrap();
    assert_eq!(d["state"], "FAILED", "{d}");
    let reason = d["fail_reason"]
        .as_str()
        .unwrap_or_else(|| panic!("{d}\n{}", text(&out)));
    assert!(
        reason.contains("1816") && reason.contains("Error verifying checksum"),
        "{reason}"
    );
    let installs = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["state"] == "UPGRADE_INPROGRESS" && e["text"].as_str().unwrap_or("").contains("1816")
        })
        .count();
    assert_eq!(installs, 3, "1 try + 2 retries: {d}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CORRUPT00001   FAILED"),
        "{}",
        text(&out)
    );
}

#[test]
fn server_killed_at_random_moments_still_finishes_all_without_repeating_steps() {
    let mut b = Bench::new("");
    b.start();
    common::finishes_across_kill_9(&mut b, "KILL", 20);
}

#[test]
fn templated_day0_config_renders_per_router_or_fails_with_the_reason() {
    let mut b = Bench::new("");
    let default = std::fs::read_to_string(b.path("configs/default.cfg")).unwrap();
    std::fs::write(
        b.path("configs/default.cfg"),
        default.replace(
            "hostname ISR1K-STAGED",
            "hostname {{ hostname }}\n! {{ pid }} {{ serial }}",
        ),
    )
    .unwrap();
    std::fs::write(
        b.path("configs/inventory.csv"),
        "serial,hostname\nTPL00001,branch-001\n",
    )
    .unwrap();
    b.start();
    let out = b.simulate(2, &["--serial-prefix", "TPL"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TPL00001       FINISHED"), "{}", text(&out));
    assert!(stdout.contains("TPL00002       FAILED"), "{}", text(&out));
    let d = b.device("TPL00002").unwrap();
    let reason = d["fail_reason"].as_str().unwrap();
    assert!(
        reason.contains("hostname") && reason.contains("TPL00002 has no row in the inventory"),
        "{reason}"
    );
    let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("router needs the operator")
            && l.contains("TPL00002 is FAILED")
            && l.contains("device resume TPL00002")),
        "no WARN for the FAILED router:\n{log}"
    );
    // It failed at its first contact: no image, no file, no config was sent to it.
    assert_eq!(d["failed_in"], "NEW_DEVICE", "{d}");
    assert_eq!(
        d["current_version"], "",
        "not even asked for device-info: {d}"
    );
    let history = d["history"].to_string();
    for job in ["image-install", "file-transfer", "config-upgrade"] {
        assert!(
            !history.contains(job),
            "{job} sent to a router that cannot be configured: {history}"
        );
    }
    // Router 1 got its config rendered for it: the router's startup config holds the
    // rendered hostname (checked on the router before FINISHED).
    let d1 = b.device("TPL00001").unwrap();
    let evidence = d1["evidence"].as_array().unwrap();
    assert!(
        evidence.iter().any(|e| e["ok"] == true
            && e["expect"]
                .as_str()
                .unwrap_or("")
                .contains("hostname branch-001")),
        "{d1}"
    );
    // Configs go out only through their job: not afterwards, not to another address.
    let (status, _) = common::http_get(b.port, "/configs/default.cfg").unwrap();
    assert_eq!(status, 404);
}

#[test]
fn router_that_vanishes_mid_download_comes_back_and_finishes() {
    let mut b = Bench::new("");
    b.start();
    let out = b
        .simulate(2, &["--serial-prefix", "GONE", "--vanish", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), b.server_log());
    let d = b.device("GONE00002").unwrap();
    let history = d["history"].to_string();
    assert!(history.contains("power-on"), "it rebooted: {history}");
    assert!(history.contains("no answer to image-install"), "{history}");
    assert!(
        history.contains("image-install") && history.contains("succeeded"),
        "the download restarted: {history}"
    );
    assert_eq!(d["state"], "FINISHED");
    assert_eq!(d["current_version"], "17.12.3a");
}

/// Three routers behind one address (NAT, a relay): each download is the router whose job
/// issued it, in the log and in the status rows, not the router that last spoke from there.
#[test]
fn downloads_behind_one_address_are_each_routers_own() {
    let mut b = Bench::new("");
    b.start();
    let out = b
        .simulate(
            3,
            &[
                "--serial-prefix",
                "NAT",
                "--vanish",
                "1",
                "--source",
                "127.0.0.9",
            ],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), b.server_log());
    let log = b.server_log();
    let lines = |what: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(what))
            .map(str::to_string)
            .collect()
    };
    // Each router's image downloads under its own name: one each, and two for the router that
    // lost power during its first (2 MB fits in loopback's buffers, so the server saw that
    // one end too) and fetched it again.
    let finished = lines("download finished");
    for (s, want) in [("NAT00001", 1), ("NAT00002", 1), ("NAT00003", 2)] {
        let images = finished
            .iter()
            .filter(|l| l.contains(&format!("serial=\"{s}\"")) && l.contains("/images/"))
            .count();
        assert_eq!(images, want, "{s}: {finished:#?}");
    }
    assert!(
        finished.iter().all(|l| l.contains("ip=127.0.0.9")),
        "{finished:#?}"
    );
    // The URLs routers were given carry their job's tag; no tag is shown to operators.
    let d = b.device("NAT00001").unwrap().to_string();
    assert!(d.contains("/dl/NAT00001/<token>/images/"), "{d}");
    let rows = b.run(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&rows.stdout).unwrap();
    for r in rows.as_array().unwrap() {
        let path = r["transfer"]["path"].as_str().unwrap_or_default();
        assert!(!path.contains("/dl/"), "{r}");
    }
}

/// Polls a router's record until its state is `state` (or the deadline passes).
fn wait_state(b: &Bench, serial: &str, state: &str) -> serde_json::Value {
    common::wait_for(Duration::from_secs(120), || {
        b.device(serial).filter(|d| d["state"] == state)
    })
    .unwrap_or_else(|| {
        panic!(
            "{serial} never reached {state}: {:?}\n{}",
            b.device(serial),
            b.server_log()
        )
    })
}

#[test]
fn an_image_that_does_not_fit_is_cleaned_up_for_or_waits_for_an_operator() {
    // 193 MB free on arrival (old images); the 2 MB image plus a 500 MB margin does not fit.
    let margin = |b: &Bench| {
        b.patch_config(
            "image-space-margin = 104857600\n",
            "image-space-margin = 500000000\n",
        )
    };
    let mut b = Bench::new("");
    margin(&b);
    b.start();
    let out = b
        .simulate(2, &["--serial-prefix", "FULL", "--full-bootflash", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), b.server_log());
    let d = b.device("FULL00001").unwrap();
    let history = d["history"].to_string();
    assert!(history.contains("cleaning up first"), "{history}");
    assert!(
        history.contains("old images to delete: c1100-universalk9.16.12.04.SPA.bin"),
        "{history}"
    );
    assert!(
        !history.contains("c1100-universalk9.17.09.04a.SPA.bin ("),
        "the running image is kept: {history}"
    );
    assert_eq!(d["current_version"], "17.12.3a");
    assert!(
        d["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ok"] == true),
        "{d}"
    );

    // Without cleanup: parked before any download, saying what is needed and what to do.
    let mut b = Bench::new("");
    margin(&b);
    b.patch_config("image-cleanup = \"auto\"\n", "image-cleanup = \"off\"\n");
    b.start();
    let mut sim = b
        .simulate(1, &["--serial-prefix", "NOSPACE", "--full-bootflash", "1"])
        .spawn()
        .unwrap();
    let d = wait_state(&b, "NOSPACE00001", "IMAGE_NO_SPACE");
    let _ = sim.kill();
    let _ = sim.wait();
    let why = d["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("193 MB free"), "{why}");
    // Every view shows it as needing you, with the reason and the fix.
    let rows: serde_json::Value =
        serde_json::from_slice(&b.run(&["status", "--json"]).stdout).unwrap();
    let row = &rows[0];
    assert_eq!(row["group"], "needs_you", "{row}");
    assert_eq!(row["reason"], why, "{row}");
    assert!(
        row["fix"]
            .as_str()
            .is_some_and(|f| f.contains("device resume NOSPACE00001")),
        "{row}"
    );
    assert!(
        !d["history"].to_string().contains("image-install"),
        "no download started: {d}"
    );
    let shown = text(&b.run(&["device", "show", "NOSPACE00001"]));
    assert!(shown.contains("IMAGE_NO_SPACE"), "{shown}");
}

#[test]
fn a_script_that_dies_leaves_its_router_failed_with_the_output() {
    let mut b = Bench::new("");
    b.start();
    let out = b
        .simulate(2, &["--serial-prefix", "PYFAIL", "--failing-script", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PYFAIL00001    FINISHED"), "{stdout}");
    assert!(stdout.contains("PYFAIL00002    FAILED"), "{stdout}");
    let d = b.device("PYFAIL00002").unwrap();
    assert_eq!(d["failed_in"], "RUN_PY_SCRIPT");
    let reason = d["fail_reason"].as_str().unwrap();
    assert!(
        reason.contains("ModuleNotFoundError: No module named 'cli'"),
        "{reason}"
    );
    assert!(
        d["script_output"].as_str().unwrap().contains("Traceback"),
        "{d}"
    );
    let report = text(&b.run(&["report", "--format", "json"]));
    let rows: serde_json::Value = serde_json::from_str(&report).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["serial"] == "PYFAIL00002")
        .unwrap();
    let script = row["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == "RUN_PY_SCRIPT")
        .unwrap();
    assert!(script[1].as_str().unwrap().starts_with("failed"), "{row}");
}

#[test]
fn finished_only_after_the_checks_hold_on_the_router() {
    // The operator's check expects the inventory's hostname; the day-0 config sets another.
    let mut b = Bench::new(
        "[[workflow.verify]]\ncommand = \"show running-config | include ^hostname\"\nexpect = \"hostname {{ hostname }}\"\n",
    );
    std::fs::write(
        b.path("configs/inventory.csv"),
        "serial,hostname\nVER00001,ISR1K-STAGED\nVER00002,branch-002\n",
    )
    .unwrap();
    b.start();
    let out = b.simulate(2, &["--serial-prefix", "VER"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("VER00001       FINISHED"), "{}", text(&out));
    assert!(stdout.contains("VER00002       FAILED"), "{}", text(&out));
    let ok = b.device("VER00001").unwrap();
    let evidence = ok["evidence"].as_array().unwrap();
    let checks: Vec<&str> = evidence
        .iter()
        .map(|e| e["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "running version",
            "config-register",
            "startup config saved after the day-0 config",
            "guestshell running",
            "check 1: show running-config | include ^hostname"
        ]
    );
    assert_eq!(evidence[4]["seen"], "hostname ISR1K-STAGED");
    let bad = b.device("VER00002").unwrap();
    assert_eq!(bad["failed_in"], "VERIFY");
    let reason = bad["fail_reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "expected \"hostname branch-002\", the router shows \"hostname ISR1K-STAGED\""
        ),
        "{reason}"
    );
    let shown = text(&b.run(&["device", "show", "VER00002"]));
    assert!(
        shown.contains("verification")
            && shown.contains("FAIL")
            && shown.contains("hostname branch-002"),
        "{shown}"
    );
}

#[test]
fn simulate_against_an_address_where_nothing_listens_fails_within_seconds() {
    let b = Bench::new("");
    let started = std::time::Instant::now();
    let out = b.simulate(2, &[]).output().unwrap();
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains(&format!("no PnP server answers at {}", b.url()))
            && err.contains("pnp-appliance serve"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// A router's copy opens a connection of its own, as a CLI `copy http:` does;
/// `--copy-on-pnp-connection` keeps it on the PnP agent's kept-alive connection, which hyper
/// holds. Either way the image and files go out by sendfile on the download threads, not
/// through hyper on the threads that answer PnP (the paced benchmark's tail, BENCHMARKS.md).
#[test]
fn copies_take_the_zero_copy_path_on_their_own_connection_and_on_the_agents() {
    for shared in [false, true] {
        let mut b = Bench::new("");
        b.start_wrapped(&["env", "RUST_LOG=pnp_appliance=debug"]);
        let mut args = vec!["--serial-prefix", "CP"];
        if shared {
            args.push("--copy-on-pnp-connection");
        }
        let out = b.simulate(2, &args).output().unwrap();
        assert!(out.status.success(), "{}\n{}", text(&out), b.server_log());
        let log = b.server_log();
        let count = |what: &str, path: &str| {
            log.lines()
                .filter(|l| l.contains(what) && l.contains(path))
                .count()
        };
        // Every router got its image and both files either way.
        assert_eq!(count("download finished", "/images/"), 2, "{log}");
        assert_eq!(count("download finished", "/files/"), 4, "{log}");
        let zero_copy = count("file request (sendfile)", "/images/")
            + count("file request (sendfile)", "/files/");
        assert_eq!(zero_copy, 6, "shared={shared}: {log}");
    }
}

/// Reads one HTTP/1.1 response from `s`: (status line, head, body).
fn read_response(s: &mut std::net::TcpStream) -> (String, String, Vec<u8>) {
    use std::io::Read;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "closed inside a head: {got:?}"
        );
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head.lines().next().unwrap().to_string(), head, body)
}

/// One kept-alive connection, as a PnP agent that also copies over it: PnP, the image, PnP
/// again, a missing file, PnP. The image goes out by sendfile although hyper held the
/// connection, and hyper takes the connection back after it; a missing file still gets
/// ServeDir's 404 (the two paths do not pass it back and forth); nothing asks to close.
#[test]
fn a_kept_alive_connection_gets_its_image_by_sendfile_and_goes_on_with_pnp() {
    use std::io::Write;
    let mut b = Bench::new("");
    b.start_wrapped(&["env", "RUST_LOG=pnp_appliance=debug"]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", b.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let image = std::fs::read(b.path("images").join(IMAGE)).unwrap();
    let image_path = format!("GET /images/{IMAGE}");
    let steps: [(&str, &str, Option<&Vec<u8>>); 5] = [
        ("GET /pnp/HELLO", "200", None),
        (&image_path, "200", Some(&image)),
        ("GET /pnp/HELLO", "200", None),
        ("GET /images/missing.bin", "404", None),
        ("GET /pnp/HELLO", "200", None),
    ];
    for (request, want, body) in steps {
        // One write, as an HTTP client sends a head (one split over segments stays with hyper).
        s.write_all(format!("{request} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .unwrap();
        let (status, head, got) = read_response(&mut s);
        assert!(status.contains(want), "{request}: {head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{request}: {head}"
        );
        if let Some(body) = body {
            assert!(got == *body, "{request}: {} bytes", got.len());
        }
    }
    let log = b.server_log();
    let by_sendfile = log
        .lines()
        .filter(|l| l.contains("file request (sendfile)"))
        .collect::<Vec<_>>();
    assert_eq!(by_sendfile.len(), 1, "{by_sendfile:#?}");
    assert!(by_sendfile[0].contains(IMAGE), "{by_sendfile:#?}");
}
