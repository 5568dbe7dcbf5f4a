//! `NativeStream`: a core streaming call as a JavaScript class (wrapped by `Stream` in
//! lib/stream.js). Sending and reading run concurrently: a writer task owns the sending half
//! and takes messages in order; reads take the stream itself.

use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::{Code, Response, Stream, StreamSender};
use napi::bindgen_prelude::Uint8ArraySlice;
use napi_derive::napi;
use tokio::sync::{mpsc, watch};

use crate::completions::Completion;
use crate::convert::{buffer, call_result, metadata_to_js};
use crate::failure::Failure;
use crate::pool_state::PoolState;

/// What the writer task is asked to do, in order.
enum Write {
    Message(u32, Bytes),
    Close,
}

/// The reading side: the open stream, or its final status once it ended.
enum Reading {
    Open(Box<Stream>),
    Ended(Response),
}

/// A native streaming call. `send`, `recv` and `headers` complete through the pool's queue;
/// `recv` completes with `body` for a message and with `result` (the final status) at the end.
#[napi]
pub struct NativeStream {
    state: Arc<PoolState>,
    reading: Arc<tokio::sync::Mutex<Reading>>,
    writes: mpsc::UnboundedSender<Write>,
    cancelled: watch::Sender<bool>,
}

impl NativeStream {
    pub(crate) fn new(state: Arc<PoolState>, mut stream: Stream) -> NativeStream {
        let (writes, queue) = mpsc::unbounded_channel();
        let sender = stream.take_sender();
        if let Ok(runtime) = state.pool.runtime_handle() {
            runtime.spawn(write_in_order(Arc::clone(&state), sender, queue));
        }
        let (cancelled, _) = watch::channel(false);
        NativeStream {
            state,
            reading: Arc::new(tokio::sync::Mutex::new(Reading::Open(Box::new(stream)))),
            writes,
            cancelled,
        }
    }
}

/// Sends each queued message once the previous one went out; completes each send.
async fn write_in_order(
    state: Arc<PoolState>,
    mut sender: Option<StreamSender>,
    mut queue: mpsc::UnboundedReceiver<Write>,
) {
    while let Some(write) = queue.recv().await {
        match write {
            Write::Message(id, message) => {
                let sent = match sender.as_mut() {
                    Some(sender) => sender.send(message).await.map_err(Failure::from_error),
                    None => Err(Failure::from_error(grpcpool_core::Error::StreamClosed)),
                };
                state.complete(match sent {
                    Ok(()) => Completion::done(id),
                    Err(failure) => Completion::failed(id, failure),
                });
            }
            Write::Close => sender = None,
        }
    }
}

#[napi]
impl NativeStream {
    /// Queues a message; completes when it was handed to HTTP/2 (flow control may hold it), or
    /// with a `"stream-closed"` failure once sending is over.
    #[napi]
    pub fn send(&self, id: u32, message: Uint8ArraySlice<'_>) -> Option<Failure> {
        let write = Write::Message(id, Bytes::copy_from_slice(&message));
        match self.writes.send(write) {
            Ok(()) => None,
            Err(_) => Some(Failure::from_error(grpcpool_core::Error::StreamClosed)),
        }
    }

    /// Half-closes after the messages already queued: no more messages go to the server.
    #[napi]
    pub fn close_send(&self) {
        let _ = self.writes.send(Write::Close);
    }

    /// Starts reading the next message; completes with `body`, or with `result` (the final
    /// status, headers and trailers) once the call is over.
    #[napi]
    pub fn recv(&self, id: u32) -> Option<Failure> {
        let reading = Arc::clone(&self.reading);
        let mut cancelled = self.cancelled.subscribe();
        let work = async move {
            let mut reading = reading.lock().await;
            if let Reading::Open(stream) = &mut *reading {
                let message = tokio::select! {
                    biased;
                    _ = cancelled.wait_for(|cancelled| *cancelled) => {
                        stream.cancel();
                        None
                    }
                    message = stream.recv() => message,
                };
                if let Some(message) = message {
                    return Completion {
                        body: Some(buffer(message)),
                        ..Completion::done(id)
                    };
                }
                end(&mut reading).await;
            }
            match &*reading {
                Reading::Ended(response) => Completion {
                    result: Some(call_result(response.clone())),
                    ..Completion::done(id)
                },
                Reading::Open(_) => Completion::failed(
                    id,
                    Failure::status(Code::Internal, "the stream did not end"),
                ),
            }
        };
        self.state.start(id, false, work).err()
    }

    /// Starts waiting for the response headers; completes with `metadata` (empty when the
    /// call ended without headers).
    #[napi]
    pub fn headers(&self, id: u32) -> Option<Failure> {
        let reading = Arc::clone(&self.reading);
        let mut cancelled = self.cancelled.subscribe();
        let work = async move {
            let mut reading = reading.lock().await;
            let headers = match &mut *reading {
                Reading::Open(stream) => tokio::select! {
                    biased;
                    _ = cancelled.wait_for(|cancelled| *cancelled) => None,
                    headers = stream.headers() => headers.map(metadata_to_js),
                },
                Reading::Ended(response) => Some(metadata_to_js(&response.headers)),
            };
            Completion {
                metadata: Some(headers.unwrap_or_default()),
                ..Completion::done(id)
            }
        };
        self.state.start(id, false, work).err()
    }

    /// Cancels the call: the server sees RST_STREAM CANCEL and the final status is CANCELLED.
    #[napi]
    pub fn cancel(&self) {
        self.cancelled.send_replace(true);
        let _ = self.writes.send(Write::Close);
        let reading = Arc::clone(&self.reading);
        if let Ok(runtime) = self.state.pool.runtime_handle() {
            runtime.spawn(async move {
                let mut reading = reading.lock().await;
                if let Reading::Open(stream) = &mut *reading {
                    stream.cancel();
                }
            });
        }
    }
}

/// Finishes an open stream whose messages are all read, keeping its final status.
async fn end(reading: &mut Reading) {
    let placeholder = Reading::Ended(Response::with_status(Code::Internal, "ending"));
    if let Reading::Open(stream) = std::mem::replace(reading, placeholder) {
        *reading = Reading::Ended((*stream).finish().await);
    }
}
