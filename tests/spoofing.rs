//! Another host on the bench, tried as an attacker would: a second address on the same LAN
//! (127.0.0.2 on loopback), against the real server. Each test reproduces one finding of the
//! security review and shows it no longer holds; what held up before keeps its own tests.

mod common;

use std::time::{Duration, Instant};

use common::{Bench, http_from, text};

const SERIAL: &str = "FGL2548SPOOF";
const UDI: &str = "PID:C1131-8PWB,VID:V01,SN:FGL2548SPOOF";
const ROUTER: &str = "127.0.0.1";
const SPOOFER: &str = "127.0.0.2";

fn work_request(udi: &str, correlator: &str, reason: &str) -> String {
    format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{udi}\"><info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{correlator}\"><deviceId><udi>{udi}</udi><hostname>Router</hostname><authRequired>false</authRequired></deviceId>{reason}</info></pnp>"
    )
}

fn reboot(message: &str, startup_config: bool) -> String {
    format!(
        "<reason><reload><message>{message}</message><code>1</code><startupConfigPresent>{startup_config}</startupConfigPresent></reload></reason>"
    )
}

fn response(service: &str, correlator: &str, inner: &str) -> String {
    format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\"><response xmlns=\"urn:cisco:pnp:{service}\" correlator=\"{correlator}\" success=\"1\">{inner}</response></pnp>"
    )
}

fn fault() -> String {
    format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\"><response xmlns=\"urn:cisco:pnp:fault\"><fault><faultcode>Client</faultcode><faultstring>bogus</faultstring></fault></response></pnp>"
    )
}

/// POSTs `body` to `path` from `src`: (status, body text).
fn post(b: &Bench, src: &str, path: &str, body: &str) -> (u16, String) {
    let (s, body) = http_from(src, b.port, "POST", path, &[("Host", "127.0.0.1")], body)
        .unwrap_or_else(|| panic!("no answer to {path} from {src}"));
    (s, String::from_utf8_lossy(&body).into_owned())
}

use common::history_texts as history;

/// The router's first work requests, from its own address: capability (answered as an agent
/// without device-auth: the record is bound by address), then the config-register job.
fn first_contact(b: &Bench) {
    let (s, job) = post(b, ROUTER, "/pnp/WORK-REQUEST", &work_request(UDI, "C0", ""));
    assert_eq!(s, 200);
    assert!(job.contains("urn:cisco:pnp:capability"), "{job}");
    let caps = "<supportedCapabilities><capability>cisco:pnp:cli-exec</capability></supportedCapabilities>";
    let (s, bye) = post(
        b,
        ROUTER,
        "/pnp/WORK-RESPONSE",
        &response("capability", "C0", caps),
    );
    assert_eq!(s, 200);
    assert!(bye.contains("<bye/>"), "{bye}");
    let (s, job) = post(b, ROUTER, "/pnp/WORK-REQUEST", &work_request(UDI, "C1", ""));
    assert_eq!(s, 200);
    assert!(job.contains("config-register"), "{job}");
}

