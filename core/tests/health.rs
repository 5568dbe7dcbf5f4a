#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Client-side health checking (gRPC A17) from the service config's healthCheckConfig, over
//! servers on 127.0.0.1-3: a server set NOT_SERVING under load stops getting calls, gets
//! them again once SERVING, and a server without the health service is used unchecked.

mod support;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grpcpool_core::{Code, Metadata, Pool};
use grpcpool_testserver::{ServerOptions, TestServer};
use support::{echo, eventually, quick_config};

const SERVICE: &str = "grpcpool.test.Echo";

async fn server_on(last_octet: u8, health: bool) -> TestServer {
    TestServer::start(ServerOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, last_octet)),
        health,
        ..ServerOptions::default()
    })
    .await
    .unwrap()
}

fn checked_pool(policy: &str) -> Pool {
    let mut config = quick_config();
    config
        .set_text(
            "service_config",
            &format!(
                r#"{{"loadBalancingConfig": [{policy}],
                    "healthCheckConfig": {{"serviceName": "{SERVICE}"}}}}"#
            ),
        )
        .unwrap();
    Pool::new(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_serving_backend_gets_no_calls_until_it_serves_again() {
    let servers = [
        server_on(1, true).await,
        server_on(2, true).await,
        // No health service: UNIMPLEMENTED, so used unchecked.
        server_on(3, false).await,
    ];
    let hosts: Vec<String> = servers
        .iter()
        .map(|server| server.local_addr().unwrap().to_string())
        .collect();
    let target = format!("http://{}", hosts.join(","));
    let pool = Arc::new(checked_pool(r#"{"round_robin": {}}"#));
    let warm = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(warm.code, Code::Ok, "{}", warm.message);
    assert!(
        eventually(Duration::from_secs(5), || pool.stats().connections.ready
            == 3)
        .await
    );

    // Calls keep flowing from four tasks until the test ends (bounded by count too).
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let (pool, target, stop) = (Arc::clone(&pool), target.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut failed = 0u32;
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let response = echo(
                        &pool,
                        &target,
                        b"x",
                        Metadata::new(),
                        Duration::from_secs(5),
                    )
                    .await;
                    if response.code != Code::Ok {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let calls = |index: usize| servers[index].calls_handled();
    assert!(
        eventually(Duration::from_secs(5), || (0..3)
            .all(|index| calls(index) > 20))
        .await
    );

    servers[1].set_serving(SERVICE, false);
    let marked = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (second_at_1s, third_at_1s) = (calls(1), calls(2));
    tokio::time::sleep(Duration::from_millis(700)).await;
    println!(
        "NOT_SERVING for {:?}: second server {} -> {}, third {} -> {}",
        marked.elapsed(),
        second_at_1s,
        calls(1),
        third_at_1s,
        calls(2)
    );
    assert_eq!(
        calls(1),
        second_at_1s,
        "calls reached a NOT_SERVING backend after 1 s"
    );
    assert!(
        calls(2) > third_at_1s,
        "the unchecked backend stopped getting calls"
    );
    // The per-connection view shows the health of each.
    let mut healths: Vec<String> = pool.stats().targets[0]
        .per_connection
        .iter()
        .map(|connection| connection.health.clone())
        .collect();
    healths.sort();
    assert_eq!(
        healths,
        ["not_serving", "serving", "serving"],
        "the third answered UNIMPLEMENTED: used as serving"
    );

    servers[1].set_serving(SERVICE, true);
    let back = calls(1);
    assert!(
        eventually(Duration::from_secs(2), || calls(1) > back + 10).await,
        "no calls within 2 s of SERVING again"
    );
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for loader in loaders {
        failed += loader.await.unwrap();
    }
    assert_eq!(failed, 0, "calls failed while a backend was taken out");
    assert_eq!(pool.stats().leases_out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_when_no_backend_serves() {
    let server = server_on(1, true).await;
    let pool = checked_pool(r#"{"pick_first": {}}"#);
    let target = server.target();
    let first = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(first.code, Code::Ok);
    server.set_serving(SERVICE, false);
    let mut refused = None;
    for _ in 0..100 {
        let started = Instant::now();
        let response = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
        if response.code != Code::Ok {
            refused = Some((response, started.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (response, took) = refused.expect("calls went on to a NOT_SERVING server");
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);
    assert!(response.message.contains("serving"), "{}", response.message);
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?} instead of failing fast"
    );
    server.set_serving(SERVICE, true);
    let mut back = false;
    for _ in 0..100 {
        if echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5))
            .await
            .code
            == Code::Ok
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "no call succeeded once the server served again");
}
