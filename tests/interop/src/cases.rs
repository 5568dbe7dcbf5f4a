//! The interop client cases, run through grpcpool's Rust core.

use std::time::{Duration, Instant};

use bytes::Bytes;
use grpcpool_core::{CallOptions, Code, Metadata, MetadataValue, Pool, Response};
use prost::Message;

use crate::messages::*;

const SERVICE: &str = "/grpc.testing.TestService/";
const SIZES: [(usize, usize); 4] = [(27_182, 31_415), (8, 9), (1_828, 2_653), (45_904, 58_979)];
const SPECIAL_MESSAGE: &str =
    "\t\ntest with whitespace\r\nand Unicode BMP \u{263a} and non-BMP \u{1f608}\t\n";

/// One case's outcome: `Err` says what was wrong.
pub type Outcome = Result<(), String>;

/// Every case, by name, as the interop spec names them.
pub const CASES: [&str; 16] = [
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
    "rpc_soak",
    "channel_soak",
];

/// What a case needs: a pool and a target, and how to make a fresh pool (channel_soak).
pub struct Context<'a> {
    pub pool: &'a Pool,
    pub target: &'a str,
    pub new_pool: &'a dyn Fn() -> Pool,
}

pub async fn run(name: &str, context: &Context<'_>) -> Outcome {
    let (pool, target) = (context.pool, context.target);
    match name {
        "empty_unary" => empty_unary(pool, target).await,
        "large_unary" => large_unary(pool, target).await,
        "client_streaming" => client_streaming(pool, target).await,
        "server_streaming" => server_streaming(pool, target).await,
        "ping_pong" => ping_pong(pool, target).await,
        "empty_stream" => empty_stream(pool, target).await,
        "custom_metadata" => custom_metadata(pool, target).await,
        "status_code_and_message" => status_code_and_message(pool, target).await,
        "special_status_message" => special_status_message(pool, target).await,
        "unimplemented_method" => {
            unimplemented(pool, target, "/grpc.testing.TestService/UnimplementedCall").await
        }
        "unimplemented_service" => {
            unimplemented(
                pool,
                target,
                "/grpc.testing.UnimplementedService/UnimplementedCall",
            )
            .await
        }
        "cancel_after_begin" => cancel_after_begin(pool, target).await,
        "cancel_after_first_response" => cancel_after_first_response(pool, target).await,
        "timeout_on_sleeping_server" => timeout_on_sleeping_server(pool, target).await,
        "rpc_soak" => {
            for _ in 0..10 {
                large_unary(pool, target).await?;
            }
            Ok(())
        }
        "channel_soak" => {
            for _ in 0..10 {
                let fresh = (context.new_pool)();
                large_unary(&fresh, target).await?;
            }
            Ok(())
        }
        other => Err(format!("unknown case {other}")),
    }
}

pub(crate) fn options() -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(10))
}

pub(crate) fn expect(condition: bool, what: impl FnOnce() -> String) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(what())
    }
}

pub(crate) fn ok(response: &Response) -> Outcome {
    expect(response.code == Code::Ok, || {
        format!("status {}: {}", response.code, response.message)
    })
}

pub(crate) async fn unary(
    pool: &Pool,
    target: &str,
    method: &str,
    request: &impl Message,
    options: CallOptions,
) -> Result<Response, String> {
    pool.unary(
        target,
        &format!("{SERVICE}{method}"),
        request.encode_to_vec(),
        options,
    )
    .await
    .map_err(|error| error.to_string())
}

pub(crate) fn decode<T: Message + Default>(body: &Bytes) -> Result<T, String> {
    T::decode(body.clone()).map_err(|error| format!("decoding: {error}"))
}

fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        ..SimpleRequest::default()
    }
}

pub(crate) fn check_large(response: &Response) -> Outcome {
    ok(response)?;
    let reply: SimpleResponse = decode(&response.body)?;
    let body = reply
        .payload
        .map(|payload| payload.body)
        .unwrap_or_default();
    expect(
        body.len() == 314_159 && body.iter().all(|byte| *byte == 0),
        || format!("payload of {} bytes", body.len()),
    )
}

async fn empty_unary(pool: &Pool, target: &str) -> Outcome {
    let response = unary(pool, target, "EmptyCall", &Empty {}, options()).await?;
    ok(&response)?;
    let _: Empty = decode(&response.body)?;
    expect(response.body.is_empty(), || {
        format!("{} bytes back", response.body.len())
    })
}

