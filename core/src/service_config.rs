//! gRPC's service config, in the JSON form grpc-go accepts (`doc/service_config.md`, gRPC A6):
//! per-method timeouts, wait-for-ready, message limits and retry policies, and retry
//! throttling. Parsed once when the pool is made; a config that does not parse, or has a bad
//! field, is an error naming the field, never a surprise at call time.
//!
//! `loadBalancingConfig` picks how a target's calls spread over its addresses: the first entry
//! grpcpool supports wins, as in gRPC (`pick_first`, `round_robin`,
//! `least_request_experimental`).
//!
//! `healthCheckConfig.serviceName` turns on client-side health checking (gRPC A17).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::json_fields::{as_array, as_object, duration, invalid};
use crate::outlier_detection::OutlierDetection;
use crate::{Code, Error};

/// Attempts above this are treated as this many, as gRPC A6 requires of clients by default.
const MAX_ATTEMPTS: u32 = 5;

/// A parsed service config: the method configs by name, and retry throttling.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    methods: Vec<Arc<MethodConfig>>,
    /// `service/method` to its config.
    by_method: HashMap<String, usize>,
    /// `service` to the config for all its methods.
    by_service: HashMap<String, usize>,
    /// The config for every method no other name matches.
    default: Option<usize>,
    retry_throttling: Option<RetryThrottling>,
    load_balancing: LoadBalancing,
    outlier_detection: Option<OutlierDetection>,
    health_check_service: Option<String>,
}

/// How a target's calls spread over the addresses it resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBalancing {
    /// No policy configured: each call takes the least-loaded ready connection of the target
    /// (streams in flight over the server's limit, ties rotated), whatever its address; new
    /// connections go to the address with the fewest.
    #[default]
    LeastLoaded,
    /// `pick_first`: every connection goes to the first address (in resolved order, shuffled
    /// first when asked) that connects, and stays there while it answers; on its loss, the next.
    PickFirst {
        /// `shuffleAddressList`: shuffle the addresses of each resolution first (gRPC A62).
        shuffle_address_list: bool,
    },
    /// `round_robin`: a connection to every address, calls rotated over the ready ones.
    RoundRobin,
    /// `least_request_experimental` (gRPC A48): a connection to every address; each call
    /// compares `choice_count` addresses picked at random and takes the one with the fewest
    /// calls in flight.
    LeastRequest {
        /// Addresses compared per call, 2 to 10.
        choice_count: u32,
    },
}

/// What a service config says about one method.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodConfig {
    /// The longest a call may take; the caller's deadline wins when it is sooner.
    pub timeout: Option<Duration>,
    /// Calls wait for a connection instead of failing fast.
    pub wait_for_ready: Option<bool>,
    /// Largest request message; the smaller of this and the pool's limit applies.
    pub max_request_message_bytes: Option<usize>,
    /// Largest response message; the smaller of this and the pool's limit applies.
    pub max_response_message_bytes: Option<usize>,
    /// How failed calls are tried again.
    pub retry_policy: Option<RetryPolicy>,
    /// How calls are sent again without waiting for the first attempt to fail.
    pub hedging_policy: Option<HedgingPolicy>,
}

/// A `hedgingPolicy` (gRPC A6): the call goes out again every `hedging_delay` while no
/// attempt has answered, up to `max_attempts` at once; the first good answer wins and the
/// others are cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgingPolicy {
    /// Attempts in all, the first included; at most 5.
    pub max_attempts: u32,
    /// Time between attempts while none has answered; zero sends them all at once.
    pub hedging_delay: Duration,
    /// Statuses after which the next attempt goes at once instead of ending the call, as a bit
    /// per code.
    non_fatal: u32,
}

impl HedgingPolicy {
    /// Whether an attempt that ended with `code` lets the others go on.
    pub fn is_non_fatal(&self, code: Code) -> bool {
        self.non_fatal & (1 << code.as_i32()) != 0
    }
}

/// A `retryPolicy` (gRPC A6).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at most 5.
    pub max_attempts: u32,
    /// The first retry waits `initial_backoff` (spread by ±20%).
    pub initial_backoff: Duration,
    /// No wait is longer than this (before the spread).
    pub max_backoff: Duration,
    /// Growth of the wait per retry.
    pub backoff_multiplier: f64,
    /// Statuses that are retried, as a bit per code.
    retryable: u32,
}

