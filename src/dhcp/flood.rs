//! Offer limits and the exhaustion report of the DHCP responder, as plain data over passed-in
//! time.
//!
//! A flood of DISCOVERs from random PnP-looking MACs took a 20-address pool in 5 s (a real
//! router then got nothing) and wrote a WARN per packet. Now each client gets at most
//! `[dhcp] offers-per-client` offers per minute (6), clients we have no record of share a budget of offers per
//! 10 s window (an eighth of the pool, at least 4: a bench of routers powered on together is
//! served within a minute or two, a burst cannot take the pool), and what was not answered is
//! counted and reported once a minute. Known clients (renewing, rebooting) are not held to the
//! new-client budget.

use std::collections::{HashMap, HashSet};

/// The new-client budget's window, seconds.
pub(crate) const WINDOW_SECS: u64 = 10;
/// How often unanswered DISCOVERs are reported, seconds.
pub(crate) const REPORT_SECS: u64 = 60;
/// The first report after a quiet spell comes this soon after its first event, so it holds
/// the burst's counts rather than its first packet.
pub(crate) const FIRST_REPORT_SECS: u64 = 5;

/// Why a DISCOVER got no offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The client asked more than its offers per minute.
    ClientRate,
    /// The window's budget for new clients is spent.
    NewClients,
    /// No address left (nothing reclaimable either).
    Exhausted,
}

#[derive(Debug, Default)]
struct Counts {
    client_rate: u64,
    new_clients: u64,
    exhausted: u64,
    clients: HashSet<String>,
    forged: u64,
}

/// The limiter's state.
#[derive(Debug)]
pub(crate) struct Guard {
    budget: u32,
    per_client_limit: u32,
    per_client: HashMap<String, (u64, u32)>,
    window: (u64, u32),
    counts: Counts,
    last_report: Option<u64>,
    /// When the counts gathered since the last report are due.
    next_report: Option<u64>,
}

impl Guard {
    /// For a pool of `pool_size` dynamic addresses; `budget`: new-client offers per window
    /// (`None`: an eighth of the pool, at least 4).
    /// `per_client`: offers one client gets per minute.
    pub(crate) fn new(pool_size: u64, budget: Option<u32>, per_client: u32) -> Guard {
        Guard {
            per_client_limit: per_client,
            budget: budget
                .unwrap_or_else(|| u32::try_from(pool_size / 8).unwrap_or(u32::MAX).max(4)),
            per_client: HashMap::new(),
            window: (0, 0),
            counts: Counts::default(),
            last_report: None,
            next_report: None,
        }
    }

    /// Whether a DISCOVER from `client` (`known`: it has a lease record) may be offered an
    /// address at `now`; counts it.
    pub(crate) fn may_offer(
        &mut self,
        client: &str,
        known: bool,
        now: u64,
    ) -> Result<(), Unanswered> {
        if self.per_client.len() > 16_384 {
            self.per_client.retain(|_, (start, _)| now < *start + 60);
        }
        let c = self
            .per_client
            .entry(client.to_string())
            .or_insert((now, 0));
        if now >= c.0 + 60 {
            *c = (now, 0);
        }
        if c.1 >= self.per_client_limit {
            return Err(self.unanswered(client, Unanswered::ClientRate, now));
        }
        if !known {
            if now >= self.window.0 + WINDOW_SECS {
                self.window = (now, 0);
            }
            if self.window.1 >= self.budget {
                return Err(self.unanswered(client, Unanswered::NewClients, now));
            }
            self.window.1 += 1;
        }
        if let Some(c) = self.per_client.get_mut(client) {
            c.1 += 1;
        }
        Ok(())
    }

    /// Schedules the report for an event counted at `now`.
    fn counted(&mut self, now: u64) {
        if self.next_report.is_none() {
            let soon = now + FIRST_REPORT_SECS;
            self.next_report = Some(self.last_report.map_or(soon, |t| soon.max(t + REPORT_SECS)));
        }
    }

