#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! The fault suite's scenarios through the core that resilience.rs and keepalive.rs do not
//! already cover: a server taking one stream per connection under 32 callers, deadlines
//! against a slow server, and dead targets beside a healthy one. tests/faults/run.sh runs
//! these with resilience.rs and keepalive.rs, then the same scenarios through the Python face.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grpcpool_core::{CallOptions, Code, Config, Metadata};
use grpcpool_testserver::{ServerOptions, TestServer, BIDI_PATH};
use support::{echo, metadata, pool, quick_config};

/// Status names and how many calls ended with each.
fn tally(codes: impl IntoIterator<Item = Code>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for code in codes {
        *counts.entry(format!("{code:?}")).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_callers_on_one_stream_per_connection_all_succeed_and_grow_the_pool() {
    let server = TestServer::start(ServerOptions {
        max_concurrent_streams: Some(1),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let mut config = quick_config();
    config.max_connections_per_target = 4;
    let pool = Arc::new(pool(config));
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let pool = Arc::clone(&pool);
            let target = server.target();
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..25 {
                    // 5 ms in the server: callers overlap and queue for the four streams.
                    let response = echo(
                        &pool,
                        &target,
                        b"x",
                        metadata(&[("x-sleep-ms", "5")]),
                        Duration::from_secs(20),
                    )
                    .await;
                    codes.push(response.code);
                }
                codes
            })
        })
        .collect();
    let mut codes = Vec::new();
    for caller in callers {
        codes.extend(caller.await.unwrap());
    }
    let stats = pool.stats();
    println!(
        "FIGURES core max_concurrent_streams_1: calls={} by_status={:?} ready={} connects={}",
        codes.len(),
        tally(codes.iter().copied()),
        stats.connections.ready,
        stats.connects
    );
    assert!(
        codes.iter().all(|code| *code == Code::Ok),
        "{:?}",
        tally(codes)
    );
    assert_eq!(stats.connections.ready, 4, "{stats:?}");
    assert_eq!(server.calls_handled(), 800);
    assert_eq!((stats.leases_out, stats.streams_in_flight), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_slow_server_end_at_their_deadline_and_free_their_slots() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = Arc::new(pool(quick_config()));
    let warm = echo(
        &pool,
        &server.target(),
        b"",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(warm.code, Code::Ok);
    let timeout = Duration::from_millis(300);

    let mut calls = Vec::new();
    for index in 0..24 {
        let pool = Arc::clone(&pool);
        let target = server.target();
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let code = if index < 16 {
                echo(
                    &pool,
                    &target,
                    b"slow",
                    metadata(&[("x-sleep-ms", "5000")]),
                    timeout,
                )
                .await
                .code
            } else {
                // A bidi stream given nothing to answer: it waits at its first read.
                let mut stream = pool
                    .open_stream(&target, BIDI_PATH, CallOptions::with_timeout(timeout))
                    .await
                    .unwrap();
                assert!(stream.recv().await.is_none());
                stream.finish().await.code
            };
            (code, started.elapsed())
        }));
    }
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    let latest = outcomes.iter().map(|(_, took)| *took).max().unwrap();
    let earliest = outcomes.iter().map(|(_, took)| *took).min().unwrap();
    let stats = pool.stats();
    println!(
        "FIGURES core deadlines: calls={} by_status={:?} earliest={earliest:?} latest={latest:?}",
        outcomes.len(),
        tally(outcomes.iter().map(|(code, _)| *code)),
    );
    assert!(outcomes
        .iter()
        .all(|(code, _)| *code == Code::DeadlineExceeded));
    assert!(
        earliest >= timeout,
        "a call ended before its deadline: {earliest:?}"
    );
    assert!(latest < timeout + Duration::from_millis(50), "{latest:?}");
    assert_eq!((stats.leases_out, stats.streams_in_flight), (0, 0));
}

/// A loopback address that never answers: a listener (backlog 0 holds one) whose accept
/// queue is filled and never drained, so the kernel drops every later SYN. The returned
/// sockets keep it so while they live.
fn blackholed() -> (SocketAddr, socket2::Socket, Vec<std::net::TcpStream>) {
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let address = listener.local_addr().unwrap().as_socket().unwrap();
    let fillers = (0..2)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()
        })
        .collect();
    (address, listener, fillers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_targets_beside_a_healthy_one_leave_it_untouched() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let (silent, _listener, _fillers) = blackholed();
    let healthy = server.target();
    // Port 1 on loopback: nothing listens there, so connecting is refused at once.
    let refused = "http://127.0.0.1:1".to_string();
    let silent = format!("http://{silent}");
    // The defaults but for the test runtime's thread count: the scenario is on the defaults.
    let mut config = Config::default();
    config.worker_threads = 2;
    let pool = Arc::new(pool(config));
    let timeout = Duration::from_secs(1);
    let until = Instant::now() + Duration::from_secs(2);
    let plan = [&healthy, &healthy, &healthy, &healthy, &refused, &silent];
    let loaders: Vec<_> = plan
        .iter()
        .map(|target| {
            let pool = Arc::clone(&pool);
            let target = (*target).clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..100_000 {
                    if Instant::now() >= until {
                        break;
                    }
                    let started = Instant::now();
                    let code = echo(&pool, &target, b"x", Metadata::new(), timeout)
                        .await
                        .code;
                    outcomes.push((code, started.elapsed()));
                    if code != Code::Ok {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (target, outcomes)
            })
        })
        .collect();
    let mut by_target: BTreeMap<String, Vec<(Code, Duration)>> = BTreeMap::new();
    for loader in loaders {
        let (target, outcomes) = loader.await.unwrap();
        by_target.entry(target).or_default().extend(outcomes);
    }
    for (target, outcomes) in &by_target {
        println!(
            "FIGURES core dead_beside_healthy {target}: by_status={:?} slowest={:?}",
            tally(outcomes.iter().map(|(code, _)| *code)),
            outcomes.iter().map(|(_, took)| *took).max()
        );
    }
    let codes = |target: &str| -> Vec<Code> { by_target[target].iter().map(|(c, _)| *c).collect() };
    assert!(codes(&healthy).iter().all(|code| *code == Code::Ok));
    assert!(codes(&refused)
        .iter()
        .all(|code| *code == Code::Unavailable));
    assert!(codes(&silent)
        .iter()
        .all(|code| matches!(code, Code::Unavailable | Code::DeadlineExceeded)));
    let slowest_refused = by_target[&refused]
        .iter()
        .map(|(_, took)| *took)
        .max()
        .unwrap();
    assert!(
        slowest_refused < timeout / 2,
        "refused calls waited: {slowest_refused:?}"
    );
    for outcomes in by_target.values() {
        assert!(outcomes
            .iter()
            .all(|(_, took)| *took < timeout + Duration::from_millis(100)));
    }
    assert_eq!(pool.stats().leases_out, 0);
}
