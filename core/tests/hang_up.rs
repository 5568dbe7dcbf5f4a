#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! A peer that hangs up mid-write must not kill a host that keeps SIGPIPE's default
//! disposition, as C programs do (Rust, Python and Node ignore SIGPIPE from start-up). This
//! binary holds this one test: it restores the default disposition for the whole process, so a
//! write that raises SIGPIPE ends the test binary, which fails the run.

mod support;

use std::io::Read;
use std::net::{Shutdown, TcpListener};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use grpcpool_core::{CallOptions, Code, Config};
use grpcpool_testserver::UNARY_PATH;
use support::quick_config;

/// Accepts connections on its own thread and closes each at once, or after reading what the
/// client sent first, until `count` connections have come.
fn hang_up_on_every_connection<S: Read + Send + 'static>(
    count: usize,
    accept: impl Fn() -> Option<S> + Send + 'static,
    close: impl Fn(S) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for index in 0..count {
            let Some(mut connection) = accept() else {
                return;
            };
            if index % 2 == 1 {
                // Half of them read the preface first, so the close is a FIN, not a reset.
                let mut preface = [0u8; 24];
                let _ = connection.read(&mut preface);
            }
            close(connection);
        }
    })
}

#[allow(unsafe_code)] // signal(2) has no safe wrapper in libc.
fn keep_sigpipe_default_as_a_c_host_does() {
    // SAFETY: setting a signal's disposition to its default touches no memory; this test
    // binary holds no other test that could rely on SIGPIPE being ignored.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_hangs_up_never_raises_sigpipe() {
    keep_sigpipe_default_as_a_c_host_does();

    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_target = format!("http://{}", tcp.local_addr().unwrap());
    let socket_dir = std::env::temp_dir().join(format!("grpcpool-hang-up-{}", std::process::id()));
    std::fs::create_dir_all(&socket_dir).unwrap();
    let socket_path = socket_dir.join("s");
    let _ = std::fs::remove_file(&socket_path);
    let unix = UnixListener::bind(&socket_path).unwrap();
    let unix_target = format!("unix:{}", socket_path.display());

    const CONNECTIONS: usize = 40;
    let tcp_server = hang_up_on_every_connection(
        CONNECTIONS,
        move || tcp.accept().ok().map(|(stream, _)| stream),
        |stream| {
            let _ = stream.shutdown(Shutdown::Both);
        },
    );
    let unix_server = hang_up_on_every_connection(
        CONNECTIONS,
        move || unix.accept().ok().map(|(stream, _)| stream),
        |stream| {
            let _ = stream.shutdown(Shutdown::Both);
        },
    );

    let mut config: Config = quick_config();
    config.backoff.initial = Duration::from_millis(1);
    config.backoff.max = Duration::from_millis(5);
    config.backoff.jitter = 0.0;
    let pool = grpcpool_core::Pool::new(config).unwrap();
    // Each call dials (or finds the target failing and fails fast); bounded in count and time.
    let until = Instant::now() + Duration::from_secs(10);
    let mut failed = 0;
    for _ in 0..CONNECTIONS * 4 {
        if Instant::now() > until || (tcp_server.is_finished() && unix_server.is_finished()) {
            break;
        }
        for target in [&tcp_target, &unix_target] {
            let response = pool
                .unary(
                    target,
                    UNARY_PATH,
                    vec![7u8; 64 * 1024],
                    CallOptions::with_timeout(Duration::from_millis(500)),
                )
                .await
                .unwrap();
            assert_ne!(response.code, Code::Ok, "nothing serves here");
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Reaching here means no write raised SIGPIPE.
    assert!(failed > 0);
    drop(pool);
    let _ = std::fs::remove_dir_all(&socket_dir);
}
