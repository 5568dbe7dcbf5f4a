#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Metadata hooks against the in-process tonic server: the pool's and the call's hooks add
//! metadata to unary calls and streams, run once per attempt (retries and hedges get fresh
//! metadata), and a failing hook fails the call with its status without reaching the server.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grpcpool_core::{CallOptions, Code, Config, HookError, Metadata, MetadataHook, Pool};
use grpcpool_testserver::{
    ServerOptions, TestServer, RECEIVED_PREVIOUS_ATTEMPTS_KEY, SERVER_STREAM_PATH, UNARY_PATH,
};
use support::{metadata, quick_config};

const SERVICE: &str = "grpcpool.test.Echo";

fn header(headers: &Metadata, key: &str) -> Option<String> {
    headers
        .get(key)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// A hook adding `x-echo-token: <prefix>-<n>` (the server echoes `x-echo-*`), n counting its
/// runs from 1, and recording each run's target, method and previous attempts.
fn counting_hook(prefix: &'static str) -> (MetadataHook, Arc<AtomicU32>, Arc<Mutex<Vec<String>>>) {
    let runs = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (counter, record) = (Arc::clone(&runs), Arc::clone(&seen));
    let hook = MetadataHook::new(move |context, metadata| {
        let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
        record.lock().unwrap().push(format!(
            "{} {} {}",
            context.target, context.method, context.previous_attempts
        ));
        metadata.insert_ascii("x-echo-token", format!("{prefix}-{run}"));
        Ok(())
    });
    (hook, runs, seen)
}

fn pool_with_hook(hook: MetadataHook, service_config: Option<String>) -> Pool {
    let mut config: Config = quick_config();
    config.metadata_hook = Some(hook);
    config.service_config = service_config;
    Pool::new(config).unwrap()
}

fn within(seconds: u64) -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(seconds))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_hook_and_the_call_hook_reach_the_server_in_order() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let (hook, runs, seen) = counting_hook("pool");
    let pool = pool_with_hook(hook, None);
    let response = pool
        .unary(&server.target(), UNARY_PATH, b"hi".to_vec(), within(5))
        .await
        .unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(
        header(&response.headers, "x-echo-token").as_deref(),
        Some("pool-1")
    );
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("{} {UNARY_PATH} 0", server.target())]
    );

    // The call's own hook runs after the pool's: both values arrive, the pool's first.
    let call_hook = MetadataHook::new(|_, metadata| {
        metadata.insert_ascii("x-echo-token", "call");
        Ok(())
    });
    let options = within(5)
        .metadata(metadata(&[("x-echo-own", "mine")]))
        .metadata_hook(Some(call_hook));
    let response = pool
        .unary(&server.target(), UNARY_PATH, b"hi".to_vec(), options)
        .await
        .unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    let tokens: Vec<String> = response
        .headers
        .iter()
        .filter(|(key, _)| *key == "x-echo-token")
        .map(|(_, value)| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    assert_eq!(tokens, ["pool-2", "call"]);
    assert_eq!(
        header(&response.headers, "x-echo-own").as_deref(),
        Some("mine")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // Streams get the hooks' metadata too.
    let mut stream = pool
        .open_stream(
            &server.target(),
            SERVER_STREAM_PATH,
            within(5).metadata(metadata(&[("x-count", "1")])),
        )
        .await
        .unwrap();
    stream.send(b"m".to_vec()).await.unwrap();
    stream.close_send();
    let headers = stream.headers().await.cloned().expect("response headers");
    assert_eq!(header(&headers, "x-echo-token").as_deref(), Some("pool-3"));
    assert_eq!(stream.finish().await.code, Code::Ok);
    assert_eq!(
        seen.lock().unwrap().last().cloned(),
        Some(format!("{} {SERVER_STREAM_PATH} 0", server.target()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_retry_and_hedge_runs_the_hook_again() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let retrying = format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "{SERVICE}"}}],
            "retryPolicy": {{"maxAttempts": 4, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                             "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}}}]}}"#
    );
    let (hook, runs, seen) = counting_hook("token");
    let pool = pool_with_hook(hook, Some(retrying));
    let options = within(5).metadata(metadata(&[
        ("x-status-code", "14"),
        ("x-fail-attempts", "2"),
    ]));
    let response = pool
        .unary(&server.target(), UNARY_PATH, b"r".to_vec(), options)
        .await
        .unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(runs.load(Ordering::SeqCst), 3, "one run per attempt");
    // The attempt that succeeded carried the third token.
    assert_eq!(
        header(&response.headers, "x-echo-token").as_deref(),
        Some("token-3")
    );
    assert_eq!(
        header(&response.headers, RECEIVED_PREVIOUS_ATTEMPTS_KEY).as_deref(),
        Some("2")
    );
    let attempts: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|line| line.rsplit(' ').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(attempts, ["0", "1", "2"]);

    // A retried stream opening runs it per attempt as well.
    let before = runs.load(Ordering::SeqCst);
    let options = within(5).metadata(metadata(&[
        ("x-status-code", "14"),
        ("x-fail-attempts", "1"),
        ("x-count", "1"),
    ]));
    let mut stream = pool
        .open_stream(&server.target(), SERVER_STREAM_PATH, options)
        .await
        .unwrap();
    stream.send(b"m".to_vec()).await.unwrap();
    stream.close_send();
    let headers = stream.headers().await.cloned().expect("response headers");
    assert_eq!(stream.finish().await.code, Code::Ok);
    assert_eq!(runs.load(Ordering::SeqCst) - before, 2);
    assert_eq!(
        header(&headers, "x-echo-token"),
        Some(format!("token-{}", before + 2))
    );

    // Hedged: the held first attempt and the hedge each got a token of their own.
    let hedging = format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "{SERVICE}"}}],
            "hedgingPolicy": {{"maxAttempts": 2, "hedgingDelay": "0.05s"}}}}]}}"#
    );
    let (hook, runs, _) = counting_hook("hedge");
    let pool = pool_with_hook(hook, Some(hedging));
    let options = within(5).metadata(metadata(&[
        ("x-sleep-ms", "1000"),
        ("x-slow-attempts", "1"),
    ]));
    let response = pool
        .unary(&server.target(), UNARY_PATH, b"h".to_vec(), options)
        .await
        .unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(
        header(&response.headers, "x-echo-token").as_deref(),
        Some("hedge-2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_fails_the_call_before_the_server_sees_it() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let failing = MetadataHook::new(|_, _| Err(HookError::new("no token yet")));
    let pool = pool_with_hook(failing, None);
    let response = pool
        .unary(&server.target(), UNARY_PATH, b"x".to_vec(), within(5))
        .await
        .unwrap();
    assert_eq!(response.code, Code::Unavailable);
    assert!(
        response.message.contains("no token yet"),
        "{}",
        response.message
    );
    let stream = pool
        .open_stream(&server.target(), SERVER_STREAM_PATH, within(5))
        .await
        .unwrap();
    let ended = stream.finish().await;
    assert_eq!(ended.code, Code::Unavailable, "{}", ended.message);
    assert_eq!(server.calls_handled(), 0, "nothing reached the server");

    // A status the hook chose stands, except the control plane's; bad metadata is INTERNAL.
    for (hook, code) in [
        (
            MetadataHook::new(|_, _| Err(HookError::with_code(Code::Unauthenticated, "expired"))),
            Code::Unauthenticated,
        ),
        (
            MetadataHook::new(|_, _| Err(HookError::with_code(Code::NotFound, "no such key"))),
            Code::Internal,
        ),
        (
            MetadataHook::new(|_, metadata| {
                metadata.insert_ascii("x-token", "line\nbreak");
                Ok(())
            }),
            Code::Internal,
        ),
    ] {
        let options = within(5).metadata_hook(Some(hook));
        let plain = Pool::new(quick_config()).unwrap();
        let response = plain
            .unary(&server.target(), UNARY_PATH, b"x".to_vec(), options)
            .await
            .unwrap();
        assert_eq!(response.code, code, "{}", response.message);
    }
    assert_eq!(server.calls_handled(), 0, "nothing reached the server");
}
