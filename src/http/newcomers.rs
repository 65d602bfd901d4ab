//! Limits on new serials: per source address within a window, and in total.
//!
//! A work request with an unknown serial creates a record, and nothing proves the serial
//! (`docs/identity.md`): without a limit, one host registered 10 000 fake serials in 5 s. A real
//! router is one address with one serial; an address may bring a few (a router replaced on the
//! same lease, a test rack behind one address), not hundreds. Each refusal is counted; a WARN
//! is written once per address per window, and once when the total is reached.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// The window per-address counts run over.
pub(crate) const WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Count {
    since: Instant,
    new: u32,
    refused: u64,
}

/// Why a new serial is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// This address brought its quota in the window; `warn` for the first refusal.
    PerAddress { limit: u32, warn: bool },
    /// The appliance holds `limit` records; `warn` for the first refusal.
    Total { limit: usize, warn: bool },
}

/// Counts of new serials per address.
#[derive(Debug)]
pub(crate) struct Newcomers {
    per_address: u32,
    total: usize,
    counts: Mutex<HashMap<IpAddr, Count>>,
    total_warned: Mutex<bool>,
}

impl Newcomers {
    /// At most `per_address` new serials per address per [`WINDOW`], `total` records.
    pub(crate) fn new(per_address: u32, total: usize) -> Newcomers {
        Newcomers {
            per_address,
            total,
            counts: Mutex::new(HashMap::new()),
            total_warned: Mutex::new(false),
        }
    }

    /// Whether `ip` may add a serial now, with `records` records held; counts it if so.
    pub(crate) fn admit(&self, ip: IpAddr, records: usize, now: Instant) -> Result<(), Refusal> {
        if records >= self.total {
            let mut warned = lock(&self.total_warned);
            let warn = !*warned;
            *warned = true;
            return Err(Refusal::Total {
                limit: self.total,
                warn,
            });
        }
        *lock(&self.total_warned) = false;
        let mut counts = lock(&self.counts);
        // Forget windows that ended, so the table stays as small as the set of recent sources.
        if counts.len() > 1024 {
            counts.retain(|_, c| now.duration_since(c.since) < WINDOW);
        }
        let c = counts.entry(ip).or_insert(Count {
            since: now,
            new: 0,
            refused: 0,
        });
        if now.duration_since(c.since) >= WINDOW {
            *c = Count {
                since: now,
                new: 0,
                refused: 0,
            };
        }
        if c.new >= self.per_address {
            c.refused += 1;
            return Err(Refusal::PerAddress {
                limit: self.per_address,
                warn: c.refused == 1,
            });
        }
        c.new += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_window_and_total() {
        let n = Newcomers::new(2, 5);
        let t0 = Instant::now();
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let b: IpAddr = "198.51.100.8".parse().unwrap();
        let per = |warn| Err(Refusal::PerAddress { limit: 2, warn });
        let total = |warn| Err(Refusal::Total { limit: 5, warn });
        // (source, records held, at, expected), in order.
        let steps = [
            (a, 0, t0, Ok(())),
            (a, 1, t0, Ok(())),
            (a, 2, t0, per(true)),
            (a, 2, t0, per(false)),
            // Another address is not held up; the window ends.
            (b, 2, t0, Ok(())),
            (a, 3, t0 + WINDOW, Ok(())),
            // The total, warned once until there is room again.
            (b, 5, t0, total(true)),
            (b, 5, t0, total(false)),
            (b, 4, t0, Ok(())),
        ];
        for (i, (ip, records, at, want)) in steps.into_iter().enumerate() {
            assert_eq!(n.admit(ip, records, at), want, "step {i}");
        }
    }
}
