//! The callback flavours of stream operations: send, recv and finish without blocking, each
//! completing through a C callback exactly once.

use std::ffi::c_void;

use bytes::Bytes;
use grpcpool_core::{Code, Response};

use crate::args;
use crate::completion::{Completion, UserData};
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::message::grpcpool_message_t;
use crate::registry::{self, StreamEntry};
use crate::response::grpcpool_response_t;
use crate::streams::grpcpool_stream_t;

/// Receives the outcome of `grpcpool_stream_send_async`, exactly once, on a grpcpool worker
/// thread: `GRPCPOOL_OK` once the message is handed to the connection, else the failure
/// (`GRPCPOOL_STREAM_CLOSED` when sending was over; `grpcpool_last_error()` inside the callback
/// gives the message). `user_data` is the pointer given to the send, for the caller's context.
/// The callback must return quickly and must not call blocking grpcpool functions (they fail with
/// `GRPCPOOL_BLOCKING_IN_CALLBACK`); it may start the next async operation on the stream.
#[allow(non_camel_case_types)]
pub type grpcpool_stream_send_callback_t =
    Option<unsafe extern "C" fn(user_data: *mut c_void, result: grpcpool_result)>;

/// Receives the outcome of `grpcpool_stream_recv_async`, exactly once, on a grpcpool worker
/// thread: the next message, which now belongs to the callback (free it with
/// `grpcpool_message_free`), or NULL at the end of the stream (`grpcpool_stream_finish_async`
/// then gives the status). `user_data` is the pointer given to the recv. The callback must
/// return quickly and must not call blocking grpcpool functions; it may start the next
/// async recv.
#[allow(non_camel_case_types)]
pub type grpcpool_stream_recv_callback_t =
    Option<unsafe extern "C" fn(user_data: *mut c_void, message: *mut grpcpool_message_t)>;

/// Receives the final status of `grpcpool_stream_finish_async`, exactly once, on a grpcpool
/// worker thread. `response` is never NULL and now belongs to the callback: free it with
/// `grpcpool_response_free`. `user_data` is the pointer given to the finish. The callback must
/// return quickly and must not call blocking grpcpool functions; it may free the stream.
#[allow(non_camel_case_types)]
pub type grpcpool_stream_finish_callback_t =
    Option<unsafe extern "C" fn(user_data: *mut c_void, response: *mut grpcpool_response_t)>;

/// Sends one message without waiting; otherwise as `grpcpool_stream_send`. The message is
/// copied now. Input is checked now: on an error result (`GRPCPOOL_BUSY` while another send is
/// in progress, `GRPCPOOL_MESSAGE_TOO_LARGE`, a stale handle) nothing started and the callback
/// will not run. On `GRPCPOOL_OK` the callback runs exactly once, on a grpcpool worker thread
/// (never on the calling thread, though possibly before this function has returned); a cancel
/// or `grpcpool_stream_free` makes a send waiting under flow control complete at once with
/// `GRPCPOOL_STREAM_CLOSED`.
///
/// # Safety
/// `message` covers `message_len` readable bytes (NULL if 0); `callback` is a valid function.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_stream_send_async(
    stream: grpcpool_stream_t,
    message: *const u8,
    message_len: usize,
    callback: grpcpool_stream_send_callback_t,
    user_data: *mut c_void,
) -> grpcpool_result {
    ffi_boundary!({
        let callback = callback.ok_or_else(|| FfiError::null("callback"))?;
        let entry = registry::stream(stream)?;
        // SAFETY: per the contract.
        let message = unsafe { args::bytes(message, message_len, "message")? };
        let sending = entry.stream.send(Bytes::copy_from_slice(message))?;
        let user_data = UserData(user_data);
        let completion = Completion::new(&entry.in_flight, move |outcome| {
            let user_data = user_data;
            let result = match outcome {
                Some(outcome) => crate::error::finish(outcome),
                None => crate::error::fail(FfiError::new(
                    grpcpool_result::GRPCPOOL_STREAM_CLOSED,
                    "the pool stopped before the message was sent",
                )),
            };
            // SAFETY: the caller supplied a valid function pointer for exactly this use.
            unsafe { callback(user_data.0, result) };
        });
        spawn(&entry, async move {
            // The send's claim is given back as its future ends, before the callback, which
            // may start the next send.
            let outcome = sending.await.map_err(FfiError::from);
            completion.complete(outcome);
        })
    })
}

/// Receives the next message without waiting; otherwise as `grpcpool_stream_recv`. On an error
/// result (`GRPCPOOL_BUSY` while another recv, headers or finish is in progress, a stale
/// handle) nothing started and the callback will not run. On `GRPCPOOL_OK` the callback runs
/// exactly once on a grpcpool worker thread, with the message or NULL at the end; a cancel or
/// `grpcpool_stream_free` makes it run at once with NULL.
///
/// # Safety
/// `callback` is a valid function.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_stream_recv_async(
    stream: grpcpool_stream_t,
    callback: grpcpool_stream_recv_callback_t,
    user_data: *mut c_void,
) -> grpcpool_result {
    ffi_boundary!({
        let callback = callback.ok_or_else(|| FfiError::null("callback"))?;
        let entry = registry::stream(stream)?;
        let receiving = entry.stream.recv()?;
        let user_data = UserData(user_data);
        let completion =
            Completion::new(&entry.in_flight, move |outcome: Option<Option<Bytes>>| {
                let user_data = user_data;
                let message = outcome
                    .flatten()
                    .map_or(std::ptr::null_mut(), grpcpool_message_t::boxed);
                // SAFETY: the caller supplied a valid function pointer for exactly this use.
                unsafe { callback(user_data.0, message) };
            });
        spawn(&entry, async move {
            let message = receiving.await;
            completion.complete(message);
        })
    })
}

/// Half-closes, reads to the end and gives the final status, without waiting; otherwise as
/// `grpcpool_stream_finish`. On an error result (`GRPCPOOL_BUSY`, a stale handle) nothing
/// started and the callback will not run. On `GRPCPOOL_OK` the callback runs exactly once on a
/// grpcpool worker thread with the response.
///
/// # Safety
/// `callback` is a valid function.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_stream_finish_async(
    stream: grpcpool_stream_t,
    callback: grpcpool_stream_finish_callback_t,
    user_data: *mut c_void,
) -> grpcpool_result {
    ffi_boundary!({
        let callback = callback.ok_or_else(|| FfiError::null("callback"))?;
        let entry = registry::stream(stream)?;
        let finishing = entry.stream.finish()?;
        let user_data = UserData(user_data);
        let completion = Completion::new(&entry.in_flight, move |outcome: Option<Response>| {
            let user_data = user_data;
            let response = outcome.unwrap_or_else(|| {
                Response::with_status(Code::Cancelled, "the pool stopped before the call ended")
            });
            // SAFETY: the caller supplied a valid function pointer for exactly this use.
            unsafe { callback(user_data.0, grpcpool_response_t::boxed(response)) };
        });
        spawn(&entry, async move {
            let response = finishing.await;
            completion.complete(response);
        })
    })
}

/// Runs an operation's task on the pool's runtime. The runtime is running: the stream could
/// not have opened otherwise; should it be gone, the task's completion still runs the callback.
fn spawn(
    entry: &StreamEntry,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), FfiError> {
    drop(entry.pool.runtime_handle()?.spawn(task));
    Ok(())
}
