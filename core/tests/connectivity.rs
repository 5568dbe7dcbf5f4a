#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! A target's connectivity in gRPC's states, against a real server that goes away and comes
//! back: IDLE before use, READY once connected, TRANSIENT_FAILURE when the server is gone,
//! READY again when it returns on the same port, SHUTDOWN after close; and watches that wake
//! on each change.

mod support;

use std::time::Duration;

use grpcpool_core::{Connectivity, Metadata};
use grpcpool_testserver::{ServerOptions, TestServer};
use support::{echo, pool, quick_config};

/// Waits (bounded) until the target's state is `wanted`, through the watch API only.
async fn watch_until(
    pool: &grpcpool_core::Pool,
    target: &str,
    wanted: Connectivity,
) -> Vec<Connectivity> {
    let mut seen = vec![pool.connectivity(target, false).unwrap()];
    for _ in 0..50 {
        let last = *seen.last().unwrap();
        if last == wanted {
            break;
        }
        let next = pool
            .connectivity_changed(target, last, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_ne!(next, last, "a watch of 10 s saw no change ({seen:?})");
        seen.push(next);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectivity_follows_the_server_down_and_back() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let port = server.port();
    let target = server.target();
    let pool = pool(quick_config());

    assert_eq!(
        pool.connectivity(&target, false).unwrap(),
        Connectivity::Idle
    );
    // Asking without try_to_connect dials nothing.
    assert_eq!(pool.stats().targets.len(), 0);

    // try_to_connect starts dialing; the watch sees it reach READY.
    let first = pool.connectivity(&target, true).unwrap();
    assert!(
        matches!(first, Connectivity::Connecting | Connectivity::Ready),
        "{first:?}"
    );
    let seen = watch_until(&pool, &target, Connectivity::Ready).await;
    assert_eq!(seen.last(), Some(&Connectivity::Ready), "{seen:?}");

    // The server goes: TRANSIENT_FAILURE once a redial fails.
    server.kill().await;
    let seen = watch_until(&pool, &target, Connectivity::TransientFailure).await;
    assert_eq!(
        seen.last(),
        Some(&Connectivity::TransientFailure),
        "{seen:?}"
    );
    let call = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(2)).await;
    assert_eq!(
        call.code,
        grpcpool_core::Code::Unavailable,
        "{}",
        call.message
    );

    // Back on the same port: READY again within the backoff.
    let _back = TestServer::start(ServerOptions {
        port,
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let seen = watch_until(&pool, &target, Connectivity::Ready).await;
    assert_eq!(seen.last(), Some(&Connectivity::Ready), "{seen:?}");

    // A watch that sees nothing change returns the same state at its timeout.
    let unchanged = pool
        .connectivity_changed(
            &target,
            Connectivity::Ready,
            Some(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    assert_eq!(unchanged, Connectivity::Ready);

    // A watch in progress wakes with SHUTDOWN when the pool closes.
    let watcher = {
        let pool = pool.clone();
        let target = target.clone();
        tokio::spawn(async move {
            pool.connectivity_changed(&target, Connectivity::Ready, None)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    pool.close();
    let woke = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the watch woke at close")
        .unwrap()
        .unwrap();
    assert_eq!(woke, Connectivity::Shutdown);
    assert_eq!(
        pool.connectivity(&target, true).unwrap(),
        Connectivity::Shutdown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_target_is_an_error_and_an_unused_one_idle() {
    let pool = pool(quick_config());
    assert!(pool.connectivity("http://a:+80", false).is_err());
    assert!(pool
        .connectivity_changed(
            "nope://x",
            Connectivity::Idle,
            Some(Duration::from_millis(1))
        )
        .await
        .is_err());
    // Nothing listens on port 1: connecting, then TRANSIENT_FAILURE, never READY.
    let target = "http://127.0.0.1:1";
    pool.connectivity(target, true).unwrap();
    let seen = watch_until(&pool, target, Connectivity::TransientFailure).await;
    assert_eq!(
        seen.last(),
        Some(&Connectivity::TransientFailure),
        "{seen:?}"
    );
    assert!(!seen.contains(&Connectivity::Ready), "{seen:?}");
}
