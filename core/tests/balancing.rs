#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Balancing policies from the service config, over three servers on 127.0.0.1, 127.0.0.2 and
//! 127.0.0.3 behind one multi-address target: round_robin spreads evenly and skips a killed
//! server until it returns, pick_first keeps every call on the first and moves on its loss,
//! least_request sends fewer calls to a slow server, and no config keeps least-loaded.

mod support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use grpcpool_core::{Code, Metadata, Pool};
use grpcpool_testserver::{ServerOptions, TestServer};
use support::{echo, eventually, quick_config};

async fn server_on(last_octet: u8, port: u16, delay: Option<Duration>) -> TestServer {
    TestServer::start(ServerOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, last_octet)),
        port,
        unary_delay: delay,
        ..ServerOptions::default()
    })
    .await
    .unwrap()
}

async fn three_servers(slow_third: Option<Duration>) -> Vec<TestServer> {
    vec![
        server_on(1, 0, None).await,
        server_on(2, 0, None).await,
        server_on(3, 0, slow_third).await,
    ]
}

/// `http://127.0.0.1:P1,127.0.0.2:P2,127.0.0.3:P3`.
fn target_of(servers: &[TestServer]) -> String {
    let hosts: Vec<String> = servers
        .iter()
        .map(|server| server.local_addr().unwrap().to_string())
        .collect();
    format!("http://{}", hosts.join(","))
}

fn pool_with_policy(policy: &str) -> Pool {
    let mut config = quick_config();
    config
        .set_text(
            "service_config",
            &format!(r#"{{"loadBalancingConfig": [{policy}]}}"#),
        )
        .unwrap();
    Pool::new(config).unwrap()
}

async fn calls(pool: &Arc<Pool>, target: &str, count: usize, tasks: usize) -> Vec<Code> {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = Arc::clone(pool);
            let target = target.to_owned();
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..count / tasks {
                    let response = echo(
                        &pool,
                        &target,
                        b"x",
                        Metadata::new(),
                        Duration::from_secs(5),
                    )
                    .await;
                    codes.push(response.code);
                }
                codes
            })
        })
        .collect();
    let mut codes = Vec::new();
    for handle in handles {
        codes.extend(handle.await.unwrap());
    }
    codes
}

