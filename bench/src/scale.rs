//! Scale and memory: many targets, many calls in flight on one target, and what an idle
//! connection and a held lease cost in resident memory.
//!
//! `grpcpool-bench serve-many --listeners N --max-streams M` is the server: N tonic echo
//! listeners in one child process (one per loopback port), printing `LISTENING p1,p2,...`.
//! `grpcpool-bench scale-client --ports p1,p2,... --in-flight M --leases L --seconds S` is the
//! client, a process of its own so its RSS deltas are grpcpool's: it warms 2 connections on
//! every target, calls spread over all of them, then holds L leases and fires M calls at once
//! on the first target; with `--at-scale N` it then drops those pools and holds N calls in
//! flight at once on the first target from a pool of its own ("held at scale", the 100,000
//! calls under 1 GiB target), and prints one JSON line ([`crate::report::Scale`]).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use grpcpool_core::{CallOptions, Code, Config, Pool};
use grpcpool_testserver::{ServerOptions, TestServer};

use crate::measure;
use crate::report::{ConnectionLoad, Scale};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// File descriptors kept free for everything that is not a listener or a connection.
const FD_MARGIN: u64 = 256;
/// Connections per target in the many-targets run.
const PER_TARGET: usize = 2;
/// Closed loops in the spread-over-targets run.
const SPREAD_CONCURRENCY: usize = 128;
/// Connections (min = max) of the pool that holds leases and fires the in-flight calls.
const BURST_CONNECTIONS: usize = 4;
/// Streams each of those connections takes; the server advertises more than this.
const BURST_STREAMS: u32 = 2_600;
/// The request of every scale call: a 1 KiB SimpleRequest, as in the matrix.
const PAYLOAD: usize = 1024;
/// How long the server holds each call of the held burst.
const HOLD: Duration = Duration::from_millis(300);
/// No phase waits longer than this for connections or calls.
const PHASE_LIMIT: Duration = Duration::from_secs(20);
/// The bursts' sampling interval: fine enough to catch a peak that lasts HOLD.
const BURST_SAMPLE_EVERY: Duration = Duration::from_micros(500);
/// The held-at-scale phase ends by itself within this, from making its pool to giving up on
/// its last call (calls still out then are aborted and counted as failed; closing the pool
/// takes up to a second more), so that a run that goes wrong still ends the scale client.
pub const AT_SCALE_LIMIT: Duration = Duration::from_secs(60);
/// The held-at-scale burst's sampling interval. Coarser than the bursts' because a sample
/// locks every malloc arena (mallinfo2) and reads every connection's counters while up to
/// 100,000 calls allocate on the same CPU; the peak it looks for lasts seconds.
const AT_SCALE_SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// The most calls `--at-scale` takes: ten times the target, 386 connections, a few GiB on
/// each side. More would exhaust the machine before it measured anything.
const MAX_AT_SCALE: usize = 1_000_000;
/// The shortest hold of the held-at-scale burst: long enough that a pilot that ran fast on a
/// quiet moment does not leave a hold shorter than the scheduling jitter of a busy machine.
const AT_SCALE_MIN_HOLD: Duration = Duration::from_secs(2);

/// Raises this process's RLIMIT_NOFILE soft limit to its hard limit; returns the soft limit now.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    #[allow(unsafe_code)]
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        limit.rlim_cur as u64
    }
}

/// How many of `wanted` targets fit in `fd_limit` descriptors at `per_target` descriptors each.
pub fn targets_that_fit(wanted: usize, fd_limit: u64, per_target: u64) -> usize {
    let room = fd_limit.saturating_sub(FD_MARGIN) / per_target.max(1);
    wanted.min(room as usize)
}

/// Connections the held-at-scale pool opens (min = max) for `calls` at `streams_each` per
/// connection: enough for all of them, plus one so that the least-loaded pick never finds
/// every connection full while the last calls start.
pub fn at_scale_connections(calls: usize, streams_each: u32) -> usize {
    calls.div_ceil(streams_each.max(1) as usize) + 1
}

