#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! gRPC's service config against the in-process tonic server: retry policies (attempts,
//! retryable codes, `grpc-previous-rpc-attempts`, pushback, throttling), per-method timeouts,
//! wait-for-ready and message limits, and bad configs refused when the pool is made.

mod support;

use std::time::{Duration, Instant};

use grpcpool_core::{CallOptions, Code, Config, Error, Metadata, Pool};
use grpcpool_testserver::{
    ServerOptions, TestServer, BIDI_PATH, CLIENT_STREAM_PATH, RECEIVED_PREVIOUS_ATTEMPTS_KEY,
    RECEIVED_TIMEOUT_KEY, SERVER_STREAM_PATH, UNARY_PATH,
};
use support::{echo, eventually, metadata, quick_config};

const SERVICE: &str = "grpcpool.test.Echo";

fn pool_with(service_config: &str) -> Pool {
    let mut config = quick_config();
    config.set_text("service_config", service_config).unwrap();
    Pool::new(config).unwrap()
}

/// A retry policy for the echo service's methods, with `extra` top-level fields.
fn retrying(max_attempts: u32, codes: &str, extra: &str) -> String {
    format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "{SERVICE}"}}],
            "retryPolicy": {{"maxAttempts": {max_attempts}, "initialBackoff": "0.01s",
                             "maxBackoff": "0.05s", "backoffMultiplier": 2,
                             "retryableStatusCodes": {codes}}}}}]{extra}}}"#
    )
}

