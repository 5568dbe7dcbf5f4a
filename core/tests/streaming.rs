#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Streaming calls against the in-process tonic server: server, client and bidirectional
//! streaming, status at the end, cancellation, deadlines and bad input.

mod support;

use std::time::{Duration, Instant};

use grpcpool_core::{CallOptions, Code, Error};
use grpcpool_testserver::{
    ServerOptions, TestServer, BIDI_PATH, CLIENT_STREAM_PATH, SERVER_STREAM_PATH,
};
use support::{eventually, metadata, pool, quick_config};

fn within(seconds: u64) -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(seconds))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_delivers_every_message_then_ok() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let options = within(5).metadata(metadata(&[("x-count", "5")]));
    let mut stream = pool
        .open_stream(&server.target(), SERVER_STREAM_PATH, options)
        .await
        .unwrap();
    stream.send(vec![7u8; 31_415]).await.unwrap();
    stream.close_send();
    assert!(stream.headers().await.is_some());
    let mut received = Vec::new();
    while let Some(message) = stream.recv().await {
        received.push(message);
    }
    assert_eq!(received.len(), 5);
    assert!(received
        .iter()
        .all(|message| message.len() == 31_415 && message[0] == 7));
    let response = stream.finish().await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    let stats = pool.stats();
    assert_eq!(
        (stats.calls_started, stats.calls_succeeded, stats.leases_out),
        (1, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming_sends_large_messages_under_flow_control() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let mut stream = pool
        .open_stream(&server.target(), CLIENT_STREAM_PATH, within(10))
        .await
        .unwrap();
    // Larger than the 64 KiB default windows many times over: sends wait for WINDOW_UPDATEs.
    let sizes = [27_182usize, 8, 1_828, 45_904, 3 * 1024 * 1024];
    for size in sizes {
        stream.send(vec![1u8; size]).await.unwrap();
    }
    stream.close_send();
    let joined = stream.recv().await.expect("one response message");
    assert_eq!(joined.len(), sizes.iter().sum::<usize>());
    assert!(stream.recv().await.is_none());
    assert_eq!(stream.finish().await.code, Code::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_ping_pong_then_status_from_the_server() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let options = within(5).metadata(metadata(&[
        ("x-status-code", "9"),
        ("x-status-message", "done here"),
    ]));
    let mut stream = pool
        .open_stream(&server.target(), BIDI_PATH, options)
        .await
        .unwrap();
    for size in [27_182usize, 8, 1_828, 45_904] {
        stream.send(vec![2u8; size]).await.unwrap();
        let reply = stream.recv().await.expect("an echo per message");
        assert_eq!(reply.len(), size);
    }
    stream.close_send();
    assert!(stream.recv().await.is_none());
    let response = stream.finish().await;
    assert_eq!(response.code, Code::FailedPrecondition);
    assert_eq!(response.message, "done here");

    // An empty stream: half-close at once, no messages, OK.
    let mut empty = pool
        .open_stream(&server.target(), BIDI_PATH, within(5))
        .await
        .unwrap();
    empty.close_send();
    assert!(empty.recv().await.is_none());
    assert_eq!(empty.finish().await.code, Code::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_deadline_end_a_stream_and_return_its_slot() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let slow = || within(30).metadata(metadata(&[("x-count", "1000"), ("x-interval-ms", "20")]));

    let mut stream = pool
        .open_stream(&server.target(), SERVER_STREAM_PATH, slow())
        .await
        .unwrap();
    stream.send(b"tick".to_vec()).await.unwrap();
    stream.close_send();
    assert!(stream.recv().await.is_some());
    stream.cancel();
    assert!(stream.recv().await.is_none());
    assert!(matches!(
        stream.send(b"late".to_vec()).await,
        Err(Error::StreamClosed)
    ));
    assert_eq!(stream.finish().await.code, Code::Cancelled);

    let mut options = slow();
    options.deadline = Some(Instant::now() + Duration::from_millis(300));
    let started = Instant::now();
    let mut stream = pool
        .open_stream(&server.target(), SERVER_STREAM_PATH, options)
        .await
        .unwrap();
    stream.send(b"tick".to_vec()).await.unwrap();
    stream.close_send();
    let mut received = 0;
    while stream.recv().await.is_some() {
        received += 1;
    }
    assert!(received > 0 && received < 100, "{received}");
    assert_eq!(stream.finish().await.code, Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Dropped mid-call: cancelled, and the slot comes back.
    let mut dropped = pool
        .open_stream(&server.target(), SERVER_STREAM_PATH, slow())
        .await
        .unwrap();
    dropped.send(b"tick".to_vec()).await.unwrap();
    drop(dropped);
    assert!(eventually(Duration::from_secs(2), || pool.stats().leases_out == 0).await);
    let stats = pool.stats();
    assert_eq!(stats.calls_failed.get("CANCELLED"), Some(&2), "{stats:?}");
    assert_eq!(stats.calls_failed.get("DEADLINE_EXCEEDED"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stream_input_is_an_error_not_a_crash() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let mut config = quick_config();
    config.max_send_message_size = 1024;
    let pool = pool(config);
    let error = pool
        .open_stream(&server.target(), "no-slash", within(2))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidMethod { .. }), "{error}");
    let error = pool
        .open_stream(
            &server.target(),
            BIDI_PATH,
            within(2).metadata(metadata(&[("Bad Key", "v")])),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidMetadata { .. }), "{error}");
    assert_eq!(pool.stats().leases_out, 0);

    let mut stream = pool
        .open_stream(&server.target(), BIDI_PATH, within(2))
        .await
        .unwrap();
    let error = stream.send(vec![0u8; 1025]).await.unwrap_err();
    assert!(matches!(error, Error::MessageTooLarge { .. }), "{error}");
    stream.close_send();
    assert!(matches!(
        stream.send(b"x".to_vec()).await,
        Err(Error::StreamClosed)
    ));
    assert_eq!(stream.finish().await.code, Code::Ok);

    let mut unknown = pool
        .open_stream(&server.target(), "/no.Such/Stream", within(2))
        .await
        .unwrap();
    unknown.close_send();
    assert!(unknown.recv().await.is_none());
    assert_eq!(unknown.finish().await.code, Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_sender_sends_from_another_task_while_the_stream_reads() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let mut stream = pool
        .open_stream(&server.target(), BIDI_PATH, within(5))
        .await
        .unwrap();
    let mut sender = stream.take_sender().expect("sending is open");
    assert!(matches!(
        stream.send(vec![1u8]).await,
        Err(Error::StreamClosed)
    ));
    assert!(stream.take_sender().is_none());
    let writer = tokio::spawn(async move {
        for index in 0..200usize {
            sender.send(vec![7u8; index]).await.unwrap();
        }
        // Dropping the sender half-closes.
    });
    let mut sizes = Vec::new();
    while let Some(message) = stream.recv().await {
        sizes.push(message.len());
    }
    writer.await.unwrap();
    assert_eq!(sizes, (0..200).collect::<Vec<_>>());
    assert_eq!(stream.finish().await.code, Code::Ok);

    // After the call ends, a kept sender refuses the very next message.
    let mut stream = pool
        .open_stream(&server.target(), BIDI_PATH, within(5))
        .await
        .unwrap();
    let mut sender = stream.take_sender().unwrap();
    sender.send(vec![0u8; 10]).await.unwrap();
    stream.cancel();
    assert!(sender.is_closed());
    assert!(matches!(
        sender.send(vec![0u8; 10]).await,
        Err(Error::StreamClosed)
    ));

    // Past the deadline neither half takes a message, even with room in the channel.
    let mut stream = pool
        .open_stream(
            &server.target(),
            BIDI_PATH,
            CallOptions::with_timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    let mut sender = stream.take_sender().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(matches!(
        sender.send(vec![1u8]).await,
        Err(Error::StreamClosed)
    ));
    assert_eq!(stream.finish().await.code, Code::DeadlineExceeded);
    let mut stream = pool
        .open_stream(
            &server.target(),
            BIDI_PATH,
            CallOptions::with_timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(matches!(
        stream.send(vec![1u8]).await,
        Err(Error::StreamClosed)
    ));
    assert_eq!(stream.finish().await.code, Code::DeadlineExceeded);
}