async fn large_unary(pool: &Pool, target: &str) -> Outcome {
    let started = Instant::now();
    let response = unary(pool, target, "UnaryCall", &large_request(), options()).await?;
    check_large(&response)?;
    expect(started.elapsed() < Duration::from_secs(10), || {
        format!("took {:?}", started.elapsed())
    })
}

async fn client_streaming(pool: &Pool, target: &str) -> Outcome {
    let mut stream = open(pool, target, "StreamingInputCall", options()).await?;
    for (size, _) in SIZES {
        let request = StreamingInputCallRequest {
            payload: zeros(size),
            expect_compressed: None,
        };
        stream
            .send(request.encode_to_vec())
            .await
            .map_err(|error| error.to_string())?;
    }
    stream.close_send();
    let reply = stream.recv().await.ok_or("no response")?;
    let reply: StreamingInputCallResponse = decode(&reply)?;
    ok(&stream.finish().await)?;
    expect(reply.aggregated_payload_size == 74_922, || {
        format!("aggregated {}", reply.aggregated_payload_size)
    })
}

fn output_request(sizes: &[usize], payload: usize) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|size| ResponseParameters {
                size: *size as i32,
                ..ResponseParameters::default()
            })
            .collect(),
        payload: (payload > 0).then(|| zeros(payload)).flatten(),
        response_status: None,
    }
}

fn output_size(message: &Bytes) -> Result<usize, String> {
    let reply: StreamingOutputCallResponse = decode(message)?;
    Ok(reply.payload.map(|payload| payload.body.len()).unwrap_or(0))
}

pub(crate) async fn open(
    pool: &Pool,
    target: &str,
    method: &str,
    options: CallOptions,
) -> Result<grpcpool_core::Stream, String> {
    pool.open_stream(target, &format!("{SERVICE}{method}"), options)
        .await
        .map_err(|error| error.to_string())
}

async fn server_streaming(pool: &Pool, target: &str) -> Outcome {
    let mut stream = open(pool, target, "StreamingOutputCall", options()).await?;
    let sizes: Vec<usize> = SIZES.iter().map(|(_, response)| *response).collect();
    stream
        .send(output_request(&sizes, 0).encode_to_vec())
        .await
        .map_err(|error| error.to_string())?;
    stream.close_send();
    let mut received = Vec::new();
    while let Some(message) = stream.recv().await {
        received.push(output_size(&message)?);
    }
    ok(&stream.finish().await)?;
    expect(received == sizes, || format!("sizes {received:?}"))
}

async fn ping_pong(pool: &Pool, target: &str) -> Outcome {
    let mut stream = open(pool, target, "FullDuplexCall", options()).await?;
    for (request, response) in SIZES {
        stream
            .send(output_request(&[response], request).encode_to_vec())
            .await
            .map_err(|error| error.to_string())?;
        let reply = stream.recv().await.ok_or("no reply")?;
        let size = output_size(&reply)?;
        expect(size == response, || {
            format!("reply of {size} bytes, wanted {response}")
        })?;
    }
    stream.close_send();
    expect(stream.recv().await.is_none(), || {
        "a reply too many".to_owned()
    })?;
    ok(&stream.finish().await)
}

async fn empty_stream(pool: &Pool, target: &str) -> Outcome {
    let mut stream = open(pool, target, "FullDuplexCall", options()).await?;
    stream.close_send();
    expect(stream.recv().await.is_none(), || {
        "a reply to nothing".to_owned()
    })?;
    ok(&stream.finish().await)
}

fn echo_metadata() -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert_ascii("x-grpc-test-echo-initial", "test_initial_metadata_value");
    metadata.insert_binary("x-grpc-test-echo-trailing-bin", vec![0xab, 0xab, 0xab]);
    metadata
}

fn check_echoed(response: &Response) -> Outcome {
    let initial = response.headers.get("x-grpc-test-echo-initial");
    expect(
        initial
            == Some(&MetadataValue::Ascii(
                "test_initial_metadata_value".to_owned(),
            )),
        || format!("initial metadata {initial:?}"),
    )?;
    let trailing = response.trailers.get("x-grpc-test-echo-trailing-bin");
    expect(
        trailing == Some(&MetadataValue::Binary(vec![0xab, 0xab, 0xab].into())),
        || format!("trailing metadata {trailing:?}"),
    )
}

