//! Proof of a router's serial by its SUDI: the trust anchors, the certificate path to them, the
//! signature over our challenge, and the PID and serial the certificate names.
//!
//! A Cisco router carries a SUDI (Secure Unique Device Identifier): a key in its ACT2 chip and
//! a certificate Cisco issued at manufacture, whose subject holds `serialNumber=PID:<pid>
//! SN:<serial>`. PnP device-auth (`docs/identity.md` §1) sends it a random challenge; it answers
//! with a signature over the challenge text made with that key, and the certificate. Pure
//! functions over bytes: the workflow calls [`Trust::verify`] under the record's lock; nothing
//! here does IO (the roots of `[identity] extra-roots` are read by the config at startup).
//!
//! What is checked, and why so:
//! * **Signature**: over the raw challenge text, as Cisco's `device_validation.py` and the NSO
//!   netsim client do; RSA PKCS#1 v1.5 (a real ISR1k signature verifies so, not with PSS: the
//!   unit test below) or ECDSA (DER), with SHA-256 or SHA-512 as the router names in
//!   `hashing-method`. The key type comes from the certificate, never from the router's claim.
//! * **Path**: leaf → issuing CA → root, each link by issuer/subject name and signature
//!   (sha1/256/384/512 with RSA, ecdsa-with-SHA256/384/512 on P-256/P-384); issuers must be CAs
//!   (basicConstraints cA). Roots: the Cisco SUDI roots compiled in (`certs/cisco-sudi/`) and
//!   the certificates of `[identity] extra-roots` (self-signed ones are anchors, the others
//!   intermediates); certificates the router sends beside its own may serve as intermediates.
//! * **Time: the chain model, not the shell model of RFC 5280 §6.** Each certificate must have
//!   been issued (`notBefore`) while its issuer was valid, and the leaf must not be dated in the
//!   future; no `notAfter` is compared with today. A SUDI is a manufacture-time identity in a
//!   chip that is never re-issued: IEEE 802.1AR gives such certificates no end (`notAfter`
//!   99991231235959Z, RFC 5280 §4.1.2.5), and Cisco's older chain (Root CA 2048 → ACT2 SUDI
//!   CA) ends on 2029-05-14 while the routers it identifies go on working. Judging today's
//!   date against it would strand every such router from that day; judging each signature by
//!   the time it was made does not.
//! * **Identity**: the subject's `serialNumber` must name the PID and SN of the UDI the router
//!   speaks with (as `device_validation.py` compares them).
//! * Not checked: revocation (a bench is offline; Cisco publishes no CRL for SUDIs here).

use sha2::Digest as _;

/// The Cisco SUDI roots and issuing CAs shipped with the appliance (`certs/cisco-sudi/`).
const CISCO: [&str; 4] = [
    include_str!("../../certs/cisco-sudi/crca2099.pem"),
    include_str!("../../certs/cisco-sudi/hasudi.pem"),
    include_str!("../../certs/cisco-sudi/crca2048.pem"),
    include_str!("../../certs/cisco-sudi/ACT2SUDICA.pem"),
];

/// Longest chain accepted, leaf included.
const MAX_DEPTH: usize = 5;
/// Most certificates read from what a router sends (its own and a few beside it).
const MAX_SENT: usize = 4;

/// What the appliance keeps of one certificate.
#[derive(Debug, Clone)]
struct Cert {
    der: Vec<u8>,
    tbs: Vec<u8>,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    subject: String,
    issuer: String,
    /// The subject's `serialNumber` (`PID:<pid> SN:<serial>` on a SUDI).
    serial_number: Option<String>,
    sig_alg: String,
    signature: Vec<u8>,
    spki: Vec<u8>,
    not_before: i64,
    not_after: i64,
    is_ca: bool,
}

