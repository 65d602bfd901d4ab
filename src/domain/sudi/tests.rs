use super::*;
use base64::Engine as _;

/// A real C1111-8P's `show platform sudi certificate sign nonce 79213556` (CiscoDevNet/
/// BootIntegrityValidator, MIT; `certs/cisco-sudi/README.md`): Root CA 2099, High Assurance
/// SUDI CA, the router's SUDI, then a signature made with the router's SUDI key.
const ISR1K: &str = include_str!("isr1k_show_plat_sudi_sign_nonce.txt");

fn isr1k() -> (Vec<Cert>, u64, u32, Vec<u8>) {
    let certs = pem_certs(ISR1K.as_bytes(), 8).unwrap();
    let nonce: u64 = ISR1K
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let version: u32 = ISR1K
        .lines()
        .find_map(|l| l.strip_prefix("Signature version:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sig_hex = ISR1K
        .lines()
        .skip_while(|l| !l.starts_with("Signature:"))
        .nth(1)
        .unwrap()
        .trim();
    (certs, nonce, version, hex::decode(sig_hex).unwrap())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn the_real_isr1k_sudi_chains_to_cisco_root_ca_2099_and_names_its_serial() {
    let (certs, ..) = isr1k();
    assert_eq!(certs.len(), 3);
    let trust = Trust::new(&[]).unwrap();
    assert_eq!(
        trust.counts(),
        (2, 2, 0),
        "two roots and two issuing CAs are shipped"
    );
    let device = &certs[2];
    // Today, and in 2030, after the 2048 chain's end: the chain model judges each signature
    // by when it was made.
    for now in [1_796_000_000, 1_900_000_000] {
        let root = trust.path(device, &[], now).unwrap();
        assert_eq!(root, "O=Cisco, CN=Cisco Root CA 2099");
    }
    let sn = device.serial_number.clone().unwrap();
    assert_eq!(sn, "PID:C1111-8P SN:FGL220191QA");
    assert_eq!(
        parse_serial_number(&sn),
        ("C1111-8P".to_string(), "FGL220191QA".to_string())
    );
    // Without the High Assurance SUDI CA the path is not found, and the error names the issuer.
    let bare = Trust {
        anchors: trust.anchors.clone(),
        intermediates: Vec::new(),
        extra: 0,
    };
    let err = bare.path(device, &[], 1_796_000_000).unwrap_err();
    assert!(err.contains("High Assurance SUDI CA"), "{err}");
    // ... unless the router sends it beside its own certificate.
    assert!(bare.path(device, &certs[1..2], 1_796_000_000).is_ok());
}

#[test]
fn the_real_isr1k_signature_verifies_as_pkcs1_v1_5_and_not_as_pss() {
    let (certs, nonce, version, sig) = isr1k();
    // What `show platform sudi certificate sign` signs (BootIntegrityValidator): the nonce and
    // the signature version, big-endian, then the three certificates as DER.
    let mut data = Vec::new();
    data.extend_from_slice(&nonce.to_be_bytes());
    data.extend_from_slice(&version.to_be_bytes());
    for c in &certs {
        data.extend_from_slice(&c.der);
    }
    let device = &certs[2];
    assert_eq!(
        device_signature(&device.spki, Hash::Sha256, &data, &sig).unwrap(),
        "RSA SHA-256"
    );
    let mut tampered = data.clone();
    tampered[3] ^= 1;
    assert!(device_signature(&device.spki, Hash::Sha256, &tampered, &sig).is_err());
    assert!(device_signature(&device.spki, Hash::Sha512, &data, &sig).is_err());
    // PSS with the same key and hash does not accept it: a real SUDI signs PKCS#1 v1.5.
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let key = rsa::PublicKey::from_public_key_der(&device.spki).unwrap();
    let pss = rsa::pss::VerifyingKey::<sha2::Sha256>::new(key);
    let s = rsa::pss::Signature::try_from(sig.as_slice()).unwrap();
    assert!(pss.verify(&data, &s).is_err());
}

/// A private SUDI PKI as `[identity] extra-roots` would hold it: a root, an issuing CA, and
/// device certificates with `serialNumber=PID:<pid> SN:<sn>`.
struct Pki {
    root_pem: String,
    ca_pem: String,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca_params(cn: &str, from: (i32, u8, u8), to: (i32, u8, u8)) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    p.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
    p
}

impl Pki {
    fn new(ca_from: (i32, u8, u8), ca_to: (i32, u8, u8)) -> Pki {
        let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let root_params = ca_params("Test SUDI Root", (2010, 1, 1), (2099, 1, 1));
        let root_pem = root_params.self_signed(&root_key).unwrap().pem();
        let root = rcgen::Issuer::new(root_params, root_key);
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ca_params = ca_params("Test SUDI CA", ca_from, ca_to);
        let ca_pem = ca_params.signed_by(&ca_key, &root).unwrap().pem();
        Pki {
            root_pem,
            ca_pem,
            ca: rcgen::Issuer::new(ca_params, ca_key),
        }
    }

    fn trust(&self) -> Trust {
        let both = format!("{}{}", self.root_pem, self.ca_pem);
        Trust::new(&[("test-roots.pem".into(), both.into_bytes())]).unwrap()
    }

    /// A device certificate for `pid`/`sn` on a P-256 key given as a 32-byte scalar, issued
    /// on `from`.
    fn device(
        &self,
        pid: &str,
        sn: &str,
        scalar: u8,
        from: (i32, u8, u8),
    ) -> (String, p256::ecdsa::SigningKey) {
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::ecdsa::SigningKey::from_slice(&[scalar; 32]).unwrap();
        let der = key.to_pkcs8_der().unwrap();
        let kp = rcgen::KeyPair::try_from(der.as_bytes()).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]),
            format!("PID:{pid} SN:{sn}"),
        );
        p.distinguished_name.push(rcgen::DnType::CommonName, pid);
        p.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        p.not_after = rcgen::date_time_ymd(2099, 1, 1);
        (p.signed_by(&kp, &self.ca).unwrap().pem(), key)
    }
}