impl RetryPolicy {
    /// Whether a call that ended with `code` may be tried again.
    pub fn retries(&self, code: Code) -> bool {
        self.retryable & (1 << code.as_i32()) != 0
    }

    /// The wait before retry number `retry` (1 for the first), before the ±20% spread:
    /// `min(initial_backoff * multiplier^(retry-1), max_backoff)`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let grown = self.initial_backoff.as_secs_f64()
            * self
                .backoff_multiplier
                .powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX));
        Duration::try_from_secs_f64(grown)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// `retryThrottling` (gRPC A6): a token bucket per target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryThrottling {
    /// Tokens the bucket starts with and holds at most (1 to 1000).
    pub max_tokens: u32,
    /// Tokens a successful call gives back (three decimal places kept).
    pub token_ratio: f64,
}

impl ServiceConfig {
    /// Parses a service config from its JSON text; the error names the field at fault.
    pub fn parse(json: &str) -> Result<ServiceConfig, Error> {
        let value: Value = serde_json::from_str(json)
            .map_err(|error| invalid("", &format!("not valid JSON: {error}")))?;
        let object = as_object(&value, "")?;
        let mut config = ServiceConfig::default();
        for (key, value) in object {
            match key.as_str() {
                "methodConfig" => {
                    for (index, entry) in as_array(value, key)?.iter().enumerate() {
                        config.add_method(entry, &format!("methodConfig[{index}]"))?;
                    }
                }
                "retryThrottling" => {
                    config.retry_throttling = Some(retry_throttling(value, key)?);
                }
                "loadBalancingConfig" => {
                    let (policy, outlier_detection) = load_balancing_config(value, key)?;
                    config.load_balancing = policy;
                    config.outlier_detection = outlier_detection;
                }
                "loadBalancingPolicy" => {
                    // The older form: a policy name.
                    let name = value
                        .as_str()
                        .ok_or_else(|| invalid(key, "must be a policy name"))?;
                    let (policy, _) = balancing_policy(name, &Value::Object(Map::new()), key)?
                        .filter(|(_, outlier_detection)| outlier_detection.is_none())
                        .ok_or_else(|| {
                            invalid(
                                key,
                                "names no policy grpcpool supports (pick_first, round_robin)",
                            )
                        })?;
                    config.load_balancing = policy;
                }
                "healthCheckConfig" => {
                    config.health_check_service = Some(health_check_config(value, key)?);
                }
                other => return Err(invalid(other, "unknown field")),
            }
        }
        Ok(config)
    }

    /// The config for `path` (`/service/method`): the entry naming the method, else the one
    /// naming its service, else the default entry, as gRPC matches names.
    pub fn method(&self, path: &str) -> Option<&Arc<MethodConfig>> {
        let name = path.strip_prefix('/').unwrap_or(path);
        let service = name.split_once('/').map_or(name, |(service, _)| service);
        self.by_method
            .get(name)
            .or_else(|| self.by_service.get(service))
            .or(self.default.as_ref())
            .and_then(|index| self.methods.get(*index))
    }

    /// The balancing policy (`LoadBalancing::LeastLoaded` when none is configured).
    pub fn load_balancing(&self) -> LoadBalancing {
        self.load_balancing
    }

    /// Outlier detection (`outlier_detection_experimental` around the balancing policy), when
    /// configured.
    pub fn outlier_detection(&self) -> Option<&OutlierDetection> {
        self.outlier_detection.as_ref()
    }

    /// The service whose health each connection watches (`healthCheckConfig.serviceName`),
    /// when configured; "" is the server's overall health.
    pub fn health_check_service(&self) -> Option<&str> {
        self.health_check_service.as_deref()
    }

    /// Retry throttling, when configured.
    pub fn retry_throttling(&self) -> Option<RetryThrottling> {
        self.retry_throttling
    }

