//! How fast the server answers PnP exchanges, measured inside the server.
//!
//! Owns a lock-free log-scale latency histogram (8 buckets per power of two of microseconds, so
//! a reported percentile is at most 12.5 % above the true value) fed by the `/pnp/*` routes: from
//! the request reaching the router (body read, parsed, the workflow run, the record persisted) to
//! the answer being ready. `/api/metrics` and the shutdown log line report it. A router's view
//! adds the network and its own scheduling; `simulate` prints that one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

const SUB: u32 = 8;
const BUCKETS: usize = 8 * 64;

/// Bucket of a value in microseconds.
fn bucket(us: u64) -> usize {
    if us < u64::from(SUB) {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // ≥ 3
    let sub = (us >> (exp - 3)) & u64::from(SUB - 1);
    ((exp - 2) * SUB) as usize + sub as usize
}

/// Largest value (µs) that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < SUB as usize {
        return i as u64;
    }
    let exp = (i / SUB as usize) as u32 + 2;
    let sub = (i % SUB as usize) as u64;
    ((SUB as u64 + sub) << (exp - 3)) + (1u64 << (exp - 3)) - 1
}

/// Upper bounds (seconds) of the histogram `/metrics` exports, Prometheus' `le` labels.
pub(crate) const EXPORT_LE: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The histogram.
pub(crate) struct Latency {
    buckets: Box<[AtomicU64]>,
    max_us: AtomicU64,
    /// Requests per [`EXPORT_LE`] bucket (not cumulative; the last slot is above every bound).
    export: [AtomicU64; EXPORT_LE.len() + 1],
    sum_us: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
            export: Default::default(),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// The exported histogram: cumulative counts per [`EXPORT_LE`] bound, the count, the sum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exported {
    /// Requests at or below each bound.
    pub(crate) cumulative: Vec<u64>,
    /// All requests.
    pub(crate) count: u64,
    /// Their total time, seconds.
    pub(crate) sum_secs: f64,
}

/// Percentiles in milliseconds (part of the `/api/metrics` schema).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct LatencyView {
    /// Requests measured.
    pub(crate) requests: u64,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 90th percentile.
    pub(crate) p90_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// Slowest.
    pub(crate) max_ms: f64,
}

impl Latency {
    /// Records one request.
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = bucket(us).min(BUCKETS - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        let secs = us as f64 / 1e6;
        let slot = EXPORT_LE
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(EXPORT_LE.len());
        self.export[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The histogram for `/metrics`.
    pub(crate) fn exported(&self) -> Exported {
        let mut cumulative = Vec::with_capacity(EXPORT_LE.len());
        let mut seen = 0;
        for slot in &self.export[..EXPORT_LE.len()] {
            seen += slot.load(Ordering::Relaxed);
            cumulative.push(seen);
        }
        let count = seen + self.export[EXPORT_LE.len()].load(Ordering::Relaxed);
        Exported {
            cumulative,
            count,
            sum_secs: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    /// Percentiles so far.
    pub(crate) fn view(&self) -> LatencyView {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let max_us = self.max_us.load(Ordering::Relaxed);
        let at = |q: f64| -> f64 {
            if total == 0 {
                return 0.0;
            }
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper(i).min(max_us) as f64 / 1000.0;
                }
            }
            max_us as f64 / 1000.0
        };
        LatencyView {
            requests: total,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: max_us as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev = 0;
        for us in 0..200_000u64 {
            let b = bucket(us);
            assert!(b == prev || b == prev + 1, "{us}");
            assert!(upper(b) >= us, "{us} above its bucket's bound {}", upper(b));
            assert!(
                upper(b) as f64 <= us as f64 * 1.125 + 1.0,
                "{us}: {}",
                upper(b)
            );
            prev = b;
        }
        assert!(bucket(u64::MAX) < BUCKETS);
    }

    #[test]
    fn the_exported_histogram_is_cumulative_with_count_and_sum() {
        let l = Latency::default();
        for us in [100, 400, 700, 3000, 5_000_000] {
            l.record(Duration::from_micros(us));
        }
        let e = l.exported();
        assert_eq!(e.count, 5);
        assert!((e.sum_secs - 5.0042).abs() < 1e-9, "{}", e.sum_secs);
        // le 0.0005 holds 100 and 400 µs; le 0.001 also 700; le 0.005 also 3 ms; 5 s only +Inf.
        assert_eq!(&e.cumulative[..4], &[2, 3, 3, 4]);
        assert_eq!(*e.cumulative.last().unwrap(), 4);
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let l = Latency::default();
        assert_eq!(l.view().requests, 0);
        // 1..=1000 ms, one each.
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        let v = l.view();
        assert_eq!(v.requests, 1000);
        for (got, want) in [(v.p50_ms, 500.0), (v.p90_ms, 900.0), (v.p99_ms, 990.0)] {
            assert!(got >= want && got <= want * 1.125, "{got} vs {want}");
        }
        assert_eq!(v.max_ms, 1000.0);
        // One slow outlier among fast requests shows at max, not at p99.
        let l = Latency::default();
        for _ in 0..999 {
            l.record(Duration::from_micros(300));
        }
        l.record(Duration::from_secs(2));
        let v = l.view();
        assert!(v.p99_ms < 0.35, "{v:?}");
        assert_eq!(v.max_ms, 2000.0);
    }
}