fn sign(key: &p256::ecdsa::SigningKey, hash: Hash, msg: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let digest = match hash {
        Hash::Sha256 => sha2::Sha256::digest(msg).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(msg).to_vec(),
    };
    let sig: p256::ecdsa::Signature = key.sign_prehash(&digest).unwrap();
    sig.to_der().as_bytes().to_vec()
}

const NOW: i64 = 1_796_000_000; // 2026-11-29

/// The answer fields as the codec reads them.
fn answer(cert: &str, sig: &[u8], hash: Option<Hash>) -> crate::domain::job::SudiAnswer {
    crate::domain::job::SudiAnswer {
        signature: b64(sig),
        cert: cert.to_string(),
        hashing: hash.map(|h| match h {
            Hash::Sha256 => "SHA256".to_string(),
            Hash::Sha512 => "SHA512".to_string(),
        }),
    }
}

#[test]
fn device_auth_answers_table() {
    let pki = Pki::new((2011, 1, 1), (2020, 1, 1));
    let trust = pki.trust();
    let challenge = hex::encode(rand::random::<[u8; 16]>());
    let (cert, key) = pki.device("C1111-8P", "FGL0001", 7, (2015, 6, 1));
    let (late_cert, late_key) = pki.device("C1111-8P", "FGL0001", 7, (2021, 6, 1));
    let (other_sn, other_key) = pki.device("C1111-8P", "FGL0002", 8, (2015, 6, 1));
    let stranger = Pki::new((2011, 1, 1), (2099, 1, 1));
    let (untrusted, untrusted_key) = stranger.device("C1111-8P", "FGL0001", 7, (2015, 6, 1));
    let forger = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    let ok256 = sign(&key, Hash::Sha256, challenge.as_bytes());
    let ok512 = sign(&key, Hash::Sha512, challenge.as_bytes());
    struct Case<'a> {
        what: &'a str,
        cert: String,
        sig: Vec<u8>,
        hash: Option<Hash>,
        pid: &'a str,
        err: Option<&'a str>,
    }
    let cases = [
        Case {
            what: "SHA-256",
            cert: b64(cert.as_bytes()),
            sig: ok256.clone(),
            hash: Some(Hash::Sha256),
            pid: "C1111-8P",
            err: None,
        },
        Case {
            what: "no hashing-method reads as SHA-256",
            cert: b64(cert.as_bytes()),
            sig: ok256.clone(),
            hash: None,
            pid: "C1111-8P",
            err: None,
        },
        Case {
            what: "SHA-512",
            cert: b64(cert.as_bytes()),
            sig: ok512.clone(),
            hash: Some(Hash::Sha512),
            pid: "C1111-8P",
            err: None,
        },
        Case {
            what: "SHA-512 signature named SHA-256",
            cert: b64(cert.as_bytes()),
            sig: ok512,
            hash: Some(Hash::Sha256),
            pid: "C1111-8P",
            err: Some("does not verify"),
        },
        Case {
            what: "signed by another key",
            cert: b64(cert.as_bytes()),
            sig: sign(&forger, Hash::Sha256, challenge.as_bytes()),
            hash: None,
            pid: "C1111-8P",
            err: Some("not signed by the key of this SUDI"),
        },
        Case {
            what: "another challenge signed",
            cert: b64(cert.as_bytes()),
            sig: sign(&key, Hash::Sha256, b"an old challenge"),
            hash: None,
            pid: "C1111-8P",
            err: Some("does not verify"),
        },
        Case {
            what: "a certificate for another serial",
            cert: b64(other_sn.as_bytes()),
            sig: sign(&other_key, Hash::Sha256, challenge.as_bytes()),
            hash: None,
            pid: "C1111-8P",
            err: Some("for PID:C1111-8P SN:FGL0002, the router says PID:C1111-8P SN:FGL0001"),
        },
        Case {
            what: "another PID",
            cert: b64(cert.as_bytes()),
            sig: ok256.clone(),
            hash: None,
            pid: "C1161-8P",
            err: Some("the router says PID:C1161-8P"),
        },
        Case {
            what: "an untrusted CA",
            cert: b64(untrusted.as_bytes()),
            sig: sign(&untrusted_key, Hash::Sha256, challenge.as_bytes()),
            hash: None,
            pid: "C1111-8P",
            err: Some("does not chain to a trusted SUDI root"),
        },
        Case {
            what: "issued after its CA ended",
            cert: b64(late_cert.as_bytes()),
            sig: sign(&late_key, Hash::Sha256, challenge.as_bytes()),
            hash: None,
            pid: "C1111-8P",
            err: Some("outside the validity of its issuer"),
        },
        Case {
            what: "not base64",
            cert: "%%%".into(),
            sig: ok256.clone(),
            hash: None,
            pid: "C1111-8P",
            err: Some("sudi-cert is not base64"),
        },
        Case {
            what: "base64 of DER, not PEM",
            cert: b64(b"\x30\x03\x02\x01\x01"),
            sig: ok256.clone(),
            hash: None,
            pid: "C1111-8P",
            err: Some("sudi-cert"),
        },
        Case {
            what: "empty signature",
            cert: b64(cert.as_bytes()),
            sig: Vec::new(),
            hash: None,
            pid: "C1111-8P",
            err: Some("does not verify"),
        },
    ];
    for c in cases {
        let got = trust.verify(
            &challenge,
            &answer(&c.cert, &c.sig, c.hash),
            c.pid,
            "FGL0001",
            NOW,
        );
        match (c.err, got) {
            (None, Ok(p)) => {
                assert_eq!(p.root, "CN=Test SUDI Root", "{}", c.what);
                assert!(
                    p.algorithm.starts_with("ECDSA P-256"),
                    "{}: {}",
                    c.what,
                    p.algorithm
                );
                assert_eq!(p.fingerprint.len(), 64);
            }
            (Some(want), Err(e)) => assert!(e.contains(want), "{}: {e}", c.what),
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", c.what),
        }
    }
    // Whitespace (line breaks in base64) is ignored; the same certificate proves the same
    // fingerprint each time.
    let wrapped: String = b64(cert.as_bytes())
        .as_bytes()
        .chunks(64)
        .map(|l| format!("{}\n", std::str::from_utf8(l).unwrap()))
        .collect();
    let a = trust
        .verify(
            &challenge,
            &answer(&wrapped, &ok256, None),
            "C1111-8P",
            "FGL0001",
            NOW,
        )
        .unwrap();
    let c2 = hex::encode(rand::random::<[u8; 16]>());
    let b = trust
        .verify(
            &c2,
            &answer(
                &b64(cert.as_bytes()),
                &sign(&key, Hash::Sha256, c2.as_bytes()),
                None,
            ),
            "C1111-8P",
            "FGL0001",
            NOW,
        )
        .unwrap();
    assert_eq!(a.fingerprint, b.fingerprint);
    // A device certificate dated in the future: the appliance's clock is the suspect.
    let (future, fkey) = pki.device("C1111-8P", "FGL0001", 7, (2015, 6, 1));
    let err = trust
        .verify(
            &challenge,
            &answer(
                &b64(future.as_bytes()),
                &sign(&fkey, Hash::Sha256, challenge.as_bytes()),
                None,
            ),
            "C1111-8P",
            "FGL0001",
            1_000_000_000,
        )
        .unwrap_err();
    assert!(err.contains("check this appliance's clock"), "{err}");
}

#[test]
fn extra_roots_that_are_not_certificates_are_refused_with_the_file_name() {
    let bad = answer("x", b"", None);
    let bad = crate::domain::job::SudiAnswer {
        hashing: Some("MD5".into()),
        ..bad
    };
    let err = Pki::new((2011, 1, 1), (2099, 1, 1))
        .trust()
        .verify("c", &bad, "P", "S", NOW)
        .unwrap_err();
    assert!(err.contains("hashing-method \"MD5\""), "{err}");
    let err = Trust::new(&[("roots.pem".into(), b"hello".to_vec())]).unwrap_err();
    assert!(err.starts_with("roots.pem: "), "{err}");
    let pki = Pki::new((2011, 1, 1), (2099, 1, 1));
    let t = pki.trust();
    assert_eq!(t.counts(), (3, 3, 2));
}