/// Hijack: spoofed work requests, a forged answer under the pending correlator, faults and a
/// reboot claim, all with the router's UDI from another address, change nothing; the operator
/// sees the claim and may accept the move.
#[test]
fn requests_for_a_router_from_another_address_change_nothing() {
    let mut b = Bench::new("");
    b.start();
    first_contact(&b);
    let before = b.device(SERIAL).unwrap();

    // Three work requests from another address used to push the router to FAILED ("asked
    // for work again without answering"): now each moves nothing. The first is sent a SUDI
    // challenge (a real router that moved proves itself so), which this host cannot answer;
    // the others get "no work" (one challenge a minute).
    for i in 0..3 {
        let (s, body) = post(
            &b,
            SPOOFER,
            "/pnp/WORK-REQUEST",
            &work_request(UDI, &format!("X{i}"), ""),
        );
        if i == 0 {
            assert_eq!(s, 200);
            assert!(
                body.contains("urn:cisco:pnp:device-auth") && body.contains("<challenge-request>"),
                "{body}"
            );
            assert!(!body.contains("config"), "{body}");
        } else {
            assert_eq!((s, body.as_str()), (200, ""), "spoofed work request {i}");
        }
    }
    // An answer it makes up (a certificate that is not one) proves nothing.
    let forged =
        "<auth><challenge-response>AAAA</challenge-response><sudi-cert>AAAA</sudi-cert></auth>";
    let (s, _) = post(
        &b,
        SPOOFER,
        "/pnp/WORK-RESPONSE",
        &response("device-auth", "X0", forged),
    );
    assert_eq!(s, 200);
    assert!(
        b.server_log()
            .contains("its SUDI answer does not prove the serial; nothing moved"),
        "{}",
        b.server_log()
    );
    // A forged success under the router's pending correlator, a reboot claim saying "no
    // startup config", and 300 faults to flush its history.
    let (s, _) = post(
        &b,
        SPOOFER,
        "/pnp/WORK-RESPONSE",
        &response("cli-config", "C1", ""),
    );
    assert_eq!(s, 200);
    post(
        &b,
        SPOOFER,
        "/pnp/WORK-REQUEST",
        &work_request(UDI, "X9", &reboot("forged", false)),
    );
    for _ in 0..300 {
        post(&b, SPOOFER, "/pnp/WORK-RESPONSE", &fault());
    }
    let after = b.device(SERIAL).unwrap();
    for key in [
        "state",
        "ip",
        "attempts",
        "step",
        "config_reg_applied",
        "fail_reason",
    ] {
        assert_eq!(after[key], before[key], "{key} changed: {after:#}");
    }
    let lines = history(&after);
    // The claim's line, and its failed SUDI answer's (one challenge a minute at most).
    assert!(
        lines.len() <= history(&before).len() + 2,
        "history grew by more than the claim's two lines: {lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("protocol fault") || l.contains("forged"))
    );
    assert_eq!(after["binding"]["ip"], ROUTER, "{after:#}");
    assert_eq!(after["claim"]["ip"], SPOOFER, "{after:#}");
    // 3 work requests, the made-up SUDI answer, the forged answer, the reboot claim, 300 faults.
    assert_eq!(after["claim"]["count"], 306, "{after:#}");
    // Said at WARN once (not once per request) and shown to the operator.
    let claimed = format!("{SERIAL} claimed from {SPOOFER}, bound to {ROUTER}");
    let log = common::wait_for(Duration::from_secs(5), || {
        let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap_or_default();
        log.contains(&claimed).then_some(log)
    })
    .unwrap_or_else(|| panic!("no {claimed:?} in the log:\n{}", b.server_log()));
    let warns: Vec<&str> = log.lines().filter(|l| l.contains(&claimed)).collect();
    assert_eq!(warns.len(), 1, "{warns:#?}");
    assert!(warns[0].contains("WARN"), "{}", warns[0]);
    let status = text(&b.run(&["status"]));
    assert!(status.contains(&claimed), "{status}");
    let shown = text(&b.run(&["device", "show", SERIAL]));
    assert!(
        shown.contains("CLAIMED") && shown.contains(&claimed),
        "{shown}"
    );
    assert!(shown.contains("in flight     cli-config"), "{shown}");

    // The real router carries on: its answer counts, its next request gets the next job.
    let (s, _) = post(
        &b,
        ROUTER,
        "/pnp/WORK-RESPONSE",
        &response("cli-config", "C1", ""),
    );
    assert_eq!(s, 200);
    let (_, job) = post(
        &b,
        ROUTER,
        "/pnp/WORK-REQUEST",
        &work_request(UDI, "C2", ""),
    );
    assert!(job.contains("write memory"), "{job}");

    // The operator accepts the move: now the other address is the router's.
    let out = b.run(&["device", "accept-move", SERIAL]);
    assert!(
        out.status.success() && text(&out).contains("now bound to 127.0.0.2"),
        "{}",
        text(&out)
    );
    let (_, body) = post(
        &b,
        ROUTER,
        "/pnp/WORK-REQUEST",
        &work_request(UDI, "C3", ""),
    );
    // The old address is refused after the move: it is sent a SUDI challenge, no job.
    assert!(
        body.contains("urn:cisco:pnp:device-auth") && !body.contains("config"),
        "the old address is refused after the move: {body}"
    );
    let (_, body) = post(
        &b,
        SPOOFER,
        "/pnp/WORK-REQUEST",
        &work_request(UDI, "C4", ""),
    );
    assert!(body.contains("correlator=\"C4\""), "{body}");
}

