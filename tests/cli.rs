//! The binary's command line: errors name the problem and the fix; offline operator actions.

mod common;

use std::process::Command;

use common::{BIN, text};

fn run_in(dir: &std::path::Path, config: &str, args: &[&str]) -> std::process::Output {
    std::fs::write(dir.join("appliance.toml"), config).unwrap();
    Command::new(BIN)
        .arg("--config")
        .arg(dir.join("appliance.toml"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let listen = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    // (config, args, texts the error must contain)
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (
            "[http]\nlisten = \"0.0.0.0:8080\"\nport = 1\n".into(),
            vec!["serve"],
            vec!["appliance.toml:3", "unknown field", "hint"],
        ),
        (
            listen.clone(),
            vec!["serve", "--interface", "nosuchif0"],
            vec!["nosuchif0 does not exist", "ip -br link"],
        ),
        (
            "".into(),
            vec!["dhcp-config"],
            vec!["[dhcp.option43] server", "--interface"],
        ),
        (
            "".into(),
            vec!["device", "resume", "NOPE1"],
            vec!["no device with serial NOPE1"],
        ),
        (
            "".into(),
            vec!["simulate", "--time-scale", "0"],
            vec!["--time-scale must be a positive number"],
        ),
        (
            "".into(),
            vec!["simulate", "--jitter", "1.5"],
            vec!["--jitter must be between 0 and 1"],
        ),
    ];
    for (config, args, needles) in cases {
        let cfg = if config.contains("[http]") || args[0] != "device" {
            config
        } else {
            // Offline resume: point the client at a port nobody listens on.
            format!("{config}{listen}")
        };
        let out = run_in(dir.path(), &cfg, &args);
        assert!(
            !out.status.success(),
            "{args:?} should fail: {}",
            text(&out)
        );
        let t = text(&out);
        for n in needles {
            assert!(t.contains(n), "{args:?}: {n:?} missing in:\n{t}");
        }
    }
}

#[test]
fn busy_http_port_is_reported_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = run_in(
        dir.path(),
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"),
        &["serve"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("already in use") && text(&out).contains("[http] listen"),
        "{}",
        text(&out)
    );
}

#[test]
fn dhcp_config_prints_each_format_with_the_option_43_string() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[http]\nlisten = \"0.0.0.0:8080\"\n[dhcp]\npool = \"198.51.100.100-198.51.100.199\"\n[dhcp.option43]\nserver = \"198.51.100.1\"\n";
    for format in ["isc", "kea", "dnsmasq", "ios"] {
        let out = run_in(dir.path(), cfg, &["dhcp-config", "--format", format]);
        assert!(out.status.success(), "{format}: {}", text(&out));
        assert!(
            text(&out).contains("5A1D;B2;K4;I198.51.100.1;J8080"),
            "{format}: {}",
            text(&out)
        );
    }
    let out = run_in(dir.path(), cfg, &["dhcp-config"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("subnet 198.51.100.0 netmask 255.255.255.0"),
        "{}",
        text(&out)
    );
}

/// Without an interface the snippets take the address routers reach from `[http] advertise`;
/// with nothing to go on, the error names settings and flags that exist where it is printed.
#[test]
fn dhcp_config_falls_back_to_the_advertised_address() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[http]\nlisten = \"0.0.0.0:8080\"\nadvertise = \"198.51.100.7\"\n[dhcp]\npool = \"198.51.100.100-198.51.100.199\"\n";
    for format in ["isc", "kea", "dnsmasq", "ios"] {
        let out = run_in(dir.path(), cfg, &["dhcp-config", "--format", format]);
        assert!(out.status.success(), "{format}: {}", text(&out));
        assert!(
            text(&out).contains("5A1D;B2;K4;I198.51.100.7;J8080"),
            "{format}: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("Where to paste"),
            "{format}: {}",
            text(&out)
        );
    }
    let bare = "[http]\nlisten = \"0.0.0.0:8080\"\n";
    let out = run_in(dir.path(), bare, &["dhcp-config"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("[http] advertise"), "{}", text(&out));
    // `check` prints the same reason; every flag it names exists on `check` or is said to
    // belong to another command.
    let out = run_in(dir.path(), bare, &["check"]);
    let t = text(&out);
    assert!(t.contains("option 43: unknown"), "{t}");
    for line in t.lines().filter(|l| l.contains("--")) {
        for flag in line.split_whitespace().filter(|w| w.starts_with("--")) {
            let flag = flag.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            let help = run_in(dir.path(), bare, &["check", "--help"]);
            let on_check = text(&help).contains(flag);
            assert!(
                on_check || line.contains("`serve` and `dhcp-config` also take"),
                "check names {flag}, which it does not take: {line}"
            );
        }
    }
}

/// `status --watch` redraws in place: every frame starts at the top-left corner and clears
/// each line to its end, never the whole screen first (no flash between frames), and fits the
/// terminal's height.
#[test]
fn status_watch_redraws_in_place_within_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    std::fs::write(
        dir.path().join("appliance.toml"),
        format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("appliance.toml"))
        .args(["status", "--watch"])
        .env("COLUMNS", "80")
        .env("LINES", "24")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(4500));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<&str> = text.split("\x1b[H").filter(|f| !f.is_empty()).collect();
    assert!(frames.len() >= 2, "{text:?}");
    assert!(!text.contains("\x1b[2J"), "no whole-screen clear: {text:?}");
    for f in &frames {
        let lines: Vec<&str> = f
            .split('\n')
            .filter(|l| !l.is_empty() && *l != "\x1b[J")
            .collect();
        assert!(lines.len() <= 24, "{f:?}");
        assert!(lines.iter().all(|l| l.ends_with("\x1b[K")), "{f:?}");
        assert!(f.contains("0 routers: 0 need you"), "{f:?}");
    }
}