/// Free calls the held-at-scale phase fires first to measure how fast this machine starts
/// calls now: a tenth of them, at least 1,000 (a rate from fewer is noise) and at most 10,000
/// (enough for a steady rate).
pub fn pilot_calls(calls: usize) -> usize {
    (calls / 10).clamp(1_000, 10_000).min(calls)
}

/// How long the server holds each call of the held-at-scale burst, and the calls' deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldPlan {
    /// The server's sleep per call (`x-sleep-ms`).
    pub hold: Duration,
    /// Each call's timeout, counted from when it starts.
    pub deadline: Duration,
}

/// The hold and deadline for `calls` calls when the pilot completed `calls_per_second`, within
/// `limit` (the time the phase has left).
///
/// Starting all calls (the ramp) takes about `calls / calls_per_second`: the pilot's rate is
/// whole round trips, starting is part of one. The hold is twice that ramp and a second, so
/// the last call starts before the first ends even if starting runs at half the pilot's pace;
/// the deadline leaves three ramps and 5 s beyond the hold (queued starts, then the answers of
/// every call at once). Both are capped so that the burst ends well within `limit`: the hold
/// at 2/5 of it, the deadline at 5/6. A rate that is zero or not a number (the pilot failed)
/// plans the longest hold the limit allows.
pub fn hold_plan(calls: usize, calls_per_second: f64, limit: Duration) -> HoldPlan {
    let ramp = if calls_per_second.is_finite() && calls_per_second > 0.0 {
        // min: a tiny rate would make a ramp too long for a Duration.
        Duration::from_secs_f64((calls as f64 / calls_per_second).min(limit.as_secs_f64()))
    } else {
        limit
    };
    let hold = (ramp * 2 + Duration::from_secs(1))
        .max(AT_SCALE_MIN_HOLD)
        .min(limit * 2 / 5);
    let deadline = (hold + ramp * 3 + Duration::from_secs(5)).min(limit * 5 / 6);
    HoldPlan { hold, deadline }
}

/// `grpcpool-bench serve-many --listeners N [--max-streams M]`: N echo listeners, until killed.
pub fn serve_many(args: &[String]) -> Result<(), BoxError> {
    let mut listeners = 1000;
    let mut max_streams = 4096;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--listeners" => listeners = value.parse()?,
            "--max-streams" => max_streams = value.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    // A listener and the PER_TARGET connections accepted on it; the burst pool's and the
    // held-at-scale pool's few dozen connections to the first listener fit in FD_MARGIN.
    let listeners = targets_that_fit(listeners, raise_fd_limit(), 1 + PER_TARGET as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut servers = Vec::with_capacity(listeners);
        for _ in 0..listeners {
            servers.push(
                TestServer::start(ServerOptions {
                    max_concurrent_streams: Some(max_streams),
                    ..ServerOptions::default()
                })
                .await?,
            );
        }
        let ports: Vec<String> = servers.iter().map(|s| s.port().to_string()).collect();
        let mut stdout = std::io::stdout();
        writeln!(stdout, "LISTENING {}", ports.join(","))?;
        stdout.flush()?;
        std::future::pending::<()>().await;
        Ok::<(), BoxError>(())
    })
}

/// The many-listener server child, killed on drop.
pub struct ManyServer {
    child: Child,
    pub ports: Vec<u16>,
}

impl ManyServer {
    /// Starts `serve-many` with `listeners` listeners (pinned to `cpu` when given) and reads
    /// their ports.
    pub fn start(listeners: usize, cpu: Option<usize>) -> Result<ManyServer, BoxError> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["serve-many", "--listeners", &listeners.to_string()])
            .args(["--max-streams", &(BURST_STREAMS + 500).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(cpu) = cpu {
            crate::affinity::pin_command(&mut command, cpu);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout from the server")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let ports: Option<Vec<u16>> = line
            .trim()
            .strip_prefix("LISTENING ")
            .map(|list| list.split(',').filter_map(|p| p.parse().ok()).collect());
        match (read, ports) {
            (Ok(_), Some(ports)) if !ports.is_empty() => Ok(ManyServer { child, ports }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("unexpected serve-many output {:?}", line.trim()).into())
            }
        }
    }
}

