//! The soak run's figures from its samples: RSS and heap at start (after the warm-up), peak
//! and end, their growth per 100k calls (a least-squares fit, with its standard error), and the
//! leak check from the pool's stats.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::soak::{End, Sample};

/// What a soak run came to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Calls made, OK or not.
    pub calls: u64,
    pub ok: u64,
    pub failed: u64,
    /// Non-OK statuses by gRPC code name and library failures by grpcpool_result name.
    pub failures: BTreeMap<String, u64>,
    /// "calls" when every call was made, "time" when the time cap stopped the run.
    pub stopped_by: String,
    pub seconds: f64,
    pub qps: f64,
    pub cpu_us_per_call: f64,
    pub warmup_calls: u64,
    pub warmup_seconds: f64,
    pub samples: usize,
    /// The first sample at or after the warm-up's last call.
    pub rss_start_kib: i64,
    /// The most of ru_maxrss and every sample.
    pub rss_peak_kib: i64,
    /// The last sample under load (the caller threads still alive).
    pub rss_end_kib: i64,
    /// The sample once every call had returned and the caller threads had exited.
    pub rss_joined_kib: Option<i64>,
    pub heap_joined_kib: Option<i64>,
    pub threads_joined: Option<i64>,
    /// Least-squares slope of RSS against calls done over the samples after the warm-up, KiB
    /// per 100,000 calls; `None` with fewer than two such samples.
    pub rss_kib_per_100k: Option<f64>,
    /// The slope's standard error, from the scatter of the samples about the line (three or
    /// more samples): a slope within about twice this of 0 is noise, not growth.
    pub rss_kib_per_100k_stderr: Option<f64>,
    /// The same over the later half of those samples only: a leak keeps its slope there,
    /// growth from warming up (allocator arenas, buffers reaching their working size) does not.
    pub rss_kib_per_100k_late: Option<f64>,
    /// Heap in use (mallinfo2) at the same samples; `None` where the C library has no mallinfo2.
    pub heap_start_kib: Option<i64>,
    pub heap_end_kib: Option<i64>,
    pub heap_kib_per_100k: Option<f64>,
    pub heap_kib_per_100k_stderr: Option<f64>,
    pub heap_kib_per_100k_late: Option<f64>,
    pub threads_start: i64,
    pub threads_end: i64,
    pub fds_start: i64,
    pub fds_end: i64,
    /// From the pool's stats once every call had returned: both 0 unless something was never
    /// given back.
    pub leases_out: Option<u64>,
    pub streams_in_flight: Option<u64>,
    /// Entries of grpcpool_pool_leaks_json then.
    pub leaks_reported: Option<usize>,
    /// leases_out, streams_in_flight and the leaks list all zero.
    pub leak_check_passed: bool,
    /// The pool's own count of calls started and succeeded, beside the C program's.
    pub stats_calls_started: Option<u64>,
    pub stats_calls_succeeded: Option<u64>,
    pub connects: Option<u64>,
    pub reconnects: Option<u64>,
    pub goaways_received: Option<u64>,
    /// The process before grpcpool_pool_new and after grpcpool_pool_free.
    pub rss_before_pool_kib: i64,
    pub rss_after_free_kib: i64,
    pub heap_before_pool_kib: Option<i64>,
    pub heap_after_free_kib: Option<i64>,
    pub threads_after_free: i64,
}

/// Least-squares slope of `y` against `x` per 100,000 of `x`, with its standard error when there
/// are three points or more.
pub fn fit_per_100k(points: &[(f64, f64)]) -> Option<(f64, Option<f64>)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let stderr = (points.len() > 2).then(|| {
        let residuals: f64 = points
            .iter()
            .map(|(x, y)| (y - mean_y - slope * (x - mean_x)).powi(2))
            .sum();
        (residuals / (n - 2.0) / sxx).sqrt() * 100_000.0
    });
    Some((slope * 100_000.0, stderr))
}

fn known(value: i64) -> Option<i64> {
    (value >= 0).then_some(value)
}