    fn add_method(&mut self, value: &Value, at: &str) -> Result<(), Error> {
        let object = as_object(value, at)?;
        let index = self.methods.len();
        let mut method = MethodConfig::default();
        let mut named = false;
        for (key, value) in object {
            let field = format!("{at}.{key}");
            match key.as_str() {
                "name" => {
                    for (position, name) in as_array(value, &field)?.iter().enumerate() {
                        self.add_name(name, index, &format!("{field}[{position}]"))?;
                        named = true;
                    }
                }
                "timeout" => method.timeout = Some(duration(value, &field)?),
                "waitForReady" => {
                    method.wait_for_ready = Some(
                        value
                            .as_bool()
                            .ok_or_else(|| invalid(&field, "must be a bool"))?,
                    )
                }
                "maxRequestMessageBytes" => {
                    method.max_request_message_bytes = Some(byte_count(value, &field)?)
                }
                "maxResponseMessageBytes" => {
                    method.max_response_message_bytes = Some(byte_count(value, &field)?)
                }
                "retryPolicy" => method.retry_policy = Some(retry_policy(value, &field)?),
                "hedgingPolicy" => method.hedging_policy = Some(hedging_policy(value, &field)?),
                _ => return Err(invalid(&field, "unknown field")),
            }
        }
        if !named {
            return Err(invalid(
                &format!("{at}.name"),
                "at least one name is required",
            ));
        }
        if method.retry_policy.is_some() && method.hedging_policy.is_some() {
            return Err(invalid(
                &format!("{at}.hedgingPolicy"),
                "only one of retryPolicy and hedgingPolicy may be set",
            ));
        }
        self.methods.push(Arc::new(method));
        Ok(())
    }

    fn add_name(&mut self, value: &Value, index: usize, at: &str) -> Result<(), Error> {
        let object = as_object(value, at)?;
        let mut service = "";
        let mut method = "";
        for (key, value) in object {
            let text = || {
                value
                    .as_str()
                    .ok_or_else(|| invalid(&format!("{at}.{key}"), "must be a string"))
            };
            match key.as_str() {
                "service" => service = text()?,
                "method" => method = text()?,
                _ => return Err(invalid(&format!("{at}.{key}"), "unknown field")),
            }
        }
        let duplicate = || invalid(at, "names a method another entry already names");
        match (service.is_empty(), method.is_empty()) {
            (true, true) => {
                if self.default.replace(index).is_some() {
                    return Err(duplicate());
                }
            }
            (true, false) => {
                return Err(invalid(
                    &format!("{at}.method"),
                    "a method needs its service",
                ))
            }
            (false, true) => {
                if self.by_service.insert(service.to_owned(), index).is_some() {
                    return Err(duplicate());
                }
            }
            (false, false) => {
                if self
                    .by_method
                    .insert(format!("{service}/{method}"), index)
                    .is_some()
                {
                    return Err(duplicate());
                }
            }
        }
        Ok(())
    }
}

fn positive_duration(value: Option<&Value>, at: &str) -> Result<Duration, Error> {
    let value = value.ok_or_else(|| invalid(at, "is required"))?;
    let duration = duration(value, at)?;
    if duration.is_zero() {
        return Err(invalid(at, "must be greater than 0"));
    }
    Ok(duration)
}

fn byte_count(value: &Value, at: &str) -> Result<usize, Error> {
    // proto3 JSON writes 64-bit integers as strings; accept both forms.
    let number = match value {
        Value::String(text) => text.parse::<u64>().ok(),
        other => other.as_u64(),
    };
    number
        .and_then(|number| usize::try_from(number).ok())
        .ok_or_else(|| invalid(at, "must be a whole number of bytes"))
}

fn max_attempts(value: Option<&Value>, at: &str) -> Result<u32, Error> {
    let attempts = value
        .ok_or_else(|| invalid(at, "is required"))?
        .as_u64()
        .filter(|attempts| *attempts > 1)
        .ok_or_else(|| invalid(at, "must be an integer greater than 1"))?;
    Ok(u32::try_from(attempts)
        .unwrap_or(u32::MAX)
        .min(MAX_ATTEMPTS))
}