fn header(response: &grpcpool_core::Response, key: &str) -> Option<String> {
    response
        .headers
        .get(key)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_retried_until_it_succeeds() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool_with(&retrying(4, r#"["UNAVAILABLE"]"#, ""));
    let response = echo(
        &pool,
        &server.target(),
        b"hi",
        metadata(&[("x-status-code", "14"), ("x-fail-attempts", "2")]),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(&response.body[..], b"hi");
    // The third attempt told the server two came before it.
    assert_eq!(
        header(&response, RECEIVED_PREVIOUS_ATTEMPTS_KEY).as_deref(),
        Some("2")
    );
    assert_eq!(server.calls_handled(), 3);
    let stats = pool.stats();
    assert_eq!(stats.targets[0].retries, 2);
    assert_eq!(stats.calls_succeeded, 1);
    assert_eq!(stats.calls_started, 1, "retries are attempts of one call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_outside_the_policy_and_spent_attempts_end_the_call() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool_with(&retrying(3, r#"[14, "aborted"]"#, ""));
    let invalid = echo(
        &pool,
        &server.target(),
        b"",
        metadata(&[("x-status-code", "3"), ("x-fail-attempts", "2")]),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(invalid.code, Code::InvalidArgument);
    assert_eq!(server.calls_handled(), 1, "INVALID_ARGUMENT is not retried");

    let exhausted = echo(
        &pool,
        &server.target(),
        b"",
        metadata(&[("x-status-code", "10"), ("x-fail-attempts", "100")]),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(exhausted.code, Code::Aborted);
    assert_eq!(server.calls_handled(), 1 + 3, "maxAttempts 3 in all");

    assert_eq!(pool.stats().targets[0].retries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushback_sets_the_delay_or_stops_retries() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool_with(&retrying(3, r#"["UNAVAILABLE"]"#, ""));
    let started = Instant::now();
    let delayed = echo(
        &pool,
        &server.target(),
        b"",
        metadata(&[
            ("x-status-code", "14"),
            ("x-fail-attempts", "1"),
            ("x-pushback-ms", "300"),
        ]),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(delayed.code, Code::Ok, "{}", delayed.message);
    // The policy's backoff is 10 ms; the server asked for 300.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.calls_handled(), 2);

    let stopped = echo(
        &pool,
        &server.target(),
        b"",
        metadata(&[
            ("x-status-code", "14"),
            ("x-fail-attempts", "1"),
            ("x-pushback-ms", "-1"),
        ]),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(stopped.code, Code::Unavailable);
    assert_eq!(
        server.calls_handled(),
        3,
        "a negative pushback stops retries"
    );
    let stats = pool.stats();
    assert_eq!(stats.targets[0].retry_pushbacks, 2);
    assert_eq!(stats.targets[0].retries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_stops_retries_against_a_server_that_always_fails() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let throttled = r#", "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.1}"#;
    let pool = pool_with(&retrying(5, r#"["UNAVAILABLE"]"#, throttled));
    for _ in 0..5 {
        let response = echo(
            &pool,
            &server.target(),
            b"",
            metadata(&[("x-status-code", "14")]),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(response.code, Code::Unavailable);
    }
    // 4 tokens: the first failure leaves 3 (above half, retried), the second 2 (not above):
    // the first call made two attempts, every later one a single attempt.
    assert_eq!(server.calls_handled(), 2 + 4);
    let stats = pool.stats();
    assert_eq!(stats.targets[0].retries, 1);
    assert!(stats.targets[0].retries_throttled >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_retried_by_the_policy_too() {
    // Port 1 on loopback: connecting is refused at once, so each attempt fails fast.
    let pool = pool_with(&retrying(3, r#"["UNAVAILABLE"]"#, ""));
    let response = echo(
        &pool,
        "http://127.0.0.1:1",
        b"",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(response.code, Code::Unavailable);
    let stats = pool.stats();
    assert_eq!(stats.targets[0].retries, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_timeouts_wait_for_ready_and_message_limits_apply() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool_with(&format!(
        r#"{{"methodConfig": [
            {{"name": [{{"service": "{SERVICE}", "method": "Unary"}}], "timeout": "0.2s",
              "maxRequestMessageBytes": 10, "maxResponseMessageBytes": 8}},
            {{"name": [{{}}], "waitForReady": true}}]}}"#
    ));
    // The method's 200 ms beat the caller's 10 s, on the wire and locally.
    let quick = echo(
        &pool,
        &server.target(),
        b"ok",
        Metadata::new(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(quick.code, Code::Ok);
    let sent = header(&quick, RECEIVED_TIMEOUT_KEY).unwrap();
    let (amount, unit) = sent.split_at(sent.len() - 1);
    let amount: u64 = amount.parse().unwrap();
    let sent = match unit {
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        other => panic!("unit {other}"),
    };
    assert!(sent <= Duration::from_millis(200), "{sent:?}");
    let slow = echo(
        &pool,
        &server.target(),
        b"",
        metadata(&[("x-sleep-ms", "3000")]),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(slow.code, Code::DeadlineExceeded);
    // A caller's sooner deadline still wins.
    let mut options = CallOptions::with_timeout(Duration::from_millis(50));
    options.metadata = metadata(&[("x-sleep-ms", "3000")]);
    let started = Instant::now();
    let sooner = pool
        .unary(&server.target(), UNARY_PATH, b"".to_vec(), options)
        .await
        .unwrap();
    assert_eq!(sooner.code, Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_millis(200));

    // 11 bytes: over the method's request limit, refused before anything is sent.
    let refused = pool.prepare(UNARY_PATH, b"12345678901".to_vec(), CallOptions::default());
    assert!(matches!(
        refused,
        Err(Error::MessageTooLarge { limit: 10, .. })
    ));
    // 9 bytes echoed: over the method's response limit of 8.
    let large = echo(
        &pool,
        &server.target(),
        b"123456789",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(large.code, Code::ResourceExhausted, "{}", large.message);

    // The default entry makes every other method wait for ready: against a target that
    // refuses connections, the call waits out its deadline instead of failing fast.
    let started = Instant::now();
    let waited = pool
        .unary(
            "http://127.0.0.1:1",
            "/other.Service/Method",
            b"".to_vec(),
            CallOptions::with_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert_eq!(waited.code, Code::DeadlineExceeded, "{}", waited.message);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn bad_service_configs_are_refused_when_the_pool_is_made() {
    let cases = [
        (
            r#"{"methodConfig": [{"name": [{}], "timeout": 5}]}"#,
            "methodConfig[0].timeout",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2}}]}"#,
            "retryPolicy.backoffMultiplier: is required",
        ),
        (
            r#"{"loadBalancingConfig": [{"grpclb": {}}]}"#,
            "loadBalancingConfig",
        ),
        ("{", "not valid JSON"),
    ];
    for (json, field) in cases {
        let mut config = Config::default();
        config.set_text("service_config", json).unwrap();
        let Err(error) = Pool::new(config) else {
            panic!("{json}: accepted");
        };
        let error = error.to_string();
        assert!(error.contains(field), "{json}: {error}");
        assert!(
            error.starts_with("invalid config: service_config: ")
                || error.contains("service_config"),
            "{error}"
        );
    }
}

fn hedging(max_attempts: u32, delay: &str, non_fatal: &str) -> String {
    format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "{SERVICE}"}}],
            "hedgingPolicy": {{"maxAttempts": {max_attempts}, "hedgingDelay": "{delay}",
                               "nonFatalStatusCodes": {non_fatal}}}}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedge_answers_for_a_held_first_attempt_which_is_then_cancelled() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool_with(&hedging(2, "0.05s", "[]"));
    let warm = echo(
        &pool,
        &server.target(),
        b"",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(warm.code, Code::Ok);
    let started = Instant::now();
    // The first attempt is held for a second; the hedge, 50 ms later, is answered at once.
    let response = echo(
        &pool,
        &server.target(),
        b"hedged",
        metadata(&[("x-sleep-ms", "1000"), ("x-slow-attempts", "1")]),
        Duration::from_secs(5),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(&response.body[..], b"hedged");
    assert_eq!(
        header(&response, RECEIVED_PREVIOUS_ATTEMPTS_KEY).as_deref(),
        Some("1"),
        "the hedge answered"
    );
    println!("hedged call took {took:?}");
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(
        took < Duration::from_millis(800),
        "waited for the held attempt: {took:?}"
    );
    // The held attempt was cancelled: the server saw its stream reset before it answered.
    assert!(eventually(Duration::from_secs(2), || server.calls_cancelled() == 1).await);
    let stats = pool.stats();
    assert_eq!(stats.targets[0].hedges, 1);
    assert_eq!((stats.leases_out, stats.streams_in_flight), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_fatal_failures_send_the_next_hedge_at_once_and_fatal_ones_end_the_call() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    // A hedging delay of 10 s: every hedge here goes early, sent by a non-fatal failure.
    let pool = pool_with(&hedging(3, "10s", r#"["UNAVAILABLE"]"#));
    let started = Instant::now();
    let response = echo(
        &pool,
        &server.target(),
        b"",
        metadata(&[("x-status-code", "14"), ("x-fail-attempts", "2")]),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.calls_handled(), 3);

    let fatal = echo(
        &pool,
        &server.target(),
        b"",
        metadata(&[("x-status-code", "3")]),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(fatal.code, Code::InvalidArgument);
    assert_eq!(server.calls_handled(), 4, "a fatal status sends no hedge");
    assert_eq!(pool.stats().targets[0].hedges, 2);
}

async fn stream_call(
    pool: &Pool,
    target: &str,
    path: &str,
    controls: &[(&str, &str)],
    messages: &[&[u8]],
) -> (Vec<Vec<u8>>, grpcpool_core::Response) {
    let options = CallOptions::with_timeout(Duration::from_secs(5)).metadata(metadata(controls));
    let mut stream = pool.open_stream(target, path, options).await.unwrap();
    for message in messages {
        // A send may find the stream already over (its status comes from finish).
        if stream.send(message.to_vec()).await.is_err() {
            break;
        }
    }
    stream.close_send();
    let mut received = Vec::new();
    while let Some(message) = stream.recv().await {
        received.push(message.to_vec());
    }
    (received, stream.finish().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_retried_until_committed_replaying_what_they_sent() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool_with(&retrying(3, r#"["UNAVAILABLE"]"#, ""));
    let target = server.target();
    // Bidi, failed before any response on its first two attempts: the third gets both
    // messages again and answers them.
    let failing = [("x-status-code", "14"), ("x-fail-attempts", "2")];
    let (received, response) =
        stream_call(&pool, &target, BIDI_PATH, &failing, &[b"a", b"b"]).await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(received, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(
        header(&response, RECEIVED_PREVIOUS_ATTEMPTS_KEY).as_deref(),
        Some("2")
    );
    assert_eq!(server.calls_handled(), 3);

    // Client streaming that fails after reading every message (still before any response):
    // the retry replays them all.
    let once = [("x-status-code", "14"), ("x-fail-attempts", "1")];
    let (received, response) =
        stream_call(&pool, &target, CLIENT_STREAM_PATH, &once, &[b"x", b"yz"]).await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(received, vec![b"xyz".to_vec()]);
    assert_eq!(server.calls_handled(), 3 + 2);

    // A failure after response headers commits the call: no retry.
    let after_headers = [("x-status-code", "14"), ("x-count", "2")];
    let (received, response) =
        stream_call(&pool, &target, SERVER_STREAM_PATH, &after_headers, &[b"m"]).await;
    assert_eq!(response.code, Code::Unavailable);
    assert_eq!(received.len(), 2);
    assert_eq!(server.calls_handled(), 5 + 1, "committed: not retried");
    assert_eq!(pool.stats().targets[0].retries, 2 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_the_retry_buffer_is_committed_and_a_large_unary_request_too() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config
        .set_text("service_config", &retrying(3, r#"["UNAVAILABLE"]"#, ""))
        .unwrap();
    config.set_text("per_call_retry_buffer_size", "4").unwrap();
    let pool = Pool::new(config).unwrap();
    let once = [("x-status-code", "14"), ("x-fail-attempts", "1")];
    // Six bytes sent, four kept at most: the call cannot be replayed, so it is not retried.
    let (_, response) = stream_call(
        &pool,
        &server.target(),
        CLIENT_STREAM_PATH,
        &once,
        &[b"abc", b"def"],
    )
    .await;
    assert_eq!(response.code, Code::Unavailable);
    assert_eq!(server.calls_handled(), 1);
    // A unary request over the buffer is not retried either; one within it is.
    let large = echo(
        &pool,
        &server.target(),
        b"12345",
        metadata(&once),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(large.code, Code::Unavailable);
    let small = echo(
        &pool,
        &server.target(),
        b"1234",
        metadata(&once),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(small.code, Code::Ok);
    assert_eq!(server.calls_handled(), 1 + 1 + 2);
}

/// Opens a stream, sends `before`, waits `pause`, sends `after`, half-closes and reads it out.
async fn paced_stream(
    pool: &Pool,
    target: &str,
    path: &str,
    controls: &[(&str, &str)],
    (before, pause, after): (&[&[u8]], Duration, &[&[u8]]),
) -> (Vec<Vec<u8>>, grpcpool_core::Response) {
    let options = CallOptions::with_timeout(Duration::from_secs(10)).metadata(metadata(controls));
    let mut stream = pool.open_stream(target, path, options).await.unwrap();
    for message in before {
        stream.send(message.to_vec()).await.unwrap();
    }
    tokio::time::sleep(pause).await;
    for message in after {
        stream.send(message.to_vec()).await.unwrap();
    }
    stream.close_send();
    let mut received = Vec::new();
    while let Some(message) = stream.recv().await {
        received.push(message.to_vec());
    }
    (received, stream.finish().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_stream_is_answered_by_the_hedge_with_every_message_and_the_held_one_reset() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool_with(&hedging(2, "0.05s", "[]"));
    let target = server.target();
    let warm = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(warm.code, Code::Ok);
    // The first attempt's answer is held for 5 s; the hedge goes after 50 ms, while the caller
    // is between its messages: it is sent the one before again, then the ones after.
    let held = [("x-sleep-ms", "5000"), ("x-slow-attempts", "1")];
    let pacing: (&[&[u8]], Duration, &[&[u8]]) =
        (&[b"a"], Duration::from_millis(150), &[b"b", b"c"]);
    for (path, expected) in [
        (CLIENT_STREAM_PATH, vec![b"abc".to_vec()]),
        (BIDI_PATH, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]),
    ] {
        let cancelled_before = server.calls_cancelled();
        let (received, response) = paced_stream(&pool, &target, path, &held, pacing).await;
        assert_eq!(response.code, Code::Ok, "{path}: {}", response.message);
        assert_eq!(received, expected, "{path}");
        assert_eq!(
            header(&response, RECEIVED_PREVIOUS_ATTEMPTS_KEY).as_deref(),
            Some("1"),
            "{path}: the hedge answered"
        );
        // The held attempt was reset: the server saw it cancelled before it answered.
        assert!(
            eventually(Duration::from_secs(2), || server.calls_cancelled()
                == cancelled_before + 1)
            .await,
            "{path}: {} cancelled",
            server.calls_cancelled()
        );
    }
    let stats = pool.stats();
    assert_eq!(stats.targets[0].hedges, 2);
    assert_eq!((stats.leases_out, stats.streams_in_flight), (0, 0));
    // Every attempt gave its slot back: no connection has one reserved.
    let slots_free = || {
        pool.stats().targets[0]
            .per_connection
            .iter()
            .all(|connection| connection.streams_in_flight == 0)
    };
    assert!(eventually(Duration::from_secs(2), slots_free).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_stream_past_the_retry_buffer_commits_to_the_attempt_that_sent_the_most() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config
        .set_text("service_config", &hedging(3, "0s", "[]"))
        .unwrap();
    config.set_text("per_call_retry_buffer_size", "8").unwrap();
    let pool = Pool::new(config).unwrap();
    let target = server.target();
    // Every attempt's answer is held 300 ms, so none wins by its headers. Eight bytes are kept
    // for all three attempts; the ninth passes the buffer: the call commits to the attempt that
    // read it, the other two are reset at once, and no hedge follows.
    let held = [("x-sleep-ms", "300")];
    let pacing: (&[&[u8]], Duration, &[&[u8]]) =
        (&[b"1234", b"5678"], Duration::from_millis(150), &[b"9"]);
    let (received, response) = paced_stream(&pool, &target, BIDI_PATH, &held, pacing).await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(
        received,
        vec![b"1234".to_vec(), b"5678".to_vec(), b"9".to_vec()]
    );
    assert_eq!(
        server.calls_handled(),
        3,
        "the first attempt and two hedges"
    );
    assert!(
        eventually(Duration::from_secs(2), || server.calls_cancelled() == 2).await,
        "{} cancelled",
        server.calls_cancelled()
    );
    assert_eq!(pool.stats().targets[0].hedges, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_fatal_failure_sends_the_next_stream_hedge_at_once_and_a_fatal_one_ends_it() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    // A hedging delay of 10 s: a hedge here goes early only when a failure sends it.
    let pool = pool_with(&hedging(3, "10s", r#"["UNAVAILABLE"]"#));
    let target = server.target();
    let failing_once = [("x-status-code", "14"), ("x-fail-attempts", "1")];
    let (received, response) =
        stream_call(&pool, &target, BIDI_PATH, &failing_once, &[b"p", b"q"]).await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(received, vec![b"p".to_vec(), b"q".to_vec()]);
    assert_eq!(server.calls_handled(), 2);
    let fatal = [("x-status-code", "3"), ("x-fail-attempts", "3")];
    let (_, response) = stream_call(&pool, &target, BIDI_PATH, &fatal, &[b"r"]).await;
    assert_eq!(response.code, Code::InvalidArgument);
    assert_eq!(server.calls_handled(), 3, "a fatal status sends no hedge");
    assert_eq!(pool.stats().targets[0].hedges, 1);
}