/// A FINISHED router cannot be wiped (reset to NEW_DEVICE) by a reboot claim from another
/// address; from its own address the same claim still starts it over.
#[test]
fn a_reboot_claim_resets_a_finished_router_only_from_its_address() {
    let mut b = Bench::new("");
    b.start();
    let out = b
        .simulate(1, &["--serial-prefix", "DONE"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let serial = "DONE00001";
    let d = b.device(serial).unwrap();
    assert_eq!(d["state"], "FINISHED");
    let home = d["ip"].as_str().unwrap().to_string();
    assert_ne!(home, SPOOFER);
    let udi = d["udi"].as_str().unwrap().to_string();
    let wiped = work_request(&udi, "W1", &reboot("reload", false));
    // The spoofer is sent a SUDI challenge, nothing else; the reboot claim changes nothing.
    let (s, body) = post(&b, SPOOFER, "/pnp/WORK-REQUEST", &wiped);
    assert_eq!(s, 200);
    assert!(body.contains("urn:cisco:pnp:device-auth"), "{body}");
    let (s, body) = post(&b, SPOOFER, "/pnp/WORK-REQUEST", &wiped);
    assert_eq!((s, body.as_str()), (200, ""));
    let d = b.device(serial).unwrap();
    assert_eq!(d["state"], "FINISHED", "{d:#}");
    assert_eq!(d["current_version"], "17.12.3a");
    let (_, body) = post(&b, &home, "/pnp/WORK-REQUEST", &wiped);
    assert!(!body.is_empty());
    assert_ne!(b.device(serial).unwrap()["state"], "FINISHED");
}

/// Unbounded device text: 1 MB reboot messages used to make a router's record hundreds of MB.
/// Every text is cut, marked, and the history is capped in bytes.
#[test]
fn device_texts_are_cut_and_the_history_is_capped_in_bytes() {
    let mut b = Bench::new("");
    b.start();
    let huge = "A".repeat(900_000);
    for i in 0..40 {
        let (s, _) = post(
            &b,
            ROUTER,
            "/pnp/WORK-REQUEST",
            &work_request(UDI, &format!("C{i}"), &reboot(&huge, true)),
        );
        assert_eq!(s, 200, "request {i}");
    }
    let (s, record) = common::http_get(b.port, &format!("/api/devices/{SERIAL}")).unwrap();
    assert_eq!(s, 200);
    assert!(
        record.len() < 400_000,
        "record is {} bytes after 40 reboot messages of 900 KB",
        record.len()
    );
    let d: serde_json::Value = serde_json::from_slice(&record).unwrap();
    let lines = history(&d);
    assert!(
        lines.iter().any(|l| l.contains("[cut: 900000 bytes]")),
        "{:?}",
        lines.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    // What the state database holds of it is bounded the same way.
    let saved = pnp_appliance::store::read_saved(&b.path("state")).unwrap();
    let saved = serde_json::to_vec(&saved).unwrap().len();
    assert!(saved < 400_000, "saved records: {saved} bytes");
    let csv = std::fs::metadata(b.path("DEVICE_STATUS.csv"))
        .unwrap()
        .len();
    assert!(csv < 10_000, "status table: {csv} bytes");
    // A PID beyond 64 characters, or holding a control character, is refused outright.
    for udi in [
        format!("PID:{},VID:V01,SN:LONGPID1", "X".repeat(65)),
        "PID:C1131&#10;=HYPERLINK(1),VID:V01,SN:NLPID1".to_string(),
    ] {
        let (s, _) = post(
            &b,
            ROUTER,
            "/pnp/WORK-REQUEST",
            &work_request(&udi, "C", ""),
        );
        assert_eq!(s, 400, "{udi}");
    }
}

/// 10 000 fake serials used to register in 5 s: new serials are limited per address and in
/// total, each limit said once.
#[test]
fn new_serials_are_limited_per_address_and_in_total() {
    let mut b = Bench::new("");
    b.patch_config("max-devices = 2000", "max-devices = 10");
    b.start();
    let ask = |src: &str, n: usize, tag: &str| {
        for i in 0..n {
            let udi = format!("PID:C1131-8PWB,VID:V01,SN:{tag}{i:04}");
            post(&b, src, "/pnp/WORK-REQUEST", &work_request(&udi, "C1", ""));
        }
    };
    ask("127.0.0.3", 50, "FAKEA");
    let count = |b: &Bench| {
        let (_, body) = common::http_get(b.port, "/api/devices").unwrap();
        serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&b), 4, "4 new serials per address per 10 minutes");
    ask("127.0.0.4", 4, "FAKEB");
    ask("127.0.0.5", 4, "FAKEC");
    assert_eq!(count(&b), 10, "up to max-devices");
    // Full: even a fresh address gets no new record, and existing routers keep working.
    ask("127.0.0.6", 3, "FAKED");
    assert_eq!(count(&b), 10);
    let (_, job) = post(
        &b,
        "127.0.0.3",
        "/pnp/WORK-REQUEST",
        &work_request("PID:C1131-8PWB,VID:V01,SN:FAKEA0000", "C2", ""),
    );
    assert!(job.contains("correlator=\"C2\""), "{job}");
    let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap();
    let per_address: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("brought more than 4 new serials"))
        .collect();
    assert_eq!(per_address.len(), 1, "{per_address:#?}");
    let total: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("holds 10 routers"))
        .collect();
    assert_eq!(total.len(), 1, "{total:#?}");
    // Paged API: a page, and the total in a header.
    let (s, body) = http_from(
        "127.0.0.1",
        b.port,
        "GET",
        "/api/status?offset=2&limit=3",
        &[("Host", "127.0.0.1")],
        "",
    )
    .unwrap();
    assert_eq!(s, 200);
    let rows: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
}

