#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests may panic on a broken premise.
// Raising this process's open-file limit for 2,000 connections takes one setrlimit call.
#![allow(unsafe_code)]
//! Idle targets leave the pool: 2,000 targets used once each hold a connection and an upkeep
//! task apiece; after `target_idle_timeout` the pool's connections, runtime tasks and open
//! descriptors are back to where they were, and a target used again starts afresh.

mod support;

use std::sync::Arc;
use std::time::Duration;

use grpcpool_core::{Code, Metadata, Pool};
use grpcpool_testserver::{ServerOptions, TestServer};
use support::{echo, eventually, quick_config};

const TARGETS: usize = 2_000;

/// Raises the soft limit on open files to the hard one (or 16,384), enough for 2,000 client
/// and 2,000 server ends of connections in this one process.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(16_384);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= 4 * TARGETS as u64 + 100,
        "the hard limit {} is too low",
        limit.rlim_max
    );
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_targets_leave_the_pool_and_come_back_afresh() {
    raise_open_file_limit();
    // Eleven servers; every non-empty subset of their ports is a distinct multi-address
    // target (2,047 of them), each reaching one server.
    let mut servers = Vec::new();
    for _ in 0..11 {
        servers.push(TestServer::start(ServerOptions::default()).await.unwrap());
    }
    let ports: Vec<u16> = servers.iter().map(TestServer::port).collect();
    let targets: Vec<String> = (1..=TARGETS)
        .map(|subset| {
            let hosts: Vec<String> = (0..ports.len())
                .filter(|bit| subset & (1 << bit) != 0)
                .map(|bit| format!("127.0.0.1:{}", ports[bit]))
                .collect();
            format!("http://{}", hosts.join(","))
        })
        .collect();
    let mut config = quick_config();
    // Long enough for all 2,000 to be in use together on a busy machine.
    config.set_text("target_idle_timeout", "10s").unwrap();
    // A connect whose SYN the server's full accept queue dropped is retried by the kernel after
    // a second: the default connect timeout, not the tests' quick 2 s.
    config.set_text("connect_timeout", "20s").unwrap();
    let pool = Arc::new(Pool::new(config).unwrap());
    let baseline_fds = open_descriptors();
    assert_eq!(pool.stats().runtime_tasks, 0);

    // In waves of 250, so the server's accept queue (1,024) never overflows.
    for chunk in targets.chunks(250) {
        let calls: Vec<_> = chunk
            .iter()
            .map(|target| {
                let pool = Arc::clone(&pool);
                let target = target.clone();
                tokio::spawn(async move {
                    echo(
                        &pool,
                        &target,
                        b"once",
                        Metadata::new(),
                        Duration::from_secs(10),
                    )
                    .await
                    .code
                })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), Code::Ok);
        }
    }
    let busy = pool.stats();
    let busy_fds = open_descriptors();
    println!(
        "in use: {} targets, {} connections, {} runtime tasks, {} fds (baseline {baseline_fds})",
        busy.targets.len(),
        busy.connections.ready,
        busy.runtime_tasks,
        busy_fds
    );
    assert_eq!(busy.targets.len(), TARGETS);
    assert!(busy.connections.ready >= TARGETS as u64);
    assert!(
        busy.runtime_tasks >= 2 * TARGETS as u64,
        "an upkeep task and a driver each"
    );
    assert!(
        busy_fds >= 2 * TARGETS,
        "both ends of every connection are open"
    );

    // Ten seconds past the last use (and an upkeep tick) later, every target has left.
    assert!(eventually(Duration::from_secs(30), || pool.stats().targets.is_empty()).await);
    assert!(
        eventually(Duration::from_secs(5), || pool.stats().runtime_tasks == 0).await,
        "{} tasks left",
        pool.stats().runtime_tasks
    );
    // Both ends of every connection closed: the descriptors are back to the baseline.
    assert!(
        eventually(Duration::from_secs(5), || open_descriptors()
            <= baseline_fds)
        .await,
        "{} descriptors open, {baseline_fds} before",
        open_descriptors()
    );
    println!(
        "after target_idle_timeout: {} targets, {} runtime tasks, {} fds",
        pool.stats().targets.len(),
        pool.stats().runtime_tasks,
        open_descriptors()
    );

    // Used again, a target starts afresh: a new connection, counters from zero.
    let again = echo(
        &pool,
        &targets[0],
        b"again",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(again.code, Code::Ok);
    let stats = pool.stats();
    assert_eq!(stats.targets.len(), 1);
    assert_eq!(stats.targets[0].calls_started, 1);
    assert_eq!(stats.targets[0].connects, 1);
    drop(servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_a_lease_out_stays_however_long() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config.set_text("target_idle_timeout", "200ms").unwrap();
    let pool = Pool::new(config).unwrap();
    let lease = pool
        .acquire(&server.target(), Duration::from_secs(5))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        pool.stats().targets.len(),
        1,
        "a held lease keeps its target"
    );
    drop(lease);
    assert!(eventually(Duration::from_secs(5), || pool.stats().targets.is_empty()).await);
}
