//! Outlier detection (gRPC A50): addresses whose calls fail more than the others' are ejected
//! (their connections take no calls) for a time that grows with each ejection, then brought
//! back; never more than `maxEjectionPercent` of the addresses at once, but always one may be.
//!
//! Configured as `outlier_detection_experimental` in `loadBalancingConfig`, around its
//! `childPolicy`, which keeps balancing over the addresses not ejected. Every attempt counts as
//! a success (OK) or a failure (any other status) of the address it ran on, in per-address
//! counters the connections hold, so the hot path adds two atomic adds and no lookup; the
//! target's upkeep sweeps every `interval`, judging the counts of the interval just ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::json_fields::{as_object, bounded_u32, duration, invalid};
use crate::target::Address;
use crate::Error;

/// `outlier_detection_experimental`'s settings, with A50's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierDetection {
    /// Time between sweeps. Default 10 s.
    pub interval: Duration,
    /// An ejection lasts this times the address's ejection count. Default 30 s.
    pub base_ejection_time: Duration,
    /// The longest ejection (at least `base_ejection_time`). Default 300 s.
    pub max_ejection_time: Duration,
    /// Most addresses ejected at once, in percent; one may always be. Default 10.
    pub max_ejection_percent: u32,
    /// Ejects addresses whose success rate is a statistical outlier.
    pub success_rate: Option<SuccessRateEjection>,
    /// Ejects addresses whose failure percentage passes a threshold.
    pub failure_percentage: Option<FailurePercentageEjection>,
}

/// `successRateEjection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuccessRateEjection {
    /// Ejected below mean - stdev * `stdev_factor` / 1000. Default 1900.
    pub stdev_factor: u32,
    /// Chance in percent that an outlier is ejected. Default 100.
    pub enforcement_percentage: u32,
    /// Addresses with enough calls needed to judge any. Default 5.
    pub minimum_hosts: u32,
    /// Calls in the interval an address needs to be judged. Default 100.
    pub request_volume: u32,
}

/// `failurePercentageEjection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePercentageEjection {
    /// Ejected above this failure percentage. Default 85.
    pub threshold: u32,
    /// Chance in percent that an outlier is ejected. Default 100.
    pub enforcement_percentage: u32,
    /// Addresses with enough calls needed to judge any. Default 5.
    pub minimum_hosts: u32,
    /// Calls in the interval an address needs to be judged. Default 50.
    pub request_volume: u32,
}

impl OutlierDetection {
    /// Parses the policy's config object (its `childPolicy` is the caller's); field errors
    /// name the field under `at`.
    pub(crate) fn parse(object: &Map<String, Value>, at: &str) -> Result<OutlierDetection, Error> {
        let field = |key: &str| format!("{at}.{key}");
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "interval"
                    | "baseEjectionTime"
                    | "maxEjectionTime"
                    | "maxEjectionPercent"
                    | "successRateEjection"
                    | "failurePercentageEjection"
                    | "childPolicy"
            ) {
                return Err(invalid(&field(key), "unknown field"));
            }
        }
        let duration_or = |key: &str, default: Duration| match object.get(key) {
            None => Ok(default),
            Some(value) => duration(value, &field(key)),
        };
        let base_ejection_time = duration_or("baseEjectionTime", Duration::from_secs(30))?;
        let max_ejection_time = duration_or("maxEjectionTime", Duration::from_secs(300))?;
        let interval = duration_or("interval", Duration::from_secs(10))?;
        if interval.is_zero() {
            return Err(invalid(&field("interval"), "must be greater than 0"));
        }
        let success_rate = match ejection(object, "successRateEjection", at, "stdevFactor")? {
            None => None,
            Some((object, at)) => Some(SuccessRateEjection {
                stdev_factor: bounded_u32(object, "stdevFactor", &at, u32::MAX, 1900)?,
                enforcement_percentage: enforcement(object, &at)?,
                minimum_hosts: minimum_hosts(object, &at)?,
                request_volume: bounded_u32(object, "requestVolume", &at, u32::MAX, 100)?,
            }),
        };
        let failure_percentage =
            match ejection(object, "failurePercentageEjection", at, "threshold")? {
                None => None,
                Some((object, at)) => Some(FailurePercentageEjection {
                    threshold: bounded_u32(object, "threshold", &at, 100, 85)?,
                    enforcement_percentage: enforcement(object, &at)?,
                    minimum_hosts: minimum_hosts(object, &at)?,
                    request_volume: bounded_u32(object, "requestVolume", &at, u32::MAX, 50)?,
                }),
            };
        Ok(OutlierDetection {
            interval,
            base_ejection_time,
            max_ejection_time: max_ejection_time.max(base_ejection_time),
            max_ejection_percent: bounded_u32(object, "maxEjectionPercent", at, 100, 10)?,
            success_rate,
            failure_percentage,
        })
    }

    /// Whether it judges anything: with neither algorithm it counts nothing (A50).
    pub(crate) fn is_active(&self) -> bool {
        self.success_rate.is_some() || self.failure_percentage.is_some()
    }
}

