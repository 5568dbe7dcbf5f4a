//! The Rust clients compared, each run as a driver process (`grpcpool-bench drive NAME ...`):
//! grpcpool (async, blocking core, C ABI), plain tonic Channels, a new connection per call, and
//! h2load as the lean-client limit.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use grpcpool_core::{CallOptions, Code, Config, Pool};
use grpcpool_testserver::BytesCodec;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::driver::{DriveArgs, DriverReport};
use crate::measure;

/// Plaintext h2 or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plaintext,
    Tls,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Plaintext => "plaintext",
            Transport::Tls => "tls",
        }
    }
}

/// The clients this binary drives itself (`grpcpool-bench drive NAME ARGS`), each in a process
/// of its own so its CPU and RSS figures are its own.
pub const RUST_CLIENTS: [(&str, &str); 6] = [
    (
        "grpcpool",
        "grpcpool's async API, loops on the pool's runtime",
    ),
    (
        "core-blocking",
        "grpcpool's core from caller threads, each call a blocking Pool::block_on",
    ),
    (
        "c-abi-blocking",
        "the C ABI's blocking grpcpool_unary from caller threads, as C calls it",
    ),
    (
        "tonic-channel",
        "plain tonic Channels (K of them, round-robin), the floor we build on",
    ),
    ("dial-per-call", "a new tonic connection for every call"),
    (
        "h2load",
        "h2load (nghttp2) posting gRPC frames: the lean-client limit (mean latency only)",
    ),
];

const WARM_UP_CONCURRENCY_CAP: usize = 1024;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds each worker's loop by count as well as by time.
const MAX_CALLS_PER_WORKER: usize = 2_000_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one client needs to reach the server.
struct Target {
    url: String,
    method: String,
    request: Bytes,
    ca_pem: Option<String>,
    server_name: Option<String>,
    connections: usize,
}

/// `grpcpool-bench drive NAME ARGS`: runs one Rust client and prints its report line.
pub fn drive(args: &[String]) -> Result<(), BoxError> {
    let (name, rest) = args.split_first().ok_or("drive needs a client name")?;
    if rest.iter().any(|arg| arg == "--check") {
        return match name.as_str() {
            "h2load" if !h2load::available() => {
                Err("h2load is not installed (nghttp2-client)".into())
            }
            name if RUST_CLIENTS.iter().any(|(known, _)| *known == name) => Ok(()),
            other => Err(format!("unknown client {other:?}").into()),
        };
    }
    let args = DriveArgs::parse(rest)?;
    let report = run(name, &args)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn run(name: &str, args: &DriveArgs) -> Result<DriverReport, BoxError> {
    let target = Target {
        url: args.target.clone(),
        method: args.method.clone(),
        request: Bytes::from(crate::simple_request::request(args.payload)),
        ca_pem: match &args.tls_ca {
            Some(path) => Some(std::fs::read_to_string(path)?),
            None => None,
        },
        server_name: args.server_name.clone(),
        connections: args.connections.max(1),
    };
    let concurrency = args.concurrency;
    let warm_up = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.seconds);
    let target = Arc::new(target);
    let (latencies, errors, wall, cpu) = match name {
        "h2load" => return h2load::run(&target, concurrency, warm_up, duration),
        "core-blocking" => {
            let pool = Pool::new(pool_config(&target))?;
            let call = || {
                let call = pool.unary(
                    &target.url,
                    &target.method,
                    target.request.clone(),
                    CallOptions::with_timeout(CALL_TIMEOUT),
                );
                matches!(pool.block_on(call), Ok(Ok(response)) if response.code == Code::Ok)
            };
            measure_threads(concurrency, warm_up, duration, call)
        }
        "c-abi-blocking" => {
            let pool = c_abi::Pool::new(&target)?;
            let call = || pool.unary();
            measure_threads(concurrency, warm_up, duration, call)
        }
        "grpcpool" => {
            let pool = Pool::new(pool_config(&target))?;
            let handle = pool.runtime_handle()?;
            let for_calls = Arc::clone(&target);
            let call = move || {
                let pool = pool.clone();
                let target = Arc::clone(&for_calls);
                async move {
                    let response = pool
                        .unary(
                            &target.url,
                            &target.method,
                            target.request.clone(),
                            CallOptions::with_timeout(CALL_TIMEOUT),
                        )
                        .await;
                    matches!(response, Ok(response) if response.code == Code::Ok)
                }
            };
            handle.block_on(measure_load(concurrency, warm_up, duration, call))
        }
        "tonic-channel" | "dial-per-call" => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let endpoint = endpoint(&target)?;
            let per_call = name == "dial-per-call";
            runtime.block_on(async move {
                if per_call {
                    let for_calls = Arc::clone(&target);
                    let call = move || {
                        let endpoint = endpoint.clone();
                        let target = Arc::clone(&for_calls);
                        async move {
                            match endpoint.connect().await {
                                Ok(channel) => tonic_call(channel, &target).await,
                                Err(_) => false,
                            }
                        }
                    };
                    Ok::<_, BoxError>(measure_load(concurrency, warm_up, duration, call).await)
                } else {
                    let mut channels = Vec::new();
                    for _ in 0..target.connections {
                        channels.push(endpoint.connect().await?);
                    }
                    let channels: Arc<[Channel]> = channels.into();
                    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                    let for_calls = Arc::clone(&target);
                    let call = move || {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let channel = channels[index % channels.len()].clone();
                        let target = Arc::clone(&for_calls);
                        async move { tonic_call(channel, &target).await }
                    };
                    Ok(measure_load(concurrency, warm_up, duration, call).await)
                }
            })?
        }
        other => return Err(format!("unknown client {other:?}").into()),
    };
    Ok(report(latencies, errors, wall, cpu))
}