/// The figures of a run from its samples and last line.
pub fn summarize(all: &[Sample], end: &End) -> Summary {
    // The sample after the threads joined has their stacks freed: it says nothing of what the
    // calls left behind, so only the samples under load are fitted.
    let samples: Vec<Sample> = all
        .iter()
        .filter(|sample| sample.running)
        .cloned()
        .collect();
    let joined = all.iter().rev().find(|sample| !sample.running);
    // The warm-up is over at the first sample that counts its calls; a run stopped before then
    // has only its last sample to start from.
    let start = samples
        .iter()
        .position(|sample| sample.calls >= end.warmup_calls && sample.calls > 0)
        .unwrap_or(samples.len().saturating_sub(1));
    let after = samples.get(start..).unwrap_or_default();
    let late = after.get(after.len() / 2..).unwrap_or_default();
    let heap_known = samples.iter().all(|sample| sample.heap_kib >= 0) && !samples.is_empty();
    let fit = |points: &[Sample], field: fn(&Sample) -> i64| {
        let points: Vec<(f64, f64)> = points
            .iter()
            .filter(|sample| field(sample) >= 0)
            .map(|sample| (sample.calls as f64, field(sample) as f64))
            .collect();
        fit_per_100k(&points)
    };
    let rss = fit(after, |sample| sample.rss_kib);
    let heap = if heap_known {
        fit(after, |sample| sample.heap_kib)
    } else {
        None
    };
    let first = after.first().cloned().unwrap_or_default();
    let last = samples.last().cloned().unwrap_or_default();
    let stat = |name: &str| end.stats.get(name).and_then(serde_json::Value::as_u64);
    let leases_out = stat("leases_out");
    let streams_in_flight = stat("streams_in_flight");
    let leaks_reported = end.leaks.as_array().map(Vec::len);
    let mut failures = end.failures_by_code.clone();
    failures.extend(end.failures_by_result.clone());
    Summary {
        calls: end.calls,
        ok: end.ok,
        failed: end.calls.saturating_sub(end.ok),
        failures,
        stopped_by: end.stopped_by.clone(),
        seconds: end.seconds,
        qps: end.calls as f64 / end.seconds.max(1e-9),
        cpu_us_per_call: if end.calls == 0 {
            0.0
        } else {
            end.cpu_seconds * 1e6 / end.calls as f64
        },
        warmup_calls: end.warmup_calls,
        warmup_seconds: end.warmup_seconds,
        samples: all.len(),
        rss_start_kib: first.rss_kib,
        rss_peak_kib: all
            .iter()
            .map(|sample| sample.rss_kib)
            .chain([end.peak_rss_kib])
            .max()
            .unwrap_or(-1),
        rss_end_kib: last.rss_kib,
        rss_joined_kib: joined.and_then(|sample| known(sample.rss_kib)),
        heap_joined_kib: joined.and_then(|sample| known(sample.heap_kib)),
        threads_joined: joined.and_then(|sample| known(sample.threads)),
        rss_kib_per_100k: rss.map(|(slope, _)| slope),
        rss_kib_per_100k_stderr: rss.and_then(|(_, stderr)| stderr),
        rss_kib_per_100k_late: fit(late, |sample| sample.rss_kib).map(|(slope, _)| slope),
        heap_start_kib: heap_known.then_some(first.heap_kib),
        heap_end_kib: heap_known.then_some(last.heap_kib),
        heap_kib_per_100k: heap.map(|(slope, _)| slope),
        heap_kib_per_100k_stderr: heap.and_then(|(_, stderr)| stderr),
        heap_kib_per_100k_late: if heap_known {
            fit(late, |sample| sample.heap_kib).map(|(slope, _)| slope)
        } else {
            None
        },
        threads_start: first.threads,
        threads_end: last.threads,
        fds_start: first.fds,
        fds_end: last.fds,
        leak_check_passed: leases_out == Some(0)
            && streams_in_flight == Some(0)
            && leaks_reported == Some(0),
        leases_out,
        streams_in_flight,
        leaks_reported,
        stats_calls_started: stat("calls_started"),
        stats_calls_succeeded: stat("calls_succeeded"),
        connects: stat("connects"),
        reconnects: stat("reconnects"),
        goaways_received: stat("goaways_received"),
        rss_before_pool_kib: end.rss_before_pool_kib,
        rss_after_free_kib: end.rss_after_free_kib,
        heap_before_pool_kib: known(end.heap_before_pool_kib),
        heap_after_free_kib: known(end.heap_after_free_kib),
        threads_after_free: end.threads_after_free,
    }
}

#[cfg(test)]
fn sample(t: f64, calls: u64, rss_kib: i64, heap_kib: i64) -> Sample {
    Sample {
        running: true,
        t,
        calls,
        failures: 0,
        rss_kib,
        heap_kib,
        threads: 20,
        fds: 8,
    }
}

