//! `grpcpool-alloc-count`: heap allocations per unary call, counted by a global allocator that
//! wraps the system's (issue 15). A binary of its own so that the matrix binary
//! (`grpcpool-bench`) never pays for the counting. bench/alloc_count.sh runs it and writes the
//! "Allocations per call" section of docs/benchmarks.md.
//!
//! `grpcpool-alloc-count --phase async|blocking|held --target URL [--calls SMALL,LARGE]
//! [--in-flight SMALL,LARGE] [--warmup-calls W] [--payload BYTES] [--hold-ms MS]`
//!
//! The server is another process (bench/alloc_count.sh starts `grpcpool-echo-server`), so
//! every allocation counted is the client's, on any of its threads (most are on the pool's
//! runtime workers). Phases, one per run of this binary:
//!
//! - `async`: sequential calls, `Pool::unary` awaited one after another in a task on the
//!   pool's runtime (`grpcpool-bench ir-loop --api async`).
//! - `blocking`: sequential calls, `Pool::block_on(pool.unary(..))` from the main thread
//!   (`ir-loop --api blocking`).
//! - `held`: SMALL, then LARGE calls started at once, each a task of its own, and held by the
//!   server (`x-sleep-ms`) until all are in flight; the live bytes then, and every allocation
//!   from the first start to the last answer.
//!
//! Each phase runs its warm-up, then SMALL calls, then LARGE, counting each; per call is
//! (count(LARGE) - count(SMALL)) / (LARGE - SMALL), so what a loop or a burst costs once
//! (spawning it, waiting for it) cancels, as bench/call_paths.sh does with instructions.
//! Prints one JSON line of per-call figures.

mod counting;
#[path = "../../simple_request.rs"]
mod simple_request;

use std::time::{Duration, Instant};

use bytes::Bytes;
use grpcpool_core::{CallOptions, Code, Config, Metadata, Pool};
use serde::Serialize;

use counting::{uncounted, Counting, Delta, CLASSES};
use simple_request::request;

/// Every allocation of this process goes through it.
#[global_allocator]
static ALLOCATOR: Counting = Counting::new();

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One day, as ir-loop's: grpc-timeout then goes out in whole seconds, the same header on
/// every call.
const DEADLINE: Duration = Duration::from_secs(86_400);
/// Connections (min = max) of the held phase's pool, as the scale run's burst pool.
const HELD_CONNECTIONS: usize = 4;
/// Streams each of those takes; the echo server allows 1,024 a connection.
const HELD_STREAMS: u32 = 1_000;
/// How long the held phase waits for its connections.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// How long the held phase waits, once every call is in flight, before it reads the live
/// bytes: the last streams' requests may still be being written.
const SETTLE: Duration = Duration::from_millis(50);

const USAGE: &str = "usage: grpcpool-alloc-count --phase async|blocking|held --target URL
       [--calls SMALL,LARGE] [--in-flight SMALL,LARGE] [--warmup-calls W] [--payload BYTES]
       [--hold-ms MS]
defaults: --calls 200,2200 (async, blocking), --in-flight 100,1100 (held), --warmup-calls 100,
--payload 1024, --hold-ms 1000";

/// What a run is asked to do.
#[derive(Debug, Clone, PartialEq)]
struct Args {
    phase: Phase,
    target: String,
    calls: (usize, usize),
    in_flight: (usize, usize),
    warmup: usize,
    payload: usize,
    hold: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Async,
    Blocking,
    Held,
}

