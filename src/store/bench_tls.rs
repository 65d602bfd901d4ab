//! The bench CA and the HTTPS server certificate, kept in the state directory
//! (`<state>/tls/`): created at the first start with `[http] https`, the server certificate
//! made again when the addresses it must name change, or a configured certificate and key
//! read instead.
//!
//! Routers take the CA as trustpoint `pnplabel` by certificate-install (`docs/identity.md` §3)
//! and then check the server certificate: its SAN must hold the address they connect to
//! (DHCP discovery) and `pnpserver.<domain>` (DNS discovery), and it must already be valid by
//! the router's clock, which we set in the same job: `notBefore` is backdated two days so a
//! clock a little behind still accepts it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The certificate material the HTTPS listener serves, and the CA routers are given.
#[derive(Debug, Clone)]
pub(crate) struct BenchTls {
    /// The CA routers install (PEM); for a configured certificate, the last of its chain.
    pub(crate) ca_pem: String,
    /// The server certificate chain (PEM).
    pub(crate) chain_pem: String,
    /// Its private key (PEM).
    pub(crate) key_pem: String,
    /// The names and addresses the server certificate holds, for the log and `check`.
    pub(crate) names: Vec<String>,
    /// Where the CA is, for the operator.
    pub(crate) ca_path: PathBuf,
}

fn dir(state: &Path) -> PathBuf {
    state.join("tls")
}

fn read(p: &Path) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// Writes `text` to `p` readable by this user only (created so, never wider for a moment),
/// whole or not at all (temp file, fsync, rename).
fn write_private(p: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = p.with_extension("tmp");
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, p)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", p.display())
    })
}

/// The names the server certificate must hold: every address routers may connect to, and
/// `pnpserver.<domain>` when a domain is configured.
pub(crate) fn wanted_names(addresses: &[IpAddr], domain: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    if let Some(d) = domain {
        names.push(format!("pnpserver.{d}"));
    }
    names.sort();
    names.dedup();
    names
}

/// The bench CA and a server certificate for `names` in `state/tls/`, created or re-made as
/// needed; or the configured `cert`/`key` pair.
pub(crate) fn load_or_create(
    state: &Path,
    names: &[String],
    configured: Option<&(PathBuf, PathBuf)>,
) -> Result<BenchTls, String> {
    if let Some((cert, key)) = configured {
        let chain_pem = read(cert)?;
        let key_pem = read(key)?;
        let last = chain_pem
            .rfind("-----BEGIN CERTIFICATE-----")
            .ok_or_else(|| format!("{}: no PEM certificate in it", cert.display()))?;
        return Ok(BenchTls {
            ca_pem: chain_pem[last..].to_string(),
            chain_pem,
            key_pem,
            names: names.to_vec(),
            ca_path: cert.clone(),
        });
    }
    let d = dir(state);
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    let (ca_cert, ca_key) = (d.join("ca.pem"), d.join("ca.key"));
    let (srv_cert, srv_key, srv_names) = (
        d.join("server.pem"),
        d.join("server.key"),
        d.join("server.names"),
    );
    let err = |e: rcgen::Error| format!("creating the bench certificates: {e}");
    let (ca, ca_pem) = if ca_key.exists() {
        let key = rcgen::KeyPair::from_pem(&read(&ca_key)?).map_err(err)?;
        let pem = read(&ca_cert)?;
        (
            rcgen::Issuer::from_ca_cert_pem(&pem, key).map_err(err)?,
            pem,
        )
    } else {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "pnp-appliance");
        p.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!(
                "pnp-appliance bench CA {}",
                chrono::Utc::now().format("%Y-%m-%d")
            ),
        );
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let now = time_now();
        p.not_before = now - time::Duration::days(2);
        p.not_after = now + time::Duration::days(3650);
        let pem = p.self_signed(&key).map_err(err)?.pem();
        // The key first: a CA certificate without its key would be made again.
        write_private(&ca_key, &key.serialize_pem())?;
        write_private(&ca_cert, &pem)?;
        (rcgen::Issuer::new(p, key), pem)
    };
    let listed = names.join("\n");
    let current = std::fs::read_to_string(&srv_names).ok();
    if current.as_deref() != Some(listed.as_str()) || !srv_key.exists() || !srv_cert.exists() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "pnp-appliance");
        for n in names {
            let san = match n.parse::<IpAddr>() {
                Ok(ip) => rcgen::SanType::IpAddress(ip),
                Err(_) => rcgen::SanType::DnsName(n.clone().try_into().map_err(err)?),
            };
            p.subject_alt_names.push(san);
        }
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let now = time_now();
        p.not_before = now - time::Duration::days(2);
        p.not_after = now + time::Duration::days(825);
        let pem = p.signed_by(&key, &ca).map_err(err)?.pem();
        write_private(&srv_key, &key.serialize_pem())?;
        write_private(&srv_cert, &pem)?;
        write_private(&srv_names, &listed)?;
    }
    let chain_pem = format!("{}{ca_pem}", read(&srv_cert)?);
    Ok(BenchTls {
        ca_pem,
        chain_pem,
        key_pem: read(&srv_key)?,
        names: names.to_vec(),
        ca_path: ca_cert,
    })
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_the_server_certificate_again_when_its_names_change() {
        let d = tempfile::tempdir().unwrap();
        let a = wanted_names(&["198.51.100.1".parse().unwrap()], Some("bench.example"));
        assert_eq!(a, ["198.51.100.1", "pnpserver.bench.example"]);
        let first = load_or_create(d.path(), &a, None).unwrap();
        let again = load_or_create(d.path(), &a, None).unwrap();
        assert_eq!(first.ca_pem, again.ca_pem);
        assert_eq!(
            first.chain_pem, again.chain_pem,
            "nothing changed, nothing made again"
        );
        let b = wanted_names(
            &[
                "198.51.100.1".parse().unwrap(),
                "203.0.113.1".parse().unwrap(),
            ],
            None,
        );
        let moved = load_or_create(d.path(), &b, None).unwrap();
        assert_eq!(moved.ca_pem, first.ca_pem, "the CA routers trust stays");
        assert_ne!(moved.chain_pem, first.chain_pem);
        let (_, c) = x509_parser::pem::parse_x509_pem(moved.chain_pem.as_bytes()).unwrap();
        let cert = c.parse_x509().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let shown = format!("{:?}", san.value.general_names);
        assert!(
            shown.contains("203, 0, 113, 1") || shown.contains("203.0.113.1"),
            "{shown}"
        );
        assert!(
            cert.validity().not_before.timestamp() < chrono::Utc::now().timestamp() - 86_400,
            "backdated"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.path().join("tls/ca.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_configured_certificate_is_served_and_its_chain_end_is_the_trustpoint() {
        let d = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca = rcgen::CertificateParams::default();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["pnp.bench.example".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap()
            .pem();
        let (cert, keyf) = (d.path().join("site.pem"), d.path().join("site.key"));
        std::fs::write(&cert, format!("{leaf}{ca_pem}")).unwrap();
        std::fs::write(&keyf, key.serialize_pem()).unwrap();
        let t = load_or_create(d.path(), &[], Some(&(cert.clone(), keyf.clone()))).unwrap();
        assert_eq!(
            t.ca_pem, ca_pem,
            "routers trust the last certificate of the chain"
        );
        assert_eq!(t.key_pem, key.serialize_pem());
        assert!(!d.path().join("tls").exists(), "no bench CA made beside it");
        std::fs::write(&cert, "not a certificate").unwrap();
        let err = load_or_create(d.path(), &[], Some(&(cert, keyf))).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
