//! A lock-free histogram of microsecond values: 8 linear steps per power of two.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const SUB_BUCKETS: usize = 8;
const BUCKETS: usize = 64 * SUB_BUCKETS;

/// Counts values into buckets whose width is an eighth of their power of two.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let power = 63 - value.leading_zeros() as usize; // >= 3
    let step = (value >> (power - 3)) as usize & (SUB_BUCKETS - 1);
    (power - 2) * SUB_BUCKETS + step
}

/// The largest value that lands in `bucket`.
fn upper_bound(bucket: usize) -> u64 {
    if bucket < SUB_BUCKETS {
        return bucket as u64;
    }
    let power = bucket / SUB_BUCKETS + 2;
    let step = (bucket % SUB_BUCKETS) as u64;
    let low = (SUB_BUCKETS as u64 + step) << (power - 3);
    low.saturating_add((1u64 << (power - 3)) - 1)
}

impl Histogram {
    pub(crate) fn record(&self, value: u64) {
        if let Some(bucket) = self.buckets.get(bucket_of(value)) {
            bucket.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.max.fetch_max(value, Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub(crate) fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }

    /// The value below which `quantile` (0..=1) of the recorded values fall, as a bucket's bound.
    pub(crate) fn percentile(&self, quantile: f64) -> u64 {
        let total: u64 = self.buckets.iter().map(|bucket| bucket.load(Relaxed)).sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Relaxed);
            if seen >= rank {
                return upper_bound(index).min(self.max());
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut previous = 0;
        for value in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let bucket = bucket_of(value);
            assert!(bucket >= previous && bucket < BUCKETS, "{value}");
            assert!(upper_bound(bucket) >= value, "{value}");
            assert!(upper_bound(bucket) - value <= value / 8, "{value}");
            previous = bucket;
        }
    }

    #[test]
    fn percentiles_follow_the_data() {
        let histogram = Histogram::default();
        for value in 1..=1000 {
            histogram.record(value);
        }
        let p50 = histogram.percentile(0.5);
        assert!((500..=570).contains(&p50), "{p50}");
        assert_eq!(histogram.percentile(1.0), 1000);
        assert_eq!(histogram.count(), 1000);
    }
}
