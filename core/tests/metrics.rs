#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! The metrics text after a known mix of calls: gRPC's A66 client metrics by method, target and
//! status count exactly the calls and attempts made, and the pool's own metrics are there.

mod support;

use std::time::Duration;

use grpcpool_core::{CallOptions, Code, Metadata};
use grpcpool_testserver::{ServerOptions, TestServer, BIDI_PATH};
use support::{echo, metadata, pool, quick_config};

/// The value of the sample `name{labels}` in `text`.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_counts_the_calls_made_by_method_and_status() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let target = server.target();
    for _ in 0..3 {
        let ok = echo(
            &pool,
            &target,
            b"x",
            Metadata::new(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(ok.code, Code::Ok);
    }
    for _ in 0..2 {
        let missing = echo(
            &pool,
            &target,
            b"x",
            metadata(&[("x-status-code", "5")]),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(missing.code, Code::NotFound);
    }
    let slow = echo(
        &pool,
        &target,
        b"x",
        metadata(&[("x-sleep-ms", "2000")]),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(slow.code, Code::DeadlineExceeded);
    let mut stream = pool
        .open_stream(
            &target,
            BIDI_PATH,
            CallOptions::with_timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    stream.send(b"s".to_vec()).await.unwrap();
    stream.close_send();
    while stream.recv().await.is_some() {}
    assert_eq!(stream.finish().await.code, Code::Ok);

    let text = pool.metrics_text();
    let unary = format!(r#"grpc_method="grpcpool.test.Echo/Unary",grpc_target="{target}""#);
    let bidi = format!(r#"grpc_method="grpcpool.test.Echo/Bidi",grpc_target="{target}""#);
    let call = |labels: &str, status: &str| {
        sample(
            &text,
            &format!(
                r#"grpc_client_call_duration_seconds_count{{{labels},grpc_status="{status}"}}"#
            ),
        )
    };
    assert_eq!(call(&unary, "OK"), Some(3.0), "{text}");
    assert_eq!(call(&unary, "NOT_FOUND"), Some(2.0));
    assert_eq!(call(&unary, "DEADLINE_EXCEEDED"), Some(1.0));
    assert_eq!(call(&bidi, "OK"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            &format!("grpc_client_attempt_started_total{{{unary}}}")
        ),
        Some(6.0)
    );
    let attempts = |status: &str| {
        sample(
            &text,
            &format!(
                r#"grpc_client_attempt_duration_seconds_count{{{unary},grpc_status="{status}"}}"#
            ),
        )
    };
    assert_eq!(attempts("OK"), Some(3.0));
    assert_eq!(attempts("NOT_FOUND"), Some(2.0));
    // Every call's duration is under the +Inf bucket, and the slow one over 0.1 s.
    let bucket = |le: &str| {
        sample(
            &text,
            &format!(
                r#"grpc_client_call_duration_seconds_bucket{{{unary},grpc_status="DEADLINE_EXCEEDED",le="{le}"}}"#
            ),
        )
    };
    assert_eq!(bucket("+Inf"), Some(1.0));
    assert_eq!(bucket("0.08"), Some(0.0));
    let pooled = format!(r#"grpc_target="{target}""#);
    assert_eq!(
        sample(
            &text,
            &format!(r#"grpcpool_connections{{{pooled},state="ready"}}"#)
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("grpcpool_leases_out{{{pooled}}}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &format!("grpcpool_connects_total{{{pooled}}}")),
        Some(1.0)
    );
    // Every line is a comment or a sample: `name{labels} value`.
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(series.ends_with('}') && series.contains('{'), "{line}");
    }
}
