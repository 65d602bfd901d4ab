//! The DHCP responder and the generated snippets against real software: ISC dhclient, busybox
//! udhcpc, ISC dhcpd, Kea and dnsmasq, in network namespaces joined by a veth pair
//! (198.51.100.0/24) that each test creates and removes. They need root and the packages, so
//! they are `#[ignore]`d; `.ci/run` (and `scripts/test.sh` as root) runs them, and run without
//! what they need they fail, naming it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, find};

const OPT43: &str = "5A1D;B2;K4;I198.51.100.1;J8080";
const ISR_PID_HEX: &str = "00:00:00:09:0b:0a:43:31:31:33:31:2d:38:50:57:42";
const C9300_PID_HEX: &str = "00:00:00:09:09:08:43:39:33:30:30:2d:32:34";

/// Panics unless the tools are there and (with `netns`) namespaces can be made: these tests
/// are `#[ignore]`d where that cannot be, and must not pass without testing when run.
fn require(test: &str, tools: &[&str], netns: bool) {
    common::require(test, tools, netns);
    if netns {
        // Unique per call: tests probe in parallel threads of one process.
        let probe = format!(
            "pnp-probe-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &probe])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{test}: cannot create a network namespace (`ip netns add` failed)"
        );
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair: server `vs` 198.51.100.1/24, client `vc`.
struct Lab {
    srv: String,
    cli: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?} failed");
}

impl Lab {
    fn new() -> Lab {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}-{n}", std::process::id());
        let (srv, cli) = (format!("pnps-{tag}"), format!("pnpc-{tag}"));
        ip(&["netns", "add", &srv]);
        ip(&["netns", "add", &cli]);
        // Created directly inside the namespaces: no end ever sits in the host namespace.
        ip(&[
            "-n", &srv, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", &cli,
        ]);
        ip(&["-n", &srv, "addr", "add", "198.51.100.1/24", "dev", "vs"]);
        for (ns, dev) in [(&srv, "vs"), (&cli, "vc"), (&srv, "lo"), (&cli, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        Lab {
            srv,
            cli,
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn exec(&self, ns: &str, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog]);
        c
    }

    /// Starts the appliance with DHCP on `vs`; waits for the responder.
    fn start_appliance(&mut self) {
        std::fs::write(
            self.path("appliance.toml"),
            "[dhcp]\npool = \"198.51.100.100-198.51.100.150\"\n",
        )
        .unwrap();
        let log = std::fs::File::create(self.path("appliance.log")).unwrap();
        let child = self
            .exec(&self.srv, BIN)
            .arg("--config")
            .arg(self.path("appliance.toml"))
            .args(["serve", "--interface", "vs", "--log-level", "debug"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.children.push(child);
        self.wait_log("appliance.log", "DHCP responder ready");
    }

    fn wait_log(&mut self, file: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = std::fs::read_to_string(self.path(file)).unwrap_or_default();
            if log.contains(text) {
                return;
            }
            for c in &mut self.children {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("a server exited ({st}) before {text:?}:\n{log}");
                }
            }
            assert!(Instant::now() < deadline, "no {text:?} in {file}:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn hook(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        let _ = Command::new("chmod").arg("+x").arg(&p).status();
        p
    }

    /// Runs dhclient in the client namespace sending option 60 / 124 as given; returns what its
    /// hook saw (empty when no lease) and whether it got one.
    fn dhclient(
        &self,
        name: &str,
        send60: bool,
        pid_hex: Option<&str>,
        timeout: u32,
    ) -> (bool, String) {
        let out = self.path(&format!("{name}.hook"));
        let hook = self.hook(
            &format!("{name}.sh"),
            &format!(
                "echo \"$reason ip=$new_ip_address opt43=$new_vendor_encapsulated_options\" >> {}",
                out.display()
            ),
        );
        let mut conf = String::from("option cisco-pnp-pid code 124 = string;\n");
        if send60 {
            conf.push_str("send vendor-class-identifier \"ciscopnp\";\n");
        }
        if let Some(h) = pid_hex {
            conf.push_str(&format!("send cisco-pnp-pid {h};\n"));
        }
        conf.push_str(&format!("request subnet-mask, routers, vendor-encapsulated-options;\ntimeout {timeout};\nretry 60;\n"));
        std::fs::write(self.path(&format!("{name}.conf")), conf).unwrap();
        let pidfile = self.path(&format!("{name}.pid"));
        let status = self
            .exec(&self.cli, "dhclient")
            .args(["-4", "-1", "-cf"])
            .arg(self.path(&format!("{name}.conf")))
            .arg("-lf")
            .arg(self.path(&format!("{name}.leases")))
            .arg("-pf")
            .arg(&pidfile)
            .arg("-sf")
            .arg(&hook)
            .arg("vc")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        // After BOUND dhclient goes to the background: stop it by the PID it wrote.
        if let Ok(pid) = std::fs::read_to_string(&pidfile)
            && !pid.trim().is_empty()
        {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        (
            status.success(),
            std::fs::read_to_string(out).unwrap_or_default(),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.srv, &self.cli] {
            // Anything still running in the namespace was started by this test.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
#[ignore = "needs root (network namespaces), dhclient and busybox: run by .ci/run"]
fn real_clients_get_exact_option_43_and_others_get_nothing() {
    require("real DHCP clients", &["ip", "dhclient", "busybox"], true);
    let mut lab = Lab::new();
    lab.start_appliance();
    // The console says where the dashboard is, the option 43 and the pool without our address.
    lab.wait_log("appliance.log", "next: connect the routers");
    let log = std::fs::read_to_string(lab.path("appliance.log")).unwrap();
    for want in [
        "dashboard: http://",
        &format!("option 43: {OPT43}"),
        "DHCP: answering PnP routers on vs, pool 198.51.100.100-198.51.100.150",
    ] {
        assert!(log.contains(want), "{want:?} not in:\n{log}");
    }

    let (ok, seen) = lab.dhclient("isr", true, Some(ISR_PID_HEX), 15);
    assert!(
        ok,
        "dhclient got no lease:\n{seen}\n{}",
        std::fs::read_to_string(lab.path("appliance.log")).unwrap_or_default()
    );
    let bound = seen
        .lines()
        .find(|l| l.starts_with("BOUND"))
        .unwrap_or_else(|| panic!("{seen}"));
    assert!(bound.contains(&format!("opt43={OPT43}")), "{bound}");
    assert!(
        bound.contains("ip=198.51.100.1") && !bound.contains("ip=198.51.100.1 "),
        "{bound}"
    );

    // The router, at its leased address, reaches the PnP server: its record shows the lease.
    let leased = bound
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ip="))
        .unwrap()
        .to_string();
    // Until it does, `status` lists it as leased, waiting for PnP.
    let status = |lab: &Lab| {
        let out = lab
            .exec(&lab.srv, BIN)
            .arg("--config")
            .arg(lab.path("appliance.toml"))
            .arg("status")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let waiting = format!("leased, waiting for PnP: {leased} ");
    let before = status(&lab);
    assert!(
        before.contains(&waiting) && before.contains("C1131-8PWB"),
        "{before}"
    );
    ip(&[
        "-n",
        &lab.cli,
        "addr",
        "add",
        &format!("{leased}/24"),
        "dev",
        "vc",
    ]);
    let sim = lab
        .exec(&lab.cli, BIN)
        .args([
            "simulate",
            "--server",
            "http://198.51.100.1:8080",
            "--devices",
            "1",
            "--serial-prefix",
            "LEASE",
        ])
        .args(["--time-scale", "0.01", "--timeout", "20"])
        .output()
        .unwrap();
    let saved = pnp_appliance::store::read_saved(&lab.path("state")).unwrap();
    let record = saved
        .iter()
        .find(|d| d.serial == "LEASE00001")
        .unwrap_or_else(|| panic!("no record: {}", String::from_utf8_lossy(&sim.stdout)));
    let record = serde_json::to_value(record).unwrap();
    assert_eq!(record["ip"], leased.as_str());
    assert_eq!(record["lease"]["ip"], leased.as_str(), "{record}");
    let after = status(&lab);
    assert!(!after.contains(&waiting), "{after}");
    assert_eq!(
        record["lease"]["mac"].as_str().unwrap().len(),
        17,
        "{record}"
    );
    ip(&[
        "-n",
        &lab.cli,
        "addr",
        "del",
        &format!("{leased}/24"),
        "dev",
        "vc",
    ]);

    // busybox udhcpc with the same options; its hook gets option 43 as hex.
    let out = lab.path("udhcpc.hook");
    let hook = lab.hook(
        "udhcpc.sh",
        &format!("echo \"$1 ip=$ip opt43=$opt43\" >> {}", out.display()),
    );
    let st = lab
        .exec(&lab.cli, "busybox")
        .args([
            "udhcpc", "-i", "vc", "-f", "-q", "-n", "-t", "5", "-T", "1", "-V", "ciscopnp",
        ])
        .args([
            "-x",
            &format!("0x7c:{}", ISR_PID_HEX.replace(':', "")),
            "-O",
            "43",
            "-s",
        ])
        .arg(&hook)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let seen = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(st.success(), "udhcpc got no lease: {seen}");
    let hex: String = OPT43.bytes().map(|b| format!("{b:02x}")).collect();
    let bound = seen
        .lines()
        .find(|l| l.starts_with("bound"))
        .unwrap_or_else(|| panic!("{seen}"));
    assert!(bound.contains(&format!("opt43={hex}")), "{bound}");

    // No options at all, and a Catalyst PID: no reply of any kind.
    let (ok, seen) = lab.dhclient("plain", false, None, 4);
    // dhclient ran and gave up (FAIL from its hook), rather than failing to start.
    assert!(
        !ok && seen.contains("FAIL") && !seen.contains("BOUND"),
        "{seen}"
    );
    let (ok, seen) = lab.dhclient("c9300", true, Some(C9300_PID_HEX), 4);
    assert!(
        !ok && seen.contains("FAIL") && !seen.contains("BOUND"),
        "{seen}"
    );
    let log = std::fs::read_to_string(lab.path("appliance.log")).unwrap();
    assert_eq!(
        log.matches("DHCP OFFER").count(),
        2,
        "only the two PnP clients got offers:\n{log}"
    );
    assert!(log.contains("not answering a non-PnP client"), "{log}");
    // The PnP router whose PID we do not serve is named, once, at INFO, with its PID.
    let other: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not answering a PnP router"))
        .collect();
    assert_eq!(other.len(), 1, "{other:#?}");
    assert!(
        other[0].contains("INFO") && other[0].contains("PID C9300-24"),
        "{}",
        other[0]
    );

    // The leases are saved: dhclient's keyed by MAC, udhcpc's by its client-id (option 61,
    // RFC 2131 §4.2), both on the same interface MAC.
    let leases: serde_json::Value = serde_json::from_str(
        &pnp_appliance::store::read_saved_leases(&lab.path("state"))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let bound: Vec<&serde_json::Value> = leases["by_ip"]
        .as_object()
        .unwrap()
        .values()
        .filter(|l| l["state"] == "bound")
        .collect();
    assert_eq!(bound.len(), 2, "{leases}");
    assert!(
        bound
            .iter()
            .any(|l| l["client"].as_str().unwrap().starts_with("hw:")),
        "{leases}"
    );
    assert!(
        bound
            .iter()
            .any(|l| l["client"].as_str().unwrap().starts_with("id:01")),
        "{leases}"
    );
    assert_eq!(bound[0]["mac"], bound[1]["mac"]);
}

fn snippet(format: &str, iface: &str, dir: &Path) -> String {
    let cfg = dir.join("snip.toml");
    std::fs::write(
        &cfg,
        "[dhcp]\npool = \"198.51.100.100-198.51.100.199\"\nrouter = \"198.51.100.1\"\n[dhcp.option43]\nserver = \"198.51.100.1\"\n[http]\nlisten = \"0.0.0.0:8080\"\n",
    )
    .unwrap();
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(&cfg)
        .args(["dhcp-config", "--format", format]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // No interface in this config: Kea's is a placeholder, filled in as the operator would.
    text.replace(
        "\"REPLACE-ME-interface-facing-the-routers\"",
        &format!("\"{iface}\""),
    )
}

#[test]
#[ignore = "needs dhcpd, kea-dhcp4 and dnsmasq installed: run by .ci/run"]
fn snippets_pass_their_servers_own_checks() {
    require(
        "DHCP snippet validation",
        &["dhcpd", "kea-dhcp4", "dnsmasq"],
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let isc = dir.path().join("dhcpd.conf");
    std::fs::write(&isc, snippet("isc", "lo", dir.path())).unwrap();
    let out = Command::new(find("dhcpd").unwrap())
        .args(["-4", "-t", "-cf"])
        .arg(&isc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dhcpd -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Kea reads the snippet as printed (its `//` comments included). Left as printed, the
    // interface placeholder fails `-t`, which names it.
    let kea = dir.path().join("kea.json");
    std::fs::write(
        &kea,
        snippet("kea", "REPLACE-ME-interface-facing-the-routers", dir.path()),
    )
    .unwrap();
    let out = Command::new(find("kea-dhcp4").unwrap())
        .arg("-t")
        .arg(&kea)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && said.contains("REPLACE-ME-interface-facing-the-routers"),
        "kea-dhcp4 -t on a placeholder: {said}"
    );
    std::fs::write(&kea, snippet("kea", "lo", dir.path())).unwrap();
    let out = Command::new(find("kea-dhcp4").unwrap())
        .arg("-t")
        .arg(&kea)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kea-dhcp4 -t: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let dnsmasq = dir.path().join("dnsmasq.conf");
    let mut text = snippet("dnsmasq", "lo", dir.path());
    text.push_str("interface=lo\n");
    std::fs::write(&dnsmasq, text).unwrap();
    let out = Command::new(find("dnsmasq").unwrap())
        .arg("--test")
        .arg(format!("--conf-file={}", dnsmasq.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dnsmasq --test: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (network namespaces), dhcpd and dhclient: run by .ci/run"]
fn isc_snippet_end_to_end_gives_dhclient_the_exact_option_43() {
    require(
        "ISC dhcpd with our snippet",
        &["ip", "dhcpd", "dhclient"],
        true,
    );
    let mut lab = Lab::new();
    let conf = lab.path("dhcpd.conf");
    std::fs::write(&conf, snippet("isc", "vs", lab.dir.path())).unwrap();
    std::fs::write(lab.path("dhcpd.leases"), "").unwrap();
    let log = std::fs::File::create(lab.path("dhcpd.log")).unwrap();
    let child = lab
        .exec(&lab.srv, find("dhcpd").unwrap().to_str().unwrap())
        .args(["-4", "-f", "-d", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(lab.path("dhcpd.leases"))
        .arg("-pf")
        .arg(lab.path("dhcpd.pid"))
        .arg("vs")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    lab.children.push(child);
    lab.wait_log("dhcpd.log", "Listening on");
    let (ok, seen) = lab.dhclient("isr", true, Some(ISR_PID_HEX), 15);
    let bound = seen
        .lines()
        .find(|l| l.starts_with("BOUND"))
        .unwrap_or_default()
        .to_string();
    assert!(
        ok,
        "no lease from dhcpd: {seen}\n{}",
        std::fs::read_to_string(lab.path("dhcpd.log")).unwrap_or_default()
    );
    assert!(bound.contains(&format!("opt43={OPT43}")), "{bound}");
    let (ok, _) = lab.dhclient("c9300", true, Some(C9300_PID_HEX), 4);
    assert!(!ok, "dhcpd with our snippet must not serve a C9300");
}

/// The dnsmasq snippet pasted into a site's own dnsmasq, which serves other clients from its
/// own range: PnP routers get option 43 and an address from the PnP range, and everyone else
/// is served exactly as before (the old snippet's global `dhcp-ignore=tag:!pnp` silenced them).
#[test]
#[ignore = "needs root (network namespaces), dnsmasq and dhclient: run by .ci/run"]
fn dnsmasq_snippet_in_a_shared_dnsmasq_serves_routers_and_leaves_others_alone() {
    require(
        "dnsmasq with our snippet",
        &["ip", "dnsmasq", "dhclient"],
        true,
    );
    let mut lab = Lab::new();
    let conf = lab.path("dnsmasq.conf");
    let site = format!(
        "# The site's own configuration.\nport=0\ninterface=vs\nbind-interfaces\ndhcp-authoritative\n\
         dhcp-range=198.51.100.20,198.51.100.50,255.255.255.0,600\ndhcp-leasefile={}\n\n",
        lab.path("dnsmasq.leases").display()
    );
    std::fs::write(&conf, site + &snippet("dnsmasq", "vs", lab.dir.path())).unwrap();
    let log = std::fs::File::create(lab.path("dnsmasq.log")).unwrap();
    let child = lab
        .exec(&lab.srv, find("dnsmasq").unwrap().to_str().unwrap())
        .arg("--keep-in-foreground")
        .arg("--log-dhcp")
        .arg("--log-facility=-")
        .arg("--user=root")
        .arg(format!("--pid-file={}", lab.path("dnsmasq.pid").display()))
        .arg(format!("--conf-file={}", conf.display()))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    lab.children.push(child);
    lab.wait_log("dnsmasq.log", "DHCP, IP range");
    let in_range = |seen: &str, lo: u8, hi: u8| {
        seen.lines()
            .find(|l| l.starts_with("BOUND"))
            .and_then(|l| l.split("ip=198.51.100.").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (lo..=hi).contains(&n))
    };
    let dnsmasq_log = || std::fs::read_to_string(lab.path("dnsmasq.log")).unwrap_or_default();
    let (ok, isr) = lab.dhclient("isr", true, Some(ISR_PID_HEX), 15);
    assert!(ok, "no lease for the router: {isr}\n{}", dnsmasq_log());
    assert!(isr.contains(&format!("opt43={OPT43}")), "{isr}");
    assert!(
        in_range(&isr, 100, 199),
        "the router is in the PnP range: {isr}"
    );
    for (name, send60, pid) in [
        ("laptop", false, None),
        ("c9300", true, Some(C9300_PID_HEX)),
    ] {
        let (ok, seen) = lab.dhclient(name, send60, pid, 15);
        assert!(ok, "{name} was not served: {seen}\n{}", dnsmasq_log());
        assert!(
            in_range(&seen, 20, 50),
            "{name} from the site's range: {seen}"
        );
        let bound = seen
            .lines()
            .find(|l| l.starts_with("BOUND"))
            .unwrap_or_default();
        assert!(
            bound.ends_with("opt43="),
            "{name} got no option 43: {bound}"
        );
    }
}

/// A DHCP packet as a client (or, with `giaddr`, a relay) sends it.
fn dhcp_packet(
    msg: u8,
    mac: [u8; 6],
    xid: u32,
    (ciaddr, giaddr): (std::net::Ipv4Addr, std::net::Ipv4Addr),
    options: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[12..16].copy_from_slice(&ciaddr.octets());
    b[24..28].copy_from_slice(&giaddr.octets());
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, msg]);
    for (code, value) in options {
        b.push(*code);
        b.push(value.len() as u8);
        b.extend_from_slice(value);
    }
    b.push(255);
    b
}

/// Option 53 of a DHCP packet (0 when there is none).
fn message_type(m: &[u8]) -> u8 {
    let mut i = 240;
    while i + 1 < m.len() {
        match m[i] {
            0 => i += 1,
            255 => break,
            53 if i + 2 < m.len() => return m[i + 2],
            _ => i += 2 + usize::from(m[i + 1]),
        }
    }
    0
}

/// Runs `f` on a thread inside the network namespace `ns` (setns(2) moves only that thread).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&fd),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn mac_of(lab: &Lab) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["-n", &lab.cli, "-br", "link", "show", "vc"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mac = text.split_whitespace().nth(2).unwrap();
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn lease_file(lab: &Lab) -> serde_json::Value {
    serde_json::from_str(
        &pnp_appliance::store::read_saved_leases(&lab.path("state"))
            .unwrap()
            .unwrap(),
    )
    .unwrap()
}

/// A flood of DISCOVERs and REQUESTs from thousands of random PnP-looking MACs used to take
/// the whole pool in seconds (a real router then got nothing) and wrote a WARN per packet; a
/// RELEASE or DECLINE carrying a router's MAC from another host freed its address. Now the
/// flood gets a bounded share, is reported once with counts, and the forgeries are ignored.
#[test]
#[ignore = "needs root (network namespaces) and dhclient: run by .ci/run"]
fn a_flood_of_new_macs_and_forged_releases_leave_routers_their_addresses() {
    require("DHCP flood", &["ip", "dhclient"], true);
    let mut lab = Lab::new();
    lab.start_appliance();
    let (ok, seen) = lab.dhclient("router", true, Some(ISR_PID_HEX), 15);
    assert!(ok, "{seen}");
    let bound_at = Instant::now();
    let router_ip: std::net::Ipv4Addr = seen
        .lines()
        .find(|l| l.starts_with("BOUND"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ip=")))
        .unwrap()
        .parse()
        .unwrap();
    let router_mac = mac_of(&lab);
    // The attacker: another host on the same segment.
    ip(&[
        "-n",
        &lab.cli,
        "addr",
        "add",
        "198.51.100.66/24",
        "dev",
        "vc",
    ]);
    let server = std::net::Ipv4Addr::new(198, 51, 100, 1);
    let me = std::net::Ipv4Addr::new(198, 51, 100, 66);
    let pid: Vec<u8> = ISR_PID_HEX
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let (sent, acked) = in_netns(&lab.cli, || {
        use rand::Rng;
        let sock = std::net::UdpSocket::bind((me, 67)).unwrap();
        sock.set_nonblocking(true).unwrap();
        let zero = std::net::Ipv4Addr::UNSPECIFIED;
        let pnp: [(u8, &[u8]); 2] = [(60, b"ciscopnp"), (124, &pid)];
        // Forged: the router's MAC and address, sent from this host.
        let release = dhcp_packet(
            7,
            router_mac,
            1,
            (router_ip, zero),
            &[(54, &server.octets())],
        );
        sock.send_to(&release, (server, 67)).unwrap();
        let mut rng = rand::rng();
        let (mut sent, mut acked) = (0u32, 0u32);
        let mut buf = [0u8; 1500];
        let until = Instant::now() + Duration::from_secs(5);
        // 2000 new MACs a second for 5 s, each answering its OFFER like a real client.
        while Instant::now() < until && sent < 10_000 {
            let mut mac = [0u8; 6];
            rng.fill(&mut mac[..]);
            mac[0] = 0x02;
            let d = dhcp_packet(1, mac, rng.random(), (zero, me), &pnp);
            if sock.send_to(&d, (server, 67)).is_ok() {
                sent += 1;
            }
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                let m = &buf[..n];
                if n < 243 {
                    continue;
                }
                let kind = message_type(m);
                let yiaddr = [m[16], m[17], m[18], m[19]];
                let mac: [u8; 6] = m[28..34].try_into().unwrap();
                let xid = u32::from_be_bytes(m[4..8].try_into().unwrap());
                match kind {
                    2 => {
                        let mut opts = pnp.to_vec();
                        opts.push((50, &yiaddr));
                        let sid = server.octets();
                        opts.push((54, &sid));
                        let r = dhcp_packet(3, mac, xid, (zero, me), &opts);
                        let _ = sock.send_to(&r, (server, 67));
                    }
                    5 => acked += 1,
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        (sent, acked)
    });
    eprintln!("flood: {sent} DISCOVERs sent, {acked} addresses acknowledged");
    assert!(sent > 5000, "only {sent} DISCOVERs sent");
    // 51 addresses, a budget of 6 new clients per 10 s: the flood got two windows' worth.
    assert!(acked <= 12, "the flood was given {acked} addresses");
    let log = std::fs::read_to_string(lab.path("appliance.log")).unwrap_or_default();
    let dhcp_warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("DHCP"))
        .collect();
    assert!(
        (1..=3).contains(&dhcp_warns.len()),
        "{} DHCP WARN lines for the flood: {:#?}",
        dhcp_warns.len(),
        dhcp_warns.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        dhcp_warns.iter().any(|l| l.contains("unanswered")),
        "{dhcp_warns:#?}"
    );
    // A forged DECLINE too, once the router's lease is older than a real client's probe.
    let wait = Duration::from_secs(32).saturating_sub(bound_at.elapsed());
    std::thread::sleep(wait);
    in_netns(&lab.cli, || {
        let sock = std::net::UdpSocket::bind((me, 67)).unwrap();
        let zero = std::net::Ipv4Addr::UNSPECIFIED;
        let decline = dhcp_packet(
            4,
            router_mac,
            2,
            (zero, zero),
            &[(50, &router_ip.octets()), (54, &server.octets())],
        );
        sock.send_to(&decline, (server, 67)).unwrap();
    });
    std::thread::sleep(Duration::from_millis(500));
    let leases = lease_file(&lab);
    let lease = &leases["by_ip"][router_ip.to_string()];
    assert_eq!(lease["state"], "bound", "the router's lease: {lease}");
    let mac_text = router_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(lease["mac"], mac_text.as_str());
    // A real router arriving after the flood still gets an address.
    ip(&[
        "-n",
        &lab.cli,
        "link",
        "set",
        "vc",
        "address",
        "02:00:5e:00:53:77",
    ]);
    let (ok, seen) = lab.dhclient("late", true, Some(ISR_PID_HEX), 20);
    assert!(
        ok && seen.contains("BOUND"),
        "a real router got nothing after the flood:\n{seen}\n{}",
        std::fs::read_to_string(lab.path("appliance.log")).unwrap_or_default()
    );
}

/// The laptop case: the interface exists but has no IPv4 address. `serve` says exactly that and
/// how to fix it; with `--address` it adds the address for the run, serves, and removes it at
/// exit.
#[test]
#[ignore = "needs root (network namespaces, ip addr add): run by .ci/run"]
fn an_interface_without_an_address_is_named_and_address_adds_one_for_the_run() {
    require("laptop interface", &["ip"], true);
    let mut lab = Lab::new();
    // The appliance's end of the veth without its address, as a laptop's port on a switch.
    ip(&["-n", &lab.srv, "addr", "flush", "dev", "vs"]);
    std::fs::write(lab.path("appliance.toml"), "").unwrap();
    let out = lab
        .exec(&lab.srv, BIN)
        .arg("--config")
        .arg(lab.path("appliance.toml"))
        .args(["serve", "--interface", "vs"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("interface vs has no IPv4 address") && err.contains("--address"),
        "{err}"
    );
    assert!(!err.contains("does not exist"), "{err}");
    // With --address: added, served, removed at a clean stop.
    let log = std::fs::File::create(lab.path("laptop.log")).unwrap();
    let child = lab
        .exec(&lab.srv, BIN)
        .arg("--config")
        .arg(lab.path("appliance.toml"))
        .args(["serve", "--interface", "vs", "--address", "198.51.100.1/24"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let pid = child.id();
    lab.children.push(child);
    lab.wait_log("laptop.log", "DHCP responder ready");
    let addrs = |lab: &Lab| {
        let out = Command::new("ip")
            .args(["-n", &lab.srv, "-4", "-br", "addr", "show", "dev", "vs"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(addrs(&lab).contains("198.51.100.1/24"), "{}", addrs(&lab));
    // A real client gets a lease from it.
    let (ok, seen) = lab.dhclient("laptop", true, Some(ISR_PID_HEX), 15);
    assert!(ok && seen.contains("BOUND"), "{seen}");
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let gone = common::wait_for(Duration::from_secs(10), || {
        (!addrs(&lab).contains("198.51.100.1")).then_some(())
    });
    assert!(
        gone.is_some(),
        "the address was not removed at exit: {}\n{}",
        addrs(&lab),
        std::fs::read_to_string(lab.path("laptop.log")).unwrap_or_default()
    );
    lab.wait_log("laptop.log", "removed the address added for this run");
    let log = std::fs::read_to_string(lab.path("laptop.log")).unwrap();
    assert!(
        log.contains("added the address to the interface for this run") && log.contains("DHCP ACK"),
        "{log}"
    );
}
