#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! HTTP/2 keepalive: a peer that stops answering is found by pings, idle connections are not
//! pinged unless asked, and GOAWAY ENHANCE_YOUR_CALM (`too_many_pings`) doubles the interval.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpcpool_core::{Code, Config, Metadata};
use grpcpool_testserver::{ServerOptions, TestServer};
use support::{echo, eventually, pool, quick_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A loopback TCP proxy that can freeze: frozen, it holds every byte, like a dead peer.
struct FreezingProxy {
    address: std::net::SocketAddr,
    frozen: Arc<AtomicBool>,
}

impl FreezingProxy {
    async fn start(upstream: std::net::SocketAddr) -> FreezingProxy {
        // A backlog of one: frozen, the proxy stops accepting, and once the backlog is full
        // the kernel drops new connections' SYNs, as a blackholed host does.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        socket.listen(1).unwrap();
        socket.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(socket.into()).unwrap();
        let address = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&frozen);
        tokio::spawn(async move {
            loop {
                if flag.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                // Look at the flag again every 20 ms, so a frozen proxy stops accepting.
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = tokio::time::sleep(Duration::from_millis(20)) => continue,
                };
                let Ok((client, _)) = accepted else {
                    return;
                };
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, Arc::clone(&flag)));
                tokio::spawn(pump(server_read, client_write, Arc::clone(&flag)));
            }
        });
        FreezingProxy { address, frozen }
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }

    /// Fills the (frozen) proxy's backlog, so that new connections hang in connect, their
    /// SYNs dropped. The returned sockets keep it full while they live.
    fn fill_backlog(&self) -> Vec<std::net::TcpStream> {
        (0..3)
            .filter_map(|_| {
                std::net::TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).ok()
            })
            .collect()
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        // Frozen: hold the bytes for good (bounded: the test ends long before).
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Quick settings that ping every connection, busy or idle, every 100 ms and give up on a
/// ping after 200 ms.
fn pinging() -> Config {
    let mut config = quick_config();
    config.keepalive_time = Some(Duration::from_millis(100));
    config.keepalive_timeout = Duration::from_millis(200);
    config.keepalive_while_idle = true;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_ping_closes_the_connection() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let proxy = FreezingProxy::start(server.local_addr().unwrap()).await;
    let target = format!("http://{}", proxy.address);
    let pool = pool(pinging());
    assert_eq!(
        echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(2))
            .await
            .code,
        Code::Ok
    );

    proxy.freeze();
    let found = eventually(Duration::from_secs(3), || {
        let stats = pool.stats();
        stats.targets[0].keepalive_timeouts >= 1 && stats.connections.ready == 0
    })
    .await;
    assert!(found, "{:?}", pool.stats().targets[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_not_pinged_unless_asked() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let proxy = FreezingProxy::start(server.local_addr().unwrap()).await;
    let target = format!("http://{}", proxy.address);
    let mut config = quick_config();
    config.keepalive_time = Some(Duration::from_millis(100));
    config.keepalive_timeout = Duration::from_millis(200);
    config.keepalive_while_idle = false;
    let pool = pool(config);
    assert_eq!(
        echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(2))
            .await
            .code,
        Code::Ok
    );

    // A held lease is not a call: it must not make the pool ping either.
    let _held = pool.acquire(&target, Duration::from_secs(2)).await.unwrap();

    // No call in flight, so no ping: a frozen peer goes unnoticed (as grpc-go servers want).
    proxy.freeze();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats = pool.stats();
    assert_eq!(stats.targets[0].keepalive_timeouts, 0);
    assert_eq!(stats.connections.ready, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_enhance_your_calm_doubles_the_keepalive_interval() {
    // A bare HTTP/2 server that, 150 ms into each connection, says ENHANCE_YOUR_CALM as a
    // grpc-go server does for too many pings.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                let serve = async { while let Some(Ok(_)) = connection.accept().await {} };
                let _ = tokio::time::timeout(Duration::from_millis(150), serve).await;
                connection.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                let _ = std::future::poll_fn(|cx| connection.poll_closed(cx)).await;
            });
        }
    });
    let mut config = quick_config();
    config.keepalive_time = Some(Duration::from_secs(1));
    config.min_connections_per_target = 1;
    let pool = pool(config);
    let target = format!("http://{address}");
    let lease = pool.acquire(&target, Duration::from_secs(2)).await.unwrap();
    drop(lease);
    assert_eq!(pool.stats().targets[0].keepalive_time_ms, 1000);
    let doubled = eventually(Duration::from_secs(3), || {
        let stats = pool.stats();
        stats.targets[0].goaways_received >= 1 && stats.targets[0].keepalive_time_ms >= 2000
    })
    .await;
    assert!(doubled, "{:?}", pool.stats().targets[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_a_peer_found_dead_by_keepalive_is_redialed() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let proxy = FreezingProxy::start(server.local_addr().unwrap()).await;
    let target = format!("http://{}", proxy.address);
    let mut config = pinging();
    // A redial into the dead peer hangs until this; calls must not wait behind it.
    config.connect_timeout = Duration::from_secs(20);
    let pool = pool(config);
    let call = |timeout| echo(&pool, &target, b"x", Metadata::new(), timeout);
    assert_eq!(call(Duration::from_secs(2)).await.code, Code::Ok);

    // A blackhole: the connection's bytes are held, and new connections hang in connect.
    proxy.freeze();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let backlog = proxy.fill_backlog();
    let found = eventually(Duration::from_secs(3), || {
        let stats = pool.stats();
        stats.targets[0].keepalive_timeouts >= 1 && stats.connections.ready == 0
    })
    .await;
    assert!(found, "{:?}", pool.stats().targets[0]);
    // As gRPC's TRANSIENT_FAILURE: UNAVAILABLE now, not DEADLINE_EXCEEDED after 3 s.
    for _ in 0..3 {
        let response = call(Duration::from_secs(3)).await;
        assert_eq!(response.code, Code::Unavailable, "{}", response.message);
    }
    // The peer answers again: the pool comes back (bounded).
    proxy.thaw();
    drop(backlog);
    // A SYN dropped meanwhile is sent again after 1 s, then 3 s: allow about 10 s.
    let mut back = false;
    for _ in 0..200 {
        if call(Duration::from_secs(2)).await.code == Code::Ok {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "{:?}", pool.stats().targets[0]);
}