/// A run for tests: 0, then 10k calls a second with RSS flat after the warm-up and heap growing
/// 2 KiB per 10k calls.
#[cfg(test)]
pub fn fixture() -> (Vec<Sample>, End) {
    let mut samples = vec![sample(0.0, 0, 3_000, 500)];
    for second in 1..=10_u64 {
        let calls = second * 10_000;
        let rss = if calls < 20_000 { 5_000 } else { 8_000 };
        samples.push(sample(
            second as f64,
            calls,
            rss,
            1_000 + 2 * calls as i64 / 10_000,
        ));
    }
    // After the threads joined: lower, and left out of every figure but its own.
    samples.push(Sample {
        running: false,
        threads: 3,
        ..sample(10.5, 100_000, 6_000, 900)
    });
    let end = End {
        calls: 100_000,
        ok: 99_998,
        failures_by_code: BTreeMap::from([("UNAVAILABLE".to_owned(), 1)]),
        failures_by_result: BTreeMap::from([("GRPCPOOL_ACQUIRE_TIMEOUT".to_owned(), 1)]),
        seconds: 10.0,
        warmup_calls: 20_000,
        warmup_seconds: 2.0,
        stopped_by: "calls".into(),
        cpu_seconds: 4.0,
        peak_rss_kib: 8_100,
        stats: serde_json::json!({"leases_out": 0, "streams_in_flight": 0, "calls_started": 100_000}),
        leaks: serde_json::json!([]),
        heap_before_pool_kib: 100,
        heap_after_free_kib: 110,
        ..End::default()
    };
    (samples, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_fits_a_line() {
        let line: Vec<(f64, f64)> = (0..5)
            .map(|i| (i as f64 * 1e5, 7.0 + 3.0 * i as f64))
            .collect();
        let (slope, on_line) = fit_per_100k(&line).unwrap_or((f64::NAN, None));
        assert!((slope - 3.0).abs() < 1e-9, "{slope}");
        // On the line: no scatter, so no error.
        assert!(on_line.is_some_and(|stderr| stderr < 1e-9), "{on_line:?}");
        assert_eq!(fit_per_100k(&line[..1]), None);
        assert_eq!(fit_per_100k(&[(1.0, 1.0), (1.0, 2.0)]), None);
        // Two points: a slope, but no scatter to tell its error from.
        assert_eq!(
            fit_per_100k(&line[..2]).and_then(|(_, stderr)| stderr),
            None
        );
        // 0, 2, 0, 2 at x = 0..3 (per 100k): slope 0.4; residuals -0.4, 1.2, -1.2, 0.4 (squares
        // 3.2 over n - 2 = 2 degrees of freedom) against sxx = 5.
        let zigzag: Vec<(f64, f64)> = [0.0, 2.0, 0.0, 2.0]
            .iter()
            .enumerate()
            .map(|(i, y)| (i as f64 * 1e5, *y))
            .collect();
        let (slope, stderr) = fit_per_100k(&zigzag).unwrap_or((f64::NAN, None));
        assert!((slope - 0.4).abs() < 1e-9, "{slope}");
        let expected = (3.2_f64 / 2.0 / 5.0).sqrt();
        assert!(
            stderr.is_some_and(|stderr| (stderr - expected).abs() < 1e-9),
            "{stderr:?}"
        );
    }

    #[test]
    fn summary_starts_after_the_warm_up() {
        let (samples, end) = fixture();
        let summary = summarize(&samples, &end);
        assert_eq!(summary.rss_start_kib, 8_000);
        assert_eq!((summary.rss_peak_kib, summary.rss_end_kib), (8_100, 8_000));
        assert_eq!(
            (
                summary.rss_joined_kib,
                summary.heap_joined_kib,
                summary.threads_joined
            ),
            (Some(6_000), Some(900), Some(3))
        );
        assert_eq!(summary.rss_kib_per_100k.map(f64::round), Some(0.0));
        assert_eq!(summary.heap_kib_per_100k.map(f64::round), Some(20.0));
        assert_eq!(summary.heap_kib_per_100k_late.map(f64::round), Some(20.0));
        assert_eq!(
            (summary.heap_start_kib, summary.heap_end_kib),
            (Some(1_004), Some(1_020))
        );
        assert_eq!(summary.failures.len(), 2);
        assert_eq!(summary.failed, 2);
        assert!(summary.leak_check_passed);
        assert_eq!((summary.qps, summary.cpu_us_per_call), (10_000.0, 40.0));
        // A lease left out fails the check; a missing stats object does too.
        let mut leaked = end.clone();
        leaked.stats["leases_out"] = serde_json::json!(1);
        assert!(!summarize(&samples, &leaked).leak_check_passed);
        leaked.stats = serde_json::Value::Null;
        assert!(!summarize(&samples, &leaked).leak_check_passed);
        // No mallinfo2: no heap figures, and no panic on empty input.
        let no_heap: Vec<Sample> = samples
            .iter()
            .map(|s| Sample {
                heap_kib: -1,
                ..s.clone()
            })
            .collect();
        assert_eq!(summarize(&no_heap, &end).heap_kib_per_100k, None);
        assert_eq!(summarize(&[], &End::default()).samples, 0);
    }
}
