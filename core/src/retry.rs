//! Configured retries (gRPC A6): a call's attempts under its method's `retryPolicy`, the
//! server's pushback, and the per-target token bucket of `retryThrottling`.
//!
//! Transparent retries (an attempt the server never processed) are call.rs's and do not count
//! here; these are the retries of attempts that ended with a retryable status before the call
//! was committed (before response headers arrived).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::service_config::{RetryPolicy, RetryThrottling};
use crate::stats::Counters;
use tonic::metadata::MetadataMap;

use crate::{Code, Response};

/// The metadata key a server sets to ask for a retry after so many milliseconds, or for none.
const PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

/// The header that tells the server how many attempts came before this one.
const PREVIOUS_ATTEMPTS_KEY: &str = "grpc-previous-rpc-attempts";

/// Adds `grpc-previous-rpc-attempts` to an attempt's request when attempts came before it.
pub(crate) fn mark_attempt<T>(request: &mut tonic::Request<T>, previous_attempts: u32) {
    if previous_attempts > 0 {
        request.metadata_mut().insert(
            PREVIOUS_ATTEMPTS_KEY,
            tonic::metadata::MetadataValue::from(previous_attempts),
        );
    }
}

/// `retryThrottling`'s bucket for one target, in thousandths of a token (A6 keeps three
/// decimal places of `tokenRatio`), so it is one atomic.
#[derive(Debug)]
pub(crate) struct RetryThrottle {
    max: u64,
    ratio: u64,
    tokens: AtomicU64,
}

impl RetryThrottle {
    pub(crate) fn new(config: RetryThrottling) -> RetryThrottle {
        let max = u64::from(config.max_tokens) * 1000;
        RetryThrottle {
            max,
            // At least 0.001 and three places, as the parser guarantees.
            ratio: (config.token_ratio * 1000.0).round() as u64,
            tokens: AtomicU64::new(max),
        }
    }

    /// Whether retries and hedges may go out now: the bucket above half full.
    pub(crate) fn allows(&self) -> bool {
        self.tokens.load(Ordering::Acquire) > self.max / 2
    }

    /// A failed attempt takes a token; whether retries are still allowed afterwards (the
    /// bucket above half full).
    pub(crate) fn failed(&self) -> bool {
        let before = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                Some(tokens.saturating_sub(1000))
            })
            .unwrap_or(0);
        before.saturating_sub(1000) > self.max / 2
    }

    /// A successful call gives back `tokenRatio`.
    pub(crate) fn succeeded(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                Some((tokens + self.ratio).min(self.max))
            });
    }
}

/// What the server said about retrying, in `grpc-retry-pushback-ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Pushback {
    /// No pushback: the policy's backoff applies.
    #[default]
    None,
    /// Retry after exactly this long.
    After(Duration),
    /// A negative or malformed value: do not retry.
    Stop,
}

impl Pushback {
    /// The pushback in a failed attempt's status metadata (the trailers, or the one header
    /// block of a Trailers-Only response).
    pub(crate) fn of(metadata: &MetadataMap) -> Pushback {
        match metadata.get(PUSHBACK_KEY).map(|value| value.to_str()) {
            None => Pushback::None,
            Some(Ok(text)) => match text.parse::<i32>() {
                // A6: no unnecessary leading zeros.
                Ok(millis) if millis >= 0 && (millis == 0 || !text.starts_with('0')) => {
                    Pushback::After(Duration::from_millis(millis.unsigned_abs().into()))
                }
                _ => Pushback::Stop,
            },
            Some(Err(_)) => Pushback::Stop,
        }
    }
}

/// One call's configured retries.
pub(crate) struct Retries<'a> {
    policy: Option<&'a RetryPolicy>,
    /// Attempts that ended with a status so far.
    attempts: u32,
    /// Retries since the last pushback; the backoff grows with it.
    since_pushback: u32,
}

impl<'a> Retries<'a> {
    pub(crate) fn new(policy: Option<&'a RetryPolicy>) -> Retries<'a> {
        Retries {
            policy,
            attempts: 0,
            since_pushback: 0,
        }
    }

    /// Attempts made before the next one, as `grpc-previous-rpc-attempts` says.
    pub(crate) fn previous_attempts(&self) -> u32 {
        self.attempts
    }

    /// After an attempt that ended with `response` before the call was committed: how long
    /// to wait before the next attempt, or `None` when the call ends with this response (also
    /// when the wait would outlast the call's `deadline`). Keeps the target's throttle and
    /// counters.
    pub(crate) fn after(
        &mut self,
        response: &Response,
        pushback: Pushback,
        deadline: Option<Instant>,
        throttle: Option<&RetryThrottle>,
        counters: &Counters,
    ) -> Option<Duration> {
        self.attempts += 1;
        if response.code == Code::Ok {
            return None;
        }
        let policy = self.policy?;
        let retryable = policy.retries(response.code);
        if !retryable && pushback != Pushback::Stop {
            return None;
        }
        // Only failures the policy would retry (or a server saying stop) count against the
        // bucket, so malformed requests do not throttle a healthy server.
        let allowed = throttle.is_none_or(RetryThrottle::failed);
        if !retryable || self.attempts >= policy.max_attempts {
            return None;
        }
        if !allowed {
            Counters::bump(&counters.retries_throttled);
            return None;
        }
        let delay = match pushback {
            Pushback::Stop => {
                Counters::bump(&counters.retry_pushbacks);
                return None;
            }
            Pushback::After(delay) => {
                Counters::bump(&counters.retry_pushbacks);
                self.since_pushback = 0;
                delay
            }
            Pushback::None => {
                self.since_pushback += 1;
                // A6: min(initial * multiplier^(n-1), max), spread by ±20%.
                policy
                    .backoff(self.since_pushback)
                    .mul_f64(0.8 + 0.4 * fastrand::f64())
            }
        };
        if deadline.is_some_and(|deadline| Instant::now() + delay >= deadline) {
            return None;
        }
        Counters::bump(&counters.retries);
        tracing::debug!(attempt = self.attempts, code = %response.code, ?delay, "retrying a call");
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushback(value: &str) -> Pushback {
        let mut metadata = MetadataMap::new();
        metadata.insert(PUSHBACK_KEY, value.parse().unwrap());
        Pushback::of(&metadata)
    }

    #[test]
    fn pushback_is_a_delay_or_a_stop() {
        assert_eq!(pushback("250"), Pushback::After(Duration::from_millis(250)));
        assert_eq!(pushback("0"), Pushback::After(Duration::ZERO));
        for stop in ["-1", "abc", "", "012", "99999999999"] {
            assert_eq!(pushback(stop), Pushback::Stop, "{stop:?}");
        }
        assert_eq!(Pushback::of(&MetadataMap::new()), Pushback::None);
    }

    #[test]
    fn the_bucket_stops_retries_at_half_and_refills_by_the_ratio() {
        let throttle = RetryThrottle::new(RetryThrottling {
            max_tokens: 4,
            token_ratio: 0.5,
        });
        assert!(throttle.failed()); // 3 left: above 2
        assert!(!throttle.failed()); // 2 left: not above half
        assert!(!throttle.failed()); // 1
        throttle.succeeded();
        throttle.succeeded();
        throttle.succeeded(); // 2.5
        assert!(!throttle.failed()); // 1.5
        for _ in 0..20 {
            throttle.succeeded();
        }
        assert!(throttle.failed(), "refilled to 4, capped there");
    }
}
