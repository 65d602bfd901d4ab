//! `pnp-appliance check`: the pre-flight before routers arrive.
//!
//! Owns the list of things that must hold for a bench to work (files present and readable,
//! image md5 known, day-0 configs with the EEM applet and renderable templates, the advertised
//! address local, ports free and permitted) and the summary an engineer reads: the option 43
//! string and what a new router of each PID prefix will go through. Every problem comes with
//! its fix; any problem makes the exit status non-zero.

use std::net::IpAddr;

use crate::config::Config;
use crate::domain::template::{Builtins, is_template, render_text};
use crate::files::checksum::Md5Cache;
use crate::files::day0;

/// One line of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Passed.
    pub(crate) ok: bool,
    /// What was checked, and what was found.
    pub(crate) what: String,
    /// What to do, for a problem.
    pub(crate) fix: String,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        what: what.into(),
        fix: String::new(),
    }
}

fn bad(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        ok: false,
        what: what.into(),
        fix: fix.into(),
    }
}

fn readable(path: &std::path::Path) -> Result<u64, String> {
    std::fs::File::open(path)
        .and_then(|f| f.metadata())
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

/// The Guestshell tarballs (`*.tar`) the body of EEM applet `name` in `text` names, e.g. in
/// `action 2.0 cli command "app-hosting install appid guestshell package bootflash:x.tar"`.
pub(crate) fn applet_tarballs(text: &str, name: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("event manager applet ") {
            inside = t.split_whitespace().nth(3) == Some(name);
            continue;
        }
        if inside && !line.starts_with(' ') && !t.is_empty() && !t.starts_with("action") {
            inside = false;
        }
        if inside {
            for w in t.split(|c: char| c.is_whitespace() || c == '"') {
                if w.ends_with(".tar") {
                    let file = w.rsplit([':', '/']).next().unwrap_or(w);
                    out.push(file.to_string());
                }
            }
        }
    }
    out
}

/// Whether `text` defines EEM applet `name`.
pub(crate) fn has_applet(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("event")
            && w.next() == Some("manager")
            && w.next() == Some("applet")
            && w.next() == Some(name)
    })
}

fn files_checks(cfg: &Config, out: &mut Vec<Finding>) {
    let cache_path = cfg.state_dir.join("md5-cache.json");
    let mut cache = Md5Cache::load(&cache_path);
    for img in &cfg.plan.images {
        let path = cfg.images_dir.join(&img.file);
        match cache.md5_of(&cfg.images_dir, &img.file) {
            Ok((md5, hit)) => out.push(ok(format!(
                "image {} for PID {}*: version {}, md5 {md5} ({})",
                path.display(),
                img.pid_prefix,
                img.version,
                if hit {
                    "cached"
                } else {
                    "computed now, cached"
                }
            ))),
            Err(e) => out.push(bad(
                format!("image {}: {e}", path.display()),
                format!(
                    "copy the image into {} (or fix [[workflow.image]] file)",
                    cfg.images_dir.display()
                ),
            )),
        }
    }
    if !cfg.plan.images.is_empty() {
        let _ = std::fs::create_dir_all(&cfg.state_dir);
        if let Err(e) = cache.save(&cache_path) {
            out.push(bad(
                format!("md5 cache {}: {e}", cache_path.display()),
                "make the state directory writable ([paths] state)",
            ));
        }
    }
    for (what, copy) in [
        ("guestshell tarball", &cfg.plan.tarball),
        ("python script", &cfg.plan.script),
    ] {
        if let Some(c) = copy {
            let path = cfg.files_dir.join(&c.file);
            match readable(&path) {
                Ok(n) => out.push(ok(format!(
                    "{what} {} ({n} bytes) -> {}",
                    path.display(),
                    c.target()
                ))),
                Err(e) => out.push(bad(
                    format!("{what} {}: {e}", path.display()),
                    format!("copy it into {}", cfg.files_dir.display()),
                )),
            }
        }
    }
}

