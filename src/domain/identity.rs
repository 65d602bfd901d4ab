//! Which host may speak for a serial: the binding of a router's record to the address of its
//! first contact (and, with the built-in DHCP, to its lease's MAC), what its SUDI proved, and
//! the claims other hosts make on it.
//!
//! A work request names its serial in the UDI and nothing in it proves it. So the first
//! address a serial talks from owns it. Another address gets nothing and moves nothing: its
//! claim is kept for the operator, who may accept the move (`device accept-move`). Two moves
//! are accepted without the operator:
//! * the router proves the serial by its SUDI from the new address (device-auth, see
//!   [`crate::domain::sudi`]): the same certificate as the record's proof moves a verified
//!   record; any valid proof takes a record that was bound by address only (whoever spoke
//!   first never proved it), and the workflow starts over for the proven router;
//! * for a record never verified: the router came back (after its reload) at another address
//!   that our own DHCP responder leased to the MAC the binding holds. A verified record moves
//!   only by proof.
//!
//! Pure functions over the record; the HTTP shell passes in the source address and the lease
//! it finds for it.

use std::net::IpAddr;

use chrono::{DateTime, Local};
use serde::{Deserialize, Serialize};

use super::device::Device;

/// The host a serial is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Binding {
    /// Address of its first contact (or of the last accepted move).
    pub(crate) ip: IpAddr,
    /// MAC of the built-in DHCP responder's lease for that address, when it had one.
    pub(crate) mac: Option<String>,
    /// Since when.
    pub(crate) since: DateTime<Local>,
}

/// The newest request for a serial from a host it is not bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claim {
    /// Where the request came from.
    pub(crate) ip: IpAddr,
    /// The MAC our DHCP leased that address to, if any.
    pub(crate) mac: Option<String>,
    /// First request from that address.
    pub(crate) first: DateTime<Local>,
    /// Latest request.
    pub(crate) last: DateTime<Local>,
    /// Requests refused from it.
    pub(crate) count: u64,
    /// When a WARN line was last written for it.
    pub(crate) warned: DateTime<Local>,
    /// The SUDI challenge sent to it, if one is out (not durable: lost on a restart, it is sent
    /// again).
    #[serde(default)]
    pub(crate) challenge: Option<ClaimChallenge>,
}

/// A device-auth challenge sent to a claimant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClaimChallenge {
    /// The challenge text.
    pub(crate) text: String,
    /// The correlator of the request that carried it.
    pub(crate) correlator: String,
    /// When it was sent.
    pub(crate) sent: DateTime<Local>,
}

/// How often a claimant is challenged at most (each answer costs a signature check).
const CHALLENGE_EVERY_SECS: i64 = 60;

/// What a router's SUDI check came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Verdict {
    /// It signed our challenge with a Cisco (or `extra-roots`) SUDI for its PID and serial.
    Verified,
    /// It offered device-auth and the check failed.
    Failed,
    /// Its agent does not offer device-auth (or it is not asked: `[identity] device-auth`).
    NotOffered,
}

/// What is known of a router's SUDI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sudi {
    /// The outcome.
    pub(crate) verdict: Verdict,
    /// Verified: what it proved (algorithm, root); otherwise why not.
    pub(crate) detail: String,
    /// SHA-256 of the proven certificate (hex): the same router proves the same one.
    pub(crate) fingerprint: Option<String>,
    /// The operator vouched for a router that could not prove its serial (`device resume`
    /// of IDENTITY_UNPROVEN).
    #[serde(default)]
    pub(crate) vouched: bool,
    /// When.
    pub(crate) at: DateTime<Local>,
}

impl Sudi {
    /// What a verified proof leaves in the record.
    pub(crate) fn proven(proof: crate::domain::sudi::Proof, now: DateTime<Local>) -> Sudi {
        Sudi {
            verdict: Verdict::Verified,
            detail: format!("{}, chains to {}", proof.algorithm, proof.root),
            fingerprint: Some(proof.fingerprint),
            vouched: false,
            at: now,
        }
    }

    /// A serial not proven (`Failed`, `NotOffered`), and why.
    pub(crate) fn unproven(verdict: Verdict, detail: String, now: DateTime<Local>) -> Sudi {
        Sudi {
            verdict,
            detail,
            fingerprint: None,
            vouched: false,
            at: now,
        }
    }