    /// Counts a DISCOVER left unanswered for `why` at `now`.
    pub(crate) fn unanswered(&mut self, client: &str, why: Unanswered, now: u64) -> Unanswered {
        self.counted(now);
        match why {
            Unanswered::ClientRate => self.counts.client_rate += 1,
            Unanswered::NewClients => self.counts.new_clients += 1,
            Unanswered::Exhausted => self.counts.exhausted += 1,
        }
        if self.counts.clients.len() < 100_000 {
            self.counts.clients.insert(client.to_string());
        }
        why
    }

    /// Whether a report is due at `now` (cheap: the caller then counts the leases).
    pub(crate) fn due(&self, now: u64) -> bool {
        self.next_report.is_some_and(|t| now >= t)
    }

    /// Counts a RELEASE or DECLINE ignored at `now` because it did not come from the lease
    /// holder.
    pub(crate) fn forged(&mut self, now: u64) {
        self.counted(now);
        self.counts.forged += 1;
    }

    /// The report due at `now`, if anything went unanswered since the last one; `bound` and
    /// `confirmed` are the lease counts, `pool` the pool's size.
    pub(crate) fn report(
        &mut self,
        now: u64,
        pool: u64,
        (bound, confirmed): (usize, usize),
    ) -> Option<String> {
        if !self.due(now) {
            return None;
        }
        self.next_report = None;
        let c = std::mem::take(&mut self.counts);
        let total = c.client_rate + c.new_clients + c.exhausted;
        if total == 0 && c.forged == 0 {
            return None;
        }
        self.last_report = Some(now);
        let mut parts = Vec::new();
        if total > 0 {
            parts.push(format!(
                "{total} DISCOVERs from {} clients unanswered in the last minute ({} over {} per client per minute, {} over the new-client budget of {} per {WINDOW_SECS} s, {} with the pool exhausted); {bound}/{pool} addresses leased, {confirmed} of them to routers that spoke PnP. A flood from many MACs: find its port on the switch (a separate VLAN stops it); a real shortage: widen [dhcp] pool",
                c.clients.len(),
                c.client_rate,
                self.per_client_limit,
                c.new_clients,
                self.budget,
                c.exhausted,
            ));
        }
        if c.forged > 0 {
            parts.push(format!(
                "{} RELEASE/DECLINE ignored: not from the lease holder (a forged one would free or block a router's address)",
                c.forged
            ));
        }
        Some(format!("DHCP: {}", parts.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_new_client_budget_and_one_report_a_minute() {
        let mut g = Guard::new(20, None, 6);
        // Budget 4 per window for a 20-address pool.
        for i in 0..4 {
            assert_eq!(g.may_offer(&format!("new{i}"), false, 100), Ok(()));
        }
        assert_eq!(g.may_offer("new9", false, 101), Err(Unanswered::NewClients));
        // A known client is not held to it; the next window has a new budget.
        assert_eq!(g.may_offer("known", true, 101), Ok(()));
        assert_eq!(g.may_offer("new9", false, 100 + WINDOW_SECS), Ok(()));
        // Per client: six a minute.
        for _ in 0..5 {
            assert_eq!(g.may_offer("known", true, 102), Ok(()));
        }
        assert_eq!(g.may_offer("known", true, 103), Err(Unanswered::ClientRate));
        assert_eq!(g.may_offer("known", true, 162), Ok(()));
        g.unanswered("x", Unanswered::Exhausted, 163);
        // The first report waits a few seconds for the burst, then holds all of it.
        assert_eq!(g.report(102, 20, (20, 3)), None, "gathering the burst");
        let r = g.report(200, 20, (20, 3)).unwrap();
        assert!(r.contains("3 DISCOVERs from 3 clients"), "{r}");
        assert!(r.contains("20/20 addresses leased, 3 of them"), "{r}");
        assert_eq!(g.report(201, 20, (20, 3)), None, "nothing new");
        g.unanswered("y", Unanswered::Exhausted, 230);
        assert_eq!(g.report(240, 20, (20, 3)), None, "within the minute");
        assert!(g.report(260, 20, (20, 3)).is_some());
    }
}