impl ManyServer {
    /// The server process's peak resident set so far (VmHWM), KiB; 0 if it cannot be read.
    pub fn peak_rss_kib(&self) -> u64 {
        measure::peak_rss_kib_of(self.child.id())
    }
}

impl Drop for ManyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a scale run is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleArgs {
    pub ports: Vec<u16>,
    pub in_flight: usize,
    pub leases: usize,
    pub seconds: f64,
    /// Calls of the held-at-scale phase; 0 skips it.
    pub at_scale: usize,
}

impl ScaleArgs {
    /// The `scale-client` arguments that [`ScaleArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        vec![
            "--ports".into(),
            ports.join(","),
            "--in-flight".into(),
            self.in_flight.to_string(),
            "--leases".into(),
            self.leases.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
            "--at-scale".into(),
            self.at_scale.to_string(),
        ]
    }

    /// Reads `scale-client`'s arguments; `--ports` is required, the others have defaults.
    pub fn parse(args: &[String]) -> Result<ScaleArgs, String> {
        let mut out = ScaleArgs {
            ports: Vec::new(),
            in_flight: 2_000,
            leases: 2_000,
            seconds: 1.0,
            at_scale: 0,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
            let bad = || format!("bad value {value:?} for {arg}");
            match arg.as_str() {
                "--ports" => {
                    out.ports = value
                        .split(',')
                        .map(|port| port.parse().map_err(|_| bad()))
                        .collect::<Result<_, _>>()?
                }
                "--in-flight" => out.in_flight = value.parse().map_err(|_| bad())?,
                "--leases" => out.leases = value.parse().map_err(|_| bad())?,
                "--seconds" => out.seconds = value.parse().map_err(|_| bad())?,
                "--at-scale" => out.at_scale = value.parse().map_err(|_| bad())?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if out.ports.is_empty() {
            return Err("--ports is required".into());
        }
        if out.at_scale > MAX_AT_SCALE {
            return Err(format!("--at-scale may be at most {MAX_AT_SCALE}"));
        }
        Ok(out)
    }
}

/// `grpcpool-bench scale-client ARGS`: runs the scale phases and prints the JSON line.
pub fn scale_client(args: &[String]) -> Result<(), BoxError> {
    let mut args = ScaleArgs::parse(args)?;
    let mut notes = Vec::new();
    let fd_limit = raise_fd_limit();
    let fit = targets_that_fit(args.ports.len(), fd_limit, PER_TARGET as u64);
    if fit < args.ports.len() {
        notes.push(format!(
            "client RLIMIT_NOFILE {fd_limit} fits {fit} of {} targets",
            args.ports.len()
        ));
        args.ports.truncate(fit);
    }
    let scale = run(&args, &mut notes)?;
    println!("{}", serde_json::to_string(&scale)?);
    Ok(())
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1e6
}

fn kib_each(before: u64, after: u64, count: usize) -> f64 {
    if count == 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 / count as f64
}

/// Heap growth since `before` per item, in bytes (0 without mallinfo2).
fn heap_each(before: Option<u64>, count: usize) -> f64 {
    match (before, measure::heap_in_use_bytes()) {
        (Some(before), Some(after)) if count > 0 => {
            after.saturating_sub(before) as f64 / count as f64
        }
        _ => 0.0,
    }
}

/// A pool for many calls on one target: exactly `connections` connections, all opened first,
/// each with BURST_STREAMS streams.
fn one_target_config(connections: usize) -> Config {
    let mut config = Config::default();
    config.min_connections_per_target = connections;
    config.max_connections_per_target = connections;
    config.streams_per_connection = BURST_STREAMS;
    config
}

fn run(args: &ScaleArgs, notes: &mut Vec<String>) -> Result<Scale, BoxError> {
    let targets: Vec<String> = args
        .ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect();
    let method = grpcpool_testserver::UNARY_PATH;
    let request = Bytes::from(crate::simple_request::request(PAYLOAD));
    let timeout = CallOptions::with_timeout(Duration::from_secs(10));
    let mut scale = Scale {
        targets: targets.len(),
        connections_per_target: PER_TARGET,
        leases: args.leases,
        in_flight: args.in_flight,
        spread_concurrency: SPREAD_CONCURRENCY,
        ..Scale::default()
    };

    // Many targets: PER_TARGET connections each, kept open (min = max).
    let mut config = Config::default();
    config.min_connections_per_target = PER_TARGET;
    config.max_connections_per_target = PER_TARGET;
    let pool = Pool::new(config)?;
    let handle = pool.runtime_handle()?;
    // The runtime and the first target's connections are in the baseline.
    let ready = || pool.stats().connections.ready;
    let first =
        pool.block_on(pool.unary(&targets[0], method, request.clone(), timeout.clone()))??;
    if first.code != Code::Ok {
        return Err(format!("first call failed: {:?}", first.code).into());
    }
    wait_until(PHASE_LIMIT, || ready() >= PER_TARGET as u64);
    let baseline_ready = ready();
    let rss_before = measure::current_rss_kib();
    let heap_before = measure::heap_in_use_bytes();
    let started = Instant::now();
    let acquires: Vec<_> = targets[1..]
        .iter()
        .map(|target| handle.spawn(pool.acquire(target, PHASE_LIMIT)))
        .collect();
    let mut failed = 0;
    for acquire in acquires {
        if !matches!(handle.block_on(acquire), Ok(Ok(_))) {
            failed += 1;
        }
    }
    let wanted = (targets.len() * PER_TARGET) as u64;
    if !wait_until(PHASE_LIMIT, || ready() >= wanted) {
        notes.push(format!(
            "only {} of {wanted} connections ready after {} s",
            ready(),
            PHASE_LIMIT.as_secs()
        ));
    }
    scale.warm_seconds = started.elapsed().as_secs_f64();
    if failed > 0 {
        notes.push(format!("{failed} warm-up acquires failed"));
    }
    scale.connections_ready = ready();
    // Settle: connection tasks finish their first allocations.
    std::thread::sleep(Duration::from_millis(200));
    let rss_after = measure::current_rss_kib();
    let opened = scale.connections_ready.saturating_sub(baseline_ready) as usize;
    scale.rss_after_warm_kib = rss_after;
    scale.rss_idle_connections_kib_each = kib_each(rss_before, rss_after, opened);
    scale.heap_idle_connection_kib_each = heap_each(heap_before, opened) / 1024.0;

    // Calls spread over every target, round-robin.
    let next = Arc::new(AtomicUsize::new(0));
    let all: Arc<[String]> = targets.clone().into();
    let for_calls = pool.clone();
    let spread_request = request.clone();
    let call = move || {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let call = for_calls.unary(
            &all[index % all.len()],
            method,
            spread_request.clone(),
            CallOptions::with_timeout(Duration::from_secs(10)),
        );
        async move { matches!(call.await, Ok(response) if response.code == Code::Ok) }
    };
    let seconds = Duration::from_secs_f64(args.seconds);
    let (latencies, errors, wall, cpu) = handle.block_on(crate::clients::measure_load(
        SPREAD_CONCURRENCY,
        Duration::from_millis(200),
        seconds,
        call,
    ));
    let spread = measure::summarize(latencies, wall, cpu);
    scale.spread_qps = spread.qps;
    scale.spread_p50_us = spread.p50_us;
    scale.spread_p99_us = spread.p99_us.unwrap_or(0.0);
    scale.spread_cpu_us_per_call = spread.cpu_us_per_call;
    scale.spread_errors = errors;

    // Leases and a burst on one target, from a pool whose connections are all open first.
    let burst = Pool::new(one_target_config(BURST_CONNECTIONS))?;
    let target = targets[0].clone();
    burst.block_on(burst.unary(&target, method, request.clone(), timeout.clone()))??;
    let burst_ready = || burst.stats().connections.ready;
    wait_until(PHASE_LIMIT, || burst_ready() >= BURST_CONNECTIONS as u64);
    let slots = BURST_CONNECTIONS * BURST_STREAMS as usize;
    let leases = args.leases.min(slots);
    let rss_before = measure::current_rss_kib();
    let heap_before = measure::heap_in_use_bytes();
    let held: Vec<_> = burst.block_on_this_thread(async {
        let mut held = Vec::with_capacity(leases);
        for _ in 0..leases {
            match burst.acquire(&target, PHASE_LIMIT).await {
                Ok(lease) => held.push(lease),
                Err(_) => break,
            }
        }
        held
    })?;
    let rss_held = measure::current_rss_kib();
    scale.leases = held.len();
    scale.rss_leases_kib_each = kib_each(rss_before, rss_held, held.len());
    scale.heap_lease_bytes_each = heap_each(heap_before, held.len());
    drop(held);

    let in_flight = args.in_flight.min(slots);
    if in_flight < args.in_flight {
        notes.push(format!("in flight capped at the pool's {slots} slots"));
    }
    let limits = Limits {
        wait: PHASE_LIMIT,
        sample_every: BURST_SAMPLE_EVERY,
    };
    let fire = |options: CallOptions| {
        fire(
            &burst, &target, method, &request, in_flight, options, limits,
        )
    };
    // As fast as the server answers: how long all take, and their latencies.
    let free = fire(timeout.clone())?;
    scale.in_flight = in_flight;
    scale.in_flight_ok = free.ok;
    scale.in_flight_seconds = free.seconds;
    scale.in_flight_p50_us = free.p50_us;
    scale.in_flight_p99_us = free.p99_us;
    // Held HOLD_MS by the server, so that every call is in flight at the same time.
    let mut metadata = grpcpool_core::Metadata::new();
    metadata.insert_ascii(
        grpcpool_testserver::SLEEP_MS_KEY,
        HOLD.as_millis().to_string(),
    );
    let rss_before = measure::current_rss_kib();
    let heap_before = measure::heap_in_use_bytes().unwrap_or(0);
    let held = fire(timeout.clone().metadata(metadata))?;
    scale.held_ms = HOLD.as_millis() as u64;
    scale.held_ok = held.ok;
    scale.held_seconds = held.seconds;
    scale.held_peak_in_flight = held.peak_in_flight;
    scale.rss_in_flight_kib_each =
        kib_each(rss_before, held.peak_rss_kib, held.peak_in_flight as usize);
    if held.peak_heap_bytes > 0 && held.peak_in_flight > 0 {
        scale.heap_in_flight_kib_each = held.peak_heap_bytes.saturating_sub(heap_before) as f64
            / held.peak_in_flight as f64
            / 1024.0;
    }
    scale.in_flight_peak_rss_kib = measure::peak_rss_kib();
    scale.burst_connections = burst
        .stats()
        .targets
        .iter()
        .flat_map(|target| &target.per_connection)
        .map(|connection| ConnectionLoad {
            id: connection.id,
            address: connection.address.clone(),
            calls: connection.calls,
        })
        .collect();
    if args.at_scale > 0 {
        // The earlier pools go first (their connections closed, their runtimes stopped) and
        // the heap is trimmed, so that the phase's RSS is that of a client holding calls on
        // one target, not of one that also keeps 2,000 idle connections.
        drop(burst);
        drop(pool);
        let (calls, started) = (args.at_scale, Instant::now());
        if let Err(error) = held_at_scale(&targets[0], &request, calls, &mut scale, notes) {
            notes.push(format!("held at scale failed: {error}"));
        }
        // Its pool closed too (dropped on return).
        scale.at_scale_phase_seconds = started.elapsed().as_secs_f64();
    }
    if !notes.is_empty() {
        scale.note = Some(notes.join("; "));
    }
    Ok(scale)
}

/// The held-at-scale phase: `calls` calls started at once on `target` from a pool of their
/// own with room for all of them, each held by the server long enough that all are in flight
/// together; fills the `at_scale_*` fields and says in `notes` what fell short. Ends within
/// [`AT_SCALE_LIMIT`].
fn held_at_scale(
    target: &str,
    request: &Bytes,
    calls: usize,
    scale: &mut Scale,
    notes: &mut Vec<String>,
) -> Result<(), BoxError> {
    let started = Instant::now();
    let phase_end = started + AT_SCALE_LIMIT;
    let left = || phase_end.saturating_duration_since(Instant::now());
    let method = grpcpool_testserver::UNARY_PATH;
    let connections = at_scale_connections(calls, BURST_STREAMS);
    scale.at_scale_calls = calls;
    scale.at_scale_connections = connections;
    scale.at_scale_streams_per_connection = BURST_STREAMS;
    let pool = Pool::new(one_target_config(connections))?;
    let quick = || CallOptions::with_timeout(left().min(PHASE_LIMIT));
    let first = pool.block_on(pool.unary(target, method, request.clone(), quick()))??;
    if first.code != Code::Ok {
        return Err(format!("first call failed: {:?}", first.code).into());
    }
    let ready = || pool.stats().connections.ready;
    if !wait_until(left().min(PHASE_LIMIT), || ready() >= connections as u64) {
        notes.push(format!(
            "held at scale: only {} of {connections} connections ready",
            ready()
        ));
    }
    // The pilot: free calls, to plan the hold on how fast calls go now.
    let pilot = pilot_calls(calls);
    let limits = |sample_every| Limits {
        wait: left(),
        sample_every,
    };
    let free = fire(
        &pool,
        target,
        method,
        request,
        pilot,
        quick(),
        limits(BURST_SAMPLE_EVERY),
    )?;
    if free.ok == 0 {
        return Err(format!("every pilot call failed ({})", free.failures).into());
    }
    scale.at_scale_pilot_calls_per_second = free.ok as f64 / free.seconds.max(1e-9);
    let plan = hold_plan(calls, scale.at_scale_pilot_calls_per_second, left());
    scale.at_scale_hold_ms = plan.hold.as_millis() as u64;
    scale.at_scale_deadline_ms = plan.deadline.as_millis() as u64;
    let mut metadata = grpcpool_core::Metadata::new();
    metadata.insert_ascii(
        grpcpool_testserver::SLEEP_MS_KEY,
        plan.hold.as_millis().to_string(),
    );
    let options = CallOptions::with_timeout(plan.deadline).metadata(metadata);
    // Freed pages of the earlier phases go back to the kernel, so the RSS before is the
    // client's own and the growth counts pages the calls touch, not pages reused.
    measure::trim_heap();
    let rss_before = measure::current_rss_kib();
    let heap_before = measure::heap_in_use_bytes().unwrap_or(0);
    let held = fire(
        &pool,
        target,
        method,
        request,
        calls,
        options,
        limits(AT_SCALE_SAMPLE_EVERY),
    )?;
    scale.at_scale_ok = held.ok;
    scale.at_scale_seconds = held.seconds;
    scale.at_scale_peak_in_flight = held.peak_in_flight;
    scale.at_scale_rss_before_kib = rss_before;
    scale.at_scale_peak_rss_kib = held.peak_rss_kib;
    scale.at_scale_rss_kib_each =
        kib_each(rss_before, held.peak_rss_kib, held.peak_in_flight as usize);
    let heap_each = |heap: u64| {
        if heap == 0 || held.peak_in_flight == 0 {
            return 0.0;
        }
        heap.saturating_sub(heap_before) as f64 / held.peak_in_flight as f64 / 1024.0
    };
    scale.at_scale_heap_kib_each = heap_each(held.peak_heap_bytes);
    scale.at_scale_heap_settled_kib_each = heap_each(held.settled_heap_bytes);
    if held.ok < calls as u64 {
        notes.push(format!(
            "held at scale: {} of {calls} calls failed ({})",
            calls as u64 - held.ok,
            held.failures
        ));
    }
    if held.peak_in_flight < calls as u64 {
        notes.push(format!(
            "held at scale: at most {} of {calls} calls were in flight at once",
            held.peak_in_flight
        ));
    }
    Ok(())
}

/// How long a burst may wait for its calls, and how often it samples the pool meanwhile.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Calls not done by then are aborted and count as failed.
    wait: Duration,
    sample_every: Duration,
}