fn token_lines(b: &Bench) -> usize {
    b.server_log()
        .lines()
        .filter(|l| l.contains("generated the admin token"))
        .count()
}

/// Cross-site actions: a fresh install gets an admin token without asking, every action needs
/// it in a header, and a request from another site or under a rebound name is refused.
#[test]
fn actions_need_the_generated_token_and_a_same_site_request() {
    let mut b = Bench::new("");
    b.start();
    first_contact(&b);
    let token_file = b.path("state/admin-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 32);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(token_lines(&b), 1);
    assert!(
        b.server_log().contains(&token),
        "printed once on the console"
    );
    let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap_or_default();
    assert!(!log.contains(&token), "the token is not in the log file");

    let path = format!("/api/devices/{SERIAL}/reset");
    let port = b.port.to_string();
    let host = format!("127.0.0.1:{port}");
    let act = |headers: &[(&str, &str)]| {
        http_from(ROUTER, b.port, "POST", &path, headers, "")
            .unwrap()
            .0
    };
    // What a web page can send: a form post, a no-cors fetch. No token: refused, even from
    // this host (it used to be accepted from here).
    assert_eq!(act(&[("Host", &host)]), 401);
    assert_eq!(
        act(&[("Host", &host), ("Origin", "http://evil.example")]),
        403
    );
    // With the token but from another site, or under a rebound name: refused.
    assert_eq!(
        act(&[
            ("Host", &host),
            ("Origin", "http://evil.example"),
            ("X-Admin-Token", &token)
        ]),
        403
    );
    let rebound = format!("rebind.example:{port}");
    assert_eq!(
        act(&[
            ("Host", &rebound),
            ("Origin", &format!("http://{rebound}")),
            ("X-Admin-Token", &token)
        ]),
        403
    );
    let (s, _) = http_from(
        ROUTER,
        b.port,
        "GET",
        "/api/devices",
        &[("Host", &rebound)],
        "",
    )
    .unwrap();
    assert_eq!(
        s, 403,
        "DNS rebinding: the API answers only under the appliance's names"
    );
    assert_eq!(b.device(SERIAL).unwrap()["state"], "CONFIG_REG");
    // The dashboard's own request: same origin, token in the header.
    let origin = format!("http://{host}");
    assert_eq!(
        act(&[
            ("Host", &host),
            ("Origin", &origin),
            ("X-Admin-Token", &token)
        ]),
        200
    );
    assert_eq!(b.device(SERIAL).unwrap()["state"], "NEW_DEVICE");
    // The CLI on this host reads the generated token.
    let out = b.run(&["device", "reset", SERIAL]);
    assert!(out.status.success(), "{}", text(&out));
    // Kept across restarts, printed only the first time.
    b.kill9();
    b.start();
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    assert_eq!(token_lines(&b), 1, "{}", b.server_log());
}

/// Connections: 1100 idle connections from one host under `ulimit -n 1024` used to take PnP
/// down. Now one host holds at most its share, the rest are closed at once, idle ones time out.
#[test]
fn pnp_answers_while_another_host_holds_1100_idle_connections() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // This test process needs more than 1100 descriptors itself.
    let l = getrlimit(Resource::Nofile);
    if l.current.is_some_and(|c| c < 4096) {
        let want = Some(l.maximum.map_or(4096, |m| m.max(4096)));
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: want,
                maximum: want.max(l.maximum),
            },
        )
        .or_else(|_| {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: l.maximum,
                    maximum: l.maximum,
                },
            )
        })
        .unwrap();
    }
    assert!(
        getrlimit(Resource::Nofile)
            .current
            .is_none_or(|c| c >= 1200),
        "this test needs 1200 open files: raise `ulimit -Hn`"
    );
    let mut b = Bench::new("");
    b.patch_config("idle-timeout = 60", "idle-timeout = 4");
    // `ulimit -n` in sh sets the soft and the hard limit: the server cannot raise it.
    b.start_wrapped(&["sh", "-c", "ulimit -n 1024 && exec \"$@\"", "sh"]);
    let mut held = Vec::new();
    for _ in 0..1100 {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let from: std::net::SocketAddr = format!("{SPOOFER}:0").parse().unwrap();
        sock.bind(&from.into()).unwrap();
        let to: std::net::SocketAddr = format!("127.0.0.1:{}", b.port).parse().unwrap();
        if sock.connect(&to.into()).is_ok() {
            held.push(std::net::TcpStream::from(sock));
        }
    }
    assert!(held.len() >= 1000, "only {} connections opened", held.len());
    let started = Instant::now();
    first_contact(&b);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "PnP took {:?} while another host held 1100 connections",
        started.elapsed()
    );
    let log = common::wait_for(Duration::from_secs(5), || {
        let log = b.server_log();
        log.contains("holds 64 connections").then_some(log)
    })
    .unwrap_or_else(|| panic!("no connection-cap WARN:\n{}", b.server_log()));
    assert!(log.contains("127.0.0.2"), "{log}");
    // The held connections that got in are closed after the idle timeout.
    std::thread::sleep(Duration::from_secs(6));
    let open = held
        .iter()
        .filter(|s| {
            use std::io::Read;
            let mut s: &std::net::TcpStream = s;
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut buf = [0u8; 1];
            match s.read(&mut buf) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            }
        })
        .count();
    assert_eq!(
        open, 0,
        "{open} idle connections still open after the idle timeout"
    );
}