impl Cert {
    fn parse(der: &[u8]) -> Result<Cert, String> {
        let (_, c) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        Ok(Cert {
            der: der.to_vec(),
            tbs: c.tbs_certificate.as_ref().to_vec(),
            subject_raw: c.subject().as_raw().to_vec(),
            issuer_raw: c.issuer().as_raw().to_vec(),
            subject: c.subject().to_string(),
            issuer: c.issuer().to_string(),
            serial_number: c
                .subject()
                .iter()
                .flat_map(|rdn| rdn.iter())
                .find(|a| a.attr_type().to_id_string() == "2.5.4.5")
                .and_then(|a| a.as_str().ok().map(str::to_string)),
            sig_alg: c.signature_algorithm.algorithm.to_id_string(),
            signature: c.signature_value.data.to_vec(),
            spki: c.public_key().raw.to_vec(),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
            is_ca: matches!(c.basic_constraints(), Ok(Some(b)) if b.value.ca),
        })
    }

    fn self_signed(&self) -> bool {
        self.subject_raw == self.issuer_raw
            && verify(&self.spki, &self.sig_alg, &self.tbs, &self.signature).is_ok()
    }
}

/// Every certificate in PEM `text` (other PEM blocks are skipped).
fn pem_certs(text: &[u8], max: usize) -> Result<Vec<Cert>, String> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text) {
        let pem = pem.map_err(|e| format!("not PEM ({e})"))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        if out.len() == max {
            return Err(format!("more than {max} certificates"));
        }
        out.push(Cert::parse(&pem.contents)?);
    }
    if out.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(out)
}

/// A digest a router may name in `hashing-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    /// `SHA256` / `SHA512` (any case, `-` allowed), as device-auth names them.
    pub(crate) fn parse(s: &str) -> Option<Hash> {
        match s.trim().to_ascii_uppercase().replace('-', "").as_str() {
            "SHA256" => Some(Hash::Sha256),
            "SHA512" => Some(Hash::Sha512),
            _ => None,
        }
    }
}

/// X.509 signature algorithms (RFC 4055 §5, RFC 5758 §3.2).
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_WITH_SHA512: &str = "1.2.840.10045.4.3.4";

/// Verifies `sig` over `msg` with the key of `spki` under the X.509 signature algorithm `alg`
/// (dotted OID). Returns what verified, e.g. `RSA SHA-256`, `ECDSA P-256 SHA-256`.
fn verify(spki: &[u8], alg: &str, msg: &[u8], sig: &[u8]) -> Result<String, String> {
    let (name, verified) = match alg {
        "1.2.840.113549.1.1.5" => ("RSA SHA-1", rsa_verify::<sha1::Sha1>(spki, msg, sig)),
        SHA256_WITH_RSA => ("RSA SHA-256", rsa_verify::<sha2::Sha256>(spki, msg, sig)),
        "1.2.840.113549.1.1.12" => ("RSA SHA-384", rsa_verify::<sha2::Sha384>(spki, msg, sig)),
        SHA512_WITH_RSA => ("RSA SHA-512", rsa_verify::<sha2::Sha512>(spki, msg, sig)),
        ECDSA_WITH_SHA256 => (
            "SHA-256",
            ecdsa_verify(spki, &sha2::Sha256::digest(msg), sig),
        ),
        "1.2.840.10045.4.3.3" => (
            "SHA-384",
            ecdsa_verify(spki, &sha2::Sha384::digest(msg), sig),
        ),
        ECDSA_WITH_SHA512 => (
            "SHA-512",
            ecdsa_verify(spki, &sha2::Sha512::digest(msg), sig),
        ),
        other => return Err(format!("signature algorithm {other} is not supported")),
    };
    Ok(match verified? {
        Some(curve) => format!("ECDSA {curve} {name}"),
        None => name.to_string(),
    })
}

/// RSA PKCS#1 v1.5 with digest `D`; `Ok(None)` when it verifies.
fn rsa_verify<D>(spki: &[u8], msg: &[u8], sig: &[u8]) -> Result<Option<&'static str>, String>
where
    D: sha2::Digest + sha2::digest::const_oid::AssociatedOid,
{
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let key = rsa::PublicKey::from_public_key_der(spki)
        .map_err(|e| format!("not an RSA public key ({e})"))?;
    let sig =
        rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| format!("bad RSA signature ({e})"))?;
    rsa::pkcs1v15::VerifyingKey::<D>::new(key)
        .verify(msg, &sig)
        .map(|()| None)
        .map_err(|_| "RSA signature does not verify".to_string())
}

