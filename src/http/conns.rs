//! Open connections per client address, capped.
//!
//! One host holding idle connections must not take the port from the routers: without a cap,
//! 1100 idle connections from one host exhausted a 1024 open-files limit and PnP stopped
//! answering. The accept loop asks [`Conns::open`] for every connection; over the cap it closes
//! the connection at once (and says so once a minute per address); the returned guard frees the
//! slot when the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;

#[derive(Debug, Default)]
struct Table {
    open: HashMap<IpAddr, u32>,
    /// Refused connections per address since its last WARN, and when that was.
    refused: HashMap<IpAddr, (u64, Option<Instant>)>,
}

/// The per-address connection table.
#[derive(Debug, Clone)]
pub(crate) struct Conns {
    cap: u32,
    table: Arc<Mutex<Table>>,
}

/// A connection's slot; freed on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    ip: IpAddr,
    table: Arc<Mutex<Table>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = lock(&self.table);
        if let Some(n) = t.open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.open.remove(&self.ip);
            }
        }
    }
}

/// A refused connection: how many from this address since the last report, when one is due.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Connections refused since the last report (this one included).
    pub(crate) count: u64,
}

const REPORT_EVERY: Duration = Duration::from_secs(60);

impl Conns {
    /// At most `cap` open connections per address.
    pub(crate) fn new(cap: u32) -> Conns {
        Conns {
            cap,
            table: Arc::default(),
        }
    }

    /// A slot for a new connection from `ip`, or `Err` with `Some` report when a WARN is due.
    pub(crate) fn open(&self, ip: IpAddr, now: Instant) -> Result<Slot, Option<Refused>> {
        let mut t = lock(&self.table);
        let n = t.open.entry(ip).or_insert(0);
        if *n < self.cap {
            *n += 1;
            return Ok(Slot {
                ip,
                table: self.table.clone(),
            });
        }
        if t.refused.len() > 4096 {
            t.refused
                .retain(|_, (_, at)| at.is_some_and(|at| now.duration_since(at) < REPORT_EVERY));
        }
        let entry = t.refused.entry(ip).or_insert((0, None));
        entry.0 += 1;
        if entry
            .1
            .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY)
        {
            let count = entry.0;
            *entry = (0, Some(now));
            return Err(Some(Refused { count }));
        }
        Err(None)
    }

    /// The cap.
    pub(crate) fn cap(&self) -> u32 {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_per_address_slots_free_on_drop_reports_once_a_minute() {
        let c = Conns::new(2);
        let t0 = Instant::now();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let s1 = c.open(a, t0).unwrap();
        let _s2 = c.open(a, t0).unwrap();
        assert_eq!(c.open(a, t0).unwrap_err(), Some(Refused { count: 1 }));
        assert_eq!(c.open(a, t0).unwrap_err(), None);
        // Another address is not affected.
        let _b1 = c.open(b, t0).unwrap();
        drop(s1);
        let _s3 = c.open(a, t0).unwrap();
        assert_eq!(c.open(a, t0).unwrap_err(), None);
        assert_eq!(
            c.open(a, t0 + REPORT_EVERY).unwrap_err(),
            Some(Refused { count: 3 })
        );
    }
}
