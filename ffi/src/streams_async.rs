//! The callback flavours of stream operations: send, recv and finish without blocking, each
//! completing through a C callback exactly once.

use std::ffi::c_void;
use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::{Code, Response};

use crate::args;
use crate::calls::UserData;
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::message::grpcpool_message_t;
use crate::pool::InFlight;
use crate::response::grpcpool_response_t;
use crate::stream_state::{claim, Half};
use crate::streams::{grpcpool_stream_t, lookup, StreamEntry};

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

/// Delivers an async operation's outcome to its C callback exactly once: with the outcome, or,
/// should the task be dropped unfinished (the runtime stopping), with `None`. Counts the
/// operation in its pool's in-flight work, which `grpcpool_pool_free` waits for.
struct Completion<T> {
    deliver: Option<Box<dyn FnOnce(Option<T>) + Send>>,
    in_flight: Arc<InFlight>,
}

impl<T> Completion<T> {
    fn new(in_flight: &Arc<InFlight>, deliver: impl FnOnce(Option<T>) + Send + 'static) -> Self {
        in_flight.enter();
        Completion {
            deliver: Some(Box::new(deliver)),
            in_flight: Arc::clone(in_flight),
        }
    }

    fn complete(mut self, outcome: T) {
        if let Some(deliver) = self.deliver.take() {
            deliver(Some(outcome));
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(deliver) = self.deliver.take() {
            deliver(None);
        }
        self.in_flight.leave();
    }
}

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
        let entry = lookup(stream)?;
        // SAFETY: per the contract.
        let message = unsafe { args::bytes(message, message_len, "message")? };
        entry.state.check_size(message.len())?;
        let message = Bytes::copy_from_slice(message);
        let claim = claim(&entry.state, Half::Send)?;
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
            let outcome = claim.state().send(message).await;
            // Released before the callback, which may start the next send.
            drop(claim);
            completion.complete(outcome);
        });
        Ok(())
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
        let entry = lookup(stream)?;
        let claim = claim(&entry.state, Half::Recv)?;
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
            let message = claim.state().recv().await;
            drop(claim);
            completion.complete(message);
        });
        Ok(())
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
        let entry = lookup(stream)?;
        let claim = claim(&entry.state, Half::Recv)?;
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
            let response = claim.state().finish().await;
            drop(claim);
            completion.complete(response);
        });
        Ok(())
    })
}

fn spawn(entry: &StreamEntry, task: impl std::future::Future<Output = ()> + Send + 'static) {
    drop(entry.state.runtime.spawn(task));
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[test]
    fn a_completion_delivers_once_whether_completed_or_dropped() {
        let in_flight = Arc::new(InFlight::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = |seen: &Arc<Mutex<Vec<Option<u32>>>>| {
            let seen = Arc::clone(seen);
            move |outcome: Option<u32>| seen.lock().push(outcome)
        };
        let completed = Completion::new(&in_flight, record(&seen));
        let dropped = Completion::new(&in_flight, record(&seen));
        assert_eq!(in_flight.pending(), 2);
        completed.complete(7);
        assert_eq!(in_flight.pending(), 1);
        drop(dropped);
        assert_eq!(in_flight.pending(), 0);
        assert_eq!(*seen.lock(), vec![Some(7), None]);
    }
}
