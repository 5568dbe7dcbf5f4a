#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Unary calls against an in-process tonic server: bodies, metadata, statuses, deadlines and
//! bad input.

mod support;

use std::time::{Duration, Instant};

use grpcpool_core::{CallOptions, Code, Error, Metadata, MetadataValue};
use grpcpool_testserver::{ServerOptions, TestServer, UNARY_PATH};
use support::{echo, metadata, pool, quick_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trips_body_and_ascii_and_binary_metadata() {
    support::logs();
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let mut sent = metadata(&[("x-echo-id", "request 42")]);
    sent.insert_binary("x-echo-raw-bin", vec![0u8, 1, 2, 254, 255]);
    sent.insert_binary("x-trailer-sum-bin", vec![0xab, 0xab, 0xab]);
    sent.insert_ascii("x-trailer-note", "done");

    let lease = pool
        .acquire(&server.target(), Duration::from_secs(2))
        .await
        .unwrap();
    let response = lease
        .unary(
            UNARY_PATH,
            b"hello pool".to_vec(),
            CallOptions::with_timeout(Duration::from_secs(2)).metadata(sent),
        )
        .await
        .unwrap();

    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(&response.body[..], b"hello pool");
    assert_eq!(
        response.headers.get("x-echo-id"),
        Some(&MetadataValue::Ascii("request 42".into()))
    );
    assert_eq!(
        response.headers.get("x-echo-raw-bin"),
        Some(&MetadataValue::Binary(vec![0u8, 1, 2, 254, 255].into()))
    );
    assert_eq!(
        response.trailers.get("x-trailer-sum-bin"),
        Some(&MetadataValue::Binary(vec![0xab, 0xab, 0xab].into()))
    );
    assert_eq!(
        response.trailers.get("x-trailer-note"),
        Some(&MetadataValue::Ascii("done".into()))
    );
    assert!(response.headers.get("x-trailer-note").is_none());
    assert!(
        response.trailers.get("grpc-status").is_none(),
        "protocol keys are not user metadata"
    );
    drop(lease);

    let empty = echo(
        &pool,
        &server.target(),
        b"",
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(empty.code, Code::Ok);
    assert!(empty.body.is_empty());
    let stats = pool.stats();
    assert_eq!(stats.calls_succeeded, 2);
    assert_eq!(stats.leases_out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_code_comes_back_with_message_and_details() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    for code in &Code::ALL[1..] {
        let message = format!("failing with {code}: ünïcode ☺ 100%");
        let mut sent = Metadata::new();
        sent.insert_ascii("x-status-code", code.as_i32().to_string());
        // The test server reads the message's raw bytes; send only ASCII in the header itself.
        sent.insert_ascii("x-status-message", format!("failing with {code}"));
        sent.insert_binary("x-status-details-bin", message.clone().into_bytes());
        sent.insert_ascii("x-trailer-where", "status");
        let response = echo(
            &pool,
            &server.target(),
            b"ignored",
            sent,
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(response.code, *code);
        assert_eq!(response.message, format!("failing with {code}"));
        assert_eq!(&response.details[..], message.as_bytes());
        assert_eq!(
            response.trailers.get("x-trailer-where"),
            Some(&MetadataValue::Ascii("status".into()))
        );
        assert!(response.body.is_empty());
    }
    let stats = pool.stats();
    assert_eq!(stats.calls_failed.values().sum::<u64>(), 16);
    assert_eq!(stats.calls_failed.get("NOT_FOUND"), Some(&1));

    let unknown = pool
        .unary(
            &server.target(),
            "/no.Such/Method",
            Vec::new(),
            CallOptions::with_timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    assert_eq!(unknown.code, Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_ends_in_deadline_exceeded_on_time() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    // Warm the connection so the deadline measures the call alone.
    let warm = echo(
        &pool,
        &server.target(),
        b"",
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(warm.code, Code::Ok);

    let started = Instant::now();
    let slow = echo(
        &pool,
        &server.target(),
        b"x",
        metadata(&[("x-sleep-ms", "2000")]),
        Duration::from_millis(150),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(slow.code, Code::DeadlineExceeded, "{}", slow.message);
    assert!(took < Duration::from_millis(1500), "took {took:?}");

    // The slot came back and the connection is still good.
    let after = echo(
        &pool,
        &server.target(),
        b"y",
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(after.code, Code::Ok);
    // The deadline went on the wire as grpc-timeout.
    let sent = after
        .headers
        .get(grpcpool_testserver::RECEIVED_TIMEOUT_KEY)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .expect("grpc-timeout reached the server");
    let (amount, unit) = sent.split_at(sent.len() - 1);
    let amount: u64 = amount.parse().expect("grpc-timeout amount");
    let sent = match unit {
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        "S" => Duration::from_secs(amount),
        other => panic!("unexpected unit {other}"),
    };
    assert!(
        sent <= Duration::from_secs(2) && sent > Duration::from_millis(1500),
        "{sent:?}"
    );
    let stats = pool.stats();
    assert_eq!(stats.streams_in_flight, 0);
    assert_eq!(stats.calls_failed.get("DEADLINE_EXCEEDED"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_nothing_panics() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config.max_send_message_size = 1024;
    let pool = pool(config);
    let target = server.target();
    let call = |target: String, method: &'static str, body: Vec<u8>, metadata: Metadata| {
        let pool = pool.clone();
        async move {
            pool.unary(
                &target,
                method,
                body,
                CallOptions::with_timeout(Duration::from_secs(1)).metadata(metadata),
            )
            .await
        }
    };

    for bad_target in [
        "127.0.0.1:1",
        "http//x:1",
        "http://",
        "http://host:99999",
        "ftp://host:21",
        "gopher://x",
    ] {
        let error = call(bad_target.into(), UNARY_PATH, Vec::new(), Metadata::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidTarget { .. }),
            "{bad_target}: {error}"
        );
        assert_eq!(error.code(), Code::InvalidArgument);
    }
    let error = call(
        "ftp://host:21".into(),
        UNARY_PATH,
        Vec::new(),
        Metadata::new(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("unknown scheme"), "{error}");

    for method in [
        "",
        "grpcpool.test.Echo/Unary",
        "/grpcpool.test.Echo",
        "/a/b c",
    ] {
        let error = call(target.clone(), method, Vec::new(), Metadata::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidMethod { .. }),
            "{method:?}: {error}"
        );
    }
    let error = call(target.clone(), "", Vec::new(), Metadata::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("empty"), "{error}");
    let error = call(target.clone(), "no/slash", Vec::new(), Metadata::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("start with '/'"), "{error}");

    for (key, value) in [
        ("Bad Key", "v"),
        ("x-ok", "new\nline"),
        ("grpc-status", "0"),
        ("x-raw-bin", "text"),
    ] {
        let error = call(
            target.clone(),
            UNARY_PATH,
            Vec::new(),
            metadata(&[(key, value)]),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, Error::InvalidMetadata { .. }),
            "{key:?}={value:?}: {error}"
        );
    }

    let error = call(target.clone(), UNARY_PATH, vec![0u8; 1025], Metadata::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::MessageTooLarge {
                size: 1025,
                limit: 1024
            }
        ),
        "{error}"
    );
    assert_eq!(error.code(), Code::ResourceExhausted);

    // None of that took a slot or made a call, and the pool still works.
    let stats = pool.stats();
    assert_eq!(stats.calls_started, 0);
    assert_eq!(stats.leases_out, 0);
    let ok = call(target.clone(), UNARY_PATH, vec![1; 1024], Metadata::new())
        .await
        .unwrap();
    assert_eq!(ok.code, Code::Ok);

    // A response over the receive limit is a status, not a crash.
    let mut config = quick_config();
    config.max_receive_message_size = 16;
    let small = support::pool(config);
    let big = echo(
        &small,
        &target,
        &[7u8; 64],
        Metadata::new(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(big.code, Code::ResourceExhausted, "{}", big.message);

    let mut invalid = quick_config();
    invalid.max_connections_per_target = 0;
    assert!(matches!(
        grpcpool_core::Pool::new(invalid),
        Err(Error::InvalidConfig(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_call_from_async_code_is_refused_not_a_panic() {
    let pool = pool(quick_config());
    let error = pool.block_on(async {}).unwrap_err();
    assert!(matches!(error, Error::BlockingInAsync), "{error}");
    assert_eq!(error.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_compresses_requests_and_accepts_compressed_responses() {
    use grpcpool_core::Compression;
    use grpcpool_testserver::{
        BIDI_PATH, RECEIVED_ACCEPT_ENCODING_KEY, RECEIVED_ENCODING_KEY, RESPONSE_COMPRESSION_KEY,
    };

    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let body = vec![b'z'; 200_000];
    let options = || CallOptions::with_timeout(Duration::from_secs(5));

    // A compressed request arrives as gzip and round-trips intact.
    let response = pool
        .unary(
            &server.target(),
            UNARY_PATH,
            body.clone(),
            options().compression(Some(Compression::Gzip)),
        )
        .await
        .unwrap();
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(response.body.len(), body.len());
    assert_eq!(
        response.headers.get(RECEIVED_ENCODING_KEY),
        Some(&MetadataValue::Ascii("gzip".into()))
    );

    // Without compression nothing says gzip.
    let plain = pool
        .unary(&server.target(), UNARY_PATH, body.clone(), options())
        .await
        .unwrap();
    assert_eq!(plain.headers.get(RECEIVED_ENCODING_KEY), None);

    // The server may compress its answer: the pool advertises and decodes gzip.
    let compressed_reply = pool
        .unary(
            &server.target(),
            UNARY_PATH,
            body.clone(),
            options().metadata(metadata(&[(RESPONSE_COMPRESSION_KEY, "gzip")])),
        )
        .await
        .unwrap();
    assert_eq!(
        compressed_reply.code,
        Code::Ok,
        "{}",
        compressed_reply.message
    );
    assert_eq!(compressed_reply.body, body);
    let accepted = compressed_reply.headers.get(RECEIVED_ACCEPT_ENCODING_KEY);
    assert!(
        matches!(accepted, Some(MetadataValue::Ascii(text)) if text.contains("gzip")),
        "the pool advertises gzip: {accepted:?}"
    );

    // Streams compress every message they send.
    let mut stream = pool
        .open_stream(
            &server.target(),
            BIDI_PATH,
            options()
                .compression(Some(Compression::Gzip))
                .metadata(metadata(&[(RESPONSE_COMPRESSION_KEY, "gzip")])),
        )
        .await
        .unwrap();
    for size in [1usize, 70_000, 5] {
        stream.send(vec![b'q'; size]).await.unwrap();
        assert_eq!(stream.recv().await.unwrap().len(), size);
    }
    stream.close_send();
    assert_eq!(stream.finish().await.code, Code::Ok);

    // Names as the faces give them.
    assert_eq!(
        Compression::from_name("GZIP").unwrap(),
        Some(Compression::Gzip)
    );
    assert_eq!(Compression::from_name("identity").unwrap(), None);
    assert!(matches!(
        Compression::from_name("brotli"),
        Err(Error::InvalidCompression(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_of_zero_is_deadline_exceeded_even_where_nothing_answers() {
    // A port nothing listens on: bound, then closed.
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    // The first call to each target (no connection yet) and later ones (the unreachable one
    // known to fail fast by then) alike.
    for round in 0..5 {
        for target in [&refused, &server.target()] {
            let response = echo(&pool, target, b"x", Metadata::new(), Duration::ZERO).await;
            assert_eq!(
                response.code,
                Code::DeadlineExceeded,
                "round {round}, {target}: {}",
                response.message
            );
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let stats = pool.stats();
    assert_eq!(stats.calls_failed.get("DEADLINE_EXCEEDED"), Some(&10));
    assert_eq!(stats.calls_failed.get("UNAVAILABLE"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_headers_tonic_would_misread_keep_the_servers_status() {
    // Found by fuzz/fuzz_targets/trailers.rs (fuzz/regressions/trailers/): tonic 0.14 panics on
    // details that are not base64 and turns a grpc-message that is not UTF-8 into UNKNOWN.
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let raw = grpcpool_testserver::RAW_TRAILER_PREFIX;
    for status in ["0", "5"] {
        let mut sent = metadata(&[
            (grpcpool_testserver::STATUS_CODE_KEY, status),
            (&format!("{raw}grpc-message"), "caf%C3%A9 %FF%FE!"),
        ]);
        sent.insert_binary(
            format!("{raw}grpc-status-details-bin"),
            b"not base64!".to_vec(),
        );
        let response = echo(&pool, &server.target(), b"x", sent, Duration::from_secs(5)).await;
        let expected = if status == "0" {
            Code::Ok
        } else {
            Code::NotFound
        };
        assert_eq!(response.code, expected, "{}", response.message);
        if status != "0" {
            // An OK response shows no message; a failure shows it, invalid bytes as U+FFFD.
            assert_eq!(response.message, "caf\u{e9} \u{fffd}\u{fffd}!");
        }
        assert!(response.details.is_empty(), "{:?}", response.details);
    }

    // A message cut short, trailers still saying OK: INTERNAL, as gRPC's other clients say.
    for cut in ["1", "4", "7"] {
        let response = echo(
            &pool,
            &server.target(),
            b"hello",
            metadata(&[(grpcpool_testserver::TRUNCATE_KEY, cut)]),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            response.code,
            Code::Internal,
            "cut {cut}: {}",
            response.message
        );
        assert!(response.message.contains("ended"), "{}", response.message);
    }
    let whole = echo(
        &pool,
        &server.target(),
        b"hello",
        Metadata::new(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!((whole.code, &whole.body[..]), (Code::Ok, &b"hello"[..]));
}
