#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Pooling behaviour: reuse, growth and spread by load, shrinking when idle, fair waiting,
//! acquire timeouts and leak reports.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use grpcpool_core::{Code, Error, Metadata, Pool};
use grpcpool_testserver::{ServerOptions, TestServer};
use support::{echo, eventually, metadata, pool, quick_config};

/// A server allowing `slots` concurrent streams, and a pool held to one connection to it: so
/// exactly `slots` leases can be out at once.
async fn one_connection_with_slots(slots: u32) -> (TestServer, Pool) {
    let server = TestServer::start(ServerOptions {
        max_concurrent_streams: Some(slots),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let mut config = quick_config();
    config.max_connections_per_target = 1;
    config.streams_per_connection = slots;
    (server, pool(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sequential_calls_use_exactly_one_connection() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    for index in 0..1000u32 {
        let response = echo(
            &pool,
            &server.target(),
            &index.to_le_bytes(),
            Metadata::new(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            response.code,
            Code::Ok,
            "call {index}: {}",
            response.message
        );
        assert_eq!(&response.body[..], &index.to_le_bytes());
    }
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(server.calls_handled(), 1000);
    let stats = pool.stats();
    assert_eq!(stats.connects, 1);
    assert_eq!(stats.calls_succeeded, 1000);
    assert_eq!(stats.targets[0].leases_acquired, 1000);
    assert_eq!(stats.targets[0].acquire_wait.count, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grows_past_the_threshold_spreads_by_load_and_shrinks_when_idle() {
    support::logs();
    // Each connection takes at most 4 streams (the server says so); the pool may open 4.
    let server = TestServer::start(ServerOptions {
        max_concurrent_streams: Some(4),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let mut config = quick_config();
    config.streams_per_connection = 4;
    config.max_connections_per_target = 4;
    config.idle_timeout = Duration::from_millis(300);
    let pool = pool(config);
    let target = server.target();

    // 16 workers, each making 6 calls of 50 ms: 16 in flight need all 4 connections.
    let mut workers = Vec::new();
    for _ in 0..16 {
        let pool = pool.clone();
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..6 {
                let response = echo(
                    &pool,
                    &target,
                    b"load",
                    metadata(&[("x-sleep-ms", "50")]),
                    Duration::from_secs(10),
                )
                .await;
                codes.push(response.code);
            }
            codes
        }));
    }
    for worker in workers {
        assert!(worker.await.unwrap().iter().all(|code| *code == Code::Ok));
    }
    assert_eq!(
        server.connections_accepted(),
        4,
        "grew to the maximum, not past it"
    );
    let per_connection = server.calls_per_connection();
    assert_eq!(per_connection.iter().sum::<u64>(), 96);
    assert!(
        per_connection.iter().all(|calls| *calls >= 6),
        "every connection carried a share: {per_connection:?}"
    );

    // Idle connections above the minimum (1) close.
    let shrunk = eventually(Duration::from_secs(5), || {
        let stats = pool.stats();
        stats.connections.ready == 1 && server.connections_open() == 1
    })
    .await;
    assert!(
        shrunk,
        "stats {:?}, server open {}",
        pool.stats().connections,
        server.connections_open()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_loads_are_spread_not_collapsed_onto_one_connection() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config.min_connections_per_target = 3;
    config.max_connections_per_target = 3;
    let pool = pool(config);
    let target = server.target();
    let first = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(2)).await;
    assert_eq!(first.code, Code::Ok);
    assert!(
        eventually(Duration::from_secs(3), || pool.stats().connections.ready
            == 3)
        .await
    );

    for _ in 0..300 {
        let response = echo(
            &pool,
            &target,
            b"tie",
            Metadata::new(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(response.code, Code::Ok);
    }
    let per_connection = server.calls_per_connection();
    assert_eq!(per_connection.len(), 3);
    assert!(
        per_connection.iter().all(|calls| *calls >= 60),
        "{per_connection:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_times_out_when_saturated_and_waiters_are_served_in_order() {
    let (server, pool) = one_connection_with_slots(2).await;
    let target = server.target();

    let first = pool.acquire(&target, Duration::from_secs(2)).await.unwrap();
    let second = pool.acquire(&target, Duration::from_secs(2)).await.unwrap();
    let started = Instant::now();
    let error = pool
        .acquire(&target, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::AcquireTimeout { .. }), "{error}");
    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(pool.stats().targets[0].acquire_timeouts, 1);

    // Two waiters: the one that came first is served first.
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let waiter = |name: &'static str| {
        let pool = pool.clone();
        let target = target.clone();
        let order = Arc::clone(&order);
        tokio::spawn(async move {
            let lease = pool.acquire(&target, Duration::from_secs(5)).await.unwrap();
            order.lock().push(name);
            lease
        })
    };
    let early = waiter("early");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let late = waiter("late");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(order.lock().is_empty());
    drop(first);
    let early_lease = early.await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(*order.lock(), vec!["early"]);
    drop(second);
    let late_lease = late.await.unwrap();
    assert_eq!(*order.lock(), vec!["early", "late"]);

    // The leases still make calls.
    let response = late_lease
        .unary(
            grpcpool_testserver::UNARY_PATH,
            b"ok".to_vec(),
            grpcpool_core::CallOptions::with_timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    assert_eq!(response.code, Code::Ok);
    drop((early_lease, late_lease));
    assert_eq!(pool.stats().leases_out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_too_long_is_reported_once_with_where_it_was_acquired() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config.lease_leak_threshold = Duration::from_millis(100);
    let pool = pool(config);

    let quick = pool
        .acquire(&server.target(), Duration::from_secs(2))
        .await
        .unwrap();
    drop(quick);
    let line = line!() + 1;
    let held = pool.acquire(&server.target(), Duration::from_secs(2));
    let held = held.await.unwrap();
    assert!(eventually(Duration::from_secs(3), || pool.stats().leaks_detected == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pool.stats().leaks_detected,
        1,
        "reported once, not on every scan"
    );

    let leaks = pool.leaked_leases();
    assert_eq!(leaks.len(), 1);
    assert!(
        leaks[0].site.contains(&format!("pooling.rs:{line}")),
        "{}",
        leaks[0].site
    );
    assert!(leaks[0].held_for >= Duration::from_millis(100));
    drop(held);
    assert!(pool.leaked_leases().is_empty());
    assert_eq!(pool.stats().leases_out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_calls_finish_then_refuses_new_ones() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let target = server.target();
    let warm = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(2)).await;
    assert_eq!(warm.code, Code::Ok);

    let running = {
        let pool = pool.clone();
        let target = target.clone();
        tokio::spawn(async move {
            echo(
                &pool,
                &target,
                b"slow",
                metadata(&[("x-sleep-ms", "300")]),
                Duration::from_secs(5),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let left = pool.shutdown(Duration::from_secs(3)).await;
    assert_eq!(left, 0);
    assert_eq!(
        running.await.unwrap().code,
        Code::Ok,
        "the call in flight finished"
    );
    let error = pool
        .acquire(&target, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PoolClosed), "{error}");
    assert!(eventually(Duration::from_secs(2), || server.connections_open() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cut_off_by_a_shutdown_say_the_pool_closed() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let target = server.target();
    let slow = |pool: grpcpool_core::Pool, target: String| async move {
        echo(
            &pool,
            &target,
            b"slow",
            metadata(&[("x-sleep-ms", "3000")]),
            Duration::from_secs(10),
        )
        .await
    };
    let unary = tokio::spawn(slow(pool.clone(), target.clone()));
    let stream = pool
        .open_stream(
            &target,
            grpcpool_testserver::BIDI_PATH,
            grpcpool_core::CallOptions::with_timeout(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    let stream = grpcpool_core::SharedStream::from(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // No grace: the connections close under the calls.
    pool.shutdown(Duration::ZERO).await;
    let response = unary.await.unwrap();
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);
    assert!(
        response.message.contains("pool closed"),
        "{}",
        response.message
    );
    let outcome = stream.finish().unwrap().await;
    assert_eq!(outcome.code, Code::Unavailable, "{}", outcome.message);
    assert!(
        outcome.message.contains("pool closed"),
        "{}",
        outcome.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_are_served_in_arrival_order_even_against_newcomers() {
    let (server, pool) = one_connection_with_slots(1).await;
    let target = server.target();
    let held = pool.acquire(&target, Duration::from_secs(2)).await.unwrap();

    // Eight waiters queue up in order; each holds its slot briefly, then passes it on.
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for index in 0..8 {
        let pool = pool.clone();
        let target = target.clone();
        let order = Arc::clone(&order);
        waiters.push(tokio::spawn(async move {
            let lease = pool
                .acquire(&target, Duration::from_secs(10))
                .await
                .unwrap();
            order.lock().push(index);
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(lease);
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Newcomers keep trying to cut in while the queue drains.
    let cutting_in = {
        let pool = pool.clone();
        let target = target.clone();
        let order = Arc::clone(&order);
        tokio::spawn(async move {
            for _ in 0..20 {
                if let Ok(lease) = pool.acquire(&target, Duration::from_millis(1)).await {
                    order.lock().push(100);
                    drop(lease);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    cutting_in.await.unwrap();
    let order = order.lock().clone();
    let waiters_order: Vec<i32> = order.iter().copied().filter(|index| *index < 100).collect();
    assert_eq!(waiters_order, (0..8).collect::<Vec<_>>(), "{order:?}");
    let first_newcomer = order
        .iter()
        .position(|index| *index == 100)
        .unwrap_or(order.len());
    assert!(
        first_newcomer >= 8,
        "a newcomer went ahead of a waiter: {order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_timeouts_mean_no_limit_and_never_panic() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let target = server.target();
    let lease = pool.acquire(&target, Duration::MAX).await.unwrap();
    let forever = grpcpool_core::CallOptions::with_timeout(Duration::from_millis(u64::MAX));
    let response = lease
        .unary(
            grpcpool_testserver::UNARY_PATH,
            b"x".to_vec(),
            forever.clone(),
        )
        .await
        .unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    drop(lease);
    let response = pool
        .unary(
            &target,
            grpcpool_testserver::UNARY_PATH,
            b"y".to_vec(),
            forever,
        )
        .await
        .unwrap();
    assert_eq!(response.code, Code::Ok);
    assert_eq!(pool.shutdown(Duration::MAX).await, 0);

    for change in [
        (|config: &mut grpcpool_core::Config| config.acquire_timeout = Duration::MAX)
            as fn(&mut grpcpool_core::Config),
        |config| config.max_connection_age = Some(Duration::MAX),
        |config| config.keepalive_timeout = Duration::MAX,
        |config| config.dns_refresh_interval = Duration::MAX,
        |config| config.backoff.max = Duration::MAX,
    ] {
        let mut config = quick_config();
        change(&mut config);
        let error = grpcpool_core::Pool::new(config).unwrap_err();
        assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_per_connection_still_reuses_for_sequential_calls() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config.streams_per_connection = 1;
    let pool = pool(config);
    for _ in 0..50 {
        let response = echo(
            &pool,
            &server.target(),
            b"seq",
            Metadata::new(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(response.code, Code::Ok);
    }
    assert_eq!(server.connections_accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_ready_with_no_minimum_connects_when_the_server_appears() {
    // A port with nothing on it yet.
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = spare.local_addr().unwrap().port();
    drop(spare);
    let mut config = quick_config();
    config.min_connections_per_target = 0;
    let pool = pool(config);
    let target = format!("http://127.0.0.1:{port}");
    let waiting = {
        let pool = pool.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let options = grpcpool_core::CallOptions::with_timeout(Duration::from_secs(5))
                .wait_for_ready(true);
            pool.unary(
                &target,
                grpcpool_testserver::UNARY_PATH,
                b"later".to_vec(),
                options,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _server = TestServer::start(ServerOptions {
        port,
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_dropped_after_its_slot_was_granted_gives_the_slot_back() {
    let (server, pool) = one_connection_with_slots(1).await;
    let target = server.target();
    let held = pool.acquire(&target, Duration::from_secs(2)).await.unwrap();

    // A waiter joins the queue (polled until it waits), the slot is handed to it on release,
    // and then the waiter is dropped without ever being polled again (a cancelled task).
    let mut waiter = Box::pin(pool.acquire(&target, Duration::from_secs(10)));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut waiter)
            .await
            .is_err(),
        "the waiter queues while the only slot is held"
    );
    drop(held);
    drop(waiter);

    // The slot came back: the next acquire gets it at once.
    let next = pool.acquire(&target, Duration::from_millis(500)).await;
    assert!(next.is_ok(), "the slot stayed reserved: {next:?}");
    assert_eq!(pool.stats().leases_out, 1);
}