fn config_checks(cfg: &Config, out: &mut Vec<Finding>) {
    if !cfg.plan.day0_config {
        out.push(ok(
            "day-0 configs: not pushed ([workflow] day0-config = false)",
        ));
        return;
    }
    let inventory = match day0::inventory(&cfg.configs_dir.join(&cfg.inventory)) {
        Ok(i) => i,
        Err(e) => {
            out.push(bad(
                e,
                "fix the inventory CSV: header `serial,hostname,...`, one row per router",
            ));
            Default::default()
        }
    };
    let mut configs: Vec<String> = std::fs::read_dir(&cfg.configs_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".cfg"))
                .collect()
        })
        .unwrap_or_default();
    configs.sort();
    if !configs.contains(&cfg.default_config) {
        out.push(bad(
            format!("no default day-0 config {}/{}", cfg.configs_dir.display(), cfg.default_config),
            "add it, or a <SERIAL>.cfg for every router (routers without one go FAILED at CONFIG_START)",
        ));
    }
    for name in &configs {
        let path = cfg.configs_dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                out.push(bad(
                    format!("{}: {e}", path.display()),
                    "make it a readable text file",
                ));
                continue;
            }
        };
        let mut problems = Vec::new();
        if let Some(applet) = &cfg.plan.eem_applet
            && !has_applet(&text, applet)
        {
            problems.push(bad(
                    format!("{} has no `event manager applet {applet}`", path.display()),
                    "add the applet that installs Guestshell, or set [workflow.guestshell] eem-applet to the applet it defines (\"\" skips the step)".to_string(),
                ));
        }
        if let (Some(applet), Some(tarball)) = (&cfg.plan.eem_applet, &cfg.plan.tarball) {
            let named = applet_tarballs(&text, applet);
            if !named.is_empty() && !named.contains(&tarball.file) {
                problems.push(bad(
                    format!(
                        "{}: applet {applet} installs {} but [workflow.guestshell] tarball is {}: routers would get one tarball and install another (or none)",
                        path.display(),
                        named.join(", "),
                        tarball.file
                    ),
                    format!("make the applet name {} or set [workflow.guestshell] tarball = {:?}", tarball.file, named[0]),
                ));
            }
        }
        if is_template(&text) {
            // Which routers use this file: its own serial, or every inventory row without one.
            let serials: Vec<String> = if *name == cfg.default_config {
                inventory
                    .keys()
                    .filter(|s| !configs.contains(&format!("{s}.cfg")))
                    .cloned()
                    .collect()
            } else {
                vec![name.trim_end_matches(".cfg").to_string()]
            };
            let serials = if serials.is_empty() {
                vec!["(a router not in the inventory)".to_string()]
            } else {
                serials
            };
            for serial in serials {
                let b = Builtins {
                    serial: serial.clone(),
                    pid: "C1131-8PWB".into(),
                    vid: "V01".into(),
                    ip: "198.51.100.100".into(),
                };
                if let Err(e) = render_text(name, &text, inventory.get(&serial), &b) {
                    problems.push(bad(
                        e,
                        format!(
                            "add the variables to {}",
                            cfg.configs_dir.join(&cfg.inventory).display()
                        ),
                    ));
                }
            }
        }
        if problems.is_empty() {
            let kind = if is_template(&text) {
                "template renders"
            } else {
                "config"
            };
            out.push(ok(format!("day-0 {kind} {}", path.display())));
        }
        out.extend(problems);
    }
}

fn local_ips() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|a| a.ip()).collect())
        .unwrap_or_default()
}

fn network_checks(cfg: &Config, out: &mut Vec<Finding>) {
    match &cfg.advertise {
        None => out.push(ok(
            "advertised address: the address each router connects to",
        )),
        Some(a) => {
            let host = &a.host;
            match host.parse::<IpAddr>() {
                Ok(ip) if local_ips().contains(&ip) => out.push(ok(format!("advertised address {ip} is on this machine"))),
                Ok(ip) => out.push(bad(
                    format!("advertised address {ip} is not on any local interface"),
                    "set [http] advertise to an address from `ip -br addr`, or give the interface that address",
                )),
                Err(_) => out.push(ok(format!("advertised host name {host} (resolution not checked)"))),
            }
        }
    }
    match std::net::TcpListener::bind(cfg.listen) {
        Ok(_) => out.push(ok(format!("HTTP {} free", cfg.listen))),
        Err(e) => out.push(bad(
            format!("HTTP {}: {e}", cfg.listen),
            crate::serve::bind_hint(cfg.listen, &e),
        )),
    }
    match &cfg.dhcp.interface {
        None => out.push(ok("DHCP responder off (no [dhcp] interface): routers need option 43 from another DHCP server, see `pnp-appliance dhcp-config`")),
        Some(iface) => match crate::dhcp::interface_v4(iface) {
            Err(_) if cfg.dhcp.address.is_some() => out.push(ok(format!(
                "DHCP interface {iface} has no IPv4 address: serve adds {} for the run",
                cfg.dhcp.address.map(|a| a.to_string()).unwrap_or_default()
            ))),
            Err(e) => out.push(bad(format!("DHCP interface {iface}"), e)),
            Ok((ip, mask)) => {
                out.push(ok(format!("DHCP interface {iface}: {ip}/{mask}")));
                match crate::dhcp::socket::bind(iface, cfg.dhcp.port) {
                    Ok(_) => out.push(ok(format!("DHCP UDP {} on {iface} free and permitted", cfg.dhcp.port))),
                    Err(e) => {
                        let (what, fix) = e.split_once("\n  hint: ").unwrap_or((&e, "see the message"));
                        out.push(bad(format!("DHCP: {what}"), fix.to_string()));
                    }
                }
            }
        },
    }
}

