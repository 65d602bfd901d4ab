//! A private SUDI PKI for `simulate` and the tests: a root and an issuing CA (like Cisco's Root
//! CA 2099 → High Assurance SUDI CA), and device certificates naming `PID:<pid> SN:<serial>`
//! on P-256 keys. Its roots (PEM) are what `[identity] extra-roots` takes. In memory only (the
//! simulator keeps the PEM texts in files); nothing here is used by the server.

use base64::Engine as _;
use rcgen::SigningKey as _;

/// The issuing CA of a test SUDI PKI.
pub(crate) struct TestPki {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A test PKI as PEM texts.
pub(crate) struct PkiPem {
    /// The root and the issuing CA: what `extra-roots` takes.
    pub(crate) roots: String,
    /// The issuing CA's certificate.
    pub(crate) ca_cert: String,
    /// Its private key (PKCS#8).
    pub(crate) ca_key: String,
}

fn ca_params(cn: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "pnp-appliance test");
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.not_before = rcgen::date_time_ymd(2016, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    p
}

impl TestPki {
    /// A new PKI, and its PEM texts.
    pub(crate) fn generate() -> Result<(TestPki, PkiPem), String> {
        let err = |e: rcgen::Error| format!("creating the test SUDI PKI: {e}");
        let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(err)?;
        let root_params = ca_params("Test SUDI Root CA");
        let root_pem = root_params.self_signed(&root_key).map_err(err)?.pem();
        let root = rcgen::Issuer::new(root_params, root_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let params = ca_params("Test SUDI CA");
        let ca_cert = params.signed_by(&key, &root).map_err(err)?.pem();
        let pem = PkiPem {
            roots: format!("{root_pem}{ca_cert}"),
            ca_key: key.serialize_pem(),
            ca_cert,
        };
        Ok((
            TestPki {
                ca: rcgen::Issuer::new(params, key),
            },
            pem,
        ))
    }

    /// The PKI whose issuing CA is `ca_cert` with `ca_key` (PEM texts).
    pub(crate) fn from_pem(ca_cert: &str, ca_key: &str) -> Result<TestPki, String> {
        let key = rcgen::KeyPair::from_pem(ca_key).map_err(|e| format!("the CA key: {e}"))?;
        let ca = rcgen::Issuer::from_ca_cert_pem(ca_cert, key)
            .map_err(|e| format!("the CA certificate: {e}"))?;
        Ok(TestPki { ca })
    }

    /// A router's SUDI for `pid`/`serial`: on a P-256 key, or with `rsa` on an RSA-2048 one
    /// (as the ISR1k's, `certs/cisco-sudi/README.md`).
    pub(crate) fn device(&self, pid: &str, serial: &str, rsa: bool) -> Result<TestSudi, String> {
        let err = |e: rcgen::Error| format!("issuing a test SUDI: {e}");
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]),
            format!("PID:{pid} SN:{serial}"),
        );
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "pnp-appliance test");
        p.distinguished_name.push(rcgen::DnType::CommonName, pid);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2099, 12, 31);
        if !rsa {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
            let cert = p.signed_by(&kp, &self.ca).map_err(err)?.pem();
            return Ok(TestSudi {
                cert,
                key: SudiKey::Ecdsa(kp),
            });
        }
        // ring (rcgen's backend) cannot make RSA keys: the `rsa` crate does, and rcgen puts
        // its public half in the certificate.
        use rsa::pkcs8::EncodePublicKey;
        use rsa::signature::Keypair;
        let rsa_err = |e: &dyn std::fmt::Display| format!("an RSA key: {e}");
        let private = rsa::PrivateKey::new(
            &mut getrandom::rand_core::UnwrapErr(getrandom::SysRng),
            2048,
        )
        .map_err(|e| rsa_err(&e))?;
        let sk = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private);
        let der = sk
            .verifying_key()
            .as_ref()
            .to_public_key_der()
            .map_err(|e| rsa_err(&e))?;
        let spki = rcgen::SubjectPublicKeyInfo::from_der(der.as_bytes()).map_err(err)?;
        let cert = p.signed_by(&spki, &self.ca).map_err(err)?.pem();
        Ok(TestSudi {
            cert,
            key: SudiKey::Rsa(sk),
        })
    }
}

/// A test SUDI's private key.
enum SudiKey {
    Ecdsa(rcgen::KeyPair),
    Rsa(rsa::pkcs1v15::SigningKey<sha2::Sha256>),
}

/// A test router's SUDI: its certificate and key.
pub(crate) struct TestSudi {
    cert: String,
    key: SudiKey,
}

impl TestSudi {
    /// The device-auth answer fields for `challenge` (`challenge-response`, `sudi-cert`,
    /// `encryption-method`): SHA-256 over the challenge text, ECDSA or RSA PKCS#1 v1.5 by the
    /// key, the certificate as base64 of its PEM. With `forge`, signed by another key than the
    /// certificate's.
    pub(crate) fn answer(
        &self,
        challenge: &str,
        forge: bool,
    ) -> Result<(String, String, &'static str), String> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let msg = challenge.as_bytes();
        let other = || {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())
        };
        let (sig, method) = match &self.key {
            SudiKey::Ecdsa(_) | SudiKey::Rsa(_) if forge => {
                (other()?.sign(msg).map_err(|e| e.to_string())?, "ECDSA")
            }
            SudiKey::Ecdsa(kp) => (kp.sign(msg).map_err(|e| e.to_string())?, "ECDSA"),
            SudiKey::Rsa(sk) => {
                use rsa::signature::{SignatureEncoding, Signer};
                (sk.sign(msg).to_vec(), "RSA")
            }
        };
        Ok((b64(&sig), b64(self.cert.as_bytes()), method))
    }
}