/// An ejection algorithm's config object and its path, for errors.
type EjectionConfig<'a> = (&'a Map<String, Value>, String);

/// The object of an ejection algorithm's field `key`, if present, checked to hold only the
/// fields both algorithms share and `own`, and its path for errors.
fn ejection<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    at: &str,
    own: &str,
) -> Result<Option<EjectionConfig<'a>>, Error> {
    let Some(value) = object.get(key) else {
        return Ok(None);
    };
    let at = format!("{at}.{key}");
    let object = as_object(value, &at)?;
    only(
        object,
        &at,
        &[
            own,
            "enforcementPercentage",
            "minimumHosts",
            "requestVolume",
        ],
    )?;
    Ok(Some((object, at)))
}

/// `enforcementPercentage`, 0 to 100, default 100.
fn enforcement(object: &Map<String, Value>, at: &str) -> Result<u32, Error> {
    bounded_u32(object, "enforcementPercentage", at, 100, 100)
}

/// `minimumHosts`, default 5.
fn minimum_hosts(object: &Map<String, Value>, at: &str) -> Result<u32, Error> {
    bounded_u32(object, "minimumHosts", at, u32::MAX, 5)
}

fn only(object: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), Error> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(invalid(&format!("{at}.{key}"), "unknown field")),
        None => Ok(()),
    }
}

/// One address's calls in the current interval, and whether it is ejected: shared by every
/// connection to the address, so counts survive connections that come and go.
#[derive(Debug, Default)]
pub(crate) struct AddressRecord {
    successes: AtomicU64,
    failures: AtomicU64,
    ejected: AtomicBool,
}

impl AddressRecord {
    /// Counts an attempt that ended on this address.
    pub(crate) fn attempt_ended(&self, ok: bool) {
        let counter = if ok { &self.successes } else { &self.failures };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the address is ejected now: its connections take no calls.
    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    /// The interval's counts, starting the next interval at zero.
    fn take_counts(&self) -> (u64, u64) {
        (
            self.successes.swap(0, Ordering::Relaxed),
            self.failures.swap(0, Ordering::Relaxed),
        )
    }
}

/// An address as the sweeps follow it.
struct Tracked {
    record: Arc<AddressRecord>,
    ejected_at: Option<Instant>,
    /// Grows by one per ejection, shrinks by one per sweep that finds it in service.
    multiplier: u32,
}

impl Tracked {
    fn new() -> Tracked {
        Tracked {
            record: Arc::default(),
            ejected_at: None,
            multiplier: 0,
        }
    }
}

/// Addresses ejected now among `addresses`.
fn ejected(addresses: &HashMap<Address, Tracked>) -> u64 {
    addresses
        .values()
        .filter(|tracked| tracked.ejected_at.is_some())
        .count() as u64
}

/// One target's outlier detection: its addresses' records and the sweep schedule.
pub(crate) struct OutlierDetector {
    config: OutlierDetection,
    state: Mutex<Sweeps>,
    ejections: AtomicU64,
}

struct Sweeps {
    addresses: HashMap<Address, Tracked>,
    next: Instant,
}

impl OutlierDetector {
    /// A detector for `config`; `None` when the config judges nothing.
    pub(crate) fn new(config: &OutlierDetection) -> Option<OutlierDetector> {
        config.is_active().then(|| OutlierDetector {
            config: config.clone(),
            state: Mutex::new(Sweeps {
                addresses: HashMap::new(),
                next: Instant::now() + config.interval,
            }),
            ejections: AtomicU64::new(0),
        })
    }

    /// The record a new connection to `address` counts its attempts in (ejected already if
    /// the address is).
    pub(crate) fn record_for(&self, address: &Address) -> Arc<AddressRecord> {
        let mut state = self.state.lock();
        let tracked = state
            .addresses
            .entry(address.clone())
            .or_insert_with(Tracked::new);
        Arc::clone(&tracked.record)
    }