/// The report for one counted window.
fn report(latencies: Vec<Duration>, errors: u64, wall: Duration, cpu: Duration) -> DriverReport {
    let cell = measure::summarize(latencies, wall, cpu);
    DriverReport {
        errors,
        peak_rss_kib: measure::peak_rss_kib(),
        ..cell
    }
}

/// `K` connections exactly when the run asks for `K`: min = max = K, and streams per connection
/// up to the servers' limit, so growth never adds connections the other clients do not get.
fn pool_config(target: &Target) -> Config {
    let mut config = Config::default();
    config.min_connections_per_target = target.connections;
    config.max_connections_per_target = target.connections;
    config.streams_per_connection = 1000;
    if let Some(ca) = &target.ca_pem {
        config.tls.ca_pem = Some(ca.clone().into_bytes());
        config.tls.server_name_override = target.server_name.clone();
    }
    config
}

fn endpoint(target: &Target) -> Result<Endpoint, BoxError> {
    // The same deadline as grpcpool's calls: grpc-timeout on the wire, enforced locally.
    let mut endpoint = Endpoint::from_shared(target.url.clone())?
        .tcp_nodelay(true)
        .timeout(CALL_TIMEOUT);
    if let Some(ca) = &target.ca_pem {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some(name) = &target.server_name {
            tls = tls.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint)
}

async fn tonic_call(channel: Channel, target: &Target) -> bool {
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return false;
    }
    let Ok(path) = http::uri::PathAndQuery::try_from(target.method.as_str()) else {
        return false;
    };
    let mut request = tonic::Request::new(target.request.clone());
    request.set_timeout(CALL_TIMEOUT);
    grpc.unary(request, path, BytesCodec).await.is_ok()
}

pub(crate) type Measured = (Vec<Duration>, u64, Duration, Duration);

/// Warms up, then runs `concurrency` closed loops for `duration`, counting this process's CPU.
pub(crate) async fn measure_load<F, Fut>(
    concurrency: usize,
    warm_up: Duration,
    duration: Duration,
    call: F,
) -> Measured
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let _ = load(
        concurrency.min(WARM_UP_CONCURRENCY_CAP),
        warm_up,
        call.clone(),
    )
    .await;
    let cpu_before = measure::process_cpu();
    let started = Instant::now();
    let (latencies, errors) = load(concurrency, duration, call).await;
    let wall = started.elapsed();
    let cpu = measure::process_cpu().saturating_sub(cpu_before);
    (latencies, errors, wall, cpu)
}