/// What a new router of PID prefix `prefix` goes through.
pub(crate) fn describe(cfg: &Config, prefix: &str) -> String {
    let p = &cfg.plan;
    let mut steps = Vec::new();
    let id = &p.identity;
    if id.device_auth {
        steps.push(format!(
            "capability, then the SUDI check where device-auth is offered ({})",
            if id.require_sudi {
                "require-sudi: a router that cannot prove its serial parks in IDENTITY_UNPROVEN"
            } else {
                "else bound by address"
            }
        ));
    }
    if let Some(h) = &cfg.https {
        steps.push(format!(
            "certificate-install (clock, bench CA as trustpoint pnplabel) and reconnect to HTTPS port {}: jobs, the day-0 config and files over HTTPS only, images over {}",
            h.listen.port(),
            if h.downloads_over_https { "HTTPS" } else { "plain HTTP (md5-checked)" }
        ));
    }
    if p.renders_day0() {
        steps.push("day-0 config rendered (a router it cannot be rendered for fails here)".into());
    }
    if let Some(r) = &p.config_register {
        steps.push(format!("config-register {r} + write memory"));
    }
    steps.push("device-info".to_string());
    match p.image_for(prefix) {
        Some(i) => {
            let cleanup = match &p.image_cleanup {
                crate::domain::plan::Cleanup::Off => "no cleanup".to_string(),
                crate::domain::plan::Cleanup::Auto => "else cleanup".to_string(),
                crate::domain::plan::Cleanup::Commands(c) => format!("else {}", c.join(", ")),
            };
            steps.push(format!(
                "install {} unless it runs {} (only if bootflash holds it + {} MB, {cleanup}, else IMAGE_NO_SPACE; md5-checked, reload)",
                i.file,
                i.version,
                p.image_margin >> 20
            ))
        }
        None => steps.push("no upgrade (no image for this PID)".into()),
    }
    if let Some(t) = &p.tarball {
        steps.push(format!("copy {} to {}", t.file, t.target()));
    }
    if let Some(s) = &p.script {
        steps.push(format!("copy {} to {}", s.file, s.target()));
    }
    if p.day0_config {
        steps.push(format!(
            "day-0 config (<SERIAL>.cfg, else {}) + write memory",
            cfg.default_config
        ));
    }
    if p.min_bootflash_free > 0 && (p.eem_applet.is_some() || p.script.is_some()) {
        steps.push(format!(
            "bootflash >= {} free (else BOOTFLASH_NO_SPACE)",
            crate::domain::bench::human_bytes(p.min_bootflash_free.try_into().unwrap_or(0))
        ));
    }
    if let Some(a) = &p.eem_applet {
        steps.push(format!("event manager run {a}"));
    }
    if p.eem_applet.is_some() || p.script.is_some() {
        steps.push("wait for Guestshell RUNNING (install/enable as needed)".into());
    }
    if let Some(s) = &p.script {
        steps.push(format!(
            "{} (its output judged)",
            p.script_command.replace("{file}", &s.file)
        ));
    }
    steps.push(format!(
        "verify on the router ({} checks of your own)",
        p.verify.len()
    ));
    steps.push("FINISHED".into());
    format!("{prefix}*: {}", steps.join(" -> "))
}