/// A status code by number or by case-insensitive name, as A6 allows.
fn status_code(value: &Value, at: &str) -> Result<Code, Error> {
    let code = match value {
        Value::Number(number) => number
            .as_u64()
            .and_then(|number| usize::try_from(number).ok())
            .and_then(|number| Code::ALL.get(number).copied()),
        Value::String(name) => Code::ALL
            .iter()
            .copied()
            .find(|code| code.name().eq_ignore_ascii_case(name)),
        _ => None,
    };
    code.ok_or_else(|| invalid(at, "is not a gRPC status code"))
}

fn retry_policy(value: &Value, at: &str) -> Result<RetryPolicy, Error> {
    let object = as_object(value, at)?;
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "maxAttempts"
                | "initialBackoff"
                | "maxBackoff"
                | "backoffMultiplier"
                | "retryableStatusCodes"
        ) {
            return Err(invalid(&format!("{at}.{key}"), "unknown field"));
        }
    }
    let field = |key: &str| format!("{at}.{key}");
    let multiplier_at = field("backoffMultiplier");
    let backoff_multiplier = object
        .get("backoffMultiplier")
        .ok_or_else(|| invalid(&multiplier_at, "is required"))?
        .as_f64()
        .filter(|multiplier| *multiplier > 0.0 && multiplier.is_finite())
        .ok_or_else(|| invalid(&multiplier_at, "must be a number greater than 0"))?;
    let codes_at = field("retryableStatusCodes");
    let codes = as_array(
        object
            .get("retryableStatusCodes")
            .ok_or_else(|| invalid(&codes_at, "is required"))?,
        &codes_at,
    )?;
    if codes.is_empty() {
        return Err(invalid(&codes_at, "must not be empty"));
    }
    let mut retryable = 0;
    for (index, code) in codes.iter().enumerate() {
        let code = status_code(code, &format!("{codes_at}[{index}]"))?;
        if code == Code::Ok {
            return Err(invalid(
                &format!("{codes_at}[{index}]"),
                "OK is not a failure",
            ));
        }
        retryable |= 1 << code.as_i32();
    }
    Ok(RetryPolicy {
        max_attempts: max_attempts(object.get("maxAttempts"), &field("maxAttempts"))?,
        initial_backoff: positive_duration(object.get("initialBackoff"), &field("initialBackoff"))?,
        max_backoff: positive_duration(object.get("maxBackoff"), &field("maxBackoff"))?,
        backoff_multiplier,
        retryable,
    })
}

/// `healthCheckConfig`: `{"serviceName": "..."}` (gRPC A17).
fn health_check_config(value: &Value, at: &str) -> Result<String, Error> {
    let object = as_object(value, at)?;
    if let Some(key) = object.keys().find(|key| key.as_str() != "serviceName") {
        return Err(invalid(&format!("{at}.{key}"), "unknown field"));
    }
    match object.get("serviceName") {
        None => Ok(String::new()),
        Some(Value::String(name)) => Ok(name.clone()),
        Some(_) => Err(invalid(&format!("{at}.serviceName"), "must be a string")),
    }
}

/// A balancing policy, and the outlier detection around it if any.
type Balancing = (LoadBalancing, Option<OutlierDetection>);

/// `loadBalancingConfig`: a list of one-key objects; the first policy grpcpool supports wins,
/// as in gRPC, and a list naming none of them is an error.
fn load_balancing_config(value: &Value, at: &str) -> Result<Balancing, Error> {
    let entries = as_array(value, at)?;
    for (index, entry) in entries.iter().enumerate() {
        let entry_at = format!("{at}[{index}]");
        let object = as_object(entry, &entry_at)?;
        let mut names = object.iter();
        let (Some((name, config)), None) = (names.next(), names.next()) else {
            return Err(invalid(&entry_at, "must name exactly one policy"));
        };
        if let Some(policy) = balancing_policy(name, config, &format!("{entry_at}.{name}"))? {
            return Ok(policy);
        }
    }
    Err(invalid(
        at,
        "names no policy grpcpool supports (pick_first, round_robin, least_request_experimental, \
         outlier_detection_experimental)",
    ))
}