async fn load<F, Fut>(concurrency: usize, duration: Duration, call: F) -> (Vec<Duration>, u64)
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let until = Instant::now() + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(4096);
                let mut errors = 0u64;
                while Instant::now() < until && latencies.len() < MAX_CALLS_PER_WORKER {
                    let started = Instant::now();
                    if call().await {
                        latencies.push(started.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        if let Ok((latencies, failed)) = worker.await {
            all.extend(latencies);
            errors += failed;
        }
    }
    (all, errors)
}

/// Warms up, then runs `concurrency` OS threads of blocking calls for `duration`.
fn measure_threads(
    concurrency: usize,
    warm_up: Duration,
    duration: Duration,
    call: impl Fn() -> bool + Sync,
) -> Measured {
    let _ = load_threads(concurrency, warm_up, &call);
    let cpu_before = measure::process_cpu();
    let started = Instant::now();
    let (latencies, errors) = load_threads(concurrency, duration, &call);
    let wall = started.elapsed();
    let cpu = measure::process_cpu().saturating_sub(cpu_before);
    (latencies, errors, wall, cpu)
}

fn load_threads(
    concurrency: usize,
    duration: Duration,
    call: &(impl Fn() -> bool + Sync),
) -> (Vec<Duration>, u64) {
    let until = Instant::now() + duration;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(move || {
                    let mut latencies = Vec::with_capacity(4096);
                    let mut errors = 0u64;
                    while Instant::now() < until && latencies.len() < MAX_CALLS_PER_WORKER {
                        let started = Instant::now();
                        if call() {
                            latencies.push(started.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for worker in workers {
            if let Ok((latencies, failed)) = worker.join() {
                all.extend(latencies);
                errors += failed;
            }
        }
        (all, errors)
    })
}

/// The C ABI driven exactly as a C program drives it, through the exported functions.
mod c_abi {
    #![allow(unsafe_code)]

    use std::ffi::CString;

    use grpcpool::*;

    use bytes::Bytes;

    use super::{BoxError, Target, CALL_TIMEOUT};

    pub struct Pool {
        pool: *mut grpcpool_pool_t,
        target: CString,
        method: CString,
        request: Bytes,
    }

    // SAFETY: every grpcpool function taking a pool may be called from any thread at once.
    unsafe impl Sync for Pool {}

    impl Pool {
        pub fn new(target: &Target) -> Result<Pool, BoxError> {
            let config = grpcpool_config_new();
            let mut pool = std::ptr::null_mut();
            let server_name = match &target.server_name {
                Some(name) => Some(CString::new(name.clone())?),
                None => None,
            };
            let connections = CString::new(target.connections.to_string())?;
            // SAFETY: a fresh config, valid pointers and lengths, the config freed once.
            let result = unsafe {
                grpcpool_config_set(
                    config,
                    c"min_connections_per_target".as_ptr(),
                    connections.as_ptr(),
                );
                grpcpool_config_set(
                    config,
                    c"max_connections_per_target".as_ptr(),
                    connections.as_ptr(),
                );
                grpcpool_config_set(config, c"streams_per_connection".as_ptr(), c"1000".as_ptr());
                if let Some(ca) = &target.ca_pem {
                    grpcpool_config_set_tls_ca_pem(config, ca.as_ptr(), ca.len());
                }
                if let Some(name) = &server_name {
                    grpcpool_config_set_tls_server_name(config, name.as_ptr());
                }
                let result = grpcpool_pool_new(config, &mut pool);
                grpcpool_config_free(config);
                result
            };
            if result != grpcpool_result::GRPCPOOL_OK {
                return Err(format!("grpcpool_pool_new: {result:?}").into());
            }
            Ok(Pool {
                pool,
                target: CString::new(target.url.clone())?,
                method: CString::new(target.method.clone())?,
                request: target.request.clone(),
            })
        }

        /// One blocking one-shot call; true on status OK.
        pub fn unary(&self) -> bool {
            let mut response = std::ptr::null_mut();
            // SAFETY: a live pool, NUL-terminated strings, a request of the given length.
            unsafe {
                let result = grpcpool_unary(
                    self.pool,
                    self.target.as_ptr(),
                    self.method.as_ptr(),
                    self.request.as_ptr(),
                    self.request.len(),
                    std::ptr::null(),
                    0,
                    CALL_TIMEOUT.as_millis() as u32,
                    &mut response,
                );
                let ok =
                    result == grpcpool_result::GRPCPOOL_OK && grpcpool_response_code(response) == 0;
                grpcpool_response_free(response);
                ok
            }
        }
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            // SAFETY: the pool from grpcpool_pool_new, freed once.
            unsafe { grpcpool_pool_free(self.pool) };
        }
    }
}

/// Installs h2load when it is missing and the machine allows (see `h2load::install_if_missing`).
pub fn install_h2load_if_missing() {
    h2load::install_if_missing();
}

/// The h2load reference row: h2load in a child process, CPU from this process's children.
mod h2load {
    use std::process::Command;
    use std::time::Duration;

    use super::{BoxError, Target};
    use crate::driver::DriverReport;
    use crate::measure;

    /// Whether h2load is installed (Debian's nghttp2-client); without it the row is skipped.
    pub fn available() -> bool {
        Command::new("h2load").arg("--version").output().is_ok()
    }

    /// Installs Debian's nghttp2-client when h2load is missing and this runs as root with
    /// apt-get, so the lean-client limit is in the table; otherwise says how to get it.
    pub fn install_if_missing() {
        if available() {
            return;
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
        let apt = Command::new("apt-get").arg("--version").output().is_ok();
        if !(root && apt) {
            eprintln!("h2load is missing: install nghttp2-client for the lean-client limit row");
            return;
        }
        eprintln!("h2load is missing: installing nghttp2-client with apt-get");
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "nghttp2-client"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|status| status.success())
        };
        // A fresh machine's package lists may be empty: update them once and try again.
        if !install() {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            if !install() {
                eprintln!("h2load: apt-get could not install nghttp2-client; its row is skipped");
            }
        }
    }

    pub fn run(
        target: &Target,
        concurrency: usize,
        warm_up: Duration,
        duration: Duration,
    ) -> Result<DriverReport, BoxError> {
        let body =
            std::env::temp_dir().join(format!("grpcpool-bench-h2load-{}.bin", std::process::id()));
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(target.request.len() as u32).to_be_bytes());
        frame.extend_from_slice(&target.request);
        std::fs::write(&body, frame)?;
        let url = format!("{}{}", target.url, target.method);
        let seconds = duration.as_secs_f64().round().max(1.0) as u64;
        let connections = target.connections.max(1);
        let cpu_before = measure::children_cpu();
        let output = Command::new("h2load")
            .args(["-c", &connections.to_string()])
            .args(["-m", &concurrency.div_ceil(connections).to_string()])
            .args(["-D", &seconds.to_string()])
            .args([
                "--warm-up-time",
                &format!("{}ms", warm_up.as_millis().max(1)),
            ])
            .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
            .arg("-d")
            .arg(&body)
            .arg(&url)
            .output()?;
        let cpu = measure::children_cpu().saturating_sub(cpu_before);
        let _ = std::fs::remove_file(&body);
        let text = String::from_utf8_lossy(&output.stdout);
        let requests = |suffix: &str| {
            text.lines()
                .find(|line| line.starts_with("requests:"))
                .and_then(|line| line.split(", ").find(|part| part.ends_with(suffix)))
                .and_then(|part| part.split_whitespace().next())
                .and_then(|count| count.parse::<u64>().ok())
        };
        let succeeded =
            requests("succeeded").ok_or_else(|| format!("unexpected h2load output: {text}"))?;
        let failed = requests("failed").unwrap_or(0);
        let mean = text
            .lines()
            .find(|line| line.trim_start().starts_with("time for request:"))
            .and_then(|line| line.split_whitespace().nth(5))
            .map(parse_micros)
            .unwrap_or(0.0);
        let wall = seconds as f64;
        Ok(DriverReport {
            calls: succeeded,
            errors: failed,
            seconds: wall,
            qps: succeeded as f64 / wall,
            p50_us: mean,
            p99_us: None,
            cpu_us_per_call: if succeeded == 0 {
                0.0
            } else {
                cpu.as_secs_f64() * 1e6 / succeeded as f64
            },
            peak_rss_kib: measure::children_peak_rss_kib(),
        })
    }

    /// "380us" or "1.16ms" as microseconds.
    fn parse_micros(text: &str) -> f64 {
        if let Some(value) = text.strip_suffix("us") {
            value.parse().unwrap_or(0.0)
        } else if let Some(value) = text.strip_suffix("ms") {
            value.parse::<f64>().map(|ms| ms * 1000.0).unwrap_or(0.0)
        } else if let Some(value) = text.strip_suffix('s') {
            value.parse::<f64>().map(|s| s * 1e6).unwrap_or(0.0)
        } else {
            0.0
        }
    }
}
