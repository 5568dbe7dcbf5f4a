//! Fuzzes the `grpc-timeout` a call sends for its deadline (`PreparedCall::request`,
//! core/src/call.rs, through tonic's encoding), as a property over every timeout a face can
//! give: milliseconds from C and Node, seconds as a float from Python, text such as `250ms`.
//!
//! For any timeout it checks, with a strict parser of the gRPC HTTP/2 spec's grammar written
//! here (`TimeoutValue TimeoutUnit`: 1 to 8 ASCII digits, then one of `H M S m u n`), that:
//! - a call with a deadline sends exactly one such value, and one without none (only a
//!   timeout too large for an `Instant` has no deadline);
//! - the value is never longer than the timeout, and never longer than the 8-digit maximum
//!   (99999999 S) the core caps it at;
//! - it is shorter than what was left of the deadline when encoded by less than one of its
//!   units (the encoding rounds down, never more), and that unit is the finest whose 8
//!   digits hold the time left (no precision is thrown away);
//! - a deadline not yet past is sent as a positive value, as the spec requires.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use grpcpool_core::fuzzing::grpc_timeout_header;
use libfuzzer_sys::fuzz_target;

/// The largest `grpc-timeout` value: 8 digits of seconds, which the core caps deadlines at.
const MAX_WIRE: Duration = Duration::from_secs(99_999_999);
/// The longest value of a `TimeoutValue`.
const MAX_DIGITS: u64 = 99_999_999;

#[derive(Arbitrary, Debug)]
enum Timeout {
    /// `grpcpool_call_options_set_timeout_ms`, Node's `timeoutMs`.
    Millis(u32),
    /// Python's `timeout=` seconds.
    Seconds(f64),
    /// Anything a `Duration` holds (the Rust API, `250ms`-style text).
    Exact(u64, u32),
}

fuzz_target!(|timeout: Timeout| {
    let timeout = match timeout {
        Timeout::Millis(ms) => Duration::from_millis(u64::from(ms)),
        Timeout::Seconds(seconds) => match Duration::try_from_secs_f64(seconds) {
            Ok(timeout) => timeout,
            Err(_) => return,
        },
        Timeout::Exact(secs, nanos) => Duration::new(secs, nanos % 1_000_000_000),
    };
    let (header, elapsed) = grpc_timeout_header(timeout).expect("a valid method and no metadata");
    let Some(header) = header else {
        // No deadline: only when now + timeout overflows an Instant (about 292 years of
        // nanoseconds from boot are always representable on Linux).
        assert!(
            timeout > Duration::from_secs(1 << 62),
            "no grpc-timeout for {timeout:?}"
        );
        return;
    };
    let (value, unit) = parse_grpc_timeout(&header)
        .unwrap_or_else(|| panic!("{timeout:?} was sent as {header:?}, which the spec refuses"));
    let sent = unit.saturating_mul(u32::try_from(value).expect("8 digits fit in u32"));
    // What was left of the deadline when it was encoded lies in [low, high].
    let high = timeout.min(MAX_WIRE);
    let low = timeout.saturating_sub(elapsed).min(MAX_WIRE);
    assert!(
        sent <= high,
        "{timeout:?} was sent as {header:?} = {sent:?}, longer than the deadline"
    );
    assert!(
        sent + unit > low,
        "{timeout:?} was sent as {header:?} = {sent:?}: shorter than the {low:?} left by a unit or more"
    );
    if let Some(finer) = finer_unit(unit) {
        assert!(
            high >= finer.saturating_mul(MAX_DIGITS as u32 + 1),
            "{timeout:?} was sent as {header:?}, though {finer:?} units would have held it"
        );
    }
    if low > Duration::ZERO {
        assert!(value > 0, "{timeout:?} left, yet sent as {header:?}");
    }
});

/// `TimeoutValue TimeoutUnit` per the gRPC HTTP/2 spec: the value and the unit's length.
fn parse_grpc_timeout(text: &str) -> Option<(u64, Duration)> {
    let digits = text.len().checked_sub(1)?;
    if !(1..=8).contains(&digits) || !text.is_char_boundary(digits) {
        return None;
    }
    let (value, unit) = text.split_at(digits);
    if !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let unit = match unit {
        "H" => Duration::from_secs(3600),
        "M" => Duration::from_secs(60),
        "S" => Duration::from_secs(1),
        "m" => Duration::from_millis(1),
        "u" => Duration::from_micros(1),
        "n" => Duration::from_nanos(1),
        _ => return None,
    };
    Some((value.parse().ok()?, unit))
}

/// The next finer unit of the spec's list.
fn finer_unit(unit: Duration) -> Option<Duration> {
    [
        Duration::from_secs(3600),
        Duration::from_secs(60),
        Duration::from_secs(1),
        Duration::from_millis(1),
        Duration::from_micros(1),
        Duration::from_nanos(1),
    ]
    .windows(2)
    .find(|pair| pair[0] == unit)
    .map(|pair| pair[1])
}