fn pair(flag: &str, value: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{flag} wants SMALL,LARGE with LARGE above SMALL, not {value:?}");
    let (small, large) = value.split_once(',').ok_or_else(bad)?;
    let small: usize = small.trim().parse().map_err(|_| bad())?;
    let large: usize = large.trim().parse().map_err(|_| bad())?;
    if large <= small {
        return Err(bad());
    }
    Ok((small, large))
}

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let (mut phase, mut target) = (None, None);
        let mut out = Args {
            phase: Phase::Async,
            target: String::new(),
            calls: (200, 2200),
            in_flight: (100, 1100),
            warmup: 100,
            payload: 1024,
            hold: Duration::from_millis(1000),
        };
        let mut words = args.iter();
        while let Some(flag) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad number {value:?} for {flag}"))
            };
            match flag.as_str() {
                "--phase" => {
                    phase = Some(match value.as_str() {
                        "async" => Phase::Async,
                        "blocking" => Phase::Blocking,
                        "held" => Phase::Held,
                        other => return Err(format!("unknown phase {other:?}\n{USAGE}")),
                    })
                }
                "--target" => target = Some(value.clone()),
                "--calls" => out.calls = pair(flag, value)?,
                "--in-flight" => out.in_flight = pair(flag, value)?,
                "--warmup-calls" => out.warmup = number()?,
                "--payload" => out.payload = number()?,
                "--hold-ms" => out.hold = Duration::from_millis(number()? as u64),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        out.phase = phase.ok_or_else(|| format!("--phase is required\n{USAGE}"))?;
        out.target = target.ok_or_else(|| format!("--target is required\n{USAGE}"))?;
        Ok(out)
    }
}

/// What one call costs, from the difference of two counted runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct PerCall {
    allocations: f64,
    reallocations: f64,
    frees: f64,
    /// Bytes asked for (a realloc's new size counted as asked for).
    bytes: f64,
    /// Growth of the live bytes: about 0 for finished calls, unless something accumulates.
    live: f64,
    /// Allocations in each size class: up to each of [`counting::CLASS_LIMITS`], then above.
    by_class: [f64; CLASSES],
}

impl PerCall {
    /// (large - small) / (large_calls - small_calls); the caller makes sure large_calls is
    /// the larger.
    fn of(small: &Delta, large: &Delta, small_calls: usize, large_calls: usize) -> PerCall {
        let extra = large.minus(small);
        let calls = large_calls.saturating_sub(small_calls).max(1) as f64;
        let each = |count: i64| count as f64 / calls;
        PerCall {
            allocations: each(extra.allocations),
            reallocations: each(extra.reallocations),
            frees: each(extra.frees),
            bytes: each(extra.bytes),
            live: each(extra.live),
            by_class: extra.by_class.map(each),
        }
    }
}

/// The JSON line a run prints.
#[derive(Debug, Serialize)]
struct Report {
    phase: Phase,
    /// Calls (sequential) or calls in flight (held) of the two counted runs.
    small: usize,
    large: usize,
    warmup_calls: usize,
    payload: usize,
    per_call: PerCall,
    /// Bytes of the future `Pool::unary` returns: what a caller holds for each call in
    /// flight, in a task (held: each call's task is this future and tokio's header) or on
    /// its stack.
    future_bytes: usize,
    /// Held: how long the server held each call, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    hold_ms: Option<u64>,
}

/// A call's result as an error unless it came back OK with its request echoed.
fn check(
    result: Result<grpcpool_core::Response, grpcpool_core::Error>,
    request: &Bytes,
) -> Result<(), String> {
    match result {
        Ok(response) if response.code == Code::Ok && response.body == *request => Ok(()),
        Ok(response) => Err(format!("status {:?}: {}", response.code, response.message)),
        Err(error) => Err(error.to_string()),
    }
}

/// What a phase measured.
struct Measured {
    per_call: PerCall,
    future_bytes: usize,
}

/// The size of the future `Pool::unary` returns for this request (made and dropped unpolled,
/// before any call: it only registers the target, which the first call would).
fn future_bytes(pool: &Pool, target: &str, request: &Bytes) -> usize {
    std::mem::size_of_val(&pool.unary(
        target,
        grpcpool_testserver::UNARY_PATH,
        request.clone(),
        CallOptions::with_timeout(DEADLINE),
    ))
}

