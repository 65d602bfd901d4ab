//! SUDI device-auth end to end: the test creates a private SUDI PKI (root → issuing CA, as
//! Cisco's Root CA 2099 → High Assurance SUDI CA), the server trusts it through `[identity]
//! extra-roots`, and `simulate` routers prove their serials with SUDIs it issues: verified,
//! forged, issued for another serial, not offered, and with `require-sudi`.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Bench, text};

/// Writes a SUDI PKI in `dir` as `simulate --sudi-pki` reads it: `sudi-roots.pem` (root and
/// issuing CA, what `extra-roots` takes), `sudi-ca.pem` and `sudi-ca.key`; returns the issuing
/// CA.
fn make_pki(dir: &Path) -> rcgen::Issuer<'static, rcgen::KeyPair> {
    std::fs::create_dir_all(dir).unwrap();
    let ca = |cn: &str| {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.not_before = rcgen::date_time_ymd(2018, 1, 1);
        p.not_after = rcgen::date_time_ymd(2099, 1, 1);
        p
    };
    let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let root_params = ca("Bench Test SUDI Root");
    let root_pem = root_params.self_signed(&root_key).unwrap().pem();
    let root = rcgen::Issuer::new(root_params, root_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = ca("Bench Test SUDI CA");
    let ca_pem = params.signed_by(&key, &root).unwrap().pem();
    std::fs::write(dir.join("sudi-roots.pem"), format!("{root_pem}{ca_pem}")).unwrap();
    std::fs::write(dir.join("sudi-ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.join("sudi-ca.key"), key.serialize_pem()).unwrap();
    rcgen::Issuer::new(params, key)
}

/// A router's SUDI from `ca`: its certificate (PEM) and key.
fn sudi(
    ca: &rcgen::Issuer<'static, rcgen::KeyPair>,
    pid: &str,
    sn: &str,
) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]),
        format!("PID:{pid} SN:{sn}"),
    );
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    (p.signed_by(&key, ca).unwrap().pem(), key)
}

/// A bench trusting the PKI in its `pki/` (with `require-sudi` as given).
fn bench(require: bool) -> Bench {
    let b = Bench::new("");
    make_pki(&b.path("pki"));
    trust_pki(&b);
    if require {
        b.patch_config("require-sudi = false\n", "require-sudi = true\n");
    }
    b
}

/// Points the bench's `extra-roots` at its `pki/`.
fn trust_pki(b: &Bench) {
    b.patch_config(
        "# extra-roots = [\"sudi-extra.pem\"]\n",
        "extra-roots = [\"pki/sudi-roots.pem\"]\n",
    );
}

/// The router's row in `/api/status`.
fn status_row(b: &Bench, serial: &str) -> serde_json::Value {
    let (_, body) = common::http_get(b.port, "/api/status").unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&body).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["serial"] == serial)
        .cloned()
        .unwrap_or_else(|| panic!("{serial} not in {rows}"))
}

