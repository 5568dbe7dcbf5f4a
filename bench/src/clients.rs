//! The clients compared: grpcpool, one plain tonic Channel, and a new connection per call.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use grpcpool_core::{CallOptions, Code, Config, Pool};
use grpcpool_testserver::{BytesCodec, UNARY_PATH};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::measure::{self, Cell};
use crate::server::ChildServer;

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

/// Which client a cell measures.
#[derive(Debug, Clone, Copy)]
pub enum ClientKind {
    /// grpcpool's async API, loops running on the pool's runtime.
    Pool,
    /// grpcpool's core from caller threads, each call a blocking `Pool::block_on`.
    CoreBlocking,
    /// The C ABI's blocking `grpcpool_unary` from caller threads, as a C program calls it.
    CAbi,
    Channel,
    DialPerCall,
    /// h2load (nghttp2) posting empty-ish gRPC frames on one connection: the lean-client limit.
    H2load,
}

impl ClientKind {
    pub const ALL: [ClientKind; 6] = [
        ClientKind::Pool,
        ClientKind::CoreBlocking,
        ClientKind::CAbi,
        ClientKind::Channel,
        ClientKind::DialPerCall,
        ClientKind::H2load,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Pool => "grpcpool",
            ClientKind::CoreBlocking => "core-blocking",
            ClientKind::CAbi => "c-abi-blocking",
            ClientKind::Channel => "tonic-channel",
            ClientKind::DialPerCall => "dial-per-call",
            ClientKind::H2load => "h2load (mean)",
        }
    }
}

const REQUEST: &[u8] = b"0123456789abcdef0123456789abcdef";
const WARM_UP: Duration = Duration::from_millis(300);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds each worker's loop by count as well as by time.
const MAX_CALLS_PER_WORKER: usize = 2_000_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Measures one client at one concurrency.
pub fn run(
    kind: ClientKind,
    server: &ChildServer,
    concurrency: usize,
    duration: Duration,
) -> Result<Cell, BoxError> {
    let transport = server.transport.name();
    match kind {
        ClientKind::H2load => h2load::run(server, concurrency, duration),
        ClientKind::CoreBlocking => {
            let pool = Pool::new(pool_config(server))?;
            let target = server.target.as_str();
            let call = || {
                let call = pool.unary(
                    target,
                    UNARY_PATH,
                    Bytes::from_static(REQUEST),
                    CallOptions::with_timeout(CALL_TIMEOUT),
                );
                matches!(pool.block_on(call), Ok(Ok(response)) if response.code == Code::Ok)
            };
            Ok(measure_threads(
                kind,
                transport,
                concurrency,
                duration,
                call,
            ))
        }
        ClientKind::CAbi => {
            let pool = c_abi::Pool::new(server)?;
            let call = || pool.unary();
            Ok(measure_threads(
                kind,
                transport,
                concurrency,
                duration,
                call,
            ))
        }
        ClientKind::Pool => {
            let pool = Pool::new(pool_config(server))?;
            let handle = pool.runtime_handle()?;
            let target: Arc<str> = server.target.as_str().into();
            let call = move || {
                let pool = pool.clone();
                let target = Arc::clone(&target);
                async move {
                    let response = pool
                        .unary(
                            &target,
                            UNARY_PATH,
                            Bytes::from_static(REQUEST),
                            CallOptions::with_timeout(CALL_TIMEOUT),
                        )
                        .await;
                    matches!(response, Ok(response) if response.code == Code::Ok)
                }
            };
            Ok(handle.block_on(measure_load(kind, transport, concurrency, duration, call)))
        }
        ClientKind::Channel | ClientKind::DialPerCall => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let endpoint = endpoint(server)?;
            runtime.block_on(async move {
                if let ClientKind::Channel = kind {
                    let channel = endpoint.connect().await?;
                    let call = move || tonic_call(channel.clone());
                    Ok(measure_load(kind, transport, concurrency, duration, call).await)
                } else {
                    let call = move || {
                        let endpoint = endpoint.clone();
                        async move {
                            match endpoint.connect().await {
                                Ok(channel) => tonic_call(channel).await,
                                Err(_) => false,
                            }
                        }
                    };
                    Ok(measure_load(kind, transport, concurrency, duration, call).await)
                }
            })
        }
    }
}

fn pool_config(server: &ChildServer) -> Config {
    let mut config = Config::default();
    if let Some(ca) = &server.ca_pem {
        config.tls.ca_pem = Some(ca.clone().into_bytes());
        config.tls.server_name_override = Some("localhost".to_owned());
    }
    config
}

fn endpoint(server: &ChildServer) -> Result<Endpoint, BoxError> {
    // The same deadline as grpcpool's calls: grpc-timeout on the wire, enforced locally.
    let mut endpoint = Endpoint::from_shared(server.target.clone())?
        .tcp_nodelay(true)
        .timeout(CALL_TIMEOUT);
    if let Some(ca) = &server.ca_pem {
        endpoint = endpoint.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost"),
        )?;
    }
    Ok(endpoint)
}

async fn tonic_call(channel: Channel) -> bool {
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return false;
    }
    let path = http::uri::PathAndQuery::from_static(UNARY_PATH);
    let mut request = tonic::Request::new(Bytes::from_static(REQUEST));
    request.set_timeout(CALL_TIMEOUT);
    grpc.unary(request, path, BytesCodec).await.is_ok()
}

