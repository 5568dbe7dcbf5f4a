#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! The shared stream every face wraps, against the in-process tonic server: one send and one
//! read at a time (a second is refused, never queued), sends held by flow control, cancel from
//! another task, the recorded outcome, and streams on a lease that stays the caller's.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grpcpool_core::{CallOptions, Code, Config, Error, SharedStream};
use grpcpool_testserver::{ServerOptions, TestServer, BIDI_PATH, SERVER_STREAM_PATH};
use support::{metadata, pool, quick_config};

fn within(seconds: u64) -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(seconds))
}

/// A pool with the smallest HTTP/2 windows, so an unread bidi stream blocks sends quickly.
fn small_windows() -> Config {
    let mut config = quick_config();
    config.initial_stream_window_size = 65_535;
    config.initial_connection_window_size = 65_535;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_send_while_one_waits_on_flow_control_is_busy_and_cancel_wakes_it() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(small_windows());
    let stream: SharedStream = pool
        .open_stream(&server.target(), BIDI_PATH, within(20))
        .await
        .unwrap()
        .into();
    // Nobody reads the echoes: once the windows on both sides are full, a send waits.
    let chunk = Bytes::from(vec![5u8; 32 * 1024]);
    let mut waiting = None;
    for _ in 0..200 {
        let mut send = Box::pin(stream.send(chunk.clone()).unwrap());
        if tokio::time::timeout(Duration::from_millis(300), &mut send)
            .await
            .is_err()
        {
            waiting = Some(send);
            break;
        }
    }
    let waiting = waiting.expect("a send waits on flow control within 200 messages");
    let second = stream.send(chunk.clone()).map(drop);
    assert!(matches!(second, Err(Error::Busy(_))), "{second:?}");
    // A read may start beside the waiting send (reading would free the window, so it is not
    // awaited here: the send must still be waiting when the cancel comes).
    drop(stream.recv().expect("the read half is free"));
    let canceller = stream.clone();
    tokio::spawn(async move { canceller.cancel() });
    let woken = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("cancel wakes the waiting send");
    assert!(matches!(woken, Err(Error::StreamClosed)), "{woken:?}");
    let outcome = stream.finish().unwrap().await;
    assert_eq!(outcome.code, Code::Cancelled, "{}", outcome.message);
    assert_eq!(
        stream.outcome().map(|response| response.code),
        Some(Code::Cancelled)
    );
    assert!(matches!(
        stream.send(chunk).unwrap().await,
        Err(Error::StreamClosed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_read_is_busy_until_the_call_ends_and_then_waits_for_the_end() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let options = within(10).metadata(metadata(&[("x-count", "3"), ("x-interval-ms", "400")]));
    let stream: SharedStream = pool
        .open_stream(&server.target(), SERVER_STREAM_PATH, options)
        .await
        .unwrap()
        .into();
    stream
        .send(Bytes::from_static(b"go"))
        .unwrap()
        .await
        .unwrap();
    stream.close_send();
    // The first message comes at once, the next 400 ms later: that read waits.
    assert!(stream.recv().unwrap().await.is_some());
    let second = tokio::spawn(stream.recv().unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(stream.recv().map(drop), Err(Error::Busy(_))));
    assert!(matches!(stream.headers().map(drop), Err(Error::Busy(_))));
    assert!(second.await.unwrap().is_some());
    let mut count = 2;
    while stream.recv().unwrap().await.is_some() {
        count += 1;
    }
    assert_eq!(count, 3);
    let outcome = stream.outcome().expect("the end was seen");
    assert_eq!(outcome.code, Code::Ok, "{}", outcome.message);
    // Over: reads give the end, finish the same status, from any clone.
    assert!(stream.clone().recv().unwrap().await.is_none());
    assert_eq!(stream.finish().unwrap().await, outcome);
    assert_eq!(pool.stats().leases_out, 0, "the slot came back at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_a_lease_leaves_the_lease_usable_and_waits_for_its_calls() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    let lease = Arc::new(
        pool.acquire(&server.target(), Duration::from_secs(5))
            .await
            .unwrap(),
    );
    // A call in flight on the lease: no stream until it is done.
    let slow = within(5).metadata(metadata(&[("x-sleep-ms", "300")]));
    let calling = Arc::clone(&lease);
    let call = tokio::spawn(async move {
        calling
            .unary("/grpcpool.test.Echo/Unary", b"x".to_vec(), slow)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = lease.open_stream(BIDI_PATH, within(5)).map(drop);
    assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
    assert_eq!(call.await.unwrap().code, Code::Ok);
    let stream: SharedStream = lease.open_stream(BIDI_PATH, within(5)).unwrap().into();
    assert!(matches!(
        lease.open_stream(BIDI_PATH, within(5)),
        Err(Error::Busy(_))
    ));
    stream
        .send(Bytes::from_static(b"hi"))
        .unwrap()
        .await
        .unwrap();
    stream.close_send();
    assert_eq!(stream.recv().unwrap().await.as_deref(), Some(&b"hi"[..]));
    assert_eq!(stream.finish().unwrap().await.code, Code::Ok);
    // The lease is still the caller's: calls and another stream work on it.
    let response = lease
        .unary("/grpcpool.test.Echo/Unary", b"again".to_vec(), within(5))
        .await
        .unwrap();
    assert_eq!(response.body.as_ref(), b"again");
    assert_eq!(pool.stats().leases_out, 1);
    let again: SharedStream = lease.open_stream(BIDI_PATH, within(5)).unwrap().into();
    again.cancel();
    drop(again);
    drop(lease);
    assert_eq!(pool.stats().leases_out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_started_before_a_half_close_is_sent_first() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let pool = pool(quick_config());
    // `write(m); end()` without waiting in between: the race the faces' idioms depend on.
    for round in 0..20u8 {
        let stream: SharedStream = pool
            .open_stream(&server.target(), BIDI_PATH, within(5))
            .await
            .unwrap()
            .into();
        let sending = stream.send(Bytes::from(vec![round; 3])).unwrap();
        stream.close_send();
        assert!(
            stream.is_send_closed(),
            "no send starts after the half-close"
        );
        assert!(matches!(
            stream.send(Bytes::from_static(b"late")).map(drop),
            Err(Error::Busy(_))
        ));
        sending.await.unwrap();
        assert!(matches!(
            stream.send(Bytes::from_static(b"late")).unwrap().await,
            Err(Error::StreamClosed)
        ));
        assert_eq!(
            stream.recv().unwrap().await.as_deref(),
            Some(&[round; 3][..])
        );
        assert!(
            stream.recv().unwrap().await.is_none(),
            "the half-close reached the server"
        );
        assert_eq!(
            stream.outcome().map(|response| response.code),
            Some(Code::Ok)
        );
    }
}