/// What `[http] https` and option 43's K5 come to.
fn https_checks(cfg: &Config, out: &mut Vec<Finding>) {
    // Option 43 K5 tells routers to speak HTTPS from their first contact: they must already
    // trust the certificate (their trustpool: Cisco's bundle), which a bench CA never is.
    if cfg.dhcp.https {
        match &cfg.https {
            None => out.push(bad(
                "[dhcp.option43] https = true (K5) tells routers to speak HTTPS, but [http] https is off: they reach nothing",
                "set [dhcp.option43] https = false; for PnP over HTTPS set [http] https = true (routers start on HTTP and move by themselves)",
            )),
            Some(h) if h.cert.is_none() => out.push(bad(
                "[dhcp.option43] https = true (K5): routers would speak HTTPS before they trust this appliance's bench CA (it cannot be in their trustpool)",
                "set [dhcp.option43] https = false: with [http] https routers start on HTTP (K4), take the bench CA by certificate-install and move to HTTPS themselves",
            )),
            Some(_) => out.push(ok(
                "[dhcp.option43] https = true (K5): routers speak HTTPS from the start, so they must already trust tls-cert's issuer (their trustpool); if they do not, set it false (K4)",
            )),
        }
    }
    if let Some(h) = &cfg.https {
        match &h.cert {
            Some((c, k)) => out.push(ok(format!(
                "HTTPS on {}: serving {} (key {}); routers take the last certificate of its chain as trustpoint",
                h.listen,
                c.display(),
                k.display()
            ))),
            None => out.push(ok(format!(
                "HTTPS on {}: bench CA {} (made at the first start), server certificate for {}",
                h.listen,
                cfg.state_dir.join("tls/ca.pem").display(),
                crate::serve::tls_names(cfg).join(" ")
            ))),
        }
    }
}

/// Runs every check (computing image md5s when not cached); returns the findings and the text
/// to print.
pub(crate) fn run(cfg: &Config) -> (Vec<Finding>, String) {
    let mut f = vec![ok(format!("config {} valid", cfg.source.display()))];
    files_checks(cfg, &mut f);
    config_checks(cfg, &mut f);
    https_checks(cfg, &mut f);
    let (roots, cas, extra) = cfg.plan.identity.trust.counts();
    f.push(ok(format!(
        "SUDI trust: {roots} roots, {cas} issuing CAs (Cisco's{})",
        if extra > 0 {
            " and [identity] extra-roots"
        } else {
            ""
        }
    )));
    network_checks(cfg, &mut f);
    let mut text = String::new();
    for x in &f {
        if x.ok {
            text.push_str(&format!("  ok    {}\n", x.what));
        } else {
            text.push_str(&format!("  FAIL  {}\n        fix: {}\n", x.what, x.fix));
        }
    }
    match dhcp_settings(cfg) {
        Ok(s) => text.push_str(&format!("\noption 43: {}\n", s.option43)),
        Err(e) => text.push_str(&format!("\noption 43: unknown ({e})\n")),
    }
    text.push_str("\nA new router goes through:\n");
    let mut prefixes: Vec<String> = cfg.dhcp.pid_prefixes.clone();
    for i in &cfg.plan.images {
        if !prefixes.contains(&i.pid_prefix) && !i.pid_prefix.is_empty() {
            prefixes.push(i.pid_prefix.clone());
        }
    }
    for p in prefixes {
        text.push_str(&format!("  {}\n", describe(cfg, &p)));
    }
    let problems = f.iter().filter(|x| !x.ok).count();
    text.push_str(&match problems {
        0 => "\nready: no problems found\n".to_string(),
        n => format!("\n{n} problem(s): fix them before routers arrive\n"),
    });
    (f, text)
}

