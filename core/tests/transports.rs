#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Ways to reach a server: TLS with a CA made here, mutual TLS, unix sockets, several addresses
//! for one service, and names re-resolved on an interval.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use grpcpool_core::{Code, Metadata, Pool, Resolve, Resolver, Resolving};
use grpcpool_testserver::{ServerOptions, ServerTls, TestCa, TestServer};
use parking_lot::Mutex;
use support::{echo, eventually, pool, quick_config};

async fn tls_server(ca: &TestCa, client_ca: Option<String>) -> TestServer {
    let (cert_pem, key_pem) = ca.server_cert(&["localhost", "127.0.0.1"]).unwrap();
    TestServer::start(ServerOptions {
        tls: Some(ServerTls {
            cert_pem,
            key_pem,
            client_ca_pem: client_ca,
        }),
        ..ServerOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_test_ca_and_a_server_name_override() {
    let ca = TestCa::new().unwrap();
    let server = tls_server(&ca, None).await;
    let mut config = quick_config();
    config.tls.ca_pem = Some(ca.ca_pem().into_bytes());
    let pool = pool(config.clone());
    let response = echo(
        &pool,
        &server.target(),
        b"secret",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(&response.body[..], b"secret");

    // By address, checking the certificate against a name it holds.
    let by_address = format!("https://127.0.0.1:{}", server.port());
    config.tls.server_name_override = Some("localhost".to_owned());
    let overridden = support::pool(config.clone());
    let response = echo(
        &overridden,
        &by_address,
        b"x",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);

    // A name the certificate does not hold is refused: certificates are always checked.
    config.tls.server_name_override = Some("elsewhere.test".to_owned());
    let wrong = support::pool(config);
    let response = echo(
        &wrong,
        &by_address,
        b"x",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Unavailable);
    assert!(
        response.message.contains("not valid for name"),
        "{}",
        response.message
    );

    // An untrusted CA is refused too.
    let other_ca = TestCa::new().unwrap();
    let mut untrusting = quick_config();
    untrusting.tls.ca_pem = Some(other_ca.ca_pem().into_bytes());
    let untrusting = support::pool(untrusting);
    let response = echo(
        &untrusting,
        &server.target(),
        b"x",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);
    assert!(
        response.message.contains("certificate"),
        "{}",
        response.message
    );

    // Bad PEM is reported when the pool is made.
    let mut broken = quick_config();
    broken.tls.ca_pem = Some(b"not a certificate".to_vec());
    assert!(matches!(
        grpcpool_core::Pool::new(broken),
        Err(grpcpool_core::Error::Tls(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let ca = TestCa::new().unwrap();
    let server = tls_server(&ca, Some(ca.ca_pem())).await;
    let (cert, key) = ca.client_cert("grpcpool-test-client").unwrap();
    let mut config = quick_config();
    config.tls.ca_pem = Some(ca.ca_pem().into_bytes());
    config.tls.client_cert_pem = Some(cert.into_bytes());
    config.tls.client_key_pem = Some(key.into_bytes());
    let pool = pool(config);
    let response = echo(
        &pool,
        &server.target(),
        b"mutual",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);

    let mut anonymous = quick_config();
    anonymous.tls.ca_pem = Some(ca.ca_pem().into_bytes());
    let anonymous = support::pool(anonymous);
    let response = echo(
        &anonymous,
        &server.target(),
        b"x",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_target() {
    let directory = std::env::temp_dir().join(format!("grpcpool-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("echo.sock");
    let server = TestServer::start(ServerOptions {
        unix_path: Some(path.clone()),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    assert!(server.target().starts_with("unix:"));
    let pool = pool(quick_config());
    for target in [server.target(), format!("unix://{}", path.display())] {
        let response = echo(
            &pool,
            &target,
            b"local",
            Metadata::new(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(response.code, Code::Ok, "{target}: {}", response.message);
    }
    server.kill().await;
    let _ = std::fs::remove_dir_all(directory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_addresses_share_the_connections_and_a_dead_one_is_retried_later() {
    let first = TestServer::start(ServerOptions::default()).await.unwrap();
    // A port with nothing on it yet.
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spare_port = spare.local_addr().unwrap().port();
    drop(spare);
    let target = format!("http://127.0.0.1:{},127.0.0.1:{spare_port}", first.port());
    let mut config = quick_config();
    config.min_connections_per_target = 2;
    config.max_connections_per_target = 2;
    let pool = pool(config);

    // The dead address does not fail calls: the live one takes them.
    for _ in 0..20 {
        let response = echo(
            &pool,
            &target,
            b"spread",
            Metadata::new(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(response.code, Code::Ok, "{}", response.message);
    }
    assert!(pool.stats().connect_failures >= 1);

    // Once the second server is up, its address is tried again and gets a connection.
    let second = TestServer::start(ServerOptions {
        port: spare_port,
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let spread = eventually(Duration::from_secs(5), || {
        second.connections_accepted() >= 1
    })
    .await;
    assert!(spread, "the retried address was connected");
    assert!(
        eventually(Duration::from_secs(3), || pool.stats().connections.ready
            == 2)
        .await
    );
    for _ in 0..40 {
        let response = echo(
            &pool,
            &target,
            b"spread",
            Metadata::new(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(response.code, Code::Ok);
    }
    assert!(
        first.calls_handled() > 20 && second.calls_handled() > 0,
        "{} / {}",
        first.calls_handled(),
        second.calls_handled()
    );
}

/// A resolver whose answer the test changes.
struct Switchable(Arc<Mutex<Vec<SocketAddr>>>);

impl Resolve for Switchable {
    fn resolve(&self, _host: &str, _port: u16) -> Resolving {
        let answer = self.0.lock().clone();
        Box::pin(async move { Ok(answer) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_re_resolved_and_connections_follow_the_new_addresses() {
    let old = TestServer::start(ServerOptions::default()).await.unwrap();
    let new = TestServer::start(ServerOptions::default()).await.unwrap();
    let answer = Arc::new(Mutex::new(vec![old.local_addr().unwrap()]));
    let mut config = quick_config();
    config.resolver = Resolver::custom(Switchable(Arc::clone(&answer)));
    config.dns_refresh_interval = Duration::from_millis(100);
    let pool = pool(config);
    let target = "dns:///echo.service.test:50051";

    let response = echo(
        &pool,
        target,
        b"one",
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(old.calls_handled(), 1);

    *answer.lock() = vec![new.local_addr().unwrap()];
    let moved = eventually(Duration::from_secs(5), || {
        old.connections_open() == 0 && new.connections_open() == 1
    })
    .await;
    assert!(
        moved,
        "old open {}, new open {}",
        old.connections_open(),
        new.connections_open()
    );
    let response = echo(
        &pool,
        target,
        b"two",
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(response.code, Code::Ok);
    assert_eq!(new.calls_handled(), 1);

    // The system resolver handles real names.
    let system = support::pool(quick_config());
    let by_name = format!("dns:///localhost:{}", new.port());
    let response = echo(
        &system,
        &by_name,
        b"three",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
}

/// A resolver that refuses every name until the test gives it an answer.
struct Refusing(Arc<Mutex<Option<SocketAddr>>>);

impl Resolve for Refusing {
    fn resolve(&self, host: &str, _port: u16) -> Resolving {
        let answer = *self.0.lock();
        let host = host.to_owned();
        Box::pin(async move {
            answer.map(|address| vec![address]).ok_or_else(|| {
                std::io::Error::other(format!("no such host {host} (refused by the test)"))
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_fails_fast_and_comes_back_when_it_does() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let answer = Arc::new(Mutex::new(None));
    let mut config = quick_config();
    config.resolver = Resolver::custom(Refusing(Arc::clone(&answer)));
    config.dns_refresh_interval = Duration::from_millis(300);
    let pool = pool(config);
    // Many targets, each new: the target's upkeep may resolve before or after the first
    // call's dial, and either way the call must not wait out its timeout.
    let targets: Vec<String> = (0..40)
        .map(|index| format!("dns:///gone-{index}.test:50051"))
        .collect();
    for round in 0..2 {
        for target in &targets {
            let response = echo(&pool, target, b"x", Metadata::new(), Duration::from_secs(2)).await;
            assert_eq!(
                response.code,
                Code::Unavailable,
                "round {round}, {target}: {}",
                response.message
            );
            assert!(
                response.message.contains("refused by the test"),
                "the resolution error is named: {}",
                response.message
            );
        }
        // Later calls, after the upkeep has re-resolved (and failed) at least once, too.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // The name resolves again: the target comes back.
    *answer.lock() = Some(server.local_addr().unwrap());
    let target = &targets[0];
    let mut last = None;
    for _ in 0..50 {
        let response = echo(
            &pool,
            target,
            b"back",
            Metadata::new(),
            Duration::from_secs(2),
        )
        .await;
        if response.code == Code::Ok {
            last = Some(response);
            break;
        }
        last = Some(response);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = last.unwrap();
    assert_eq!(
        last.code,
        Code::Ok,
        "after the name resolved: {}",
        last.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_endpoints_move_calls_between_servers_without_a_failure() {
    let first = TestServer::start(ServerOptions::default()).await.unwrap();
    let second = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = Arc::new(pool(quick_config()));
    let target = "static:///echo-service";

    // Before any endpoint is set, a call fails fast (UNAVAILABLE, not its deadline) and says
    // why.
    let response = echo(&pool, target, b"x", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);
    assert!(
        response.message.contains("set_endpoints"),
        "{}",
        response.message
    );

    pool.set_endpoints("echo-service", &[first.local_addr().unwrap().to_string()])
        .unwrap();
    let response = echo(
        &pool,
        target,
        b"one",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(first.calls_handled(), 1);

    // Calls keep flowing (bounded: 4 callers for at most 3 s) while the endpoint moves.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let pool = Arc::clone(&pool);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let until = std::time::Instant::now() + Duration::from_secs(3);
                let mut codes = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && std::time::Instant::now() < until
                {
                    let response =
                        echo(&pool, target, b"x", Metadata::new(), Duration::from_secs(5)).await;
                    codes.push(response.code);
                }
                codes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    pool.set_endpoints("echo-service", &[second.local_addr().unwrap().to_string()])
        .unwrap();
    let moved = eventually(Duration::from_secs(5), || {
        first.connections_open() == 0 && second.connections_open() >= 1
    })
    .await;
    let handled_by_first = first.calls_handled();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut codes = Vec::new();
    for caller in callers {
        codes.extend(caller.await.unwrap());
    }
    assert!(
        moved,
        "first open {}, second open {}",
        first.connections_open(),
        second.connections_open()
    );
    let failed = codes.iter().filter(|code| **code != Code::Ok).count();
    assert_eq!(
        failed,
        0,
        "{failed} of {} calls failed across the update",
        codes.len()
    );
    assert_eq!(
        first.calls_handled(),
        handled_by_first,
        "calls reached a removed endpoint"
    );
    assert!(second.calls_handled() > 0);
    println!(
        "pushed endpoints: {} calls across the update, 0 failed; first {} / second {}",
        codes.len(),
        first.calls_handled(),
        second.calls_handled()
    );

    // No endpoint at all: calls fail fast again.
    pool.set_endpoints::<&str>("echo-service", &[]).unwrap();
    let gone = eventually(Duration::from_secs(5), || second.connections_open() == 0).await;
    assert!(gone);
    let response = echo(&pool, target, b"x", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);

    // Bad input is refused, naming what is wrong.
    for (name, endpoint, says) in [
        ("bad name", "127.0.0.1:1", "no endpoint name"),
        ("ok", "127.0.0.1", "needs a port"),
        ("ok", "127.0.0.1:+1", "invalid port"),
        ("ok", "[127.0.0.1]:1", "IPv6"),
    ] {
        let error = pool.set_endpoints(name, &[endpoint]).unwrap_err();
        assert!(
            matches!(error, grpcpool_core::Error::InvalidTarget { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(says), "{error}");
    }
    assert!(Pool::new(quick_config())
        .unwrap()
        .set_endpoints("early", &["unix:/tmp/s"])
        .is_ok());
}

/// A resolver that counts its lookups.
struct Counting(Arc<std::sync::atomic::AtomicU64>, SocketAddr);

impl Resolve for Counting {
    fn resolve(&self, _host: &str, _port: u16) -> Resolving {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer = self.1;
        Box::pin(async move { Ok(vec![answer]) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_has_its_name_resolved_again_at_most_every_30_s() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let port = server.port();
    let lookups = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut config = quick_config();
    config.resolver =
        Resolver::custom(Counting(Arc::clone(&lookups), server.local_addr().unwrap()));
    config.dns_refresh_interval = Duration::from_secs(3600);
    let pool = pool(config);
    let target = "dns:///echo.service.test:50051";
    let count = || lookups.load(std::sync::atomic::Ordering::Relaxed);
    let response = echo(&pool, target, b"x", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    let before = count();
    // The server goes away: the name is looked up again at once, not in an hour.
    server.kill().await;
    assert!(
        eventually(Duration::from_secs(5), || count() == before + 1).await,
        "{} lookups",
        count()
    );
    // Back on its port and lost again within 30 s: no further lookup.
    let server = TestServer::start(ServerOptions {
        port,
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    // Calls fail fast while the reconnect is pending (backoff), then reach it again.
    let mut back = false;
    for _ in 0..100 {
        let response = echo(&pool, target, b"x", Metadata::new(), Duration::from_secs(5)).await;
        if response.code == Code::Ok {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "never reached the restarted server");
    server.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(), before + 1, "looked up again within 30 s");
}
