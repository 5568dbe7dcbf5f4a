//! The grpcpool demo: starts an embedded gRPC server, makes pooled calls the ways a service
//! would (one-shot, on a held lease, many at once, a failing status), and prints the stats.
//!
//! Run with `cargo run --release -p grpcpool-core --example demo`. Set `GRPCPOOL_LOG=debug`
//! to watch connections open and close.

use std::time::{Duration, Instant};

use grpcpool_core::{CallOptions, Code, Config, Metadata, Pool};
use grpcpool_testserver::{ServerOptions, TestServer, UNARY_PATH};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GRPCPOOL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .init();

    // The embedded server allows 32 streams per connection, so heavy load makes the pool grow.
    let server = TestServer::start(ServerOptions {
        max_concurrent_streams: Some(32),
        ..ServerOptions::default()
    })
    .await?;
    let target = server.target();
    println!("embedded tonic server at {target}");

    let mut config = Config::default();
    config.streams_per_connection = 16;
    let pool = Pool::new(config)?;
    let timeout = || CallOptions::with_timeout(Duration::from_secs(5));

    // 1. One-shot calls: acquire, call, release, 1,000 times; one connection carries them all.
    let started = Instant::now();
    for index in 0..1000u32 {
        let response = pool
            .unary(&target, UNARY_PATH, index.to_le_bytes().to_vec(), timeout())
            .await?;
        assert_eq!(response.code, Code::Ok);
    }
    println!(
        "1,000 sequential one-shot calls in {:?}: the server saw {} connection(s)",
        started.elapsed(),
        server.connections_accepted()
    );

    // 2. A held lease with metadata both ways.
    let lease = pool.acquire(&target, Duration::from_secs(1)).await?;
    let mut metadata = Metadata::new();
    metadata.insert_ascii("x-echo-request-id", "demo-42");
    metadata.insert_binary("x-trailer-checksum-bin", vec![0xde, 0xad, 0xbe, 0xef]);
    let response = lease
        .unary(UNARY_PATH, b"hello".to_vec(), timeout().metadata(metadata))
        .await?;
    println!(
        "lease on {}: body {:?}, header x-echo-request-id={:?}, trailer x-trailer-checksum-bin={:?}",
        lease.address(),
        String::from_utf8_lossy(&response.body),
        response.headers.get("x-echo-request-id").map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
        response.trailers.get("x-trailer-checksum-bin").map(|value| value.as_bytes().to_vec()),
    );
    drop(lease);

    // 3. 256 calls at once, each taking 20 ms on the server: the pool opens more connections.
    let started = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..256 {
        let pool = pool.clone();
        let target = target.clone();
        calls.push(tokio::spawn(async move {
            let mut metadata = Metadata::new();
            metadata.insert_ascii("x-sleep-ms", "20");
            pool.unary(
                &target,
                UNARY_PATH,
                b"load".to_vec(),
                CallOptions::with_timeout(Duration::from_secs(10)).metadata(metadata),
            )
            .await
        }));
    }
    let mut ok = 0;
    for call in calls {
        if call
            .await?
            .map(|response| response.is_ok())
            .unwrap_or(false)
        {
            ok += 1;
        }
    }
    println!(
        "256 concurrent calls: {ok} OK in {:?}, spread over {} connections: {:?} calls each",
        started.elapsed(),
        server.connections_accepted(),
        server.calls_per_connection()
    );

    // 4. A failing status is a result, not an error.
    let mut metadata = Metadata::new();
    metadata.insert_ascii("x-status-code", "5");
    metadata.insert_ascii("x-status-message", "no such user");
    let response = pool
        .unary(
            &target,
            UNARY_PATH,
            Vec::new(),
            timeout().metadata(metadata),
        )
        .await?;
    println!("status call: {} {:?}", response.code, response.message);

    let stats = pool.stats();
    println!("\npool stats:\n{}", serde_json::to_string_pretty(&stats)?);
    let left = pool.shutdown(Duration::from_secs(2)).await;
    println!("shut down with {left} call(s) still in flight");
    Ok(())
}
