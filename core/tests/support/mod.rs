#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Helpers shared by the integration tests: pools with test-friendly settings and call shortcuts.
#![allow(dead_code)]

use std::time::Duration;

use grpcpool_core::{BackoffConfig, CallOptions, Config, Metadata, Pool, Response};
use grpcpool_testserver::UNARY_PATH;

/// A config whose timers suit tests: quick backoff and upkeep.
pub fn quick_config() -> Config {
    let mut config = Config::default();
    config.worker_threads = 2;
    let mut backoff = BackoffConfig::default();
    backoff.initial = Duration::from_millis(50);
    backoff.max = Duration::from_millis(400);
    config.backoff = backoff;
    config.connect_timeout = Duration::from_secs(2);
    config
}

pub fn pool(config: Config) -> Pool {
    Pool::new(config).expect("valid config")
}

/// Echo call with metadata and a timeout.
pub async fn echo(
    pool: &Pool,
    target: &str,
    body: &[u8],
    metadata: Metadata,
    timeout: Duration,
) -> Response {
    pool.unary(
        target,
        UNARY_PATH,
        body.to_vec(),
        CallOptions::with_timeout(timeout).metadata(metadata),
    )
    .await
    .expect("valid call")
}

pub fn metadata(entries: &[(&str, &str)]) -> Metadata {
    let mut metadata = Metadata::new();
    for (key, value) in entries {
        metadata.insert_ascii(*key, *value);
    }
    metadata
}

/// Installs a log subscriber for `GRPCPOOL_LOG`, once; silent by default.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GRPCPOOL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `check` every 20 ms for up to `limit`; true once it holds.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}
