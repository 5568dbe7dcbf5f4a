//! `grpcpool-bench ir-loop`: a fixed number of sequential unary calls through the Rust API, for
//! valgrind's callgrind (bench/call_paths.sh), nothing timed: two runs' instruction totals, their
//! difference over the difference in calls, are what one call costs.
//!
//! `grpcpool-bench ir-loop --api async|blocking --target URL --calls N [--warmup-calls W]
//! [--payload BYTES]`
//!
//! `async`: the calls are `Pool::unary` awaited one after another in a task on the pool's own
//! runtime (the matrix's `grpcpool` row at concurrency 1); `blocking`: `Pool::block_on` of each
//! from the main thread (`core-blocking`). Each call has a one-day deadline, as
//! bench/c/policy_cost.c's (the same grpc-timeout on every call), and must come back OK with
//! its request echoed.

use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use grpcpool_core::{CallOptions, Code, Config, Pool};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One day: grpc-timeout then goes out in whole seconds, the same header on every call.
const DEADLINE: Duration = Duration::from_secs(86_400);

/// Runs the loop `args` describe (the words after `ir-loop`).
pub fn main(args: &[String]) -> Result<(), BoxError> {
    let mut api = None;
    let mut target = None;
    let (mut calls, mut warmup, mut payload) = (None, 100_usize, 1024_usize);
    let mut words = args.iter();
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| format!("ir-loop: {flag} needs a value"))?;
        match flag.as_str() {
            "--api" => api = Some(value.clone()),
            "--target" => target = Some(value.clone()),
            "--calls" => calls = Some(value.parse()?),
            "--warmup-calls" => warmup = value.parse()?,
            "--payload" => payload = value.parse()?,
            other => return Err(format!("ir-loop: unknown argument {other:?}").into()),
        }
    }
    let target = target.ok_or("ir-loop: --target is required")?;
    let calls: usize = calls.ok_or("ir-loop: --calls is required")?;
    let request = Bytes::from(crate::simple_request::request(payload));
    let pool = Pool::new(Config::default())?;
    let one = {
        let (pool, target, request) = (pool.clone(), target.clone(), request.clone());
        move || {
            let call = pool.unary(
                &target,
                "/grpcpool.test.Echo/Unary",
                request.clone(),
                CallOptions::with_timeout(DEADLINE),
            );
            let request = request.clone();
            // A combinator, not an async block awaiting the captured call: that would hold the
            // call's state twice, which no face does.
            call.map(move |outcome| match outcome {
                Ok(response) if response.code == Code::Ok && response.body == request => Ok(()),
                Ok(response) => Err(format!("status {:?}: {}", response.code, response.message)),
                Err(error) => Err(error.to_string()),
            })
        }
    };
    let ok = match api.as_deref() {
        Some("async") => {
            let handle = pool.runtime_handle()?;
            let task = handle.spawn(async move {
                for _ in 0..warmup + calls {
                    one().await?;
                }
                Ok::<_, String>(())
            });
            handle.block_on(task)?
        }
        Some("blocking") => (0..warmup + calls)
            .try_for_each(|_| pool.block_on(one()).map_err(|error| error.to_string())?),
        _ => return Err("ir-loop: --api must be async or blocking".into()),
    };
    ok.map_err(|error| format!("ir-loop: a call failed: {error}"))?;
    println!(
        "{{\"api\":{:?},\"calls\":{calls},\"warmup_calls\":{warmup}}}",
        api.unwrap_or_default()
    );
    Ok(())
}