/// The policy `name` with its `config`; `None` for a policy grpcpool does not know.
fn balancing_policy(name: &str, config: &Value, at: &str) -> Result<Option<Balancing>, Error> {
    let object = as_object(config, at)?;
    let only = |allowed: &[&str]| match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(invalid(&format!("{at}.{key}"), "unknown field")),
        None => Ok(()),
    };
    Ok(Some((
        match name {
            // A50: around a child policy, which balances over the addresses not ejected.
            "outlier_detection_experimental" => {
                let outlier_detection = OutlierDetection::parse(object, at)?;
                let child_at = format!("{at}.childPolicy");
                let child = object
                    .get("childPolicy")
                    .ok_or_else(|| invalid(&child_at, "is required"))?;
                let (policy, nested) = load_balancing_config(child, &child_at)?;
                if nested.is_some() {
                    return Err(invalid(
                        &child_at,
                        "outlier_detection_experimental inside another is not supported",
                    ));
                }
                return Ok(Some((policy, Some(outlier_detection))));
            }
            "pick_first" => {
                only(&["shuffleAddressList"])?;
                let shuffle_address_list = match object.get("shuffleAddressList") {
                    None => false,
                    Some(value) => value.as_bool().ok_or_else(|| {
                        invalid(&format!("{at}.shuffleAddressList"), "must be a bool")
                    })?,
                };
                LoadBalancing::PickFirst {
                    shuffle_address_list,
                }
            }
            "round_robin" => {
                only(&[])?;
                LoadBalancing::RoundRobin
            }
            "least_request_experimental" => {
                only(&["choiceCount"])?;
                let choice_count = match object.get("choiceCount") {
                    None => 2,
                    // A48: below 2 is refused, above 10 is treated as 10.
                    Some(value) => value
                        .as_u64()
                        .filter(|count| *count >= 2)
                        .ok_or_else(|| {
                            invalid(
                                &format!("{at}.choiceCount"),
                                "must be an integer of at least 2",
                            )
                        })?
                        .min(10) as u32,
                };
                LoadBalancing::LeastRequest { choice_count }
            }
            _ => return Ok(None),
        },
        None,
    )))
}

fn hedging_policy(value: &Value, at: &str) -> Result<HedgingPolicy, Error> {
    let object = as_object(value, at)?;
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "maxAttempts" | "hedgingDelay" | "nonFatalStatusCodes"
        ) {
            return Err(invalid(&format!("{at}.{key}"), "unknown field"));
        }
    }
    let hedging_delay = match object.get("hedgingDelay") {
        Some(value) => duration(value, &format!("{at}.hedgingDelay"))?,
        None => Duration::ZERO,
    };
    let mut non_fatal = 0;
    if let Some(codes) = object.get("nonFatalStatusCodes") {
        let codes_at = format!("{at}.nonFatalStatusCodes");
        for (index, code) in as_array(codes, &codes_at)?.iter().enumerate() {
            let code = status_code(code, &format!("{codes_at}[{index}]"))?;
            if code == Code::Ok {
                return Err(invalid(
                    &format!("{codes_at}[{index}]"),
                    "OK is not a failure",
                ));
            }
            non_fatal |= 1 << code.as_i32();
        }
    }
    Ok(HedgingPolicy {
        max_attempts: max_attempts(object.get("maxAttempts"), &format!("{at}.maxAttempts"))?,
        hedging_delay,
        non_fatal,
    })
}

