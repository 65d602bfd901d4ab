//! Address pool and lease table, as plain data with pure operations.
//!
//! Owns which address a client gets (its previous one, its reservation, the one it asks for, or
//! the lowest free one), binding, release and quarantine of declined addresses (RFC 2131 §3.1,
//! §4.3). Time is passed in (Unix seconds), so every rule is unit-tested; the DHCP task persists
//! the table after each change that must survive a restart.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// How long an offer holds an address (a client REQUESTs within a second or two; a flood of
/// DISCOVERs must not hold the pool for long).
pub(crate) const OFFER_SECS: u64 = 30;
/// A bound lease whose address never spoke PnP to us within this time may be taken back when
/// the pool is exhausted: a real router starts PnP discovery seconds after its lease.
pub(crate) const UNCONFIRMED_SECS: u64 = 300;
/// A DECLINE is honoured only this soon after the address was offered or bound (RFC 2131
/// §4.4.1: the client probes the address right after the ACK), so a forged one cannot take a
/// working router's address.
pub(crate) const DECLINE_WINDOW_SECS: u64 = 30;
/// How long a declined (conflicting) address is kept out of the pool.
pub(crate) const QUARANTINE_SECS: u64 = 3600;

/// Addresses we may hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pool {
    /// Inclusive ranges.
    pub(crate) ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Never handed out (our own address).
    pub(crate) exclude: Vec<Ipv4Addr>,
    /// MAC (`aa:bb:...`) → fixed address.
    pub(crate) reservations: HashMap<String, Ipv4Addr>,
}

impl Pool {
    /// Whether `ip` may be leased dynamically.
    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        !self.exclude.contains(&ip)
            && !self.reservations.values().any(|r| *r == ip)
            && self.ranges.iter().any(|(a, b)| *a <= ip && ip <= *b)
    }

    fn candidates(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.ranges
            .iter()
            .flat_map(|(a, b)| (u32::from(*a)..=u32::from(*b)).map(Ipv4Addr::from))
            .filter(|ip| self.contains(*ip))
    }

    /// The pool as an operator reads it: `198.51.100.2-198.51.100.254 (without 198.51.100.1)`,
    /// the excluded addresses (ours) named.
    pub(crate) fn describe(&self) -> String {
        let ranges: Vec<String> = self
            .ranges
            .iter()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect();
        let inside: Vec<String> = self
            .exclude
            .iter()
            .filter(|ip| self.ranges.iter().any(|(a, b)| *a <= **ip && **ip <= *b))
            .map(|ip| ip.to_string())
            .collect();
        match inside.is_empty() {
            true => ranges.join(", "),
            false => format!(
                "{} (without {}: ours)",
                ranges.join(", "),
                inside.join(", ")
            ),
        }
    }

    /// Number of dynamic addresses.
    pub(crate) fn size(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(a, b)| u64::from(u32::from(*b)) - u64::from(u32::from(*a)) + 1)
            .sum()
    }
}

/// What a lease is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LeaseState {
    /// Offered, not yet requested.
    Offered,
    /// Acknowledged.
    Bound,
    /// Declined by a client: someone else uses it.
    Declined,
}

/// One address's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lease {
    /// The address.
    pub(crate) ip: Ipv4Addr,
    /// Client key (`id:<hex>` or `hw:<mac>`).
    pub(crate) client: String,
    /// Hardware address.
    pub(crate) mac: String,
    /// Expiry, Unix seconds.
    pub(crate) expires: u64,
    /// State.
    pub(crate) state: LeaseState,
    /// When it was offered or (re)bound, Unix seconds.
    #[serde(default)]
    pub(crate) since: u64,
    /// The address spoke PnP to us while this lease held it: a router, not a flood.
    #[serde(default)]
    pub(crate) confirmed: bool,
    /// The PID the client sent in option 124 when it was bound.
    #[serde(default)]
    pub(crate) pid: Option<String>,
}

/// Why no address could be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LeaseError {
    /// Every address is taken.
    #[error("address pool exhausted ({0} addresses): widen [dhcp] pool or shorten lease-time")]
    Exhausted(u64),
    /// The requested address is not ours or belongs to someone else.
    #[error("{0} cannot be leased to this client: {1}")]
    NotYours(Ipv4Addr, &'static str),
}

/// A bound lease as `bind` left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    /// Expiry, Unix seconds.
    pub(crate) expires: u64,
    /// Whether the table changed (and must be saved before the ACK).
    pub(crate) changed: bool,
}

/// The lease table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Leases {
    /// By address.
    pub(crate) by_ip: BTreeMap<Ipv4Addr, Lease>,
}

