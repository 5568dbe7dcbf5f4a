#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Blocking calls from a plain thread, the way the C and Python faces make them: the future
//! runs as a task on a pool worker while the caller waits, in one go or in steps, and can be
//! abandoned; a panic in it comes back to the caller.

mod support;

use std::time::Duration;

use grpcpool_core::{CallOptions, Code, Error, Pool};
use grpcpool_testserver::{ServerOptions, TestServer, SLEEP_MS_KEY, UNARY_PATH};
use support::{metadata, pool, quick_config};

/// A test server on a runtime of its own, so the test thread stays a plain one.
fn server() -> (tokio::runtime::Runtime, TestServer) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(TestServer::start(ServerOptions::default()))
        .unwrap();
    (runtime, server)
}

fn call(
    pool: &Pool,
    target: &str,
    sleep_ms: u64,
) -> impl std::future::Future<Output = Result<grpcpool_core::Response, Error>> + Send + 'static {
    let options = CallOptions::with_timeout(Duration::from_secs(10))
        .metadata(metadata(&[(SLEEP_MS_KEY, &sleep_ms.to_string())]));
    pool.unary(target, UNARY_PATH, b"x".to_vec(), options)
}

#[test]
fn a_blocking_call_runs_on_a_pool_worker_and_returns_its_outcome() {
    let (_runtime, server) = server();
    let pool = pool(quick_config());
    let target = server.target();
    let call = call(&pool, &target, 0);
    let (thread, response) = pool
        .block_on(async move {
            let thread = std::thread::current().name().map(str::to_owned);
            (thread, call.await)
        })
        .unwrap();
    assert_eq!(response.unwrap().code, Code::Ok);
    assert_eq!(thread.as_deref(), Some("grpcpool-worker"));
}

#[test]
fn a_blocking_call_can_be_waited_for_in_steps() {
    let (_runtime, server) = server();
    let pool = pool(quick_config());
    let mut task = pool
        .start_blocking(call(&pool, &server.target(), 300))
        .unwrap();
    // The server holds the call for 300 ms: a 10 ms step finds it running.
    assert!(task.wait_for(Duration::from_millis(10)).is_none());
    let response = task.wait().unwrap().unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
}

#[test]
fn an_abandoned_blocking_call_is_cancelled_on_the_server() {
    let (runtime, server) = server();
    let pool = pool(quick_config());
    let target = server.target();
    // A connection first, so the held call reaches the server at once.
    assert_eq!(
        pool.block_on(call(&pool, &target, 0))
            .unwrap()
            .unwrap()
            .code,
        Code::Ok
    );
    let mut task = pool.start_blocking(call(&pool, &target, 5_000)).unwrap();
    assert!(task.wait_for(Duration::from_millis(100)).is_none());
    task.abort();
    let abandoned = task.wait_for(Duration::from_secs(5));
    assert!(
        matches!(abandoned, Some(Err(Error::PoolClosed))),
        "{abandoned:?}"
    );
    let cancelled = runtime.block_on(support::eventually(Duration::from_secs(5), || {
        server.calls_cancelled() == 1
    }));
    assert!(
        cancelled,
        "the server saw {} cancels",
        server.calls_cancelled()
    );
}

#[test]
fn a_panic_in_a_blocking_call_comes_back_to_the_caller() {
    let pool = pool(quick_config());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.block_on(async { panic!("the future panicked") })
    }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the future panicked"));
    // The pool goes on.
    assert!(pool.block_on(async { 1 }).is_ok());
}

#[test]
fn more_blocking_callers_than_batched_wake_lanes_all_get_their_outcomes() {
    // 300 callers at once: more than the pool's 256 lanes for batched wakes, so some wait on
    // their task's JoinHandle instead, and lanes are given back and taken again.
    let (_runtime, server) = server();
    let pool = pool(quick_config());
    let target = server.target();
    let start = std::sync::Arc::new(std::sync::Barrier::new(300));
    let callers: Vec<_> = (0..300)
        .map(|_| {
            let (pool, target, start) = (pool.clone(), target.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..3)
                    .map(|_| match pool.block_on(call(&pool, &target, 20)) {
                        Ok(Ok(response)) => response.code,
                        Ok(Err(error)) => panic!("call failed: {error}"),
                        Err(error) => panic!("wait failed: {error}"),
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap(), vec![Code::Ok; 3]);
    }
}

#[test]
fn a_blocking_wait_ends_with_pool_closed_when_the_pool_stops_under_it() {
    let pool = pool(quick_config());
    // Never finishes, and holds nothing of the pool: dropping the pool stops its runtime,
    // which drops the task.
    let task = pool.start_blocking(std::future::pending::<()>()).unwrap();
    let (sender, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(task.wait()));
    std::thread::sleep(Duration::from_millis(50));
    drop(pool);
    // Bounded, so a caller left asleep fails the test rather than hanging it.
    let waited = waited.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(waited, Err(Error::PoolClosed)), "{waited:?}");
}