    /// Whether it proved its serial.
    pub(crate) fn verified(&self) -> bool {
        self.verdict == Verdict::Verified
    }
}

/// The record's identity as every view names it: `sudi-verified`, `sudi-failed`, or
/// `address-bound` (not offered, not asked, or not yet known), with what it rests on.
pub(crate) fn identity(dev: &Device) -> (&'static str, String) {
    let bound = dev
        .binding
        .as_ref()
        .map_or("no contact yet".to_string(), |b| {
            format!("bound to {}", b.ip)
        });
    let vouched = |s: &Sudi| {
        if s.vouched {
            "; vouched for by the operator"
        } else {
            ""
        }
    };
    match &dev.sudi {
        Some(s) if s.verdict == Verdict::Verified => ("sudi-verified", s.detail.clone()),
        Some(s) if s.verdict == Verdict::Failed => (
            "sudi-failed",
            format!("{}; {bound}{}", s.detail, vouched(s)),
        ),
        Some(s) => (
            "address-bound",
            format!("{}; {bound}{}", s.detail, vouched(s)),
        ),
        None => ("address-bound", bound),
    }
}

impl Claim {
    /// What of a claim must be on disk before the refusal leaves: who claimed, since when.
    /// The count and times are bookkeeping, saved with the next durable change (a flood of
    /// refused requests must not cost a disk write each).
    pub(crate) fn durable(&self) -> (IpAddr, &Option<String>, DateTime<Local>) {
        (self.ip, &self.mac, self.first)
    }
}

/// How often a WARN is repeated for a claim that goes on.
const WARN_EVERY_SECS: i64 = 60;

/// What a request from `ip` may do with the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// From the bound host (or the record's first contact, which binds it).
    Admitted,
    /// From another address our DHCP leased to the bound MAC: the binding moved there.
    Moved {
        /// The address it was bound to.
        from: IpAddr,
    },
    /// From another host: nothing may change but the claim.
    Refused {
        /// Where the serial is bound.
        bound: IpAddr,
        /// Whether this refusal deserves a WARN line (a new claimant, or a minute since).
        warn: bool,
    },
}

/// The operator's one-line view of a claim, e.g. for the status table and the log.
pub(crate) fn claim_text(dev: &Device) -> Option<String> {
    let c = dev.claim.as_ref()?;
    let bound = dev
        .binding
        .as_ref()
        .map_or("nothing".to_string(), |b| b.ip.to_string());
    Some(format!(
        "{} claimed from {}, bound to {bound} ({} refused, last {})",
        dev.serial,
        c.ip,
        c.count,
        super::bench::utc(c.last)
    ))
}

/// Decides whether a request for `dev` from `ip` (whose current lease from our DHCP, if any, is
/// for `mac`) may act on the record, and records the binding, a move or the claim.
pub(crate) fn admit(
    dev: &mut Device,
    ip: IpAddr,
    mac: Option<&str>,
    now: DateTime<Local>,
) -> Admission {
    // A record from before bindings is bound where it last talked from.
    let first = dev.ip.unwrap_or(ip);
    let lease_mac = dev
        .lease
        .as_ref()
        .filter(|l| IpAddr::V4(l.ip) == first)
        .map(|l| l.mac.clone());
    let binding = dev.binding.get_or_insert_with(|| Binding {
        ip: first,
        mac: if first == ip {
            mac.map(str::to_string)
        } else {
            lease_mac
        },
        since: now,
    });
    let same_mac = matches!((&binding.mac, mac), (Some(b), Some(m)) if b == m);
    let other_mac = matches!((&binding.mac, mac), (Some(b), Some(m)) if b != m);
    if binding.ip == ip && !other_mac {
        if binding.mac.is_none()
            && let Some(m) = mac
        {
            binding.mac = Some(m.to_string());
            dev.log(now, format!("bound to MAC {m} (its lease from our DHCP)"));
        }
        return Admission::Admitted;
    }
    let verified = dev.sudi.as_ref().is_some_and(Sudi::verified);
    if binding.ip != ip && same_mac && !verified {
        let from = binding.ip;
        binding.ip = ip;
        binding.since = now;
        dev.log(
            now,
            format!(
                "moved from {from} to {ip}: our DHCP leased {ip} to its MAC {}",
                mac.unwrap_or_default()
            ),
        );
        return Admission::Moved { from };
    }
    let bound = binding.ip;
    let warn = match dev.claim.as_mut() {
        Some(c) if c.ip == ip => {
            c.count += 1;
            c.last = now;
            c.mac = mac.map(str::to_string);
            let due = (now - c.warned).num_seconds() >= WARN_EVERY_SECS;
            if due {
                c.warned = now;
            }
            due
        }
        _ => {
            dev.claim = Some(Claim {
                ip,
                mac: mac.map(str::to_string),
                first: now,
                last: now,
                count: 1,
                warned: now,
                challenge: None,
            });
            let why = if verified {
                format!(
                    "it is bound to {bound} and proved its SUDI; {ip} is sent a SUDI challenge and is moved there only if it proves the same certificate"
                )
            } else if other_mac {
                format!(
                    "our DHCP now leases {ip} to another MAC ({})",
                    mac.unwrap_or_default()
                )
            } else {
                format!("it is bound to {bound}")
            };
            dev.log(
                now,
                format!(
                    "claimed from {ip} and refused: {why}; if the router really moved, \
                     `pnp-appliance device accept-move {}`",
                    dev.serial
                ),
            );
            true
        }
    };
    Admission::Refused { bound, warn }
}