/// Warms up, then runs `concurrency` closed loops for `duration`, counting client CPU.
async fn measure_load<F, Fut>(
    kind: ClientKind,
    transport: &'static str,
    concurrency: usize,
    duration: Duration,
    call: F,
) -> Cell
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let _ = load(concurrency, WARM_UP, call.clone()).await;
    let cpu_before = measure::process_cpu();
    let started = Instant::now();
    let (latencies, errors) = load(concurrency, duration, call).await;
    let wall = started.elapsed();
    let cpu = measure::process_cpu().saturating_sub(cpu_before);
    measure::cell(
        kind.name(),
        transport,
        concurrency,
        latencies,
        errors,
        wall,
        cpu,
    )
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
    kind: ClientKind,
    transport: &'static str,
    concurrency: usize,
    duration: Duration,
    call: impl Fn() -> bool + Sync,
) -> Cell {
    let _ = load_threads(concurrency, WARM_UP, &call);
    let cpu_before = measure::process_cpu();
    let started = Instant::now();
    let (latencies, errors) = load_threads(concurrency, duration, &call);
    let wall = started.elapsed();
    let cpu = measure::process_cpu().saturating_sub(cpu_before);
    measure::cell(
        kind.name(),
        transport,
        concurrency,
        latencies,
        errors,
        wall,
        cpu,
    )
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

    use super::{BoxError, CALL_TIMEOUT, REQUEST};
    use crate::server::ChildServer;

    pub struct Pool {
        pool: *mut grpcpool_pool_t,
        target: CString,
        method: CString,
    }

    // SAFETY: every grpcpool function taking a pool may be called from any thread at once.
    unsafe impl Sync for Pool {}

    impl Pool {
        pub fn new(server: &ChildServer) -> Result<Pool, BoxError> {
            let config = grpcpool_config_new();
            let mut pool = std::ptr::null_mut();
            // SAFETY: a fresh config, valid pointers and lengths, the config freed once.
            let result = unsafe {
                if let Some(ca) = &server.ca_pem {
                    grpcpool_config_set_tls_ca_pem(config, ca.as_ptr(), ca.len());
                    grpcpool_config_set_tls_server_name(config, c"localhost".as_ptr());
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
                target: CString::new(server.target.clone())?,
                method: CString::new(grpcpool_testserver::UNARY_PATH)?,
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
                    REQUEST.as_ptr(),
                    REQUEST.len(),
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

/// The h2load reference row: its own process, CPU from the children's rusage.
mod h2load {
    use std::process::Command;
    use std::time::Duration;

    use super::{BoxError, ClientKind, REQUEST, WARM_UP};
    use crate::measure::{self, Cell};
    use crate::server::ChildServer;

    /// Whether h2load is installed (Debian's nghttp2-client); without it the row is skipped.
    pub fn available() -> bool {
        Command::new("h2load").arg("--version").output().is_ok()
    }

    pub fn run(
        server: &ChildServer,
        concurrency: usize,
        duration: Duration,
    ) -> Result<Cell, BoxError> {
        let body =
            std::env::temp_dir().join(format!("grpcpool-bench-h2load-{}.bin", std::process::id()));
        let mut frame = vec![0u8, 0, 0, 0, REQUEST.len() as u8];
        frame.extend_from_slice(REQUEST);
        std::fs::write(&body, frame)?;
        let url = format!("{}{}", server.target, grpcpool_testserver::UNARY_PATH);
        let cpu_before = measure::children_cpu();
        let output = Command::new("h2load")
            .args(["-c", "1", "-m", &concurrency.to_string()])
            .args(["-D", &format!("{}", duration.as_secs().max(1))])
            .args(["--warm-up-time", &format!("{}ms", WARM_UP.as_millis())])
            .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
            .arg("-d")
            .arg(&body)
            .arg(&url)
            .output()?;
        let cpu = measure::children_cpu().saturating_sub(cpu_before);
        let _ = std::fs::remove_file(&body);
        let text = String::from_utf8_lossy(&output.stdout);
        let succeeded = text
            .lines()
            .find(|line| line.starts_with("requests:"))
            .and_then(|line| line.split(", ").find(|part| part.ends_with("succeeded")))
            .and_then(|part| part.split_whitespace().next())
            .and_then(|count| count.parse::<u64>().ok())
            .ok_or_else(|| format!("unexpected h2load output: {text}"))?;
        let mean = text
            .lines()
            .find(|line| line.trim_start().starts_with("time for request:"))
            .and_then(|line| line.split_whitespace().nth(5))
            .map(parse_micros)
            .unwrap_or(0.0);
        let wall = duration.max(Duration::from_secs(1));
        let mut cell = measure::cell(
            ClientKind::H2load.name(),
            server.transport.name(),
            concurrency,
            Vec::new(),
            0,
            wall,
            cpu,
        );
        cell.calls = succeeded;
        cell.qps = succeeded as f64 / wall.as_secs_f64();
        cell.p50_us = mean;
        cell.p99_us = f64::NAN;
        cell.cpu_us_per_call = if succeeded == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / succeeded as f64
        };
        Ok(cell)
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

/// Whether a client can run here.
pub fn available(kind: ClientKind) -> bool {
    match kind {
        ClientKind::H2load => h2load::available(),
        _ => true,
    }
}