/// ECDSA over an already computed digest, on P-256 or P-384 (the curve from the key); the
/// curve when it verifies.
fn ecdsa_verify(spki: &[u8], digest: &[u8], sig: &[u8]) -> Result<Option<&'static str>, String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) {
        let sig = p256::ecdsa::DerSignature::try_from(sig)
            .map_err(|e| format!("bad ECDSA signature ({e})"))?;
        return key
            .verify_prehash(digest, &sig)
            .map(|()| Some("P-256"))
            .map_err(|_| "ECDSA P-256 signature does not verify".to_string());
    }
    if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(spki) {
        let sig = p384::ecdsa::DerSignature::try_from(sig)
            .map_err(|e| format!("bad ECDSA signature ({e})"))?;
        return key
            .verify_prehash(digest, &sig)
            .map(|()| Some("P-384"))
            .map_err(|_| "ECDSA P-384 signature does not verify".to_string());
    }
    Err("the key is neither RSA nor ECDSA on P-256/P-384".into())
}

/// Verifies a device's signature over `msg` with the key of `spki`: the signature algorithm
/// its key type and `hash` make.
fn device_signature(spki: &[u8], hash: Hash, msg: &[u8], sig: &[u8]) -> Result<String, String> {
    let rsa = rsa::pkcs8::DecodePublicKey::from_public_key_der(spki)
        .map(|k: rsa::PublicKey| k)
        .is_ok();
    let alg = match (rsa, hash) {
        (true, Hash::Sha256) => SHA256_WITH_RSA,
        (true, Hash::Sha512) => SHA512_WITH_RSA,
        (false, Hash::Sha256) => ECDSA_WITH_SHA256,
        (false, Hash::Sha512) => ECDSA_WITH_SHA512,
    };
    verify(spki, alg, msg, sig)
}

/// What a verified SUDI proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proof {
    /// SHA-256 of the device certificate (hex): the same router proves the same certificate.
    pub(crate) fingerprint: String,
    /// The root it chains to.
    pub(crate) root: String,
    /// e.g. `RSA SHA-256`.
    pub(crate) algorithm: String,
}

/// The SUDI trust anchors and issuing CAs: Cisco's, plus `[identity] extra-roots`.
#[derive(Debug, Clone)]
pub(crate) struct Trust {
    anchors: Vec<Cert>,
    intermediates: Vec<Cert>,
    /// How many of them came from `[identity] extra-roots`.
    extra: usize,
}

impl PartialEq for Trust {
    fn eq(&self, other: &Trust) -> bool {
        let ders = |v: &[Cert]| v.iter().map(|c| c.der.clone()).collect::<Vec<_>>();
        ders(&self.anchors) == ders(&other.anchors)
            && ders(&self.intermediates) == ders(&other.intermediates)
    }
}

impl Trust {
    /// The shipped Cisco SUDI roots and CAs plus the certificates of `extra` (PEM texts with
    /// their names, for errors).
    pub(crate) fn new(extra: &[(String, Vec<u8>)]) -> Result<Trust, String> {
        let mut t = Trust {
            anchors: Vec::new(),
            intermediates: Vec::new(),
            extra: 0,
        };
        for pem in CISCO {
            for c in pem_certs(pem.as_bytes(), 8).map_err(|e| format!("built-in SUDI root: {e}"))? {
                t.add(c);
            }
        }
        for (name, text) in extra {
            for c in pem_certs(text, 64).map_err(|e| format!("{name}: {e}"))? {
                t.add(c);
                t.extra += 1;
            }
        }
        Ok(t)
    }

    fn add(&mut self, c: Cert) {
        if c.self_signed() {
            self.anchors.push(c);
        } else {
            self.intermediates.push(c);
        }
    }