/// What one burst of calls came to.
struct Burst {
    ok: u64,
    /// The failed calls by status code or error kind, as "DeadlineExceeded x 3, ...".
    failures: String,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    /// The most streams the pool reported in flight, sampled every `Limits::sample_every`.
    peak_in_flight: u64,
    /// The highest RSS sampled meanwhile.
    peak_rss_kib: u64,
    /// The most heap in use sampled meanwhile (0 without mallinfo2).
    peak_heap_bytes: u64,
    /// Heap in use at the last sample that saw `peak_in_flight` calls: with a long hold, the
    /// heap of every call held once the start-up's transient allocations are freed.
    settled_heap_bytes: u64,
}

/// Starts `count` calls at once on `target` and waits for all of them, or until
/// `limits.wait` has passed.
fn fire(
    pool: &Pool,
    target: &str,
    method: &str,
    request: &Bytes,
    count: usize,
    options: CallOptions,
    limits: Limits,
) -> Result<Burst, BoxError> {
    let peak = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let peak_heap = Arc::new(AtomicU64::new(0));
    let heap_at_most = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicU64::new(1));
    let sampler = {
        let (pool, peak, peak_rss, peak_heap, heap_at_most, sampling) = (
            pool.clone(),
            Arc::clone(&peak),
            Arc::clone(&peak_rss),
            Arc::clone(&peak_heap),
            Arc::clone(&heap_at_most),
            Arc::clone(&sampling),
        );
        std::thread::spawn(move || {
            let deadline = Instant::now() + limits.wait;
            while sampling.load(Ordering::Relaxed) == 1 && Instant::now() < deadline {
                let in_flight = pool.stats().streams_in_flight;
                let most = peak.fetch_max(in_flight, Ordering::Relaxed).max(in_flight);
                peak_rss.fetch_max(measure::current_rss_kib(), Ordering::Relaxed);
                let heap = measure::heap_in_use_bytes().unwrap_or(0);
                peak_heap.fetch_max(heap, Ordering::Relaxed);
                if in_flight == most {
                    heap_at_most.store(heap, Ordering::Relaxed);
                }
                std::thread::sleep(limits.sample_every);
            }
        })
    };
    let started = Instant::now();
    let outcomes: Vec<Outcome> = pool.block_on_this_thread(async {
        let mut calls: Vec<_> = (0..count)
            .map(|_| {
                let call = pool.unary(target, method, request.clone(), options.clone());
                let started = Instant::now();
                // A combinator, not an async block awaiting the captured call: that would hold
                // the call's state twice, some 3.5 KB of the harness's in each call in flight.
                tokio::spawn(call.map(move |outcome| match outcome {
                    Ok(response) if response.code == Code::Ok => Ok(started.elapsed()),
                    Ok(response) => Err(format!("{:?}", response.code)),
                    Err(error) => Err(format!("{:?}", error.kind())),
                }))
            })
            .collect();
        let give_up = tokio::time::Instant::now() + limits.wait;
        let mut out = Vec::with_capacity(calls.len());
        for call in &mut calls {
            out.push(match tokio::time::timeout_at(give_up, call).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => Err("task failed".to_owned()),
                Err(_) => Err(format!("not done in {} s", limits.wait.as_secs())),
            });
        }
        // Past the wait, the calls still out end here rather than hold the phase.
        for call in &calls {
            call.abort();
        }
        out
    })?;
    let seconds = started.elapsed().as_secs_f64();
    sampling.store(0, Ordering::Relaxed);
    let _ = sampler.join();
    let mut latencies: Vec<Duration> = Vec::with_capacity(outcomes.len());
    let mut failures = std::collections::BTreeMap::<String, u64>::new();
    for outcome in outcomes {
        match outcome {
            Ok(latency) => latencies.push(latency),
            Err(kind) => *failures.entry(kind).or_default() += 1,
        }
    }
    latencies.sort_unstable();
    Ok(Burst {
        ok: latencies.len() as u64,
        failures: failures
            .iter()
            .map(|(kind, count)| format!("{kind} x {count}"))
            .collect::<Vec<_>>()
            .join(", "),
        seconds,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        peak_in_flight: peak.load(Ordering::Relaxed),
        peak_rss_kib: peak_rss.load(Ordering::Relaxed),
        peak_heap_bytes: peak_heap.load(Ordering::Relaxed),
        settled_heap_bytes: heap_at_most.load(Ordering::Relaxed),
    })
}