async fn custom_metadata(pool: &Pool, target: &str) -> Outcome {
    let response = unary(
        pool,
        target,
        "UnaryCall",
        &large_request(),
        options().metadata(echo_metadata()),
    )
    .await?;
    check_large(&response)?;
    check_echoed(&response)?;

    let mut stream = open(
        pool,
        target,
        "FullDuplexCall",
        options().metadata(echo_metadata()),
    )
    .await?;
    stream
        .send(output_request(&[314_159], 271_828).encode_to_vec())
        .await
        .map_err(|error| error.to_string())?;
    let reply = stream.recv().await.ok_or("no reply")?;
    expect(output_size(&reply)? == 314_159, || "reply size".to_owned())?;
    stream.close_send();
    let response = stream.finish().await;
    ok(&response)?;
    check_echoed(&response)
}

fn status_request(message: &str) -> EchoStatus {
    EchoStatus {
        code: 2,
        message: message.to_owned(),
    }
}

fn check_status(response: &Response, message: &str) -> Outcome {
    expect(
        response.code == Code::Unknown && response.message == message,
        || format!("status {} {:?}", response.code, response.message),
    )
}

async fn status_code_and_message(pool: &Pool, target: &str) -> Outcome {
    let message = "test status message";
    let request = SimpleRequest {
        response_status: Some(status_request(message)),
        ..SimpleRequest::default()
    };
    check_status(
        &unary(pool, target, "UnaryCall", &request, options()).await?,
        message,
    )?;

    let mut stream = open(pool, target, "FullDuplexCall", options()).await?;
    let mut request = output_request(&[], 0);
    request.response_status = Some(status_request(message));
    stream
        .send(request.encode_to_vec())
        .await
        .map_err(|error| error.to_string())?;
    stream.close_send();
    while stream.recv().await.is_some() {}
    check_status(&stream.finish().await, message)
}

async fn special_status_message(pool: &Pool, target: &str) -> Outcome {
    let request = SimpleRequest {
        response_status: Some(status_request(SPECIAL_MESSAGE)),
        ..SimpleRequest::default()
    };
    check_status(
        &unary(pool, target, "UnaryCall", &request, options()).await?,
        SPECIAL_MESSAGE,
    )
}

async fn unimplemented(pool: &Pool, target: &str, method: &str) -> Outcome {
    let response = pool
        .unary(target, method, Empty {}.encode_to_vec(), options())
        .await
        .map_err(|error| error.to_string())?;
    expect(response.code == Code::Unimplemented, || {
        format!("status {}", response.code)
    })
}

async fn cancel_after_begin(pool: &Pool, target: &str) -> Outcome {
    let mut stream = open(pool, target, "StreamingInputCall", options()).await?;
    stream.cancel();
    let response = stream.finish().await;
    expect(response.code == Code::Cancelled, || {
        format!("status {}", response.code)
    })
}

async fn cancel_after_first_response(pool: &Pool, target: &str) -> Outcome {
    let mut stream = open(pool, target, "FullDuplexCall", options()).await?;
    stream
        .send(output_request(&[31_415], 27_182).encode_to_vec())
        .await
        .map_err(|error| error.to_string())?;
    let reply = stream.recv().await.ok_or("no reply")?;
    expect(output_size(&reply)? == 31_415, || "reply size".to_owned())?;
    stream.cancel();
    let response = stream.finish().await;
    expect(response.code == Code::Cancelled, || {
        format!("status {}", response.code)
    })
}

async fn timeout_on_sleeping_server(pool: &Pool, target: &str) -> Outcome {
    let mut stream = open(
        pool,
        target,
        "FullDuplexCall",
        CallOptions::with_timeout(Duration::from_millis(1)),
    )
    .await?;
    // The send may already find the deadline passed; either way the status must say so.
    let _ = stream
        .send(output_request(&[], 27_182).encode_to_vec())
        .await;
    while stream.recv().await.is_some() {}
    let response = stream.finish().await;
    expect(response.code == Code::DeadlineExceeded, || {
        format!("status {}: {}", response.code, response.message)
    })
}
