#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! A stream cancelled after the caller half-closed it still tells the server (RST_STREAM
//! CANCEL), before and after the response headers came, on a stream and a shared stream.

mod support;

use std::time::Duration;

use grpcpool_core::{CallOptions, Code, Metadata, SharedStream};
use grpcpool_testserver::{ServerOptions, TestServer, BIDI_PATH, CLIENT_STREAM_PATH};
use support::{echo, eventually, pool, quick_config};

fn held() -> CallOptions {
    let mut metadata = Metadata::new();
    metadata.insert_ascii("x-sleep-ms", "5000");
    CallOptions::with_timeout(Duration::from_secs(30)).metadata(metadata)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_after_half_close_reaches_the_server() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let target = server.target();
    let pool = pool(quick_config());
    let warm = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(warm.code, Code::Ok);
    for (round, path) in [CLIENT_STREAM_PATH, BIDI_PATH].into_iter().enumerate() {
        let before = server.calls_cancelled();
        let mut stream = pool.open_stream(&target, path, held()).await.unwrap();
        stream.send(b"one".to_vec()).await.unwrap();
        stream.close_send();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.cancel();
        assert!(
            eventually(Duration::from_secs(3), || server.calls_cancelled()
                == before + 1)
            .await,
            "round {round} ({path}): the server saw {} cancels, expected {}",
            server.calls_cancelled(),
            before + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_stream_cancelled_while_a_read_waits_reaches_the_server() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let target = server.target();
    let pool = pool(quick_config());
    let warm = echo(&pool, &target, b"", Metadata::new(), Duration::from_secs(5)).await;
    assert_eq!(warm.code, Code::Ok);
    for half_closed in [false, true] {
        let before = server.calls_cancelled();
        let stream: SharedStream = pool
            .open_stream(&target, BIDI_PATH, held())
            .await
            .unwrap()
            .into();
        stream
            .send(bytes::Bytes::from_static(b"hold"))
            .unwrap()
            .await
            .unwrap();
        if half_closed {
            stream.close_send();
        }
        let read = tokio::spawn(stream.recv().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.cancel();
        assert_eq!(read.await.unwrap(), None);
        assert!(
            eventually(Duration::from_secs(3), || server.calls_cancelled()
                == before + 1)
            .await,
            "half-closed {half_closed}: the server saw {} cancels, expected {}",
            server.calls_cancelled(),
            before + 1
        );
    }
}