fn identity(b: &Bench, serial: &str) -> (String, String) {
    let row = status_row(b, serial);
    (
        row["identity"].as_str().unwrap_or_default().to_string(),
        row["identity_detail"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn routers_prove_their_serial_by_sudi_and_forgeries_are_told_apart() {
    let mut b = bench(false);
    b.start();
    let pki = b.path("pki");
    // Router 1 forges its signature, router 2 carries a SUDI for another serial, 3 and 4 are
    // genuine. None is refused provisioning: without require-sudi a failed check leaves the
    // router bound by address, and says so.
    let out = b
        .simulate(4, &["--serial-prefix", "SUDI", "--sudi-pki"])
        .arg(&pki)
        .args(["--forged-sudi", "1", "--wrong-sudi", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), b.server_log());
    let out = b
        .simulate(1, &["--serial-prefix", "PLAIN"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // An RSA SUDI, signing PKCS#1 v1.5 as the ISR1k does.
    let out = b
        .simulate(1, &["--serial-prefix", "RSA", "--sudi-rsa", "--sudi-pki"])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (id, why) = identity(&b, "RSA00001");
    assert_eq!(id, "sudi-verified", "{why}");
    assert!(
        why.starts_with("RSA SHA-256, chains to CN=Bench Test SUDI Root"),
        "{why}"
    );

    let (id, why) = identity(&b, "SUDI00001");
    assert_eq!(id, "sudi-failed", "{why}");
    assert!(why.contains("not signed by the key of this SUDI"), "{why}");
    let (id, why) = identity(&b, "SUDI00002");
    assert_eq!(id, "sudi-failed", "{why}");
    assert!(
        why.contains("the certificate is for PID:C1131-8PWB SN:SUDI00002X, the router says PID:C1131-8PWB SN:SUDI00002"),
        "{why}"
    );
    for s in ["SUDI00003", "SUDI00004"] {
        let (id, why) = identity(&b, s);
        assert_eq!(id, "sudi-verified", "{s}: {why}");
        assert!(
            why.contains("ECDSA P-256 SHA-256, chains to CN=Bench Test SUDI Root"),
            "{why}"
        );
    }
    let (id, why) = identity(&b, "PLAIN00001");
    assert_eq!(id, "address-bound", "{why}");
    assert!(why.contains("does not offer device-auth"), "{why}");

    // The operator's views say it too.
    let status = b.run(&["status"]);
    let shown = text(&status);
    assert!(shown.contains("IDENTITY"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.contains("SUDI00003") && l.contains("sudi-verified")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.contains("SUDI00001") && l.contains("sudi-failed")),
        "{shown}"
    );
    let show = text(&b.run(&["device", "show", "SUDI00002"]));
    assert!(
        show.contains("identity      sudi-failed: the certificate is for"),
        "{show}"
    );
    // The report's last column names it.
    let report = text(&b.run(&["report", "--format", "csv"]));
    let head = report.lines().next().unwrap_or_default();
    assert!(head.ends_with(",bench,identity"), "{head}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("SUDI00003,") && l.ends_with(",sudi-verified")),
        "{report}"
    );
    let log = b.server_log();
    let hist = common::history_texts(&b.device("SUDI00004").unwrap());
    assert!(
        hist.iter()
            .any(|h| h.starts_with("SUDI verified: ECDSA P-256 SHA-256")),
        "{hist:?}\n{log}"
    );
}

#[test]
fn require_sudi_parks_a_router_that_cannot_prove_its_serial_until_the_operator_vouches() {
    let mut b = bench(true);
    b.start();
    let check = text(&b.run(&["check"]));
    assert!(
        check.contains("SUDI trust: 3 roots, 3 issuing CAs (Cisco's and [identity] extra-roots)"),
        "{check}"
    );
    assert!(
        check.contains(
            "require-sudi: a router that cannot prove its serial parks in IDENTITY_UNPROVEN"
        ),
        "{check}"
    );
    // Router 1 forges; router 2 is genuine. Simulate waits for every router to finish, which
    // router 1 does only once the operator vouches for it.
    let mut sim = b
        .simulate(2, &["--serial-prefix", "REQ", "--sudi-pki"])
        .arg(b.path("pki"))
        .args(["--forged-sudi", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let parked = common::wait_for(Duration::from_secs(120), || {
        b.device("REQ00001")
            .filter(|d| d["state"] == "IDENTITY_UNPROVEN")
    });
    let finished = common::wait_for(Duration::from_secs(180), || {
        b.device("REQ00002").filter(|d| d["state"] == "FINISHED")
    });
    let stop = |sim: &mut std::process::Child| {
        let _ = sim.kill();
        let _ = sim.wait();
    };
    if parked.is_none() || finished.is_none() {
        stop(&mut sim);
        panic!(
            "REQ00001 {:?}\nREQ00002 {:?}\n{}",
            b.device("REQ00001").map(|d| d["state"].clone()),
            b.device("REQ00002").map(|d| d["state"].clone()),
            b.server_log()
        );
    }
    let (id, why) = identity(&b, "REQ00001");
    assert_eq!(id, "sudi-failed", "{why}");
    let row = status_row(&b, "REQ00001");
    assert_eq!(row["group"], "needs_you", "{row}");
    assert!(
        row["reason"].as_str().unwrap().contains("require-sudi"),
        "{row}"
    );
    assert!(
        row["fix"]
            .as_str()
            .unwrap()
            .contains("device resume REQ00001"),
        "{row}"
    );
    // Nothing was sent that changes the router: no config-register, no config.
    let d = b.device("REQ00001").unwrap();
    assert_eq!(d["config_reg_applied"], false, "{d}");
    assert!(d["config_file"].is_null(), "{d}");

    let out = b.run(&["device", "resume", "REQ00001"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("IDENTITY_UNPROVEN -> NEW_DEVICE"),
        "{}",
        text(&out)
    );
    let done = common::wait_for(Duration::from_secs(180), || {
        b.device("REQ00001").filter(|d| d["state"] == "FINISHED")
    });
    stop(&mut sim);
    assert!(
        done.is_some(),
        "{:?}\n{}",
        b.device("REQ00001"),
        b.server_log()
    );
    let (id, why) = identity(&b, "REQ00001");
    assert_eq!(id, "sudi-failed");
    assert!(why.contains("vouched for by the operator"), "{why}");
}

const MOVER: &str = "PID:C1131-8PWB,VID:V01,SN:FGL0MOVE1";

/// POSTs a PnP body from `src`: the reply's text.
fn pnp(b: &Bench, src: &str, path: &str, body: &str) -> String {
    let (s, reply) = common::http_from(src, b.port, "POST", path, &[("Host", "127.0.0.1")], body)
        .unwrap_or_else(|| panic!("no answer to {path} from {src}"));
    assert_eq!(s, 200, "{path} from {src}");
    String::from_utf8_lossy(&reply).into_owned()
}

fn ask(b: &Bench, src: &str, corr: &str) -> String {
    pnp(
        b,
        src,
        "/pnp/WORK-REQUEST",
        &format!(
            "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{MOVER}\"><info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{corr}\"><deviceId><udi>{MOVER}</udi><hostname>Router</hostname><authRequired>false</authRequired></deviceId></info></pnp>"
        ),
    )
}

fn answer(b: &Bench, src: &str, service: &str, corr: &str, inner: &str) -> String {
    pnp(
        b,
        src,
        "/pnp/WORK-RESPONSE",
        &format!(
            "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{MOVER}\"><response xmlns=\"urn:cisco:pnp:{service}\" correlator=\"{corr}\" success=\"1\">{inner}</response></pnp>"
        ),
    )
}

/// Answers the device-auth job in `job` (its challenge) with the SUDI `cert`/`key`, from `src`.
fn prove(b: &Bench, src: &str, corr: &str, job: &str, cert: &str, key: &rcgen::KeyPair) -> String {
    use base64::Engine as _;
    use rcgen::SigningKey as _;
    assert!(
        job.contains("urn:cisco:pnp:device-auth"),
        "not a challenge: {job}"
    );
    let challenge = job
        .split("<challenge-request>")
        .nth(1)
        .and_then(|c| c.split("</challenge-request>").next())
        .unwrap();
    let b64 = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(x);
    let sig = key.sign(challenge.as_bytes()).unwrap();
    // As the NSO netsim client sends it: no <auth> wrapper, no methods.
    let inner = format!(
        "<challenge-response>{}</challenge-response><sudi-cert>{}</sudi-cert>",
        b64(&sig),
        b64(cert.as_bytes())
    );
    answer(b, src, "device-auth", corr, &inner)
}

/// A verified router that comes back at another address proves the same SUDI there and moves
/// by itself, carrying on where it was; a host with another certificate for its serial (even
/// one from a trusted CA) does not take it.
#[test]
fn a_verified_router_moves_by_proving_its_sudi_and_only_so() {
    let mut b = Bench::new("");
    let ca = make_pki(&b.path("pki"));
    trust_pki(&b);
    b.start();
    let (cert, key) = sudi(&ca, "C1131-8PWB", "FGL0MOVE1");
    let (home, new, impostor) = ("127.0.0.1", "127.0.0.2", "127.0.0.3");
    let job = ask(&b, home, "H0");
    assert!(job.contains("urn:cisco:pnp:capability"), "{job}");
    answer(
        &b,
        home,
        "capability",
        "H0",
        "<supportedCapabilities><capability>cisco:pnp:device-auth</capability></supportedCapabilities>",
    );
    let job = ask(&b, home, "H1");
    prove(&b, home, "H1", &job, &cert, &key);
    let job = ask(&b, home, "H2");
    assert!(
        job.contains("config-register"),
        "verified, it goes on: {job}"
    );
    let d = b.device("FGL0MOVE1").unwrap();
    assert_eq!(d["sudi"]["verdict"], "verified", "{d:#}");

    // Another certificate for this serial, from the trusted CA: refused, nothing moves.
    let (other, other_key) = sudi(&ca, "C1131-8PWB", "FGL0MOVE1");
    let job = ask(&b, impostor, "I0");
    prove(&b, impostor, "I0", &job, &other, &other_key);
    let d = b.device("FGL0MOVE1").unwrap();
    assert_eq!(d["binding"]["ip"], home, "{d:#}");
    assert!(
        b.server_log()
            .contains("its SUDI answer does not prove the serial; nothing moved")
    );
    assert!(
        common::history_texts(&d)
            .iter()
            .any(|l| l.contains("it proved another SUDI certificate")),
        "{d:#}"
    );

    // The router itself at a new address: challenged there, proves the same certificate,
    // moves without the operator and carries on with the job it was on.
    let job = ask(&b, new, "N0");
    prove(&b, new, "N0", &job, &cert, &key);
    let d = b.device("FGL0MOVE1").unwrap();
    assert_eq!(d["binding"]["ip"], new, "{d:#}");
    assert!(
        common::history_texts(&d)
            .iter()
            .any(|l| l == "moved from 127.0.0.1 to 127.0.0.2: it proved the same SUDI certificate"),
        "{d:#}"
    );
    let job = ask(&b, new, "N1");
    assert!(job.contains("config-register"), "{job}");
    // The old address is a claimant now.
    let job = ask(&b, home, "H3");
    assert!(!job.contains("config-register"), "{job}");
}
