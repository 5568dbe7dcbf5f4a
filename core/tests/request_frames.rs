#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! The HTTP/2 frames a unary request goes out as, read off the wire by a proxy in front of a
//! live server: HEADERS, then DATA frames whose last carries END_STREAM, with no empty DATA
//! frame after them (each DATA frame over h2's copy threshold costs a write of its own); and
//! many calls at once on one connection, whose writes are batched, arrive whole.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use grpcpool_core::{Code, Metadata};
use grpcpool_testserver::{ServerOptions, TestServer};
use parking_lot::Mutex;
use support::{echo, pool, quick_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const END_STREAM: u8 = 0x1;

/// One frame the client sent: its type, flags and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    kind: u8,
    flags: u8,
    length: usize,
}

/// A TCP proxy on loopback that forwards both ways and parses what the client sends into
/// frames, per stream id.
struct RecordingProxy {
    port: u16,
    streams: Arc<Mutex<BTreeMap<u32, Vec<Frame>>>>,
}

impl RecordingProxy {
    async fn start(upstream: u16) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let streams: Arc<Mutex<BTreeMap<u32, Vec<Frame>>>> = Arc::default();
        let recorded = Arc::clone(&streams);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let mut parser = FrameParser::default();
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(read) = client_read.read(&mut buffer).await {
                        if read == 0 || server_write.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                        for (stream, frame) in parser.push(&buffer[..read]) {
                            recorded.lock().entry(stream).or_default().push(frame);
                        }
                    }
                });
            }
        });
        RecordingProxy { port, streams }
    }

    /// The frames of the newest stream that sent HEADERS.
    fn last_request(&self) -> Vec<Frame> {
        let streams = self.streams.lock();
        streams
            .iter()
            .rev()
            .find(|(_, frames)| frames.iter().any(|frame| frame.kind == HEADERS))
            .map(|(_, frames)| frames.clone())
            .unwrap_or_default()
    }
}

/// Splits the client's byte stream into frames, across reads.
#[derive(Default)]
struct FrameParser {
    bytes: Vec<u8>,
    past_preface: bool,
}

impl FrameParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<(u32, Frame)> {
        self.bytes.extend_from_slice(bytes);
        if !self.past_preface {
            if self.bytes.len() < PREFACE.len() {
                return Vec::new();
            }
            assert_eq!(&self.bytes[..PREFACE.len()], PREFACE);
            self.bytes.drain(..PREFACE.len());
            self.past_preface = true;
        }
        let mut frames = Vec::new();
        while self.bytes.len() >= 9 {
            let header = &self.bytes[..9];
            let length = (usize::from(header[0]) << 16)
                | (usize::from(header[1]) << 8)
                | usize::from(header[2]);
            if self.bytes.len() < 9 + length {
                break;
            }
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            frames.push((
                stream,
                Frame {
                    kind: header[3],
                    flags: header[4],
                    length,
                },
            ));
            self.bytes.drain(..9 + length);
        }
        frames
    }
}

/// What a request stream's frames must be: HEADERS without END_STREAM, then DATA frames with
/// `body` bytes in all, none empty, END_STREAM on the last one only.
fn assert_request_frames(frames: &[Frame], body: usize) {
    let (first, data) = frames.split_first().expect("a request stream");
    assert_eq!(first.kind, HEADERS, "{frames:?}");
    assert_eq!(first.flags & END_STREAM, 0, "{frames:?}");
    assert!(!data.is_empty(), "{frames:?}");
    assert!(
        data.iter()
            .all(|frame| frame.kind == DATA && frame.length > 0),
        "{frames:?}"
    );
    let (last, before) = data.split_last().expect("DATA frames");
    assert_eq!(last.flags & END_STREAM, END_STREAM, "{frames:?}");
    assert!(
        before.iter().all(|frame| frame.flags & END_STREAM == 0),
        "{frames:?}"
    );
    assert_eq!(
        data.iter().map(|frame| frame.length).sum::<usize>(),
        body,
        "{frames:?}"
    );
}

/// A live server, the recording proxy in front of it, the proxy's target and a pool.
async fn recorded_pool() -> (TestServer, RecordingProxy, String, grpcpool_core::Pool) {
    recorded_pool_with(quick_config()).await
}

async fn recorded_pool_with(
    config: grpcpool_core::Config,
) -> (TestServer, RecordingProxy, String, grpcpool_core::Pool) {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let proxy = RecordingProxy::start(server.local_addr().unwrap().port()).await;
    let target = format!("http://127.0.0.1:{}", proxy.port);
    (server, proxy, target, pool(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_request_is_headers_and_one_data_frame_that_ends_the_stream() {
    let (_server, proxy, target, pool) = recorded_pool().await;
    for _ in 0..3 {
        let response = echo(
            &pool,
            &target,
            &[7u8; 1024],
            Metadata::new(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(response.code, Code::Ok, "{}", response.message);
        // Five bytes of gRPC message prefix, then the message.
        let frames = proxy.last_request();
        assert_request_frames(&frames, 5 + 1024);
        assert_eq!(frames.len(), 2, "{frames:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_request_over_the_window_is_split_and_only_its_last_frame_ends_the_stream() {
    let (_server, proxy, target, pool) = recorded_pool().await;
    // Larger than HTTP/2's default initial window (65,535) and its largest default frame.
    let body = vec![3u8; 300 * 1024];
    let response = echo(
        &pool,
        &target,
        &body,
        Metadata::new(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(response.code, Code::Ok, "{}", response.message);
    assert_eq!(response.body.len(), body.len());
    let frames = proxy.last_request();
    assert_request_frames(&frames, 5 + body.len());
    assert!(frames.len() > 2, "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_at_once_on_one_connection_arrive_whole_in_batched_writes() {
    let mut config = quick_config();
    config.min_connections_per_target = 1;
    config.max_connections_per_target = 1;
    config.streams_per_connection = 100;
    let (_server, proxy, target, pool) = recorded_pool_with(config).await;
    // Sizes around the copy threshold, the hold limit (16 KiB) and the window, mixed, each
    // request's bytes its own so that bytes written out of order would show.
    const SIZES: [usize; 8] = [0, 1, 300, 1024, 16 * 1024, 20 * 1024, 70 * 1024, 300 * 1024];
    for round in 0..3u8 {
        let calls = (0..48usize).map(|index| {
            let pool = pool.clone();
            let target = target.clone();
            let body: Vec<u8> = (0..SIZES[index % SIZES.len()])
                .map(|at| (index + at) as u8 ^ round)
                .collect();
            tokio::spawn(async move {
                let response = echo(
                    &pool,
                    &target,
                    &body,
                    Metadata::new(),
                    Duration::from_secs(20),
                )
                .await;
                assert_eq!(response.code, Code::Ok, "{}", response.message);
                assert!(
                    response.body == body,
                    "call {index}: the echo differs from the request"
                );
                body.len()
            })
        });
        let mut sizes = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            sizes.push(call.await.unwrap());
        }
        assert_eq!(sizes.len(), 48);
    }
    let streams = proxy.streams.lock();
    let requests: Vec<_> = streams
        .values()
        .filter(|frames| frames.first().is_some_and(|frame| frame.kind == HEADERS))
        .collect();
    assert!(
        requests.len() >= 3 * 48,
        "{} request streams",
        requests.len()
    );
    for frames in requests {
        let body = frames
            .iter()
            .filter(|frame| frame.kind == DATA)
            .map(|frame| frame.length)
            .sum();
        assert_request_frames(frames, body);
    }
}