impl Leases {
    fn held_by(&self, client: &str, now: u64) -> Option<&Lease> {
        self.by_ip
            .values()
            .find(|l| l.client == client && l.state != LeaseState::Declined && l.expires > now)
    }

    fn free(&self, ip: Ipv4Addr, client: &str, now: u64) -> bool {
        match self.by_ip.get(&ip) {
            None => true,
            Some(l) if l.state == LeaseState::Declined => l.expires <= now,
            // A returning client gets its address back even after expiry, unless it was
            // handed to someone else meanwhile.
            Some(l) => l.client == client || l.expires <= now,
        }
    }

    /// The pool is exhausted: takes back the oldest bound lease whose address never spoke PnP
    /// within [`UNCONFIRMED_SECS`] (a client that took an address and is no router).
    fn reclaim(&mut self, pool: &Pool, now: u64) -> Option<Ipv4Addr> {
        let ip = self
            .by_ip
            .values()
            .filter(|l| {
                l.state == LeaseState::Bound
                    && !l.confirmed
                    && pool.contains(l.ip)
                    && l.since + UNCONFIRMED_SECS <= now
            })
            .min_by_key(|l| l.since)
            .map(|l| l.ip)?;
        self.by_ip.remove(&ip);
        Some(ip)
    }

    /// Marks the lease of `ip` as held by a router that speaks PnP (called by the PnP server
    /// for every exchange from a leased address).
    pub(crate) fn confirm(&mut self, ip: Ipv4Addr, now: u64) {
        if let Some(l) = self.by_ip.get_mut(&ip)
            && l.state == LeaseState::Bound
            && l.expires > now
        {
            l.confirmed = true;
        }
    }

    /// Notes the PID a client sent for its lease of `ip`.
    pub(crate) fn set_pid(&mut self, ip: Ipv4Addr, pid: &str) {
        if let Some(l) = self.by_ip.get_mut(&ip) {
            l.pid = Some(pid.to_string());
        }
    }

    /// Bound leases whose address has not spoken PnP yet (routers that got an address and are
    /// still to reach the PnP server, or never will: a wrong option 43, a firewall), oldest
    /// first.
    pub(crate) fn waiting(&self, now: u64) -> Vec<&Lease> {
        let mut w: Vec<&Lease> = self
            .by_ip
            .values()
            .filter(|l| l.state == LeaseState::Bound && l.expires > now && !l.confirmed)
            .collect();
        w.sort_by_key(|l| l.since);
        w
    }

    /// Whether `client` has any lease record (a returning client, not a new one).
    pub(crate) fn knows(&self, client: &str) -> bool {
        self.by_ip.values().any(|l| l.client == client)
    }

    /// Whether `client` holds a lease record for `ip` (INIT-REBOOT: RFC 2131 §4.3.2 — a server
    /// with no record of the client stays silent).
    pub(crate) fn has_record(&self, client: &str, ip: Ipv4Addr) -> bool {
        self.by_ip
            .get(&ip)
            .is_some_and(|l| l.client == client && l.state != LeaseState::Declined)
    }

    /// (bound now, of which confirmed by PnP).
    pub(crate) fn counts(&self, now: u64) -> (usize, usize) {
        let bound = self
            .by_ip
            .values()
            .filter(|l| l.state == LeaseState::Bound && l.expires > now);
        bound.fold((0, 0), |(b, c), l| (b + 1, c + usize::from(l.confirmed)))
    }

    fn allowed(&self, pool: &Pool, mac: &str, ip: Ipv4Addr) -> bool {
        pool.reservations.get(mac) == Some(&ip) || pool.contains(ip)
    }

