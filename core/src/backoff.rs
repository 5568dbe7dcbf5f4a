//! Reconnect delays per gRPC's connection-backoff spec.

use std::time::Duration;

use crate::Error;

/// How long to wait between failed connection attempts: `initial`, then ×`multiplier` per
/// failure up to `max`, each delay spread by ±`jitter`. Defaults are the spec's.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// Delay after the first failure. Default 1 s.
    pub initial: Duration,
    /// Growth per failure. Default 1.6.
    pub multiplier: f64,
    /// Random spread as a fraction of the delay. Default 0.2.
    pub jitter: f64,
    /// Longest delay. Default 120 s.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
        }
    }
}

impl BackoffConfig {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let valid = !self.initial.is_zero()
            && self.max >= self.initial
            && self.multiplier.is_finite()
            && self.multiplier >= 1.0
            && (0.0..1.0).contains(&self.jitter);
        if valid {
            Ok(())
        } else {
            Err(Error::InvalidConfig(
                "backoff needs initial > 0, max >= initial, multiplier >= 1 and 0 <= jitter < 1"
                    .to_owned(),
            ))
        }
    }
}

/// The backoff state of one address: the delay the next failure will wait.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    current: Duration,
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig) -> Backoff {
        let current = config.initial;
        Backoff { config, current }
    }

    /// The delay before the next attempt after a failure, jittered; grows the following one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.current;
        let grown = base.as_secs_f64() * self.config.multiplier;
        self.current = Duration::from_secs_f64(grown.min(self.config.max.as_secs_f64()));
        let spread = 1.0 + self.config.jitter * (fastrand::f64() * 2.0 - 1.0);
        Duration::from_secs_f64(base.as_secs_f64() * spread)
    }

    /// Back to the initial delay, after a successful connection.
    pub(crate) fn reset(&mut self) {
        self.current = self.config.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_multiplier_within_jitter_and_stops_at_max() {
        let mut backoff = Backoff::new(BackoffConfig::default());
        let mut expected = 1.0_f64;
        for _ in 0..20 {
            let delay = backoff.next_delay().as_secs_f64();
            assert!(
                delay >= expected * 0.8 - 1e-9 && delay <= expected * 1.2 + 1e-9,
                "{delay} vs {expected}"
            );
            expected = (expected * 1.6).min(120.0);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(1200));
    }
}
