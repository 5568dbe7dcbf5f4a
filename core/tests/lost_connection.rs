#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! What a connection lost to a reset tells the pool. A peer that resets is a peer that answers:
//! the next call waits for the redial, as gRPC's IDLE-then-CONNECTING does, and fails fast with
//! UNAVAILABLE only when that redial fails too. (A server that closes after a GOAWAY the pool
//! has not read yet looks the same from the socket: a write into it fails with a broken pipe.)

mod support;

use std::sync::Arc;
use std::time::Duration;

use grpcpool_core::{Code, Metadata, Pool};
use grpcpool_testserver::{ServerOptions, TestServer};
use support::{echo, eventually, pool, quick_config};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// A TCP proxy on loopback in front of a live server that can reset every connection it
/// carries (SO_LINGER 0, then close: an RST to the pool) and stop accepting new ones.
struct ResettingProxy {
    port: u16,
    reset: watch::Sender<u64>,
    stop_accepting: Arc<Notify>,
}

impl ResettingProxy {
    async fn start(upstream: u16) -> ResettingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (reset, _) = watch::channel(0u64);
        let stop_accepting = Arc::new(Notify::new());
        let resets = reset.clone();
        let stop = Arc::clone(&stop_accepting);
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    // Dropping the listener refuses every later dial.
                    () = stop.notified() => return,
                };
                let mut reset = resets.subscribe();
                tokio::spawn(async move {
                    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = reset.changed() => {
                            socket2::SockRef::from(&client)
                                .set_linger(Some(Duration::ZERO))
                                .unwrap();
                        }
                    }
                });
            }
        });
        ResettingProxy {
            port,
            reset,
            stop_accepting,
        }
    }

    fn target(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Resets every connection open through the proxy now.
    fn reset_all(&self) {
        self.reset.send_modify(|generation| *generation += 1);
    }

    fn stop_accepting(&self) {
        self.stop_accepting.notify_one();
    }
}

/// A pool that opens connections on demand only, so nothing redials behind the test's back.
fn on_demand_pool() -> Pool {
    let mut config = quick_config();
    config.min_connections_per_target = 0;
    pool(config)
}

/// Waits (bounded) until the pool has noticed the reset: no connection of the target is open.
async fn until_lost(pool: &Pool, target: &str) {
    let lost = eventually(Duration::from_secs(5), || {
        let stats = pool.stats();
        let counts = stats
            .targets
            .iter()
            .find(|stats| stats.target == target)
            .map(|stats| stats.connections.clone())
            .unwrap_or_default();
        counts.ready + counts.draining == 0
    })
    .await;
    assert!(lost, "the pool never noticed the reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_a_reset_waits_for_the_redial_to_a_live_server() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let proxy = ResettingProxy::start(server.port()).await;
    let pool = on_demand_pool();
    let target = proxy.target();
    let timeout = Duration::from_secs(5);

    for round in 0..3 {
        let response = echo(&pool, &target, b"before", Metadata::new(), timeout).await;
        assert_eq!(
            response.code,
            Code::Ok,
            "round {round}: {}",
            response.message
        );
        proxy.reset_all();
        until_lost(&pool, &target).await;
        // Not failing fast: the server answers the redial.
        let response = echo(&pool, &target, b"after", Metadata::new(), timeout).await;
        assert_eq!(
            response.code,
            Code::Ok,
            "round {round}: {}",
            response.message
        );
    }
    let stats = pool.stats();
    assert_eq!(stats.targets[0].connect_failures, 0, "{stats:?}");
    assert_eq!(stats.targets[0].reconnects, 3, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_a_reset_fails_fast_when_the_redial_is_refused() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let proxy = ResettingProxy::start(server.port()).await;
    let pool = on_demand_pool();
    let target = proxy.target();
    let timeout = Duration::from_secs(5);

    let response = echo(&pool, &target, b"before", Metadata::new(), timeout).await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    proxy.stop_accepting();
    proxy.reset_all();
    until_lost(&pool, &target).await;
    // The redial is refused: UNAVAILABLE naming that, not the call's 5 s deadline.
    let response = echo(&pool, &target, b"after", Metadata::new(), timeout).await;
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);
    assert!(
        response.message.contains("refused"),
        "the refused redial is the reason: {}",
        response.message
    );
    // And the calls after it fail fast on that knowledge until a redial succeeds.
    let response = echo(&pool, &target, b"again", Metadata::new(), timeout).await;
    assert_eq!(response.code, Code::Unavailable, "{}", response.message);
}