/// Symlinks under `images/` and `files/` used to be followed out of those folders: now only
/// what resolves inside its folder is served, on the zero-copy path and the other alike.
#[test]
fn symlinks_out_of_the_served_folders_are_refused() {
    let mut b = Bench::new("");
    std::os::unix::fs::symlink("../appliance.toml", b.path("images/out.bin")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", b.path("files/passwd")).unwrap();
    std::os::unix::fs::symlink(common::IMAGE, b.path("images/alias.bin")).unwrap();
    b.start();
    for path in ["/images/out.bin", "/files/passwd"] {
        let (s, body) = common::http_get(b.port, path).unwrap();
        assert_eq!(s, 404, "{path}: {}", String::from_utf8_lossy(&body));
        // HEAD and ranges take the other path: refused there too.
        let (s, _) = http_from(
            ROUTER,
            b.port,
            "GET",
            path,
            &[("Host", "127.0.0.1"), ("Range", "bytes=0-10")],
            "",
        )
        .unwrap();
        assert_eq!(s, 404, "{path} with a range");
    }
    let (s, body) = common::http_get(b.port, "/images/alias.bin").unwrap();
    assert_eq!(
        (s, body.len()),
        (200, 2_000_000),
        "a link inside the folder is fine"
    );
    let log = std::fs::read_to_string(b.path("logs/pnp_debug.log")).unwrap_or_default();
    assert!(log.contains("symlink leading out of its folder"), "{log}");
}