    /// Chooses an address for a DISCOVER and holds it for [`OFFER_SECS`].
    pub(crate) fn offer(
        &mut self,
        pool: &Pool,
        client: &str,
        mac: &str,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Result<Ipv4Addr, LeaseError> {
        let previous = self
            .held_by(client, now)
            .map(|l| l.ip)
            .or_else(|| {
                self.by_ip
                    .values()
                    .find(|l| l.client == client && l.state != LeaseState::Declined)
                    .map(|l| l.ip)
            })
            .filter(|ip| self.allowed(pool, mac, *ip) && self.free(*ip, client, now));
        let ip = previous
            .or_else(|| pool.reservations.get(mac).copied())
            .or_else(|| requested.filter(|ip| pool.contains(*ip) && self.free(*ip, client, now)))
            .or_else(|| pool.candidates().find(|ip| self.free(*ip, client, now)))
            .or_else(|| self.reclaim(pool, now))
            .ok_or(LeaseError::Exhausted(pool.size()))?;
        let keep_bound = self
            .by_ip
            .get(&ip)
            .is_some_and(|l| l.client == client && l.state == LeaseState::Bound && l.expires > now);
        if !keep_bound {
            self.put(
                ip,
                (client, mac),
                now,
                now + OFFER_SECS,
                LeaseState::Offered,
            );
        }
        Ok(ip)
    }

    /// Binds `ip` to the client for `secs` (REQUEST); errors mean NAK.
    ///
    /// Lease caching (ISC dhcpd's `dhcp-cache-threshold`, Kea's `cache-threshold`): when the
    /// client already holds this address and its lease is younger than `cache_secs`, the lease
    /// is returned unchanged (the ACK carries the time left) and nothing needs writing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bind(
        &mut self,
        pool: &Pool,
        client: &str,
        mac: &str,
        ip: Ipv4Addr,
        secs: u64,
        cache_secs: u64,
        now: u64,
    ) -> Result<Bound, LeaseError> {
        if !self.allowed(pool, mac, ip) {
            return Err(LeaseError::NotYours(ip, "not in the pool"));
        }
        if !self.free(ip, client, now) {
            return Err(LeaseError::NotYours(ip, "leased to another client"));
        }
        if let Some(l) = self.by_ip.get(&ip)
            && l.client == client
            && l.mac == mac
            && l.state == LeaseState::Bound
            && l.expires > now
            && l.expires <= now + secs
            // started = expires - secs; age = now - started
            && (now + secs).saturating_sub(l.expires) < cache_secs
        {
            return Ok(Bound {
                expires: l.expires,
                changed: false,
            });
        }
        // One address per client: drop its other leases.
        self.by_ip
            .retain(|a, l| *a == ip || l.client != client || l.state == LeaseState::Declined);
        self.put(ip, (client, mac), now, now + secs, LeaseState::Bound);
        Ok(Bound {
            expires: now + secs,
            changed: true,
        })
    }

    /// Forgets the offer a client made to someone else's server (REQUEST with another server-id).
    pub(crate) fn drop_offer(&mut self, client: &str) {
        self.by_ip
            .retain(|_, l| !(l.client == client && l.state == LeaseState::Offered));
    }

    /// RELEASE: frees the address when the lease holder (client id and MAC) releases it.
    pub(crate) fn release(&mut self, client: &str, mac: &str, ip: Ipv4Addr) -> bool {
        match self.by_ip.get(&ip) {
            Some(l) if l.client == client && l.mac == mac && l.state == LeaseState::Bound => {
                self.by_ip.remove(&ip);
                true
            }
            _ => false,
        }
    }

    /// DECLINE: the address is in use by someone else; keep it out for [`QUARANTINE_SECS`].
    /// Honoured only from the client it was offered or bound to, within
    /// [`DECLINE_WINDOW_SECS`] of that; returns whether it was.
    pub(crate) fn decline(&mut self, client: &str, mac: &str, ip: Ipv4Addr, now: u64) -> bool {
        let fresh = self.by_ip.get(&ip).is_some_and(|l| {
            l.client == client
                && l.mac == mac
                && l.state != LeaseState::Declined
                && now.saturating_sub(l.since) <= DECLINE_WINDOW_SECS
        });
        if fresh {
            self.put(
                ip,
                (client, mac),
                now,
                now + QUARANTINE_SECS,
                LeaseState::Declined,
            );
        }
        fresh
    }

    /// Records a lease from `now`; a client renewing its own bound address keeps its PnP
    /// confirmation.
    fn put(
        &mut self,
        ip: Ipv4Addr,
        (client, mac): (&str, &str),
        now: u64,
        expires: u64,
        state: LeaseState,
    ) {
        let confirmed = state == LeaseState::Bound
            && self
                .by_ip
                .get(&ip)
                .is_some_and(|l| l.client == client && l.state == LeaseState::Bound && l.confirmed);
        let since = now;
        let pid = self
            .by_ip
            .get(&ip)
            .filter(|l| l.client == client)
            .and_then(|l| l.pid.clone());
        let lease = Lease {
            ip,
            client: client.to_string(),
            mac: mac.to_string(),
            expires,
            state,
            since,
            confirmed,
            pid,
        };
        self.by_ip.insert(ip, lease);
    }