fn sequential(args: &Args) -> Result<Measured, BoxError> {
    let request = Bytes::from(request(args.payload));
    let pool = Pool::new(Config::default())?;
    let handle = pool.runtime_handle()?;
    let future_bytes = future_bytes(&pool, &args.target, &request);
    let one = {
        let (pool, target, request) = (pool.clone(), args.target.clone(), request.clone());
        move || {
            let call = pool.unary(
                &target,
                grpcpool_testserver::UNARY_PATH,
                request.clone(),
                CallOptions::with_timeout(DEADLINE),
            );
            let request = request.clone();
            async move { check(call.await, &request) }
        }
    };
    let run = |calls: usize| -> Result<(), BoxError> {
        match args.phase {
            Phase::Async => {
                let one = one.clone();
                let task = handle.spawn(async move {
                    for _ in 0..calls {
                        one().await?;
                    }
                    Ok::<_, String>(())
                });
                handle.block_on(task)??;
            }
            Phase::Blocking | Phase::Held => {
                // The future `Pool::unary` returns, as it is, checked after: where
                // `Pool::block_on` makes a task of its future, a wrapper awaiting a captured
                // call would hold it twice (7,048 bytes, not 3,504) and count a larger task.
                for _ in 0..calls {
                    let call = pool.unary(
                        &args.target,
                        grpcpool_testserver::UNARY_PATH,
                        request.clone(),
                        CallOptions::with_timeout(DEADLINE),
                    );
                    check(pool.block_on(call)?, &request)?;
                }
            }
        }
        Ok(())
    };
    run(args.warmup)?;
    // Nothing before this point is a call's: the counters start here.
    ALLOCATOR.reset();
    let (small, large) = args.calls;
    let start = ALLOCATOR.counts();
    run(small)?;
    let middle = ALLOCATOR.counts();
    run(large)?;
    let end = ALLOCATOR.counts();
    Ok(Measured {
        per_call: PerCall::of(&middle.since(&start), &end.since(&middle), small, large),
        future_bytes,
    })
}

/// What one held burst came to: its allocations from the first start to the last answer,
/// and the growth of the live bytes while every call was in flight.
struct Burst {
    counted: Delta,
    live_held: i64,
}

/// Polls (uncounted) until `done`, for at most `limit`.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if uncounted(&mut done) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn held(args: &Args) -> Result<Measured, BoxError> {
    let request = Bytes::from(request(args.payload));
    let mut config = Config::default();
    config.min_connections_per_target = HELD_CONNECTIONS;
    config.max_connections_per_target = HELD_CONNECTIONS;
    config.streams_per_connection = HELD_STREAMS;
    let slots = HELD_CONNECTIONS * HELD_STREAMS as usize;
    let (small, large) = args.in_flight;
    if large > slots {
        return Err(format!("--in-flight {large} is above the pool's {slots} streams").into());
    }
    let pool = Pool::new(config)?;
    let handle = pool.runtime_handle()?;
    let mut hold = Metadata::new();
    hold.insert_ascii(
        grpcpool_testserver::SLEEP_MS_KEY,
        args.hold.as_millis().to_string(),
    );
    // The task is the future `Pool::unary` returns, spawned as it is: wrapped in
    // `async move { check(call.await, ..) }` it would be held twice in the task (the block
    // keeps the captured future beside the one it awaits), 7,048 bytes instead of 3,504.
    let start_call = |options: CallOptions| {
        pool.unary(
            &args.target,
            grpcpool_testserver::UNARY_PATH,
            request.clone(),
            options,
        )
    };
    let future_bytes = future_bytes(&pool, &args.target, &request);
    for _ in 0..args.warmup {
        check(
            pool.block_on(start_call(CallOptions::with_timeout(DEADLINE)))?,
            &request,
        )?;
    }
    let ready = || pool.stats().connections.ready >= HELD_CONNECTIONS as u64;
    if !wait_until(READY_LIMIT, ready) {
        return Err(format!("{HELD_CONNECTIONS} connections not ready in {READY_LIMIT:?}").into());
    }
    let held_options = CallOptions::with_timeout(DEADLINE).metadata(hold);
    let burst = |count: usize, held: bool| -> Result<Burst, BoxError> {
        let options = if held {
            held_options.clone()
        } else {
            CallOptions::with_timeout(DEADLINE)
        };
        let before = ALLOCATOR.counts();
        let calls: Vec<_> = (0..count)
            .map(|_| handle.spawn(start_call(options.clone())))
            .collect();
        let mut live_held = 0;
        if held {
            let in_flight = || pool.stats().streams_in_flight >= count as u64;
            // Half the hold at most: the first answers come a whole hold after the first
            // call reached the server.
            if !wait_until(args.hold / 2, in_flight) {
                return Err(format!(
                    "not all {count} calls were in flight at once within half the hold \
                     ({:?}); raise --hold-ms",
                    args.hold / 2
                )
                .into());
            }
            // Let the last requests' writes finish before the bytes are read.
            std::thread::sleep(SETTLE);
            live_held = ALLOCATOR.counts().live - before.live;
        }
        // The harness's own wait (the runtime's block_on, not the pool's blocking call, which
        // would add a task of its own), the answers checked and dropped inside it, so that
        // their frees are in the count.
        let request = request.clone();
        let outcomes = handle.block_on(async move {
            let mut outcomes = Vec::with_capacity(calls.len());
            for call in calls {
                outcomes.push(match call.await {
                    Ok(outcome) => check(outcome, &request),
                    Err(error) => Err(error.to_string()),
                });
            }
            outcomes
        });
        let counted = ALLOCATOR.counts().since(&before);
        if let Some(error) = outcomes.into_iter().find_map(Result::err) {
            return Err(format!("a call of the burst failed: {error}").into());
        }
        Ok(Burst { counted, live_held })
    };
    // A burst not held first, so that the first burst counted finds the code paths warm.
    burst(small, false)?;
    ALLOCATOR.reset();
    let first = burst(small, true)?;
    let second = burst(large, true)?;
    let mut per_call = PerCall::of(&first.counted, &second.counted, small, large);
    per_call.live = (second.live_held - first.live_held) as f64 / (large - small) as f64;
    Ok(Measured {
        per_call,
        future_bytes,
    })
}