    /// When the next sweep is due.
    pub(crate) fn next_sweep(&self) -> Instant {
        self.state.lock().next
    }

    /// Ejections so far.
    pub(crate) fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Addresses ejected now.
    pub(crate) fn ejected_now(&self) -> u64 {
        ejected(&self.state.lock().addresses)
    }

    /// Runs a sweep if one is due at `now`, over the target's current `addresses` (others are
    /// forgotten); true when an address was ejected or brought back.
    pub(crate) fn sweep_if_due(&self, now: Instant, addresses: &[Address]) -> bool {
        let mut state = self.state.lock();
        if now < state.next {
            return false;
        }
        state.next = now + self.config.interval;
        state
            .addresses
            .retain(|address, _| addresses.contains(address));
        for address in addresses {
            state
                .addresses
                .entry(address.clone())
                .or_insert_with(Tracked::new);
        }
        let counts: Vec<(Address, u64, u64)> = state
            .addresses
            .iter()
            .map(|(address, tracked)| {
                let (successes, failures) = tracked.record.take_counts();
                (address.clone(), successes, failures)
            })
            .collect();
        let mut changed = false;
        let outliers = self.outliers(&counts);
        for address in outliers {
            if !self.may_eject(&state.addresses) {
                break;
            }
            if let Some(tracked) = state.addresses.get_mut(&address) {
                if tracked.ejected_at.is_none() {
                    tracked.ejected_at = Some(now);
                    tracked.multiplier += 1;
                    tracked.record.ejected.store(true, Ordering::Release);
                    self.ejections.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%address, "outlier detection ejected an address");
                    changed = true;
                }
            }
        }
        let longest = self.config.max_ejection_time;
        for (address, tracked) in &mut state.addresses {
            match tracked.ejected_at {
                None => tracked.multiplier = tracked.multiplier.saturating_sub(1),
                Some(at) => {
                    let ejected_for = self
                        .config
                        .base_ejection_time
                        .saturating_mul(tracked.multiplier)
                        .min(longest);
                    if now >= at + ejected_for {
                        tracked.ejected_at = None;
                        tracked.record.ejected.store(false, Ordering::Release);
                        tracing::info!(%address, "outlier detection brought an address back");
                        changed = true;
                    }
                }
            }
        }
        changed
    }

    /// The addresses either algorithm finds to be outliers in `counts` (address, successes,
    /// failures), each at most once, enforcement percentages applied.
    fn outliers(&self, counts: &[(Address, u64, u64)]) -> Vec<Address> {
        let mut found: Vec<Address> = Vec::new();
        let mut add = |address: &Address, enforcement: u32| {
            if fastrand::u32(0..100) < enforcement && !found.contains(address) {
                found.push(address.clone());
            }
        };
        if let Some(rule) = self.config.success_rate {
            let judged: Vec<(&Address, f64)> = counts
                .iter()
                .filter(|(_, ok, failed)| ok + failed >= u64::from(rule.request_volume))
                .map(|(address, ok, failed)| (address, *ok as f64 / (ok + failed) as f64))
                .collect();
            if judged.len() >= rule.minimum_hosts as usize && !judged.is_empty() {
                let count = judged.len() as f64;
                let mean = judged.iter().map(|(_, rate)| rate).sum::<f64>() / count;
                let variance = judged
                    .iter()
                    .map(|(_, rate)| (rate - mean) * (rate - mean))
                    .sum::<f64>()
                    / count;
                let threshold = mean - variance.sqrt() * (f64::from(rule.stdev_factor) / 1000.0);
                for (address, rate) in judged {
                    if rate < threshold {
                        add(address, rule.enforcement_percentage);
                    }
                }
            }
        }
        if let Some(rule) = self.config.failure_percentage {
            let judged: Vec<(&Address, u64, u64)> = counts
                .iter()
                .filter(|(_, ok, failed)| ok + failed >= u64::from(rule.request_volume))
                .map(|(address, ok, failed)| (address, *ok, *failed))
                .collect();
            if judged.len() >= rule.minimum_hosts as usize {
                for (address, ok, failed) in judged {
                    if failed * 100 > u64::from(rule.threshold) * (ok + failed) {
                        add(address, rule.enforcement_percentage);
                    }
                }
            }
        }
        found
    }