/// Whether `ip` may fetch the day-0 config `file` of `dev` now: only its bound address, only
/// while that file's config-upgrade job is in flight and younger than `lifetime`, and (for the
/// per-job URL) only with that job's token. `Err` says why not, for the log.
pub(crate) fn may_fetch_config(
    dev: &Device,
    ip: IpAddr,
    token: Option<&str>,
    file: &str,
    now: DateTime<Local>,
    lifetime: std::time::Duration,
) -> Result<(), &'static str> {
    if dev.binding.as_ref().map(|b| b.ip) != Some(ip) {
        return Err("requested from an address the router is not bound to");
    }
    let Some(p) = &dev.pending else {
        return Err("no config-upgrade job in flight");
    };
    let crate::domain::job::Job::ConfigUpgrade { file: f, url } = &p.job else {
        return Err("no config-upgrade job in flight");
    };
    if f != file {
        return Err("not the file of its config-upgrade job");
    }
    if let Some(token) = token {
        // `.../day0/<SERIAL>/<token>/<file>`
        let issued = url.rsplit('/').nth(1).unwrap_or_default();
        if !same_secret(issued, token) {
            return Err("not the token of its config-upgrade job");
        }
    }
    let age = (now - p.sent_at).to_std().unwrap_or_default();
    if age > lifetime {
        return Err("the config-upgrade job is older than [limits] config-url-lifetime");
    }
    Ok(())
}

/// Whether `given` is the secret `expected`, in time that does not depend on where they differ
/// (tokens in URLs and headers).
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Operator action `accept-move`: binds the serial to the host that claimed it.
pub(crate) fn accept_move(dev: &mut Device, now: DateTime<Local>) -> Result<String, String> {
    if let Some(s) = dev.sudi.as_ref().filter(|s| s.verified())
        && let Some(c) = &dev.claim
    {
        return Err(format!(
            "{} proved its serial by its SUDI ({}); {} has not proved it, so it cannot take the record. If the router really is there, it proves its SUDI at its next poll and moves by itself; if it cannot, check it is the same chassis, then `pnp-appliance device forget {}` to start it over",
            dev.serial, s.detail, c.ip, dev.serial
        ));
    }
    let Some(claim) = dev.claim.take() else {
        let bound = dev
            .binding
            .as_ref()
            .map_or("nothing yet".to_string(), |b| b.ip.to_string());
        return Err(format!(
            "{} has no claim from another address to accept (bound to {bound})",
            dev.serial
        ));
    };
    let from = dev.binding.as_ref().map(|b| b.ip);
    dev.binding = Some(Binding {
        ip: claim.ip,
        mac: claim.mac,
        since: now,
    });
    // Whatever was in flight was sent to the old host.
    dev.pending = None;
    let from = from.map_or("nothing".to_string(), |ip| ip.to_string());
    dev.log(
        now,
        format!("operator accepted the move from {from} to {}", claim.ip),
    );
    Ok(format!(
        "{}: now bound to {} (was {from}); it continues at its next poll",
        dev.serial, claim.ip
    ))
}

