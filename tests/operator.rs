//! Operator tools against a running server: status with live transfer progress, device show,
//! report, actions with and without the admin token, and hand edits of DEVICE_STATUS.csv.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Bench, http_get, text};

const TOKEN: &str = "0123456789abcdef-test";

fn bench() -> Bench {
    let mut b = Bench::new("");
    b.patch_config("[http]\n", &format!("[http]\nadmin-token = \"{TOKEN}\"\n"));
    b.start();
    b
}

fn post(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("X-Admin-Token: {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n{auth}\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string(),
    )
}

fn status_json(b: &Bench) -> serde_json::Value {
    let out = b.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn status_show_report_and_actions() {
    let b = bench();
    let out = b.simulate(2, &["--serial-prefix", "OPS"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // A slow download shows as a running transfer with progress, then as aborted when the
    // client vanishes mid-transfer.
    // 64 MB (sparse) is more than loopback socket buffers hold, and a small receive buffer
    // keeps the server from pushing it all at once.
    let big = std::fs::File::create(b.path("images/big.bin")).unwrap();
    big.set_len(64 << 20).unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    // From a router's own address (simulated routers each have one): its row shows it.
    let router_ip: std::net::IpAddr = status_json(&b)[0]["ip"].as_str().unwrap().parse().unwrap();
    sock.bind(&std::net::SocketAddr::new(router_ip, 0).into())
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", b.port).parse().unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /images/big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    // Polled until bytes are counted: the row appears when the body starts, before the first
    // sendfile call returns (the client's first read may have been the response head alone).
    let transfer = loop {
        let rows = status_json(&b);
        let t = rows.as_array().unwrap().iter().find_map(|r| {
            let t = &r["transfer"];
            (t["path"] == "/images/big.bin"
                && t["state"] == "running"
                && t["bytes"].as_u64().is_some_and(|n| n > 0))
            .then(|| t.clone())
        });
        if let Some(t) = t {
            break t;
        }
        assert!(Instant::now() < deadline, "no running transfer in {rows:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(transfer["total"], 64 << 20);
    assert!(transfer["bytes"].as_u64().unwrap() < 64 << 20, "{transfer}");
    assert!(transfer["eta_secs"].is_u64(), "{transfer}");
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = status_json(&b);
        if rows
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["transfer"]["state"] == "aborted")
        {
            break;
        }
        assert!(Instant::now() < deadline, "abort not seen: {rows:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        b.server_log().contains("download aborted"),
        "{}",
        b.server_log()
    );

    // The table, newest first, with the DEVICE_STATUS columns.
    let out = b.run(&["status"]);
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        t.contains("SERIAL") && t.contains("OPS00001") && t.contains("FINISHED"),
        "{t}"
    );
    assert!(
        t.contains("2 routers: 0 need you · 0 in progress · 2 finished · times UTC"),
        "{t}"
    );

    // One router's whole history, with the script's output.
    let out = b.run(&["device", "show", "OPS00002"]);
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    for needle in [
        "history:",
        "image-install",
        "python script output:",
        "ran on OPS00002",
        "17.12.3a (was 17.9.4a)",
    ] {
        assert!(t.contains(needle), "{needle:?} missing:\n{t}");
    }

    // The list of records leaves histories out (they can be long); one record has its own.
    let (code, body) = http_get(b.port, "/api/devices").unwrap();
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    for d in list {
        assert!(d.get("history").is_none(), "{d}");
        assert_eq!(d["state"], "FINISHED", "{d}");
    }
    let one = b.device("OPS00002").unwrap();
    assert!(one["history"].as_array().unwrap().len() > 10, "{one}");

    // The report: one row per router with versions and per-step results.
    let out = b.run(&["report", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let col =
        |r: &Vec<&str>, name: &str| r[header.iter().position(|h| *h == name).unwrap()].to_string();
    assert_eq!(col(&rows[0], "version_before"), "17.9.4a");
    assert_eq!(col(&rows[0], "version_after"), "17.12.3a");
    assert_eq!(col(&rows[0], "upgrade_inprogress_result"), "done");
    assert_eq!(col(&rows[0], "run_py_script_result"), "done");
    assert!(!col(&rows[0], "finished").is_empty());

    // Actions: refused without the token, done with it; the CLI sends the configured token.
    let (code, body) = post(b.port, "/api/devices/OPS00001/reset", None);
    assert_eq!(code, 401, "{body}");
    let (code, body) = post(
        b.port,
        "/api/devices/OPS00001/reset",
        Some("wrong-token-123"),
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = post(b.port, "/api/devices/OPS00001/retry", Some(TOKEN));
    assert_eq!(code, 409, "retry of a FINISHED router is refused: {body}");
    let out = b.run(&["device", "reset", "OPS00001"]);
    assert!(
        out.status.success() && text(&out).contains("-> NEW_DEVICE"),
        "{}",
        text(&out)
    );
    assert_eq!(b.device("OPS00001").unwrap()["state"], "NEW_DEVICE");
    let out = b.run(&["device", "forget", "OPS00001"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(b.device("OPS00001").is_none());
    let saved = pnp_appliance::store::read_saved(&b.path("state")).unwrap();
    assert!(
        !saved.iter().any(|d| d.serial == "OPS00001"),
        "forgotten on disk too"
    );
    assert!(saved.iter().any(|d| d.serial == "OPS00002"));
}

#[test]
fn editing_device_state_in_the_csv_unsticks_a_router() {
    let b = bench();
    let mut sim = b
        .simulate(1, &["--serial-prefix", "EDIT", "--low-bootflash", "1"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while b.device("EDIT00001").map(|d| d["state"].clone()) != Some("BOOTFLASH_NO_SPACE".into()) {
        assert!(Instant::now() < deadline, "never parked");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The status table is rewritten within a second of the change.
    let csv = common::wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(b.path("DEVICE_STATUS.csv"))
            .ok()
            .filter(|csv| csv.contains("BOOTFLASH_NO_SPACE"))
    })
    .expect("DEVICE_STATUS.csv never showed BOOTFLASH_NO_SPACE");
    std::fs::write(
        b.path("DEVICE_STATUS.csv"),
        csv.replace("BOOTFLASH_NO_SPACE", "RUN_EVENT_MANAGER"),
    )
    .unwrap();
    let st = sim.wait().unwrap();
    assert!(
        st.success(),
        "router did not finish after the CSV edit\n{}",
        b.server_log()
    );
    let d = b.device("EDIT00001").unwrap();
    assert!(
        d["history"]
            .to_string()
            .contains("edited in DEVICE_STATUS.csv"),
        "{d}"
    );
}

#[test]
fn a_newline_in_what_a_router_sends_cannot_forge_a_log_line() {
    let mut b = Bench::new("");
    b.start();
    let udi = "PID:C1131-8PWB,VID:V01,SN:LOGFORGE1";
    let forged = "2026-12-01T00:00:00.000000Z  INFO pnp_appliance: operator: LOGFORGE2 reset";
    let fault = format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{udi}\"><response xmlns=\"urn:cisco:pnp:fault\"><fault><faultcode>XSVC:Client</faultcode><faultstring>bad&#10;{forged}</faultstring></fault></response></pnp>"
    );
    let (status, _) = common::http_post(b.port, "/pnp/WORK-RESPONSE", &fault).unwrap();
    assert_eq!(status, 200);
    let log = common::wait_for(std::time::Duration::from_secs(10), || {
        let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap_or_default();
        log.contains("device fault").then_some(log)
    })
    .unwrap_or_else(|| panic!("no fault logged:\n{}", b.server_log()));
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-12-01T00:00:00.000000Z")),
        "a forged line reached the log:\n{log}"
    );
    let line = log.lines().find(|l| l.contains("device fault")).unwrap();
    assert!(
        line.contains("bad\\n2026-12-01T00:00:00"),
        "escaped in place: {line}"
    );
}

/// A server started with `--listen` elsewhere than the config says is found through the state
/// directory; `--server` names one explicitly.
#[test]
fn status_and_device_find_a_server_started_on_another_port() {
    let b = Bench::new("");
    let port = common::free_port();
    let mut server = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(b.config())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = common::wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "server did not come up on {port}");
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(b.config())
        .args(["simulate", "--devices", "1", "--serial-prefix", "MOVED"])
        .args(["--time-scale", "0.01", "--timeout", "120"])
        .args(["--server", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let status = text(&b.run(&["status"]));
    assert!(
        !status.contains("server not running") && status.contains("MOVED00001"),
        "{status}"
    );
    let out = b.run(&["device", "reset", "MOVED00001"]);
    assert!(
        out.status.success() && text(&out).starts_with("server: "),
        "{}",
        text(&out)
    );
    let url = format!("http://127.0.0.1:{port}");
    let out = b.run(&["status", "--server", &url]);
    assert!(text(&out).contains("MOVED00001"), "{}", text(&out));
    let out = b.run(&["report", "--server", "127.0.0.1:1"]);
    assert!(
        !out.status.success() && text(&out).contains("is not a server URL"),
        "{}",
        text(&out)
    );
    let _ = server.kill();
    let _ = server.wait();
}
