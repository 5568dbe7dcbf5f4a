//! `NativeStream`: a core streaming call as a JavaScript class (wrapped by `Stream` in
//! lib/stream.js). It wraps the core's [`SharedStream`], which owns the call's state: one send
//! and one read at a time (a second is refused as busy, never queued), sending and reading
//! concurrently, and a cancel that wakes every waiting operation. This file only starts those
//! operations and turns their outcomes into completions.

use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::{Response, SharedStream, Stream};
use napi::bindgen_prelude::Uint8ArraySlice;
use napi_derive::napi;

use crate::completions::Completion;
use crate::convert::{buffer, call_result, metadata_to_js};
use crate::failure::Failure;
use crate::pool_state::PoolState;

/// A native streaming call. `send`, `recv` and `headers` complete through the pool's queue;
/// `recv` completes with `body` for a message and with `result` (the final status) at the end.
/// One send and one read (`recv` or `headers`) may wait at a time: a second of the same kind
/// is refused at once with a `"busy"` failure.
#[napi]
pub struct NativeStream {
    state: Arc<PoolState>,
    stream: SharedStream,
    /// The address of the connection the call opened on, read once at the open: the lease
    /// leaves the call's reach once it is shared.
    peer: String,
}

impl NativeStream {
    pub(crate) fn new(state: Arc<PoolState>, stream: Stream) -> NativeStream {
        let peer = stream
            .lease()
            .map(|lease| lease.address())
            .unwrap_or_default();
        NativeStream {
            state,
            stream: SharedStream::from(stream),
            peer,
        }
    }
}

/// The completion of a read that found the end: the final status.
fn ended(id: u32, response: Response) -> Completion {
    Completion {
        result: Some(call_result(response)),
        ..Completion::done(id)
    }
}

#[napi]
impl NativeStream {
    /// Starts sending a message; completes when it was handed to HTTP/2 (flow control may hold
    /// it), or with a `"stream-closed"` failure once sending is over. Refused now while another
    /// send waits (`"busy"`) and for a message above the pool's send limit.
    #[napi]
    pub fn send(&self, id: u32, message: Uint8ArraySlice<'_>) -> Option<Failure> {
        // The core claims the send here, on the JavaScript thread, so `write(m); end()` sends
        // `m` before the half-close even though the send's task has not run yet.
        let sending = match self.stream.send(Bytes::copy_from_slice(&message)) {
            Ok(sending) => sending,
            Err(error) => return Some(Failure::from_error(error)),
        };
        self.state
            .start(id, false, async move {
                match sending.await {
                    Ok(()) => Completion::done(id),
                    Err(error) => Completion::failed(id, Failure::from_error(error)),
                }
            })
            .err()
    }

    /// Half-closes after a send already started, if any: no more messages go to the server,
    /// and a send from now on fails with `"stream-closed"`.
    #[napi]
    pub fn close_send(&self) {
        self.stream.close_send();
    }

    /// Starts reading the next message; completes with `body`, or with `result` (the final
    /// status, headers and trailers) once the call is over. Refused now (`"busy"`) while
    /// another read or `headers` waits.
    #[napi]
    pub fn recv(&self, id: u32) -> Option<Failure> {
        let reading = match self.stream.recv() {
            Ok(reading) => reading,
            Err(error) => return Some(Failure::from_error(error)),
        };
        let stream = self.stream.clone();
        self.state
            .start(id, false, async move {
                match reading.await {
                    Some(message) => Completion {
                        body: Some(buffer(message)),
                        ..Completion::done(id)
                    },
                    // The end: the outcome is recorded, so this does not wait.
                    None => ended(id, stream.ended().await),
                }
            })
            .err()
    }

    /// Starts waiting for the response headers; completes with `metadata` (empty when the
    /// call ended without headers). Counts as a read for `"busy"`.
    #[napi]
    pub fn headers(&self, id: u32) -> Option<Failure> {
        let waiting = match self.stream.headers() {
            Ok(waiting) => waiting,
            Err(error) => return Some(Failure::from_error(error)),
        };
        self.state
            .start(id, false, async move {
                let headers = waiting.await;
                Completion {
                    metadata: Some(headers.as_ref().map(metadata_to_js).unwrap_or_default()),
                    ..Completion::done(id)
                }
            })
            .err()
    }

    /// Cancels the call: the server sees RST_STREAM CANCEL, every waiting operation wakes and
    /// the final status is CANCELLED.
    #[napi]
    pub fn cancel(&self) {
        self.stream.cancel();
    }

    /// The address of the connection the call opened on (`host:port` or `unix:/path`), or ""
    /// when it has no single one (a hedged call's attempts may use several).
    #[napi(getter)]
    pub fn peer(&self) -> String {
        self.peer.clone()
    }
}