/// The DHCP settings `check` and `dhcp-config` show: resolved with the interface when one is
/// configured, else from the config alone.
pub(crate) fn dhcp_settings(cfg: &Config) -> Result<crate::dhcp::Settings, String> {
    let iface = match (&cfg.dhcp.interface, cfg.dhcp.address) {
        (Some(i), address) => match (crate::dhcp::interface_v4(i), address) {
            (Ok(v4), _) => Some(v4),
            // What serve adds for the run.
            (Err(_), Some(net)) => Some((net.addr(), net.netmask())),
            (Err(e), None) => return Err(e),
        },
        (None, _) => None,
    };
    crate::dhcp::settings::resolve(cfg, iface)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_detection() {
        assert!(has_applet(
            "!\nevent manager applet InstallGuestShell\n action 1",
            "InstallGuestShell"
        ));
        assert!(has_applet(
            "event  manager applet X authorization bypass",
            "X"
        ));
        assert!(!has_applet(
            "event manager applet InstallGuestShellX",
            "InstallGuestShell"
        ));
        assert!(!has_applet("! event manager applet X", "X"));
    }

    #[test]
    fn applet_tarballs_are_read_from_the_applet_body_only() {
        let cfg = "hostname X\n!\nevent manager applet Other\n action 1.0 cli command \"app-hosting install appid guestshell package bootflash:other.tar\"\n!\nevent manager applet InstallGuestShell\n event none maxrun 600\n action 2.0 cli command \"app-hosting install appid guestshell package bootflash:guestshell.17.09.01.tar\"\n!\nend\n";
        assert_eq!(
            applet_tarballs(cfg, "InstallGuestShell"),
            ["guestshell.17.09.01.tar"]
        );
        assert_eq!(applet_tarballs(cfg, "Other"), ["other.tar"]);
        assert!(applet_tarballs(cfg, "Missing").is_empty());
    }

    #[test]
    fn option_43_k5_is_flagged_unless_routers_can_trust_the_certificate() {
        let at = |src: &str| {
            let cfg = Config::parse(
                src,
                std::path::Path::new("/tmp/appliance.toml"),
                &Default::default(),
            )
            .unwrap();
            let mut f = Vec::new();
            https_checks(&cfg, &mut f);
            f
        };
        let f = at("[dhcp.option43]\nhttps = true\n");
        assert!(
            !f[0].ok && f[0].what.contains("[http] https is off"),
            "{:?}",
            f[0].what
        );
        let f = at("[http]\nhttps = true\n[dhcp.option43]\nhttps = true\n");
        assert!(
            !f[0].ok && f[0].fix.contains("set [dhcp.option43] https = false"),
            "{:?}",
            f[0].fix
        );
        let own = "[http]\nhttps = true\ntls-cert = \"c.pem\"\ntls-key = \"c.key\"\n[dhcp.option43]\nhttps = true\n";
        assert!(at(own)[0].ok && at(own)[0].what.contains("must already trust"));
        // K4 with [http] https: nothing to flag, the HTTPS line says where the CA is.
        let f = at("[http]\nhttps = true\n");
        assert!(
            f.iter().all(|x| x.ok) && f[0].what.contains("bench CA"),
            "{:?}",
            f.iter().map(|x| &x.what).collect::<Vec<_>>()
        );
        // K5 names the HTTPS port.
        let cfg = Config::parse(
            "[http]\nhttps = true\nhttps-listen = \"0.0.0.0:8443\"\n[dhcp.option43]\nhttps = true\nserver = \"198.51.100.1\"\n",
            std::path::Path::new("/tmp/appliance.toml"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            dhcp_settings(&cfg).unwrap().option43,
            "5A1D;B2;K5;I198.51.100.1;J8443"
        );
    }

    #[test]
    fn check_warns_when_the_applet_installs_another_tarball() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["images", "files", "configs", "state"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("files/guestshell.17.12.03a.tar"), b"t").unwrap();
        let shipped = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.cfg"),
        )
        .unwrap();
        let cfg_path = dir.path().join("appliance.toml");
        std::fs::write(
            &cfg_path,
            "[http]\nlisten = \"127.0.0.1:0\"\n[workflow.guestshell]\ntarball = \"guestshell.17.12.03a.tar\"\n",
        )
        .unwrap();
        let run = |day0: &str| {
            std::fs::write(dir.path().join("configs/default.cfg"), day0).unwrap();
            let cfg = Config::load(&cfg_path, &Default::default()).unwrap();
            let mut f = Vec::new();
            config_checks(&cfg, &mut f);
            f
        };
        // The shipped config installs the shipped tarball: no warning.
        assert!(
            run(&shipped).iter().all(|x| x.ok),
            "{:?}",
            run(&shipped).iter().map(|x| &x.what).collect::<Vec<_>>()
        );
        let other = shipped.replace("guestshell.17.12.03a.tar", "guestshell.17.09.01.tar");
        let bad: Vec<String> = run(&other)
            .into_iter()
            .filter(|x| !x.ok)
            .map(|x| x.what)
            .collect();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("installs guestshell.17.09.01.tar but [workflow.guestshell] tarball is guestshell.17.12.03a.tar"), "{bad:?}");
    }
}