    /// How many roots and issuing CAs it holds, and how many of them are extra.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (self.anchors.len(), self.intermediates.len(), self.extra)
    }

    /// Checks a device-auth answer to `challenge` from the router whose UDI names `pid` and
    /// `serial`: `sudi-cert` (base64 of PEM), `challenge-response` (base64 of the signature)
    /// and `hashing-method` (SHA-256 when the router names none). `now` is Unix seconds. The
    /// error says why, for the record.
    pub(crate) fn verify(
        &self,
        challenge: &str,
        answer: &crate::domain::job::SudiAnswer,
        pid: &str,
        serial: &str,
        now: i64,
    ) -> Result<Proof, String> {
        let hash = match answer.hashing.as_deref().map(|h| (h, Hash::parse(h))) {
            Some((h, None)) => {
                return Err(format!("hashing-method {h:?} is neither SHA256 nor SHA512"));
            }
            Some((_, hash)) => hash,
            None => None,
        };
        let (cert_field, response) = (&answer.cert, &answer.signature);
        use base64::Engine as _;
        let b64 = |s: &str| {
            let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD.decode(clean)
        };
        let pem = b64(cert_field).map_err(|_| "sudi-cert is not base64".to_string())?;
        let mut sent = pem_certs(&pem, MAX_SENT).map_err(|e| format!("sudi-cert: {e}"))?;
        let leaf = sent.remove(0);
        let sig = b64(response).map_err(|_| "challenge-response is not base64".to_string())?;
        let algorithm = device_signature(&leaf.spki, hash.unwrap_or(Hash::Sha256), challenge.as_bytes(), &sig)
            .map_err(|e| {
                format!("the challenge signature does not verify with the certificate's key: {e} (not signed by the key of this SUDI)")
            })?;
        let root = self.path(&leaf, &sent, now)?;
        let named = leaf.serial_number.as_deref().ok_or_else(|| {
            format!(
                "the certificate ({}) names no PID and SN (no serialNumber in its subject)",
                leaf.subject
            )
        })?;
        let (cpid, csn) = parse_serial_number(named);
        if csn != serial || cpid != pid {
            return Err(format!(
                "the certificate is for PID:{cpid} SN:{csn}, the router says PID:{pid} SN:{serial}"
            ));
        }
        Ok(Proof {
            fingerprint: hex::encode(sha2::Sha256::digest(&leaf.der)),
            root,
            algorithm,
        })
    }

    /// The root `leaf` chains to, with `sent` as extra candidate intermediates.
    fn path(&self, leaf: &Cert, sent: &[Cert], now: i64) -> Result<String, String> {
        if leaf.not_before > now + 86_400 {
            return Err(format!(
                "the certificate is dated in the future (valid from {}): check this appliance's clock",
                utc(leaf.not_before)
            ));
        }
        let mut cur = leaf.clone();
        for _ in 0..MAX_DEPTH {
            let issued_by = |c: &&Cert| {
                c.subject_raw == cur.issuer_raw
                    && verify(&c.spki, &cur.sig_alg, &cur.tbs, &cur.signature).is_ok()
            };
            if let Some(a) = self.anchors.iter().find(issued_by) {
                within(&cur, a)?;
                return Ok(a.subject.clone());
            }
            let next = self
                .intermediates
                .iter()
                .chain(sent)
                .find(|c| c.is_ca && c.der != cur.der && issued_by(c));
            let Some(next) = next else {
                return Err(format!(
                    "the certificate does not chain to a trusted SUDI root: its issuer ({}) is none of Cisco's SUDI CAs nor in [identity] extra-roots",
                    cur.issuer
                ));
            };
            within(&cur, next)?;
            cur = next.clone();
        }
        Err(format!("no trusted root within {MAX_DEPTH} certificates"))
    }
}

/// The chain model: `c` was issued while `issuer` was valid.
fn within(c: &Cert, issuer: &Cert) -> Result<(), String> {
    if c.not_before < issuer.not_before || c.not_before > issuer.not_after {
        return Err(format!(
            "{} was issued on {}, outside the validity of its issuer {} ({} to {})",
            c.subject,
            utc(c.not_before),
            issuer.subject,
            utc(issuer.not_before),
            utc(issuer.not_after)
        ));
    }
    Ok(())
}

fn utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| secs.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

/// `(pid, sn)` of a SUDI subject's `serialNumber`, `PID:C1111-8P SN:FGL220191QA` (split on
/// `PID:` and `SN:` as `device_validation.py` does).
pub(crate) fn parse_serial_number(text: &str) -> (String, String) {
    let after = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_default()
            .to_string()
    };
    (after("PID:"), after("SN:"))
}

pub(crate) mod test_pki;

#[cfg(test)]
mod tests;