fn handled(servers: &[TestServer]) -> Vec<u64> {
    servers.iter().map(TestServer::calls_handled).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly_and_skips_a_killed_server_until_it_returns() {
    let mut servers = three_servers(None).await;
    let target = target_of(&servers);
    let pool = Arc::new(pool_with_policy(r#"{"round_robin": {}}"#));
    let first = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(first.code, Code::Ok);
    // A connection to every address, then calls rotate over them.
    assert!(
        eventually(Duration::from_secs(5), || pool.stats().connections.ready
            == 3)
        .await
    );
    let before = handled(&servers);
    let codes = calls(&pool, &target, 3000, 4).await;
    assert!(codes.iter().all(|code| *code == Code::Ok));
    let spread: Vec<u64> = handled(&servers)
        .iter()
        .zip(&before)
        .map(|(after, before)| after - before)
        .collect();
    println!("round_robin over 3,000 calls: {spread:?}");
    // The per-connection view shows the same spread: one ready connection per address.
    let per_connection = &pool.stats().targets[0].per_connection;
    assert_eq!(per_connection.len(), 3, "{per_connection:?}");
    let mut addresses: Vec<&str> = per_connection.iter().map(|c| c.address.as_str()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), 3);
    for connection in per_connection {
        assert_eq!(
            (connection.state.as_str(), connection.health.as_str()),
            ("ready", "unchecked")
        );
        assert!(connection.calls >= 1000, "{connection:?}");
        assert_eq!(connection.last_goaway, None);
    }
    for share in &spread {
        // A third of 3,000 each, within 8 points (±240).
        assert!((760..=1240).contains(share), "{spread:?}");
    }

    // The third server dies: calls go on over the other two.
    let port = servers[2].port();
    servers.pop().unwrap().kill().await;
    let during = calls(&pool, &target, 600, 4).await;
    let failed = during.iter().filter(|code| **code != Code::Ok).count();
    // Calls in flight on the killed connection may fail; after that none does.
    assert!(failed <= 4, "{failed} failed");
    let tail = calls(&pool, &target, 300, 3).await;
    assert!(tail.iter().all(|code| *code == Code::Ok));

    // Back on its port: it gets calls again once the pool reconnects within its backoff.
    servers.push(server_on(3, port, None).await);
    assert!(
        eventually(Duration::from_secs(5), || pool.stats().connections.ready
            == 3)
        .await
    );
    let codes = calls(&pool, &target, 300, 3).await;
    assert!(codes.iter().all(|code| *code == Code::Ok));
    assert!(
        servers[2].calls_handled() >= 60,
        "{}",
        servers[2].calls_handled()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_first_keeps_every_call_on_the_first_and_moves_on_its_loss() {
    let mut servers = three_servers(None).await;
    let target = target_of(&servers);
    let pool = Arc::new(pool_with_policy(r#"{"pick_first": {}}"#));
    let codes = calls(&pool, &target, 600, 6).await;
    assert!(codes.iter().all(|code| *code == Code::Ok));
    assert_eq!(
        handled(&servers),
        vec![600, 0, 0],
        "every call to the first address"
    );

    servers.remove(0).kill().await;
    // Calls in flight when it died may fail; the pool dials the next address at once.
    let mut moved = false;
    for _ in 0..200 {
        let response = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
        if response.code == Code::Ok {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(moved, "no call succeeded after the first server died");
    let codes = calls(&pool, &target, 300, 3).await;
    assert!(codes.iter().all(|code| *code == Code::Ok));
    let after = handled(&servers);
    assert!(
        after[0] >= 300 && after[1] == 0,
        "{after:?}: all on the second address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_sends_fewer_calls_to_a_slow_server() {
    let servers = three_servers(Some(Duration::from_millis(30))).await;
    let target = target_of(&servers);
    let pool = Arc::new(pool_with_policy(
        r#"{"least_request_experimental": {"choiceCount": 2}}"#,
    ));
    let warm = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(warm.code, Code::Ok);
    assert!(
        eventually(Duration::from_secs(5), || pool.stats().connections.ready
            == 3)
        .await
    );
    let before = handled(&servers);
    let codes = calls(&pool, &target, 1200, 12).await;
    assert!(codes.iter().all(|code| *code == Code::Ok));
    let spread: Vec<u64> = handled(&servers)
        .iter()
        .zip(&before)
        .map(|(after, before)| after - before)
        .collect();
    println!("least_request with a slow third server: {spread:?}");
    // The slow server holds its calls 30 ms: it is in flight more often, so picked less.
    assert!(
        spread[2] * 2 < spread[0].min(spread[1]),
        "the slow server got {spread:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_one_connection_serves_sequential_calls() {
    let servers = three_servers(None).await;
    let target = target_of(&servers);
    let pool = Arc::new(Pool::new(quick_config()).unwrap());
    let codes = calls(&pool, &target, 300, 1).await;
    assert!(codes.iter().all(|code| *code == Code::Ok));
    // Least-loaded over the connections there are: one connection (the minimum) takes all.
    let spread = handled(&servers);
    assert_eq!(
        spread.iter().filter(|share| **share > 0).count(),
        1,
        "{spread:?}"
    );
    assert_eq!(pool.stats().connects, 1);
}

async fn failing_server_on(last_octet: u8) -> TestServer {
    TestServer::start(ServerOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, last_octet)),
        unary_failure: Some(14),
        ..ServerOptions::default()
    })
    .await
    .unwrap()
}

/// Outlier detection (A50) around round_robin: a sweep every 200 ms, ejections of 3 s times
/// the address's count, judged by failure percentage over three addresses.
fn outlier_pool(max_ejection_percent: u32) -> Arc<Pool> {
    Arc::new(pool_with_policy(&format!(
        r#"{{"outlier_detection_experimental": {{
            "interval": "0.2s", "baseEjectionTime": "3s", "maxEjectionTime": "30s",
            "maxEjectionPercent": {max_ejection_percent},
            "failurePercentageEjection": {{"threshold": 50, "minimumHosts": 3,
                                          "requestVolume": 10}},
            "childPolicy": [{{"round_robin": {{}}}}]}}}}"#
    )))
}

/// Calls one by one until `done` holds (at most `limit` calls or 10 s); the codes.
async fn calls_until(
    pool: &Pool,
    target: &str,
    limit: usize,
    mut done: impl FnMut() -> bool,
) -> Vec<Code> {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut codes = Vec::new();
    while codes.len() < limit && std::time::Instant::now() < until && !done() {
        codes.push(
            echo(pool, target, b"x", Metadata::new(), Duration::from_secs(5))
                .await
                .code,
        );
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_address_then_brings_it_back() {
    let servers = vec![
        server_on(1, 0, None).await,
        server_on(2, 0, None).await,
        failing_server_on(3).await,
    ];
    let target = target_of(&servers);
    let pool = outlier_pool(50);
    let ejected = || {
        pool.stats()
            .targets
            .first()
            .is_some_and(|t| t.ejected_addresses == 1)
    };
    // Before the first sweeps, a third of the calls fail.
    let before = calls_until(&pool, &target, 20_000, ejected).await;
    assert!(ejected(), "not ejected after {} calls", before.len());
    let failing_before = servers[2].calls_handled();
    // Ejected: the failing server gets no calls, the others all of them.
    let during = calls_until(&pool, &target, 600, || false).await;
    let failed = during.iter().filter(|code| **code != Code::Ok).count();
    println!(
        "outlier detection: {} calls until ejected ({} failed), then {failed} of {} failed",
        before.len(),
        before.iter().filter(|code| **code != Code::Ok).count(),
        during.len()
    );
    assert!(
        failed * 50 < during.len(),
        "{failed} of {} failed",
        during.len()
    );
    let stats = pool.stats();
    let connections = &stats.targets[0].per_connection;
    assert!(connections
        .iter()
        .any(|c| c.ejected && c.address.starts_with("127.0.0.3")));
    assert!(connections
        .iter()
        .all(|c| !c.ejected || c.address.starts_with("127.0.0.3")));
    if stats.targets[0].ejected_addresses == 1 {
        assert_eq!(
            servers[2].calls_handled(),
            failing_before,
            "an ejected address got calls"
        );
    }
    // After its ejection time it is back, gets calls again, fails them, and goes out again.
    let back = || pool.stats().targets[0].ejected_addresses == 0;
    assert!(
        eventually(Duration::from_secs(8), back).await,
        "never brought back"
    );
    let again = calls_until(&pool, &target, 20_000, || {
        pool.stats().targets[0].ejections >= 2
    })
    .await;
    assert!(
        servers[2].calls_handled() > failing_before,
        "not called after coming back"
    );
    assert!(
        pool.stats().targets[0].ejections >= 2,
        "not ejected again after {} calls",
        again.len()
    );
    let metrics = pool.metrics_text();
    assert!(
        metrics.contains("grpcpool_ejections_total{grpc_target="),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_never_ejects_more_than_its_percentage() {
    let servers = vec![
        server_on(1, 0, None).await,
        failing_server_on(2).await,
        failing_server_on(3).await,
    ];
    let target = target_of(&servers);
    // 33% of three addresses: once one is out, the other failing one stays in.
    let pool = outlier_pool(33);
    let mut most = 0;
    let codes = calls_until(&pool, &target, 3_000, || {
        let now = pool
            .stats()
            .targets
            .first()
            .map_or(0, |t| t.ejected_addresses);
        most = most.max(now);
        false
    })
    .await;
    let stats = pool.stats();
    assert!(
        stats.targets[0].ejections >= 1,
        "none ejected in {} calls",
        codes.len()
    );
    assert_eq!(most, 1, "more than one of three ejected at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_gives_pushed_endpoints_turns_by_their_weights() {
    let servers = vec![server_on(1, 0, None).await, server_on(2, 0, None).await];
    let addresses: Vec<String> = servers
        .iter()
        .map(|server| server.local_addr().unwrap().to_string())
        .collect();
    let pool = Arc::new(pool_with_policy(r#"{"round_robin": {}}"#));
    let target = "static:///weighted";
    pool.set_weighted_endpoints("weighted", &[(&addresses[0], 3), (&addresses[1], 1)])
        .unwrap();
    let first = echo(&pool, target, b"", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(first.code, Code::Ok, "{}", first.message);
    assert!(
        eventually(Duration::from_secs(5), || pool.stats().connections.ready
            == 2)
        .await
    );
    let before = handled(&servers);
    let codes = calls(&pool, target, 400, 1).await;
    assert!(codes.iter().all(|code| *code == Code::Ok));
    let spread: Vec<u64> = handled(&servers)
        .iter()
        .zip(&before)
        .map(|(after, before)| after - before)
        .collect();
    assert_eq!(spread, vec![300, 100], "weights 3 and 1");

    // Weights change with the endpoints; all 1 is plain rotation again.
    pool.set_endpoints("weighted", &addresses).unwrap();
    let before = handled(&servers);
    calls(&pool, target, 400, 1).await;
    let spread: Vec<u64> = handled(&servers)
        .iter()
        .zip(&before)
        .map(|(after, before)| after - before)
        .collect();
    assert_eq!(spread, vec![200, 200]);
    let error = pool
        .set_weighted_endpoints("weighted", &[(&addresses[0], 0)])
        .unwrap_err();
    assert!(error.to_string().contains("weight 0"), "{error}");
}
