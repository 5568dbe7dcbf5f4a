#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Failures: a server killed and restarted, and a server recycling connections every 100 ms.

mod support;

use std::time::{Duration, Instant};

use grpcpool_core::{Code, Metadata};
use grpcpool_testserver::{ServerOptions, TestServer};
use support::{echo, eventually, metadata, pool, quick_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_during_an_outage_and_succeed_after_a_restart() {
    support::logs();
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let port = server.port();
    let target = server.target();
    let pool = pool(quick_config());
    let before = echo(
        &pool,
        &target,
        b"before",
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(before.code, Code::Ok);

    // A call in flight when the server dies ends with UNAVAILABLE, not a hang.
    let in_flight = {
        let pool = pool.clone();
        let target = target.clone();
        tokio::spawn(async move {
            echo(
                &pool,
                &target,
                b"x",
                metadata(&[("x-sleep-ms", "5000")]),
                Duration::from_secs(3),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill().await;
    let started = Instant::now();
    let lost = in_flight.await.unwrap();
    assert_eq!(lost.code, Code::Unavailable, "{}", lost.message);
    assert!(started.elapsed() < Duration::from_secs(2));

    // During the outage every call fails with UNAVAILABLE within its deadline.
    for _ in 0..10 {
        let started = Instant::now();
        let result = pool
            .unary(
                &target,
                grpcpool_testserver::UNARY_PATH,
                b"down".to_vec(),
                grpcpool_core::CallOptions::with_timeout(Duration::from_millis(500)),
            )
            .await;
        let took = started.elapsed();
        let response = result.expect("valid call");
        assert_eq!(response.code, Code::Unavailable, "{}", response.message);
        assert!(took <= Duration::from_millis(700), "took {took:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let failures = pool.stats().connect_failures;
    assert!(failures >= 1, "reconnects were attempted: {failures}");

    // Back on the same port: the pool reconnects (within its 400 ms backoff cap) and calls work.
    let restarted = TestServer::start(ServerOptions {
        port,
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    let mut recovered = false;
    while Instant::now() < until {
        let response = pool
            .unary(
                &target,
                grpcpool_testserver::UNARY_PATH,
                b"up".to_vec(),
                grpcpool_core::CallOptions::with_timeout(Duration::from_millis(500)),
            )
            .await;
        if matches!(&response, Ok(response) if response.code == Code::Ok) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "calls succeed after the restart");
    let after = echo(
        &pool,
        &target,
        b"after",
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(after.code, Code::Ok);
    let stats = pool.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(restarted.connections_accepted() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_ready_rides_out_an_outage() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let port = server.port();
    let target = server.target();
    let pool = pool(quick_config());
    assert_eq!(
        echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(2))
            .await
            .code,
        Code::Ok
    );
    server.kill().await;
    let noticed = Instant::now() + Duration::from_secs(3);
    while pool.stats().connections.ready > 0 && Instant::now() < noticed {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.stats().connections.ready, 0, "the pool saw the outage");

    let waiting = {
        let pool = pool.clone();
        let target = target.clone();
        tokio::spawn(async move {
            pool.unary(
                &target,
                grpcpool_testserver::UNARY_PATH,
                b"patient".to_vec(),
                grpcpool_core::CallOptions::with_timeout(Duration::from_secs(5))
                    .wait_for_ready(true),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _restarted = TestServer::start(ServerOptions {
        port,
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(&response.body[..], b"patient");
}

/// A test server that sends each connection a GOAWAY once it is 100 ms old: a GOAWAY storm.
async fn aging_server() -> TestServer {
    TestServer::start(ServerOptions {
        max_connection_age: Some(Duration::from_millis(100)),
        ..ServerOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_max_connection_age_of_100ms_loses_no_call() {
    support::logs();
    let server = aging_server().await;
    let pool = pool(quick_config());
    let target = server.target();

    // Four loops for 3 s (bounded by count too), some calls slow enough to span a GOAWAY.
    let until = Instant::now() + Duration::from_secs(3);
    let mut loops = Vec::new();
    for worker in 0..4 {
        let pool = pool.clone();
        let target = target.clone();
        loops.push(tokio::spawn(async move {
            let mut calls = 0u32;
            let mut failures = Vec::new();
            while Instant::now() < until && calls < 20_000 {
                let sleep = if calls.is_multiple_of(10) { "30" } else { "0" };
                let body = format!("{worker}-{calls}");
                let response = echo(
                    &pool,
                    &target,
                    body.as_bytes(),
                    metadata(&[("x-sleep-ms", sleep)]),
                    Duration::from_secs(2),
                )
                .await;
                if response.code != Code::Ok || response.body != body.as_bytes() {
                    failures.push(format!("{}: {}", response.code, response.message));
                }
                calls += 1;
            }
            (calls, failures)
        }));
    }
    let mut total = 0;
    for handle in loops {
        let (calls, failures) = handle.await.unwrap();
        assert!(failures.is_empty(), "failed calls: {failures:?}");
        total += calls;
    }
    let stats = pool.stats();
    assert!(total > 100, "made {total} calls");
    assert_eq!(stats.calls_succeeded, u64::from(total));
    assert!(
        server.connections_accepted() >= 10,
        "connections were recycled: {}",
        server.connections_accepted()
    );
    assert!(stats.goaways_received >= 5, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_max_age_replaces_connections_before_closing_them() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config.max_connection_age = Some(Duration::from_millis(300));
    let pool = pool(config);
    let target = server.target();
    assert_eq!(
        echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(2))
            .await
            .code,
        Code::Ok
    );

    // Calls for 2 s (bounded by count too): every one succeeds, and a ready connection is
    // always there, because the replacement is ready before the old connection drains.
    let until = Instant::now() + Duration::from_secs(2);
    let (mut calls, mut never_ready) = (0, 0);
    while Instant::now() < until && calls < 50_000 {
        let response = echo(
            &pool,
            &target,
            b"aging",
            Metadata::new(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(response.code, Code::Ok, "{}", response.message);
        if pool.stats().connections.ready == 0 {
            never_ready += 1;
        }
        calls += 1;
    }
    assert_eq!(
        never_ready, 0,
        "no ready connection at some point during {calls} calls"
    );
    assert!(
        server.connections_accepted() >= 4,
        "replaced {} times",
        server.connections_accepted()
    );
    let stats = pool.stats();
    assert_eq!(stats.reconnects, 0, "retirement is not a loss: {stats:?}");
    assert!(eventually(Duration::from_secs(2), || server.connections_open() <= 2).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_survive_a_goaway_storm_like_unary_calls() {
    // Every connection is told to go away 100 ms after it opens: streams opened meanwhile
    // must move to another connection when their request never reached the server.
    let server = aging_server().await;
    let pool = pool(quick_config());
    let target = server.target();
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..4u8 {
        let pool = pool.clone();
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            // Bounded in count and time: about 1.5 s, so a dozen connections age out.
            for round in 0..3000u32 {
                if started.elapsed() > Duration::from_millis(1500) {
                    break;
                }
                let options = grpcpool_core::CallOptions::with_timeout(Duration::from_secs(5));
                let outcome = async {
                    let stream = pool
                        .open_stream(&target, grpcpool_testserver::BIDI_PATH, options)
                        .await
                        .map_err(|error| error.to_string())?;
                    let stream = grpcpool_core::SharedStream::from(stream);
                    for message in 0..=(round % 3) {
                        let sending = stream
                            .send(bytes::Bytes::from(vec![worker, message as u8]))
                            .map_err(|error| error.to_string())?;
                        if let Err(error) = sending.await {
                            // A refused send says only that the stream is closed; its final
                            // status says why, as the stream API documents.
                            let response = stream.finish().map_err(|e| e.to_string())?.await;
                            return Err(format!(
                                "{}: {} (send: {error})",
                                response.code, response.message
                            ));
                        }
                    }
                    stream.close_send();
                    let response = stream.finish().map_err(|error| error.to_string())?.await;
                    if response.code == Code::Ok {
                        Ok(())
                    } else {
                        Err(format!("{}: {}", response.code, response.message))
                    }
                }
                .await;
                match outcome {
                    Ok(()) => ok += 1,
                    Err(error) => failed.push(error),
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, Vec::new());
    for worker in workers {
        let (worker_ok, worker_failed) = worker.await.unwrap();
        ok += worker_ok;
        failed.extend(worker_failed);
    }
    let stats = pool.stats();
    let retries: u64 = stats
        .targets
        .iter()
        .map(|target| target.transparent_retries)
        .sum();
    println!(
        "{ok} streams, {} failed, {} GOAWAYs, {retries} transparent retries",
        failed.len(),
        stats.goaways_received
    );
    assert!(
        stats.goaways_received > 3,
        "{} GOAWAYs",
        stats.goaways_received
    );
    assert!(ok > 100, "{ok} streams succeeded");
    // Nothing run twice: the server saw each stream at most once (a moved stream the server
    // had seen would count twice), and every one that succeeded.
    let seen = server.calls_handled();
    let made = u64::from(ok) + failed.len() as u64;
    assert!(
        (u64::from(ok)..=made).contains(&seen),
        "the server saw {seen} streams; {ok} succeeded, {} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    // A stream whose request the server never saw is moved. What remains (rare, under load)
    // is h2 failing every stream of a connection when a write fails on a socket the server
    // has just closed, before the frames already received (a GOAWAY, trailers) are read.
    assert!(
        failed.len() * 100 <= ok as usize,
        "{} of {} streams failed, e.g. {:?}; transparent retries {}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(3)],
        retries
    );
    assert!(
        failed
            .iter()
            .all(|failure| failure.starts_with("UNAVAILABLE")),
        "{failed:?}"
    );
    assert!(retries > 0, "no stream was moved");
}