fn retry_throttling(value: &Value, at: &str) -> Result<RetryThrottling, Error> {
    let object = as_object(value, at)?;
    for key in object.keys() {
        if !matches!(key.as_str(), "maxTokens" | "tokenRatio") {
            return Err(invalid(&format!("{at}.{key}"), "unknown field"));
        }
    }
    let tokens_at = format!("{at}.maxTokens");
    let max_tokens = object
        .get("maxTokens")
        .ok_or_else(|| invalid(&tokens_at, "is required"))?
        .as_u64()
        .filter(|tokens| (1..=1000).contains(tokens))
        .and_then(|tokens| u32::try_from(tokens).ok())
        .ok_or_else(|| invalid(&tokens_at, "must be an integer from 1 to 1000"))?;
    let ratio_at = format!("{at}.tokenRatio");
    let ratio = object
        .get("tokenRatio")
        .ok_or_else(|| invalid(&ratio_at, "is required"))?
        .as_f64()
        .filter(|ratio| *ratio > 0.0 && ratio.is_finite())
        .ok_or_else(|| invalid(&ratio_at, "must be a number greater than 0"))?;
    // A6: decimal places beyond three are ignored.
    let token_ratio = (ratio * 1000.0).floor() / 1000.0;
    if token_ratio <= 0.0 {
        return Err(invalid(&ratio_at, "must be at least 0.001"));
    }
    Ok(RetryThrottling {
        max_tokens,
        token_ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRYING: &str = r#"{
        "methodConfig": [
            {"name": [{"service": "pkg.Echo", "method": "Unary"}], "timeout": "0.25s",
             "retryPolicy": {"maxAttempts": 9, "initialBackoff": "0.010s", "maxBackoff": "1s",
                             "backoffMultiplier": 2, "retryableStatusCodes": ["unavailable", 10]}},
            {"name": [{"service": "pkg.Echo"}], "waitForReady": true,
             "maxRequestMessageBytes": "1024"},
            {"name": [{}], "maxResponseMessageBytes": 2048}
        ],
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1234}
    }"#;

    #[test]
    fn names_match_method_then_service_then_default() {
        let config = ServiceConfig::parse(RETRYING).unwrap();
        let unary = config.method("/pkg.Echo/Unary").unwrap();
        assert_eq!(unary.timeout, Some(Duration::from_millis(250)));
        let policy = unary.retry_policy.as_ref().unwrap();
        assert_eq!(policy.max_attempts, 5, "capped at 5");
        assert!(policy.retries(Code::Unavailable) && policy.retries(Code::Aborted));
        assert!(!policy.retries(Code::Internal));
        assert_eq!(policy.backoff(1), Duration::from_millis(10));
        assert_eq!(policy.backoff(3), Duration::from_millis(40));
        assert_eq!(policy.backoff(30), Duration::from_secs(1));
        let other = config.method("/pkg.Echo/Other").unwrap();
        assert_eq!(other.wait_for_ready, Some(true));
        assert_eq!(other.max_request_message_bytes, Some(1024));
        let fallback = config.method("/else.Where/Any").unwrap();
        assert_eq!(fallback.max_response_message_bytes, Some(2048));
        let throttling = config.retry_throttling().unwrap();
        assert_eq!(throttling.max_tokens, 10);
        assert!((throttling.token_ratio - 0.123).abs() < 1e-9);
        assert!(ServiceConfig::parse("{}")
            .unwrap()
            .method("/a.B/C")
            .is_none());
    }

    #[test]
    fn bad_configs_name_the_field() {
        let policy = |body: &str| {
            format!(r#"{{"methodConfig": [{{"name": [{{}}], "retryPolicy": {{{body}}}}}]}}"#)
        };
        let good = r#""maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 1, "retryableStatusCodes": [14]"#;
        assert!(ServiceConfig::parse(&policy(good)).is_ok());
        let cases = [
            ("not json".to_owned(), "not valid JSON"),
            ("[]".to_owned(), "must be a JSON object"),
            (
                r#"{"methodconfig": []}"#.to_owned(),
                "methodconfig: unknown field",
            ),
            (
                r#"{"loadBalancingConfig": [{"grpclb": {}}]}"#.to_owned(),
                "loadBalancingConfig: names no policy",
            ),
            (
                r#"{"loadBalancingConfig": [{"round_robin": {}, "pick_first": {}}]}"#.to_owned(),
                "loadBalancingConfig[0]: must name exactly one",
            ),
            (
                r#"{"loadBalancingConfig": [{"least_request_experimental": {"choiceCount": 1}}]}"#
                    .to_owned(),
                "least_request_experimental.choiceCount: must be an integer of at least 2",
            ),
            (
                r#"{"loadBalancingConfig": [{"pick_first": {"shuffle": true}}]}"#.to_owned(),
                "pick_first.shuffle: unknown field",
            ),
            (
                r#"{"loadBalancingPolicy": "weighted"}"#.to_owned(),
                "loadBalancingPolicy: names no policy",
            ),
            (
                r#"{"methodConfig": [{"timeout": "1s"}]}"#.to_owned(),
                "methodConfig[0].name: at least one",
            ),
            (
                r#"{"methodConfig": [{"name": [{}]}, {"name": [{}]}]}"#.to_owned(),
                "methodConfig[1].name[0]: names a method",
            ),
            (
                r#"{"methodConfig": [{"name": [{"method": "M"}]}]}"#.to_owned(),
                "name[0].method: a method needs its service",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "timeout": "1"}]}"#.to_owned(),
                "methodConfig[0].timeout: must be a duration",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "timeout": "-1s"}]}"#.to_owned(),
                "timeout: must be a duration",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "hedgingPolicy": {}}]}"#.to_owned(),
                "hedgingPolicy.maxAttempts: is required",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2, "nonFatalStatusCodes": ["nope"]}}]}"#.to_owned(),
                "hedgingPolicy.nonFatalStatusCodes[0]: is not a gRPC status code",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2}, "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 1, "retryableStatusCodes": [14]}}]}"#.to_owned(),
                "only one of retryPolicy and hedgingPolicy",
            ),
            (
                policy(&good.replace("\"maxAttempts\": 2", "\"maxAttempts\": 1")),
                "retryPolicy.maxAttempts: must be an integer greater than 1",
            ),
            (
                policy(&good.replace("\"1s\", \"maxBackoff\"", "\"0s\", \"maxBackoff\"")),
                "retryPolicy.initialBackoff: must be greater than 0",
            ),
            (
                policy(&good.replace("\"backoffMultiplier\": 1", "\"backoffMultiplier\": 0")),
                "retryPolicy.backoffMultiplier: must be a number greater than 0",
            ),
            (
                policy(&good.replace("[14]", "[]")),
                "retryPolicy.retryableStatusCodes: must not be empty",
            ),
            (
                policy(&good.replace("[14]", "[\"NOPE\"]")),
                "retryableStatusCodes[0]: is not a gRPC status code",
            ),
            (
                policy(&good.replace("[14]", "[17]")),
                "retryableStatusCodes[0]: is not a gRPC status code",
            ),
            (
                policy(&good.replace(", \"maxBackoff\": \"1s\"", "")),
                "retryPolicy.maxBackoff: is required",
            ),
            (
                r#"{"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}"#.to_owned(),
                "retryThrottling.maxTokens: must be an integer from 1 to 1000",
            ),
            (
                r#"{"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.0001}}"#.to_owned(),
                "retryThrottling.tokenRatio: must be at least 0.001",
            ),
        ];
        for (json, expected) in cases {
            let error = ServiceConfig::parse(&json).unwrap_err().to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn the_first_supported_balancing_policy_wins() {
        let policy = |json: &str| ServiceConfig::parse(json).unwrap().load_balancing();
        assert_eq!(policy("{}"), LoadBalancing::LeastLoaded);
        assert_eq!(
            policy(
                r#"{"loadBalancingConfig": [{"grpclb": {}}, {"round_robin": {}}, {"pick_first": {}}]}"#
            ),
            LoadBalancing::RoundRobin
        );
        assert_eq!(
            policy(r#"{"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": true}}]}"#),
            LoadBalancing::PickFirst {
                shuffle_address_list: true
            }
        );
        assert_eq!(
            policy(
                r#"{"loadBalancingConfig": [{"least_request_experimental": {"choiceCount": 50}}]}"#
            ),
            LoadBalancing::LeastRequest { choice_count: 10 }
        );
        assert_eq!(
            policy(r#"{"loadBalancingPolicy": "round_robin"}"#),
            LoadBalancing::RoundRobin
        );
    }

    #[test]
    fn durations_follow_proto3_json() {
        let parse = |text: &str| duration(&Value::String(text.to_owned()), "d");
        assert_eq!(parse("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("0.000000001s").unwrap(), Duration::from_nanos(1));
        for bad in [
            "",
            "s",
            ".s",
            "1",
            "1.0000000001s",
            "1e3s",
            "+1s",
            "1.5ms",
            "315576000001s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