/// The device-auth job for the claimant `ip` of `dev`, when one is due: one challenge out at a
/// time, at most one a minute. `token` is a fresh random value (hex), `correlator` the
/// claimant's work request's.
pub(crate) fn challenge_claimant(
    dev: &mut Device,
    ip: IpAddr,
    token: &str,
    correlator: &str,
    now: DateTime<Local>,
) -> Option<crate::domain::job::Job> {
    let claim = dev.claim.as_mut().filter(|c| c.ip == ip)?;
    if claim
        .challenge
        .as_ref()
        .is_some_and(|c| (now - c.sent).num_seconds() < CHALLENGE_EVERY_SECS)
    {
        return None;
    }
    claim.challenge = Some(ClaimChallenge {
        text: token.to_string(),
        correlator: correlator.to_string(),
        sent: now,
    });
    Some(crate::domain::job::Job::DeviceAuth {
        challenge: token.to_string(),
    })
}

/// What a claimant's device-auth answer came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimProof {
    /// Not an answer to a challenge out to this claimant: ignored.
    NotAsked,
    /// It proved the record's SUDI: the binding moved there.
    Moved {
        /// The address it was bound to.
        from: Option<IpAddr>,
    },
    /// It proved the serial, which the bound host never did: the record is the claimant's now,
    /// and the workflow starts over.
    TookOver {
        /// The address that held the record without proof.
        from: Option<IpAddr>,
    },
    /// The check failed (or proved another certificate): nothing moved.
    Refused {
        /// Why, for the log.
        why: String,
    },
}

