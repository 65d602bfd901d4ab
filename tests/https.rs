//! PnP over HTTPS, bootstrapped from the bench as Catalyst Center does it: routers start on
//! plain HTTP, take the bench CA by certificate-install (clock set, trustpoint `pnplabel`),
//! reconnect to the HTTPS port, and get their jobs, day-0 config and files only there; images
//! stay on plain HTTP, md5-checked.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Bench, text};

/// A bench with `[http] https` on a free loopback port; returns it and that port.
fn https_bench(extra: &str) -> (Bench, u16) {
    let b = Bench::new("");
    let port = common::free_port();
    b.patch_config(
        "https = false\nhttps-listen = \"0.0.0.0:8443\"\n",
        &format!("https = true\nhttps-listen = \"127.0.0.1:{port}\"\n{extra}"),
    );
    (b, port)
}

fn wait_https(port: u16) {
    common::wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("the HTTPS listener did not come up");
}

/// A client that trusts only the bench CA, as a router that took the trustpoint does.
fn trusting(ca: &[u8]) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
        .build()
        .unwrap()
}

#[test]
fn routers_move_to_https_and_their_jobs_and_configs_stay_off_plain_http() {
    let (mut b, port) = https_bench("");
    b.start();
    wait_https(port);
    let check = text(&b.run(&["check"]));
    assert!(
        check.contains(&format!("HTTPS on 127.0.0.1:{port}: bench CA")),
        "{check}"
    );
    assert!(check.contains("certificate-install (clock, bench CA as trustpoint pnplabel) and reconnect to HTTPS port"), "{check}");
    let dhcp = b.run(&["dhcp-config", "--format", "isc", "--interface", "lo"]);
    assert!(
        String::from_utf8_lossy(&dhcp.stderr).contains("Option 43 still says K4"),
        "{}",
        text(&dhcp)
    );

    let out = b.simulate(2, &["--serial-prefix", "TLS"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), b.server_log());
    for serial in ["TLS00001", "TLS00002"] {
        let d = b.device(serial).unwrap();
        assert_eq!(d["state"], "FINISHED", "{d:#}");
        assert!(!d["tls"]["back"].is_null(), "{d:#}");
        let h = common::history_texts(&d);
        assert!(
            h.iter().any(|l| l.starts_with("took the bench CA as trustpoint pnplabel, clock set: reconnecting to https://127.0.0.1:")),
            "{h:#?}"
        );
        assert!(
            h.iter().any(|l| l.starts_with("came back over HTTPS")),
            "{h:#?}"
        );
        // The day-0 config went over HTTPS, the image over plain HTTP (md5-checked).
        assert!(
            h.iter().any(|l| l.contains(&format!(
                "config-upgrade https://127.0.0.1:{port}/day0/{serial}/<token>/"
            ))),
            "{h:#?}"
        );
        assert!(
            h.iter()
                .any(|l| l.contains("image-install http://127.0.0.1:")),
            "{h:#?}"
        );
        // Files carry no checksum in file-transfer: over HTTPS.
        assert!(
            h.iter().any(|l| l.contains(&format!(
                "file-transfer https://127.0.0.1:{port}/dl/{serial}/<token>/files/"
            ))),
            "{h:#?}"
        );
        // The router reloaded into the new image and came back by its DHCP profile (HTTP):
        // it took the trustpoint again.
        assert!(
            h.iter()
                .filter(|l| l.starts_with("took the bench CA as trustpoint"))
                .count()
                >= 2,
            "{h:#?}"
        );
    }
    // The CA routers fetch is the one kept in the state directory.
    let (s, ca) = common::http_get(b.port, "/pnp-info/ca.pem").unwrap();
    assert_eq!(s, 200);
    assert_eq!(ca, std::fs::read(b.path("state/tls/ca.pem")).unwrap());
    // A day-0 URL over plain HTTP is refused whoever asks.
    let (s, body) = common::http_get(b.port, "/day0/TLS00001/00/default.cfg").unwrap();
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("over HTTPS only"));
    // The dashboard and the API answer over HTTPS with the bench CA, under the address the
    // certificate names.
    let c = trusting(&ca);
    let r = c
        .get(format!("https://127.0.0.1:{port}/api/status"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let rows: serde_json::Value = r.json().unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let page = c.get(format!("https://127.0.0.1:{port}/")).send().unwrap();
    assert_eq!(page.status(), 200);
    // A client that does not trust the bench CA gets no answer at all.
    let stranger = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .is_err()
    );
    // ... and the operator a WARN saying what that means.
    assert!(
        common::wait_for(Duration::from_secs(5), || {
            b.server_log()
                .contains("TLS handshake from 127.0.0.1 failed")
                .then_some(())
        })
        .is_some(),
        "{}",
        b.server_log()
    );
    let show = text(&b.run(&["device", "show", "TLS00001"]));
    assert!(show.contains("transport     HTTPS since"), "{show}");
}

#[test]
fn a_router_that_does_not_come_back_over_https_is_reported_with_what_to_check() {
    let (mut b, port) = https_bench("");
    b.patch_config("https-timeout = 600\n", "https-timeout = 10\n");
    b.start();
    wait_https(port);
    // The router takes the trustpoint but cannot reach the HTTPS port.
    let mut sim = b
        .simulate(1, &["--serial-prefix", "STUCK", "--https-stuck", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let row = common::wait_for(Duration::from_secs(60), || {
        let (_, body) = common::http_get(b.port, "/api/status")?;
        let rows: serde_json::Value = serde_json::from_slice(&body).ok()?;
        rows.as_array()?
            .iter()
            .find(|r| {
                r["serial"] == "STUCK00001"
                    && r["reason"]
                        .as_str()
                        .is_some_and(|s| s.contains("has not come back over HTTPS"))
            })
            .cloned()
    });
    let _ = sim.kill();
    let _ = sim.wait();
    let row = row.unwrap_or_else(|| {
        panic!(
            "never reported: {:?}\n{}",
            b.device("STUCK00001"),
            b.server_log()
        )
    });
    assert_eq!(row["group"], "needs_you", "{row}");
    let fix = row["fix"].as_str().unwrap();
    assert!(
        fix.contains("show crypto pki trustpoints pnplabel") && fix.contains("HTTPS port"),
        "{fix}"
    );
    // It got no job past the certificate-install while it stayed on plain HTTP.
    let d = b.device("STUCK00001").unwrap();
    assert_eq!(d["config_reg_applied"], false, "{d:#}");
    assert_eq!(d["state"], "NEW_DEVICE", "{d:#}");
    let shown = text(&b.run(&["status"]));
    assert!(shown.contains("has not come back over HTTPS"), "{shown}");
}