/// One call of a burst: its latency, or what it failed with.
type Outcome = Result<Duration, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let args = ScaleArgs {
            ports: vec![1, 2, 3],
            in_flight: 10,
            leases: 20,
            seconds: 0.5,
            at_scale: 100_000,
        };
        assert_eq!(ScaleArgs::parse(&args.to_args()), Ok(args));
        assert!(ScaleArgs::parse(&[]).is_err());
        // Without --at-scale (an older caller) the phase is skipped.
        let old: Vec<String> = ["--ports", "1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(ScaleArgs::parse(&old).map(|args| args.at_scale), Ok(0));
        let bad: Vec<String> = ["--ports", "1", "--at-scale", "-5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(ScaleArgs::parse(&bad).is_err());
        let huge: Vec<String> = ["--ports", "1", "--at-scale", "1000001"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(ScaleArgs::parse(&huge).is_err());
    }

    #[test]
    fn at_scale_pool_has_room_for_every_call() {
        assert_eq!(at_scale_connections(100_000, 2_600), 40);
        assert_eq!(at_scale_connections(10_000, 2_600), 5);
        assert_eq!(at_scale_connections(2_600, 2_600), 2);
        assert_eq!(at_scale_connections(1, 0), 2);
        for calls in [1, 2_599, 2_601, 100_000, 1_000_000] {
            let slots = at_scale_connections(calls, BURST_STREAMS) * BURST_STREAMS as usize;
            assert!(slots >= calls + BURST_STREAMS as usize, "{calls}");
        }
    }

    #[test]
    fn pilot_is_a_tenth_within_bounds() {
        assert_eq!(pilot_calls(100_000), 10_000);
        assert_eq!(pilot_calls(1_000_000), 10_000);
        assert_eq!(pilot_calls(30_000), 3_000);
        assert_eq!(pilot_calls(5_000), 1_000);
        assert_eq!(pilot_calls(300), 300);
    }

    #[test]
    fn hold_and_deadline_scale_with_the_calls_and_stay_bounded() {
        let limit = Duration::from_secs(60);
        // 100,000 calls at 20,000 a second: a 5 s ramp, held 11 s, deadline 31 s.
        let plan = hold_plan(100_000, 20_000.0, limit);
        assert_eq!(plan.hold, Duration::from_secs(11));
        assert_eq!(plan.deadline, Duration::from_secs(31));
        // Ten times fewer calls: the floor.
        let small = hold_plan(10_000, 20_000.0, limit);
        assert_eq!(small.hold, Duration::from_secs(2));
        assert_eq!(small.deadline, Duration::from_millis(8_500));
        // More calls, a longer hold and deadline.
        assert!(hold_plan(200_000, 20_000.0, limit).hold > plan.hold);
        // A slow or failed pilot: capped at 2/5 and 5/6 of the limit.
        for rate in [1.0, 0.0, -3.0, f64::NAN, f64::INFINITY, 1e-300] {
            let plan = hold_plan(100_000, rate, limit);
            assert!(plan.hold <= Duration::from_secs(24), "{rate}");
            assert!(plan.deadline <= Duration::from_secs(50), "{rate}");
            assert!(plan.deadline > plan.hold, "{rate}");
        }
        assert_eq!(hold_plan(100_000, 0.0, limit).hold, Duration::from_secs(24));
        // Whatever is left, the deadline stays above the hold and within the limit.
        for secs in [0, 1, 3, 10, 60] {
            let limit = Duration::from_secs(secs);
            let plan = hold_plan(100_000, 20_000.0, limit);
            assert!(
                plan.deadline <= limit && plan.hold <= plan.deadline,
                "{secs}"
            );
        }
    }

    #[test]
    fn targets_fit_the_fd_limit() {
        assert_eq!(targets_that_fit(1000, 20_000, 3), 1000);
        assert_eq!(targets_that_fit(1000, 1024, 3), 256);
        assert_eq!(targets_that_fit(1000, 100, 3), 0);
    }

    #[test]
    fn percentiles_and_deltas() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(kib_each(100, 300, 100), 2.0);
        assert_eq!(kib_each(300, 100, 100), 0.0);
    }
}
