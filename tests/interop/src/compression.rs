//! The interop compression cases, and the probe that tells whether a server can take part.
//!
//! The cases need a server that decompresses gzip and honours `expect_compressed` and
//! `response_compressed`. Before running them the runner sends one gzip-compressed EmptyCall;
//! a server that answers it with "no decompressor" cannot run any of them, whatever the
//! client does, and the cases are then reported as not applicable with the server's answer.

use grpcpool_core::{CallOptions, Code, Compression, Pool};
use prost::Message;

use crate::cases::{check_large, decode, expect, ok, open, options, unary, Outcome};
use crate::messages::*;

/// The compression cases, by their interop names.
pub const CASES: [&str; 4] = [
    "client_compressed_unary",
    "server_compressed_unary",
    "client_compressed_streaming",
    "server_compressed_streaming",
];

fn gzip() -> CallOptions {
    options().compression(Some(Compression::Gzip))
}

fn probe(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

/// `None` when the server can run the compression cases, else why not (its answer to a
/// gzip-compressed EmptyCall).
pub async fn unsupported_because(pool: &Pool, target: &str) -> Option<String> {
    match unary(pool, target, "EmptyCall", &Empty {}, gzip()).await {
        Ok(response) if response.code == Code::Ok => None,
        Ok(response) => Some(format!(
            "the server refuses gzip requests ({}: {})",
            response.code, response.message
        )),
        Err(error) => Some(format!("the probe failed: {error}")),
    }
}

/// Runs one compression case.
pub async fn run(name: &str, pool: &Pool, target: &str) -> Outcome {
    match name {
        "client_compressed_unary" => client_compressed_unary(pool, target).await,
        "server_compressed_unary" => server_compressed_unary(pool, target).await,
        "client_compressed_streaming" => client_compressed_streaming(pool, target).await,
        "server_compressed_streaming" => server_compressed_streaming(pool, target).await,
        other => Err(format!("unknown case {other}")),
    }
}

fn large(expect_compressed: bool) -> SimpleRequest {
    SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        expect_compressed: probe(expect_compressed),
        ..SimpleRequest::default()
    }
}

async fn client_compressed_unary(pool: &Pool, target: &str) -> Outcome {
    // The probe: told to expect compression, the server rejects an uncompressed request.
    let response = unary(pool, target, "UnaryCall", &large(true), options()).await?;
    expect(response.code == Code::InvalidArgument, || {
        format!("probe answered {} (wanted INVALID_ARGUMENT)", response.code)
    })?;
    check_large(&unary(pool, target, "UnaryCall", &large(true), gzip()).await?)?;
    check_large(&unary(pool, target, "UnaryCall", &large(false), options()).await?)
}

async fn server_compressed_unary(pool: &Pool, target: &str) -> Outcome {
    for compressed in [true, false] {
        let request = SimpleRequest {
            response_compressed: probe(compressed),
            ..large(false)
        };
        check_large(&unary(pool, target, "UnaryCall", &request, options()).await?)?;
    }
    Ok(())
}

async fn client_compressed_streaming(pool: &Pool, target: &str) -> Outcome {
    // The probe, as for unary.
    let mut stream = open(pool, target, "StreamingInputCall", options()).await?;
    let first = StreamingInputCallRequest {
        payload: zeros(27_182),
        expect_compressed: probe(true),
    };
    stream
        .send(first.encode_to_vec())
        .await
        .map_err(|error| error.to_string())?;
    stream.close_send();
    let response = stream.finish().await;
    expect(response.code == Code::InvalidArgument, || {
        format!("probe answered {} (wanted INVALID_ARGUMENT)", response.code)
    })?;
    // The case sends its first message compressed and its second not; the core compresses
    // per call, every message alike, so it cannot make this exchange.
    Err(
        "the case needs per-message compression (first message gzip, second not); \
         the core compresses every message of a call alike"
            .to_owned(),
    )
}

async fn server_compressed_streaming(pool: &Pool, target: &str) -> Outcome {
    let mut stream = open(pool, target, "StreamingOutputCall", options()).await?;
    let request = StreamingOutputCallRequest {
        response_parameters: vec![
            ResponseParameters {
                size: 31_415,
                compressed: probe(true),
                ..ResponseParameters::default()
            },
            ResponseParameters {
                size: 92_653,
                compressed: probe(false),
                ..ResponseParameters::default()
            },
        ],
        ..StreamingOutputCallRequest::default()
    };
    stream
        .send(request.encode_to_vec())
        .await
        .map_err(|error| error.to_string())?;
    stream.close_send();
    let mut sizes = Vec::new();
    while let Some(message) = stream.recv().await {
        let reply: StreamingOutputCallResponse = decode(&message)?;
        sizes.push(reply.payload.map(|payload| payload.body.len()).unwrap_or(0));
    }
    ok(&stream.finish().await)?;
    expect(sizes == [31_415, 92_653], || format!("sizes {sizes:?}"))
}