#[test]
fn offline_resume_changes_the_saved_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cfg = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::create_dir_all(dir.path().join("state/devices")).unwrap();
    let mut d = pnp_appliance::domain::device::Device::new(
        "PARK1",
        "PID:C1131-8PWB,VID:V01,SN:PARK1",
        "C1131-8PWB",
        "V01",
        chrono::Local::now(),
    );
    d.state = pnp_appliance::domain::device::State::BootflashNoSpace;
    std::fs::write(
        dir.path().join("state/devices/PARK1.json"),
        serde_json::to_vec(&d).unwrap(),
    )
    .unwrap();
    let out = run_in(dir.path(), &cfg, &["device", "resume", "PARK1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("server not running") && text(&out).contains("RUN_EVENT_MANAGER"),
        "{}",
        text(&out)
    );
    // The record file of an earlier version was imported into the state database, changed
    // there, and kept aside.
    let saved = pnp_appliance::store::read_saved(&dir.path().join("state")).unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        serde_json::to_value(&saved[0]).unwrap()["state"],
        "RUN_EVENT_MANAGER"
    );
    assert!(!dir.path().join("state/devices").exists());
    let csv = std::fs::read_to_string(dir.path().join("DEVICE_STATUS.csv")).unwrap();
    assert!(csv.contains("RUN_EVENT_MANAGER"), "{csv}");
    // A second resume is refused: nothing to resume.
    let out = run_in(dir.path(), &cfg, &["device", "resume", "PARK1"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing to resume"), "{}", text(&out));
}

#[test]
fn check_passes_on_a_ready_bench_and_lists_every_problem_with_its_fix() {
    let b = common::Bench::new("");
    b.patch_config("[http]\n", "[http]\nadvertise = \"127.0.0.1\"\n");
    let out = b.run(&["check"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for needle in [
        "computed now, cached",
        "ready: no problems found",
        "option 43: 5A1D;B2;K4;I127.0.0.1;J",
        "C11*: capability, then the SUDI check where device-auth is offered (else bound by address) -> day-0 config rendered (a router it cannot be rendered for fails here) -> config-register 0x2102 + write memory -> device-info -> install c1100-universalk9.17.12.03a.SPA.bin unless it runs 17.12.3a (only if bootflash holds it + 100 MB, else cleanup, else IMAGE_NO_SPACE",
        "event manager run InstallGuestShell",
        "(its output judged) -> verify on the router (0 checks of your own) -> FINISHED",
    ] {
        assert!(t.contains(needle), "{needle:?} missing:\n{t}");
    }
    // Second run: the md5 comes from the cache.
    assert!(text(&b.run(&["check"])).contains("(cached)"));

    // Break things: image gone, applet missing from a serial's config, a template variable
    // without an inventory column, a foreign advertised address, the HTTP port taken.
    std::fs::remove_file(b.path(&format!("images/{}", common::IMAGE))).unwrap();
    std::fs::write(b.path("configs/FGL1.cfg"), "hostname {{ hostname }}\n").unwrap();
    std::fs::write(b.path("configs/inventory.csv"), "serial,site\nFGL1,x\n").unwrap();
    b.patch_config("advertise = \"127.0.0.1\"", "advertise = \"203.0.113.77\"");
    let holder = std::net::TcpListener::bind(("127.0.0.1", b.port)).unwrap();
    let out = b.run(&["check"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    for needle in [
        "FAIL  image",
        "fix: copy the image into",
        "FGL1.cfg has no `event manager applet InstallGuestShell`",
        "missing variable(s) hostname",
        "203.0.113.77 is not on any local interface",
        "already in use",
        "5 problem(s)",
    ] {
        assert!(t.contains(needle), "{needle:?} missing:\n{t}");
    }
    drop(holder);
}
