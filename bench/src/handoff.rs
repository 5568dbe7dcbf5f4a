//! `grpcpool-bench handoff`: what a blocking call pays that an async one does not, with no call
//! in it: the CPU per `Pool::block_on` of a future that is ready at once, from N threads, beside
//! the CPU per task spawned and awaited inside the runtime from N tasks. No network, no server:
//! the difference is the floor of any design in which a caller's thread sleeps while a worker
//! runs its call (a spawn from outside the runtime, a futex sleep and wake, a context switch),
//! which docs/blocking-calls.md sets beside the async API's CPU per call.
//!
//! `grpcpool-bench handoff [--threads 1,16,128] [--seconds S] [--rounds R]`, pinned by the
//! caller (`taskset -c 0`) to compare with the matrix's client CPU; one line per cell.

use std::time::{Duration, Instant};

use grpcpool_core::{Config, Pool};

use crate::measure;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Blocking callers a pool wakes in batches (core's batched_wakes: 8 words of 32 bits).
const MAX_LANES: usize = 256;

/// Runs the comparison `args` describe (the words after `handoff`).
pub fn main(args: &[String]) -> Result<(), BoxError> {
    let (mut threads, mut seconds, mut rounds) = (vec![1, 16, 128], 1.5_f64, 3_usize);
    let mut words = args.iter();
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| format!("handoff: {flag} needs a value"))?;
        match flag.as_str() {
            "--threads" => threads = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--seconds" => seconds = value.parse()?,
            "--rounds" => rounds = value.parse()?,
            other => return Err(format!("handoff: unknown argument {other:?}").into()),
        }
    }
    let window = Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("handoff: --seconds must be a positive number, not {seconds}"))?;
    if rounds == 0 || threads.contains(&0) {
        return Err("handoff: --rounds and every --threads count must be at least 1".into());
    }
    if threads.iter().any(|&count| count > MAX_LANES) {
        return Err(format!(
            "handoff: at most {MAX_LANES} threads, the callers a pool wakes in batches (past them a \
             caller waits on its task's JoinHandle, another path)"
        )
        .into());
    }
    let pool = Pool::new(Config::default())?;
    println!("| threads or tasks | async: CPU µs per spawned task | blocking: CPU µs per Pool::block_on |");
    println!("|---:|---|---|");
    for &count in &threads {
        let (mut spawned, mut blocked) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            spawned.push(per_op(|| spawned_tasks(&pool, count, window))?);
            blocked.push(per_op(|| blocking_calls(&pool, count, window))?);
        }
        println!("| {count} | {} | {} |", listed(&spawned), listed(&blocked));
    }
    Ok(())
}

/// CPU µs per operation of one timed window, after a warm-up window as long.
fn per_op(run: impl Fn() -> Result<u64, BoxError>) -> Result<f64, BoxError> {
    run()?;
    let before = measure::process_cpu();
    let ops = run()?;
    let cpu = measure::process_cpu().saturating_sub(before);
    Ok(cpu.as_secs_f64() * 1e6 / ops.max(1) as f64)
}

/// `count` tasks on the pool's runtime, each spawning an empty task and awaiting it in a loop.
fn spawned_tasks(pool: &Pool, count: usize, window: Duration) -> Result<u64, BoxError> {
    let runtime = pool.runtime_handle()?;
    let until = Instant::now() + window;
    let total = runtime.block_on(async move {
        let loops: Vec<_> = (0..count)
            .map(|_| {
                tokio::spawn(async move {
                    let mut ops = 0_u64;
                    while Instant::now() < until {
                        if tokio::spawn(std::future::ready(())).await.is_ok() {
                            ops += 1;
                        }
                    }
                    ops
                })
            })
            .collect();
        let mut total = 0;
        for ops in loops {
            total += ops.await.map_err(|_| "handoff: a task panicked")?;
        }
        Ok::<_, BoxError>(total)
    })?;
    Ok(total)
}

/// `count` threads, each blocking on an empty future in a loop.
fn blocking_calls(pool: &Pool, count: usize, window: Duration) -> Result<u64, BoxError> {
    let until = Instant::now() + window;
    std::thread::scope(|scope| {
        let loops: Vec<_> = (0..count)
            .map(|_| {
                scope.spawn(move || {
                    let mut ops = 0_u64;
                    while Instant::now() < until {
                        pool.block_on(std::future::ready(()))?;
                        ops += 1;
                    }
                    Ok::<_, grpcpool_core::Error>(ops)
                })
            })
            .collect();
        let mut total = 0;
        for ops in loops {
            total += ops.join().map_err(|_| "handoff: a thread panicked")??;
        }
        Ok(total)
    })
}

/// The rounds' figures, median first, then the range.
fn listed(figures: &[f64]) -> String {
    let low = figures.iter().copied().fold(f64::INFINITY, f64::min);
    let high = figures.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let median = measure::median(figures.to_vec());
    format!("{median:.2} ({low:.2}-{high:.2})")
}