/// Reads the claimant `ip`'s answer to its challenge: `check` verifies it against the
/// challenge text (the workflow's SUDI check with the trust roots) and gives the proof.
pub(crate) fn answer_claim(
    dev: &mut Device,
    ip: IpAddr,
    correlator: &str,
    now: DateTime<Local>,
    check: impl FnOnce(&str) -> Result<crate::domain::sudi::Proof, String>,
) -> ClaimProof {
    let Some(claim) = dev.claim.as_mut().filter(|c| c.ip == ip) else {
        return ClaimProof::NotAsked;
    };
    let Some(ch) = claim.challenge.take_if(|c| c.correlator == correlator) else {
        return ClaimProof::NotAsked;
    };
    let proof = match check(&ch.text) {
        Ok(p) => p,
        Err(why) => {
            dev.log(
                now,
                format!("claim from {ip} failed the SUDI check and stays refused: {why}"),
            );
            return ClaimProof::Refused { why };
        }
    };
    let from = dev.binding.as_ref().map(|b| b.ip);
    let held = dev.sudi.as_ref().filter(|s| s.verified());
    if let Some(s) = held
        && s.fingerprint.as_deref() != Some(proof.fingerprint.as_str())
    {
        let why = format!(
            "it proved another SUDI certificate (sha256 {}) than the record's (sha256 {})",
            short(&proof.fingerprint),
            short(s.fingerprint.as_deref().unwrap_or_default())
        );
        dev.log(now, format!("claim from {ip} refused: {why}"));
        return ClaimProof::Refused { why };
    }
    let claim = dev.claim.take();
    let moved = held.is_some();
    let sudi = Sudi::proven(proof, now);
    let was = from.map_or("nothing".to_string(), |f| f.to_string());
    if !moved {
        let state = dev.state;
        dev.start_over();
        dev.log(
            now,
            format!(
                "{ip} proved serial {} by its SUDI; {was} had it bound by address only and never proved it: the record is {ip}'s now and starts over (was {state})",
                dev.serial
            ),
        );
    } else {
        dev.log(
            now,
            format!("moved from {was} to {ip}: it proved the same SUDI certificate"),
        );
    }
    dev.binding = Some(Binding {
        ip,
        mac: claim.and_then(|c| c.mac),
        since: now,
    });
    dev.sudi = Some(sudi);
    dev.pending = None;
    if moved {
        ClaimProof::Moved { from }
    } else {
        ClaimProof::TookOver { from }
    }
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const A: &str = "198.51.100.10";
    const B: &str = "198.51.100.66";
    const C: &str = "198.51.100.11";
    const MAC: &str = "52:54:00:00:00:01";
    const OTHER: &str = "52:54:00:00:00:02";

    #[test]
    fn admission_table() {
        let t0 = Local::now();
        // (bound ip, bound mac, request ip, request mac, admitted?, moved?)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            bool,
            bool,
        );
        let cases: &[Case] = &[
            (A, None, A, None, true, false),
            (A, Some(MAC), A, Some(MAC), true, false),
            (A, Some(MAC), A, None, true, false),
            // The bound address now leased by our DHCP to another MAC.
            (A, Some(MAC), A, Some(OTHER), false, false),
            // Another address, no lease or another MAC: refused.
            (A, None, B, None, false, false),
            (A, Some(MAC), B, None, false, false),
            (A, Some(MAC), B, Some(OTHER), false, false),
            (A, None, B, Some(MAC), false, false),
            // Back from its reload at another address, same MAC through our DHCP: moves.
            (A, Some(MAC), C, Some(MAC), true, true),
        ];
        for &(bip, bmac, rip, rmac, admitted, moved) in cases {
            let mut d = Device::new("S", "u", "p", "v", t0);
            d.binding = Some(Binding {
                ip: ip(bip),
                mac: bmac.map(str::to_string),
                since: t0,
            });
            let got = admit(&mut d, ip(rip), rmac, t0);
            let case = format!("{bip} {bmac:?} <- {rip} {rmac:?}: {got:?}");
            match got {
                Admission::Admitted => assert!(admitted && !moved, "{case}"),
                Admission::Moved { from } => {
                    assert!(moved, "{case}");
                    assert_eq!(from, ip(bip));
                    assert_eq!(d.binding.as_ref().unwrap().ip, ip(rip));
                }
                Admission::Refused { bound, warn } => {
                    assert!(!admitted, "{case}");
                    assert_eq!(bound, ip(bip));
                    assert!(warn);
                    assert_eq!(d.binding.as_ref().unwrap().ip, ip(bip), "{case}");
                    assert_eq!(d.claim.as_ref().unwrap().ip, ip(rip));
                }
            }
        }
    }

    #[test]
    fn first_contact_binds_and_legacy_records_bind_where_they_last_talked() {
        let t0 = Local::now();
        let mut d = Device::new("S", "u", "p", "v", t0);
        assert_eq!(admit(&mut d, ip(A), Some(MAC), t0), Admission::Admitted);
        let b = d.binding.clone().unwrap();
        assert_eq!((b.ip, b.mac.as_deref()), (ip(A), Some(MAC)));
        // A record written before bindings existed: bound to its last address, so a
        // spoofer cannot be first after the upgrade.
        let mut old = Device::new("S", "u", "p", "v", t0);
        old.ip = Some(ip(A));
        assert!(matches!(
            admit(&mut old, ip(B), None, t0),
            Admission::Refused { .. }
        ));
        assert_eq!(old.binding.unwrap().ip, ip(A));
    }

    #[test]
    fn a_claim_is_counted_warned_once_a_minute_and_accepted_by_the_operator() {
        let t0 = Local::now();
        let mut d = Device::new("S", "u", "p", "v", t0);
        admit(&mut d, ip(A), None, t0);
        let mut warns = 0;
        for i in 0..300 {
            let now = t0 + chrono::Duration::seconds(i / 2);
            if let Admission::Refused { warn: true, .. } = admit(&mut d, ip(B), None, now) {
                warns += 1;
            }
        }
        // 150 s of refusals: at 0, 60, 120.
        assert_eq!(warns, 3);
        assert_eq!(d.claim.as_ref().unwrap().count, 300);
        // One history line for the claim, not 300: the history cannot be flushed this way.
        assert_eq!(
            d.history
                .iter()
                .filter(|e| e.text.contains("claimed"))
                .count(),
            1
        );
        assert!(
            claim_text(&d)
                .unwrap()
                .contains("claimed from 198.51.100.66, bound to 198.51.100.10")
        );
        let msg = accept_move(&mut d, t0).unwrap();
        assert!(msg.contains("now bound to 198.51.100.66"), "{msg}");
        assert_eq!(admit(&mut d, ip(B), None, t0), Admission::Admitted);
        assert!(matches!(
            admit(&mut d, ip(A), None, t0),
            Admission::Refused { .. }
        ));
        assert!(accept_move(&mut Device::new("T", "u", "p", "v", t0), t0).is_err());
    }
}
