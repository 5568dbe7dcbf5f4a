#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! `xds:///svc` targets against a real control plane (tests/xds: go-control-plane's snapshot
//! cache and ADS server) and the project's test servers on 127.0.0.1, .2 and .3: calls reach
//! exactly the EDS endpoints, weights split calls, a NACKed update keeps the last good
//! endpoints, endpoints change under load without a failed call, and missing resources fail
//! calls with UNAVAILABLE naming them.

#[path = "support/control_plane.rs"]
mod control_plane;
mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_plane::{cluster, endpoint, route, snapshot, ControlPlane, FreezingProxy};
use grpcpool_core::{Code, Metadata, Pool};
use grpcpool_testserver::{ServerOptions, TestServer};
use serde_json::json;
use support::{echo, quick_config};

const TARGET: &str = "xds:///svc";

async fn server_on(last_octet: u8) -> TestServer {
    TestServer::start(ServerOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, last_octet)),
        ..ServerOptions::default()
    })
    .await
    .unwrap()
}

fn address(server: &TestServer) -> SocketAddr {
    server.local_addr().unwrap()
}

fn pool_for(plane: &ControlPlane) -> Arc<Pool> {
    let mut config = quick_config();
    config
        .set_text("xds_bootstrap", &plane.bootstrap())
        .unwrap();
    Arc::new(Pool::new(config).unwrap())
}