    /// The bound lease of `ip`, if current.
    pub(crate) fn bound(&self, ip: Ipv4Addr, now: u64) -> Option<&Lease> {
        self.by_ip
            .get(&ip)
            .filter(|l| l.state == LeaseState::Bound && l.expires > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool {
            ranges: vec![(
                Ipv4Addr::new(198, 51, 100, 1),
                Ipv4Addr::new(198, 51, 100, 4),
            )],
            exclude: vec![Ipv4Addr::new(198, 51, 100, 1)],
            reservations: HashMap::from([(
                "aa:aa:aa:aa:aa:aa".to_string(),
                Ipv4Addr::new(198, 51, 100, 50),
            )]),
        }
    }
    const A: &str = "hw:00:00:00:00:00:0a";
    const B: &str = "hw:00:00:00:00:00:0b";

    #[test]
    fn offers_skip_our_address_and_return_the_same_one() {
        let mut l = Leases::default();
        let p = pool();
        let ip = l.offer(&p, A, "a", None, 0).unwrap();
        assert_eq!(ip, Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(l.offer(&p, A, "a", None, 1).unwrap(), ip);
        l.bind(&p, A, "a", ip, 100, 0, 2).unwrap();
        // After a restart (table reloaded) and even after expiry, the client gets it again.
        let mut reloaded: Leases =
            serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(reloaded.offer(&p, A, "a", None, 500).unwrap(), ip);
        // Another client asking for it while it is bound gets a different address.
        assert_eq!(
            l.offer(&p, B, "b", Some(ip), 3).unwrap(),
            Ipv4Addr::new(198, 51, 100, 3)
        );
    }

    #[test]
    fn requested_address_reservation_exhaustion() {
        let mut l = Leases::default();
        let p = pool();
        assert_eq!(
            l.offer(&p, A, "a", Some(Ipv4Addr::new(198, 51, 100, 4)), 0)
                .unwrap(),
            Ipv4Addr::new(198, 51, 100, 4)
        );
        assert_eq!(
            l.offer(&p, B, "aa:aa:aa:aa:aa:aa", None, 0).unwrap(),
            Ipv4Addr::new(198, 51, 100, 50)
        );
        // Our own address is never offered, even when asked for.
        assert_ne!(
            l.offer(&p, "c", "c", Some(Ipv4Addr::new(198, 51, 100, 1)), 0)
                .unwrap(),
            Ipv4Addr::new(198, 51, 100, 1)
        );
        l.offer(&p, "d", "d", None, 0).unwrap();
        assert_eq!(
            l.offer(&p, "e", "e", None, 0),
            Err(LeaseError::Exhausted(4))
        );
        // Offers expire.
        assert!(l.offer(&p, "e", "e", None, OFFER_SECS + 1).is_ok());
    }

    #[test]
    fn bind_rules() {
        let mut l = Leases::default();
        let p = pool();
        let ip2 = Ipv4Addr::new(198, 51, 100, 2);
        l.bind(&p, A, "a", ip2, 100, 0, 0).unwrap();
        assert!(matches!(
            l.bind(&p, B, "b", ip2, 100, 0, 1),
            Err(LeaseError::NotYours(_, "leased to another client"))
        ));
        assert!(matches!(
            l.bind(&p, B, "b", Ipv4Addr::new(203, 0, 113, 5), 100, 0, 1),
            Err(LeaseError::NotYours(_, "not in the pool"))
        ));
        assert!(
            l.bind(&p, B, "b", Ipv4Addr::new(198, 51, 100, 50), 100, 0, 1)
                .is_err(),
            "reserved for another MAC"
        );
        // Renewal extends; moving to another address drops the old lease.
        l.bind(&p, A, "a", ip2, 100, 0, 50).unwrap();
        assert_eq!(l.bound(ip2, 120).unwrap().expires, 150);
        l.bind(&p, A, "a", Ipv4Addr::new(198, 51, 100, 3), 100, 0, 60)
            .unwrap();
        assert!(l.bound(ip2, 61).is_none());
        assert!(
            !l.release(A, "z", Ipv4Addr::new(198, 51, 100, 3)),
            "another MAC"
        );
        assert!(
            !l.release(B, "b", Ipv4Addr::new(198, 51, 100, 3)),
            "another client"
        );
        assert!(l.release(A, "a", Ipv4Addr::new(198, 51, 100, 3)));
    }

    #[test]
    fn declined_addresses_are_quarantined() {
        let mut l = Leases::default();
        let p = pool();
        let ip = l.offer(&p, A, "a", None, 0).unwrap();
        assert!(!l.decline(B, "b", ip, 0), "not its address");
        assert!(l.decline(A, "a", ip, 0));
        let next = l.offer(&p, A, "a", None, 1).unwrap();
        assert_ne!(next, ip);
        assert!(l.bind(&p, B, "b", ip, 10, 0, 2).is_err());
        assert!(l.bind(&p, B, "b", ip, 10, 0, QUARANTINE_SECS + 1).is_ok());
    }
}