fn run(args: &Args) -> Result<Report, BoxError> {
    let (measured, (small, large)) = match args.phase {
        Phase::Async | Phase::Blocking => (sequential(args)?, args.calls),
        Phase::Held => (held(args)?, args.in_flight),
    };
    Ok(Report {
        phase: args.phase,
        small,
        large,
        warmup_calls: args.warmup,
        payload: args.payload,
        per_call: measured.per_call,
        future_bytes: measured.future_bytes,
        hold_ms: (args.phase == Phase::Held).then_some(args.hold.as_millis() as u64),
    })
}

fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    if words.iter().any(|word| word == "-h" || word == "--help") {
        println!("{USAGE}");
        return;
    }
    let args = match Args::parse(&words) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("grpcpool-alloc-count: {message}");
            std::process::exit(2);
        }
    };
    match run(&args).and_then(|report| Ok(serde_json::to_string(&report)?)) {
        Ok(line) => println!("{line}"),
        Err(error) => {
            eprintln!("grpcpool-alloc-count: {error}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn arguments_parse_and_bad_ones_are_refused() {
        let args = Args::parse(&words(
            "--phase held --target http://127.0.0.1:1 --in-flight 10,20 --hold-ms 500",
        ))
        .unwrap();
        assert_eq!(args.phase, Phase::Held);
        assert_eq!(args.in_flight, (10, 20));
        assert_eq!(args.calls, (200, 2200));
        assert_eq!(args.hold, Duration::from_millis(500));
        for bad in [
            "--target http://127.0.0.1:1",
            "--phase async",
            "--phase sideways --target t",
            "--phase async --target t --calls 20,10",
            "--phase async --target t --calls 20",
            "--phase async --target t --payload many",
            "--phase async --target",
        ] {
            assert!(Args::parse(&words(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn per_call_is_the_difference_over_the_extra_calls() {
        let small = Delta {
            allocations: 1_000 + 200 * 50,
            frees: 900 + 200 * 50,
            bytes: 64_000 + 200 * 4_000,
            live: 100,
            by_class: [10 + 200 * 40, 200 * 10, 0, 0, 0, 0],
            ..Delta::default()
        };
        let large = Delta {
            allocations: 1_000 + 2_200 * 50,
            frees: 900 + 2_200 * 50,
            bytes: 64_000 + 2_200 * 4_000,
            live: 100 + 2_000 * 8,
            by_class: [10 + 2_200 * 40, 2_200 * 10, 0, 0, 0, 0],
            reallocations: 2_000,
        };
        let each = PerCall::of(&small, &large, 200, 2_200);
        assert_eq!(each.allocations, 50.0);
        assert_eq!(each.frees, 50.0);
        assert_eq!(each.reallocations, 1.0);
        assert_eq!(each.bytes, 4_000.0);
        assert_eq!(each.live, 8.0);
        assert_eq!(each.by_class, [40.0, 10.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