    /// Whether another ejection stays within `max_ejection_percent` (checked before each).
    fn may_eject(&self, addresses: &HashMap<Address, Tracked>) -> bool {
        let total = addresses.len() as u64;
        ejected(addresses) * 100 < u64::from(self.config.max_ejection_percent) * total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> Address {
        Address::Tcp(std::net::SocketAddr::from(([127, 0, 0, last], 50051)))
    }

    fn detector(config: &str) -> OutlierDetector {
        let value: Value = serde_json::from_str(config).unwrap();
        let parsed = OutlierDetection::parse(value.as_object().unwrap(), "od").unwrap();
        OutlierDetector::new(&parsed).unwrap()
    }

    #[test]
    fn a_failing_address_is_ejected_for_longer_each_time_within_the_percentage() {
        let detector = detector(
            r#"{"interval": "1s", "baseEjectionTime": "10s", "maxEjectionPercent": 33,
                "failurePercentageEjection": {"minimumHosts": 3, "requestVolume": 10,
                                              "threshold": 50}}"#,
        );
        let addresses: Vec<Address> = (1..=3).map(address).collect();
        let records: Vec<Arc<AddressRecord>> =
            addresses.iter().map(|a| detector.record_for(a)).collect();
        // Two addresses fail every call, one never; a sweep every second.
        let mut now = Instant::now();
        let mut sweep = || {
            for (index, record) in records.iter().enumerate() {
                for _ in 0..20 {
                    record.attempt_ended(index == 0);
                }
            }
            now += Duration::from_secs(1);
            let changed = detector.sweep_if_due(now, &addresses);
            // 33%: once one of three is out, no other may go.
            assert!(detector.ejected_now() <= 1);
            assert!(!records[0].is_ejected(), "the healthy address stays");
            changed
        };
        assert!(sweep(), "ejected at the first sweep");
        assert_eq!((detector.ejected_now(), detector.ejections()), (1, 1));
        // Ten seconds out (base time x one ejection), then back.
        for _ in 0..9 {
            assert!(!sweep());
        }
        assert!(sweep(), "back after 10 s");
        assert_eq!(detector.ejected_now(), 0);
        assert!(sweep(), "ejected again at the next sweep");
        assert_eq!((detector.ejected_now(), detector.ejections()), (1, 2));
    }

    #[test]
    fn success_rate_ejects_statistical_outliers_only() {
        let detector = detector(
            r#"{"interval": "1s", "maxEjectionPercent": 100,
                "successRateEjection": {"minimumHosts": 5, "requestVolume": 10}}"#,
        );
        let addresses: Vec<Address> = (1..=6).map(address).collect();
        let records: Vec<Arc<AddressRecord>> =
            addresses.iter().map(|a| detector.record_for(a)).collect();
        for (index, record) in records.iter().enumerate() {
            for call in 0..100 {
                // Five at 99-100% success, one at 50%.
                record.attempt_ended(if index == 5 {
                    call % 2 == 0
                } else {
                    call != index
                });
            }
        }
        assert!(detector.sweep_if_due(Instant::now() + Duration::from_secs(1), &addresses));
        assert!(records[5].is_ejected());
        assert_eq!(detector.ejected_now(), 1);
    }

    #[test]
    fn configs_are_checked_field_by_field() {
        let parse = |text: &str| {
            let value: Value = serde_json::from_str(text).unwrap();
            OutlierDetection::parse(value.as_object().unwrap(), "od").map_err(|e| e.to_string())
        };
        let defaults = parse("{}").unwrap();
        assert_eq!(defaults.interval, Duration::from_secs(10));
        assert_eq!(defaults.max_ejection_time, Duration::from_secs(300));
        assert!(!defaults.is_active());
        for (text, field) in [
            (r#"{"maxEjectionPercent": 101}"#, "od.maxEjectionPercent"),
            (r#"{"interval": "0s"}"#, "od.interval"),
            (r#"{"interval": 3}"#, "od.interval"),
            (
                r#"{"failurePercentageEjection": {"threshold": 200}}"#,
                "od.failurePercentageEjection.threshold",
            ),
            (
                r#"{"successRateEjection": {"stdev": 1}}"#,
                "od.successRateEjection.stdev",
            ),
            (r#"{"ejectionTime": "1s"}"#, "od.ejectionTime"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(field), "{text}: {error}");
        }
    }
}