/// `count` calls over `tasks` tasks; their codes.
async fn calls(pool: &Arc<Pool>, count: usize, tasks: usize) -> Vec<(Code, String)> {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = Arc::clone(pool);
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..count / tasks {
                    let response =
                        echo(&pool, TARGET, b"x", Metadata::new(), Duration::from_secs(5)).await;
                    codes.push((response.code, response.message));
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

fn all_ok(codes: &[(Code, String)]) {
    let failed: Vec<_> = codes.iter().filter(|(code, _)| *code != Code::Ok).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first {:?}",
        failed.len(),
        failed.first()
    );
}

fn handled(servers: &[&TestServer]) -> Vec<u64> {
    servers
        .iter()
        .map(|server| server.calls_handled())
        .collect()
}

fn delta(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_exactly_the_eds_endpoints() {
    let (one, two, outside) = (server_on(1).await, server_on(2).await, server_on(3).await);
    let mut plane = ControlPlane::start();
    plane.set(&snapshot(
        "1",
        json!([route("", &[("backends", 1)])]),
        json!([cluster(
            "backends",
            vec![endpoint(address(&one), 1), endpoint(address(&two), 1)]
        )]),
    ));
    let pool = pool_for(&plane);
    let codes = calls(&pool, 400, 4).await;
    all_ok(&codes);
    let spread = handled(&[&one, &two, &outside]);
    println!("400 calls over the EDS endpoints: {spread:?}");
    assert_eq!(spread[2], 0, "a server outside EDS got calls: {spread:?}");
    assert_eq!(spread[0] + spread[1], 400);
    // round_robin (the cluster's lb_policy): both take a fair part.
    assert!(spread[0] >= 120 && spread[1] >= 120, "{spread:?}");
    // Every kind was ACKed with the snapshot's version.
    for kind in [
        "Listener",
        "RouteConfiguration",
        "Cluster",
        "ClusterLoadAssignment",
    ] {
        plane.wait_for(Duration::from_secs(5), |line| {
            line.starts_with(&format!("ack {kind} \"1\""))
        });
    }
    assert!(
        !plane.has(|line| line.starts_with("nack")),
        "{:?}",
        plane.lines()
    );
    // Stats and metrics name the resources in use and their versions.
    let stats = pool.stats();
    let xds = stats.xds.as_ref().expect("xds stats");
    assert!(xds.connected && xds.nacks == 0, "{xds:?}");
    let held: Vec<(&str, &str, &str)> = xds
        .resources
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str(), r.version.as_str()))
        .collect();
    assert_eq!(
        held,
        vec![
            ("listener", "svc", "1"),
            ("route_config", "svc-route", "1"),
            ("cluster", "backends", "1"),
            ("endpoints", "backends", "1"),
        ]
    );
    let text = pool.metrics_text();
    let server = format!("server=\"127.0.0.1:{}\"", plane.port());
    for line in [
        format!("grpcpool_xds_connected{{{server}}} 1"),
        format!("grpcpool_xds_nacks_total{{{server}}} 0"),
        "grpcpool_xds_resource{kind=\"endpoints\",name=\"backends\",version=\"1\"} 1".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_weights_split_calls_one_to_three() {
    let (one, two) = (server_on(1).await, server_on(2).await);
    let mut plane = ControlPlane::start();
    plane.set(&snapshot(
        "1",
        json!([route("/", &[("backends", 1)])]),
        json!([cluster(
            "backends",
            vec![endpoint(address(&one), 1), endpoint(address(&two), 3)]
        )]),
    ));
    let pool = pool_for(&plane);
    // The first calls open a connection to each endpoint.
    all_ok(&calls(&pool, 20, 1).await);
    let before = handled(&[&one, &two]);
    all_ok(&calls(&pool, 2000, 4).await);
    let spread = delta(&handled(&[&one, &two]), &before);
    let share = spread[1] as f64 / 2000.0 * 100.0;
    println!("1:3 endpoint weights over 2,000 calls: {spread:?} ({share:.1}% to the heavier)");
    assert!((68.0..=82.0).contains(&share), "{spread:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_clusters_split_calls_one_to_three() {
    let (one, two) = (server_on(1).await, server_on(2).await);
    let mut plane = ControlPlane::start();
    plane.set(&snapshot(
        "1",
        json!([route("", &[("light", 1), ("heavy", 3)])]),
        json!([
            cluster("light", vec![endpoint(address(&one), 1)]),
            cluster("heavy", vec![endpoint(address(&two), 1)]),
        ]),
    ));
    let pool = pool_for(&plane);
    all_ok(&calls(&pool, 20, 1).await);
    let before = handled(&[&one, &two]);
    all_ok(&calls(&pool, 2000, 4).await);
    let spread = delta(&handled(&[&one, &two]), &before);
    let share = spread[1] as f64 / 2000.0 * 100.0;
    println!("1:3 weighted clusters over 2,000 calls: {spread:?} ({share:.1}% to heavy)");
    assert!((68.0..=82.0).contains(&share), "{spread:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_update_keeps_the_last_good_endpoints() {
    let (one, two) = (server_on(1).await, server_on(2).await);
    let mut plane = ControlPlane::start();
    plane.set(&snapshot(
        "1",
        json!([route("", &[("backends", 1)])]),
        json!([cluster("backends", vec![endpoint(address(&one), 1)])]),
    ));
    let pool = pool_for(&plane);
    all_ok(&calls(&pool, 50, 2).await);
    plane.wait_for(Duration::from_secs(5), |line| {
        line.starts_with("ack ClusterLoadAssignment \"1\"")
    });

    // Version 2 moves to the second server but lists an endpoint with port 0.
    let port_zero = SocketAddr::from(([127, 0, 0, 2], 0));
    plane.set(&snapshot(
        "2",
        json!([route("", &[("backends", 1)])]),
        json!([cluster(
            "backends",
            vec![endpoint(address(&two), 1), endpoint(port_zero, 1)]
        )]),
    ));
    // The control plane sees the NACK: the last good version, and why.
    let nack = plane.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("nack ClusterLoadAssignment")
    });
    println!("{nack}");
    assert!(
        nack.starts_with("nack ClusterLoadAssignment \"1\""),
        "{nack}"
    );
    assert!(nack.contains("port 0"), "{nack}");
    let before = handled(&[&one, &two]);
    all_ok(&calls(&pool, 100, 2).await);
    let spread = delta(&handled(&[&one, &two]), &before);
    assert_eq!(spread, vec![100, 0], "the NACKed endpoints were used");
    let stats = pool.stats();
    let xds = stats.xds.as_ref().expect("xds stats");
    assert!(xds.nacks >= 1, "{xds:?}");
    plane.wait_for(Duration::from_secs(10), |line| line == "rolled back to 1");
    assert!(xds.connected, "{xds:?}");

    // Version 3 is valid: calls move to the second server.
    plane.set(&snapshot(
        "3",
        json!([route("", &[("backends", 1)])]),
        json!([cluster("backends", vec![endpoint(address(&two), 1)])]),
    ));
    plane.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("ack ClusterLoadAssignment \"3\"")
    });
    // Calls in flight while the old connection drains still land on the first server.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let before = handled(&[&one, &two]);
        all_ok(&calls(&pool, 20, 1).await);
        if delta(&handled(&[&one, &two]), &before) == vec![0, 20] {
            break;
        }
        assert!(
            Instant::now() < until,
            "calls never moved to version 3's endpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_changed_under_load_fail_no_call() {
    let servers = [server_on(1).await, server_on(2).await, server_on(3).await];
    let mut plane = ControlPlane::start();
    let sets: [&[usize]; 4] = [&[0], &[1], &[0, 2], &[2]];
    let version = |index: usize| (index + 1).to_string();
    let set_of = |index: usize| {
        snapshot(
            &version(index),
            json!([route("", &[("backends", 1)])]),
            json!([cluster(
                "backends",
                sets[index]
                    .iter()
                    .map(|server| endpoint(address(&servers[*server]), 1))
                    .collect()
            )]),
        )
    };
    plane.set(&set_of(0));
    let pool = pool_for(&plane);
    all_ok(&calls(&pool, 10, 1).await);
    // Load: 4 tasks, each at most 1,500 calls or 20 s, while the endpoints change.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let pool = Arc::clone(&pool);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(20);
                let mut codes = Vec::new();
                while codes.len() < 1500
                    && Instant::now() < until
                    && !stop.load(std::sync::atomic::Ordering::Relaxed)
                {
                    let response =
                        echo(&pool, TARGET, b"x", Metadata::new(), Duration::from_secs(5)).await;
                    codes.push((response.code, response.message));
                }
                codes
            })
        })
        .collect();
    for index in 1..sets.len() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        plane.set(&set_of(index));
        plane.wait_for(Duration::from_secs(10), |line| {
            line.starts_with(&format!("ack ClusterLoadAssignment \"{}\"", version(index)))
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut codes = Vec::new();
    for task in load {
        codes.extend(task.await.unwrap());
    }
    println!("{} calls while the endpoints changed 3 times", codes.len());
    all_ok(&codes);
    // The last set is the third server alone.
    let before = handled(&[&servers[0], &servers[1], &servers[2]]);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        all_ok(&calls(&pool, 20, 1).await);
        let after = handled(&[&servers[0], &servers[1], &servers[2]]);
        let spread = delta(&after, &before);
        if spread[0] == 0 && spread[1] == 0 {
            break;
        }
        assert!(
            Instant::now() < until,
            "calls still reach removed endpoints"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_resources_fail_calls_with_unavailable_naming_them() {
    let plane = ControlPlane::start();
    // The control plane has no snapshot: the listener never comes.
    let pool = pool_for(&plane);
    let started = Instant::now();
    let response = echo(
        &pool,
        TARGET,
        b"x",
        Metadata::new(),
        Duration::from_millis(700),
    )
    .await;
    println!(
        "{:?} after {:?}: {}",
        response.code,
        started.elapsed(),
        response.message
    );
    assert_eq!(response.code, Code::Unavailable);
    assert!(
        response.message.contains("listener \"svc\""),
        "{}",
        response.message
    );
    // It waited for the listener rather than failing at once.
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_while_the_control_plane_is_away_and_updates_follow_its_return() {
    let (one, two) = (server_on(1).await, server_on(2).await);
    let mut plane = ControlPlane::start();
    let port = plane.port();
    let only = |version: &str, server: &TestServer| {
        snapshot(
            version,
            json!([route("", &[("backends", 1)])]),
            json!([cluster("backends", vec![endpoint(address(server), 1)])]),
        )
    };
    plane.set(&only("1", &one));
    let pool = pool_for(&plane);
    all_ok(&calls(&pool, 50, 2).await);

    // The control plane dies: the last configuration keeps serving.
    plane.kill();
    let gone = Instant::now() + Duration::from_secs(10);
    while pool.stats().xds.as_ref().is_some_and(|xds| xds.connected) {
        assert!(
            Instant::now() < gone,
            "the stream never noticed the control plane was gone"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = handled(&[&one, &two]);
    all_ok(&calls(&pool, 200, 4).await);
    assert_eq!(delta(&handled(&[&one, &two]), &before), vec![200, 0]);
    let stats = pool.stats();
    let xds = stats.xds.as_ref().unwrap();
    println!("while away: {xds:?}");
    assert!(xds.last_error.is_some(), "{xds:?}");
    assert!(
        xds.resources
            .iter()
            .any(|resource| resource.kind == "endpoints" && resource.version == "1"),
        "{xds:?}"
    );

    // It comes back on the same port with a new snapshot: the pool reconnects (with its
    // backoff) and follows it.
    let mut plane = ControlPlane::on_port(port);
    plane.set(&only("2", &two));
    plane.wait_for(Duration::from_secs(15), |line| {
        line.starts_with("ack ClusterLoadAssignment \"2\"")
    });
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let before = handled(&[&one, &two]);
        all_ok(&calls(&pool, 20, 1).await);
        if delta(&handled(&[&one, &two]), &before) == vec![0, 20] {
            break;
        }
        assert!(
            Instant::now() < until,
            "calls never moved to the new snapshot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pool.stats().xds.unwrap().connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_send_paths_to_their_clusters_and_a_route_change_moves_them() {
    let (one, two, three) = (server_on(1).await, server_on(2).await, server_on(3).await);
    let mut plane = ControlPlane::start();
    let clusters = json!([
        cluster("echo-a", vec![endpoint(address(&one), 1)]),
        cluster("echo-b", vec![endpoint(address(&two), 1)]),
        cluster("rest", vec![endpoint(address(&three), 1)]),
    ]);
    plane.set(&snapshot(
        "1",
        json!([
            route("/grpcpool.test.Echo/", &[("echo-a", 1)]),
            route("", &[("rest", 1)])
        ]),
        clusters.clone(),
    ));
    let pool = pool_for(&plane);
    let servers = [&one, &two, &three];
    let before = handled(&servers);
    all_ok(&calls(&pool, 100, 2).await);
    assert_eq!(delta(&handled(&servers), &before), vec![100, 0, 0]);
    // Another service takes the catch-all route to the third server (which does not
    // implement it, so it answers UNIMPLEMENTED).
    let other = pool
        .unary(
            TARGET,
            "/other.Service/Method",
            b"x".to_vec(),
            grpcpool_core::CallOptions::with_timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(other.code, Code::Unimplemented, "{}", other.message);
    let stats = pool.stats();
    let own = stats.targets.iter().find(|t| t.target == TARGET).unwrap();
    assert!(
        own.per_connection
            .iter()
            .all(|c| c.address == address(&three).to_string()),
        "{:?}",
        own.per_connection
    );

    // Version 2 moves the Echo service to echo-b: its calls follow, none fails.
    plane.set(&snapshot(
        "2",
        json!([
            route("/grpcpool.test.Echo/", &[("echo-b", 1)]),
            route("", &[("rest", 1)])
        ]),
        clusters.clone(),
    ));
    plane.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("ack RouteConfiguration \"2\"")
    });
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let before = handled(&servers);
        all_ok(&calls(&pool, 20, 1).await);
        if delta(&handled(&servers), &before) == vec![0, 20, 0] {
            break;
        }
        assert!(
            Instant::now() < until,
            "the Echo calls never moved to echo-b"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Version 3 has no catch-all: a path no route matches fails with UNAVAILABLE.
    plane.set(&snapshot(
        "3",
        json!([route("/grpcpool.test.Echo/", &[("echo-b", 1)])]),
        clusters,
    ));
    plane.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("ack RouteConfiguration \"3\"")
    });
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let other = pool
            .unary(
                TARGET,
                "/other.Service/Method",
                b"x".to_vec(),
                grpcpool_core::CallOptions::with_timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap();
        if other.code == Code::Unavailable {
            assert!(other.message.contains("no xDS route"), "{}", other.message);
            break;
        }
        assert!(Instant::now() < until, "{:?} {}", other.code, other.message);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    all_ok(&calls(&pool, 20, 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_caps_calls_in_flight() {
    let slow = TestServer::start(ServerOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 1)),
        unary_delay: Some(Duration::from_millis(300)),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let mut plane = ControlPlane::start();
    let mut limited = cluster("backends", vec![endpoint(address(&slow), 1)]);
    limited["max_requests"] = json!(3);
    plane.set(&snapshot(
        "1",
        json!([route("", &[("backends", 1)])]),
        json!([limited]),
    ));
    let pool = pool_for(&plane);
    all_ok(&calls(&pool, 1, 1).await);
    // 8 at once against a cap of 3: 3 go through, the others fail at once.
    let codes = calls(&pool, 8, 8).await;
    let ok = codes.iter().filter(|(code, _)| *code == Code::Ok).count();
    let broken: Vec<_> = codes
        .iter()
        .filter(|(code, message)| *code == Code::Unavailable && message.contains("circuit breaker"))
        .collect();
    println!("8 calls, max_requests 3: {ok} OK, {} refused", broken.len());
    assert_eq!(ok + broken.len(), 8, "{codes:?}");
    assert!((1..=3).contains(&ok), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_the_control_plane_removes_fails_calls_fast() {
    let one = server_on(1).await;
    let mut plane = ControlPlane::start();
    let with_listener = |version: &str, listener: &str| {
        let mut snapshot = snapshot(
            version,
            json!([route("", &[("backends", 1)])]),
            json!([cluster("backends", vec![endpoint(address(&one), 1)])]),
        );
        snapshot["listener"] = json!(listener);
        snapshot
    };
    plane.set(&with_listener("1", "svc"));
    let pool = pool_for(&plane);
    all_ok(&calls(&pool, 20, 1).await);
    // Version 2 has another listener only: svc is gone from the LDS response.
    plane.set(&with_listener("2", "elsewhere"));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let response = echo(&pool, TARGET, b"x", Metadata::new(), Duration::from_secs(5)).await;
        if response.code == Code::Unavailable {
            assert!(
                response.message.contains("listener \"svc\" does not exist"),
                "{}",
                response.message
            );
            // Not wait-for-ready: it failed at once rather than waiting out its 5 s.
            assert!(started.elapsed() < Duration::from_secs(4));
            break;
        }
        assert_eq!(response.code, Code::Ok, "{}", response.message);
        assert!(Instant::now() < until, "the removed listener kept serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clusters_lb_policy_picks_least_request_or_round_robin() {
    let slow = TestServer::start(ServerOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 3)),
        unary_delay: Some(Duration::from_millis(30)),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let (one, two) = (server_on(1).await, server_on(2).await);
    let servers = [&one, &two, &slow];
    let mut plane = ControlPlane::start();
    let with_policy = |version: &str, lb: &str| {
        let mut backends = cluster(
            "backends",
            servers.iter().map(|s| endpoint(address(s), 1)).collect(),
        );
        backends["lb"] = json!(lb);
        snapshot(
            version,
            json!([route("", &[("backends", 1)])]),
            json!([backends]),
        )
    };
    plane.set(&with_policy("1", "LEAST_REQUEST"));
    let pool = pool_for(&plane);
    all_ok(&calls(&pool, 12, 12).await);
    let before = handled(&servers);
    all_ok(&calls(&pool, 1200, 12).await);
    let spread = delta(&handled(&servers), &before);
    println!("LEAST_REQUEST with a slow third server: {spread:?}");
    // The slow server holds its calls 30 ms: it is in flight more often, so picked less.
    assert!(spread[2] * 2 < spread[0].min(spread[1]), "{spread:?}");

    // ROUND_ROBIN: turns in order, whatever the server's speed.
    plane.set(&with_policy("2", "ROUND_ROBIN"));
    plane.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("ack Cluster \"2\"")
    });
    let before = handled(&servers);
    all_ok(&calls(&pool, 600, 12).await);
    let spread = delta(&handled(&servers), &before);
    println!("ROUND_ROBIN with a slow third server: {spread:?}");
    for share in &spread {
        // A third of 600 each, within 8 points.
        assert!((152..=248).contains(share), "{spread:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_behind_a_dead_network_is_noticed_by_keepalive_and_the_stream_reopened() {
    let (one, two) = (server_on(1).await, server_on(2).await);
    let mut plane = ControlPlane::start();
    let proxy = FreezingProxy::start(plane.port()).await;
    let only = |version: &str, server: &TestServer| {
        snapshot(
            version,
            json!([route("", &[("backends", 1)])]),
            json!([cluster("backends", vec![endpoint(address(server), 1)])]),
        )
    };
    plane.set(&only("1", &one));
    let mut config = quick_config();
    config
        .set_text("xds_bootstrap", &plane.bootstrap_via(proxy.port()))
        .unwrap();
    config.keepalive_time = Some(Duration::from_millis(300));
    config.keepalive_timeout = Duration::from_millis(300);
    let pool = Arc::new(Pool::new(config).unwrap());
    all_ok(&calls(&pool, 20, 1).await);
    assert_eq!(proxy.connections(), 1);

    // The network to the control plane dies without a word: the keepalive notices, the
    // client opens a new stream (through a new connection), and calls keep going meanwhile.
    proxy.freeze();
    let until = Instant::now() + Duration::from_secs(10);
    while proxy.connections() < 2 {
        assert!(
            Instant::now() < until,
            "the stalled ADS connection was never given up"
        );
        all_ok(&calls(&pool, 4, 1).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let until = Instant::now() + Duration::from_secs(10);
    while !pool.stats().xds.unwrap().connected {
        assert!(Instant::now() < until, "the new ADS stream never opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Updates come over the new stream.
    plane.set(&only("2", &two));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let before = handled(&[&one, &two]);
        all_ok(&calls(&pool, 20, 1).await);
        if delta(&handled(&[&one, &two]), &before) == vec![0, 20] {
            break;
        }
        assert!(Instant::now() < until, "calls never moved to the update");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_xds_target_leaves_the_pool_and_comes_back_on_its_next_call() {
    let (one, two) = (server_on(1).await, server_on(2).await);
    let mut plane = ControlPlane::start();
    let only = |version: &str, server: &TestServer| {
        snapshot(
            version,
            json!([
                route("/grpcpool.test.Echo/", &[("echo", 1)]),
                route("", &[("echo", 1)])
            ]),
            json!([cluster("echo", vec![endpoint(address(server), 1)])]),
        )
    };
    plane.set(&only("1", &one));
    let mut config = quick_config();
    config
        .set_text("xds_bootstrap", &plane.bootstrap())
        .unwrap();
    config.set_text("target_idle_timeout", "200ms").unwrap();
    let pool = Arc::new(Pool::new(config).unwrap());
    all_ok(&calls(&pool, 10, 1).await);
    let until = Instant::now() + Duration::from_secs(10);
    while !pool.stats().targets.is_empty() {
        assert!(Instant::now() < until, "the idle xDS target stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An update while no target follows the listener, then a call: it follows the listener
    // again and takes the update.
    plane.set(&only("2", &two));
    plane.wait_for(Duration::from_secs(10), |line| {
        line.starts_with("ack ClusterLoadAssignment \"2\"")
    });
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let before = handled(&[&one, &two]);
        all_ok(&calls(&pool, 10, 1).await);
        if delta(&handled(&[&one, &two]), &before) == vec![0, 10] {
            break;
        }
        assert!(Instant::now() < until, "calls never took the update");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_over_tls_is_trusted_through_the_pools_roots_only() {
    let ca = grpcpool_testserver::TestCa::new().unwrap();
    let (cert, key) = ca.server_cert(&["127.0.0.1"]).unwrap();
    let dir = std::env::temp_dir().join(format!("grpcpool-xds-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("plane.pem"), dir.join("plane.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let mut plane = ControlPlane::over_tls(&cert_path, &key_path);
    let backend = server_on(2).await;
    plane.set(&snapshot(
        "1",
        json!([route("", &[("backends", 1)])]),
        json!([cluster("backends", vec![endpoint(address(&backend), 1)])]),
    ));
    let bootstrap = plane.bootstrap_with(plane.port(), "tls");
    // channel_creds tls: the pool's roots verify the control plane (the backends stay
    // plaintext: the clusters carry no transport socket).
    let mut config = quick_config();
    config.set_text("xds_bootstrap", &bootstrap).unwrap();
    config.tls.ca_pem = Some(ca.ca_pem().into_bytes());
    let pool = Arc::new(Pool::new(config).unwrap());
    all_ok(&calls(&pool, 50, 2).await);
    assert_eq!(handled(&[&backend]), vec![50]);
    let xds = pool.stats().xds.unwrap();
    assert!(xds.connected && xds.nacks == 0, "{xds:?}");
    plane.wait_for(Duration::from_secs(5), |line| {
        line.starts_with("ack ClusterLoadAssignment \"1\"")
    });

    // Without those roots the control plane is not trusted: nothing arrives, and calls fail
    // with UNAVAILABLE within their deadline, saying what is missing.
    let mut config = quick_config();
    config.set_text("xds_bootstrap", &bootstrap).unwrap();
    let untrusting = Pool::new(config).unwrap();
    let response = echo(
        &untrusting,
        TARGET,
        b"x",
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);
    let xds = untrusting.stats().xds.unwrap();
    assert!(!xds.connected, "{xds:?}");
    let error = xds.last_error.unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert_eq!(handled(&[&backend]), vec![50]);
    std::fs::remove_dir_all(&dir).unwrap();
}
