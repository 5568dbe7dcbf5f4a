//! Streams: opened on leases and one-shot, then sent to, half-closed, received from (blocking
//! and async), read for headers, cancelled, finished and freed, with live, stale, forged and
//! other-kind handles. Every stream has a deadline, so a blocking receive cannot hang.

use std::ptr;
use std::sync::Arc;

use grpcpool::grpcpool_result::*;
use grpcpool::*;

use super::args::{c_ptr, entries, target_text};
use super::checks::{
    check_message, check_metadata, check_response, expect, on_finish, on_recv, on_send, Slot,
};
use super::input::{CallArgs, Form, Handle, StreamOp, TargetChoice};
use super::peers::Server;
use super::world::{Is, Live, World};

impl World {
    /// Stream operations.
    ///
    /// # Safety
    /// The world's pointers are live.
    pub(super) unsafe fn stream_op(&mut self, op: &StreamOp, server: &Server) {
        // SAFETY (every call below): pointers come from the world (live) or are NULL, strings
        // are NUL-terminated and outlive the call, out-parameters point to locals.
        unsafe {
            match op {
                StreamOp::OpenOnLease { lease, call } => self.lease_open_stream(*lease, call),
                StreamOp::Open { pool, target, call } => {
                    self.pool_open_stream(*pool, target, call, server)
                }
                StreamOp::Send {
                    stream,
                    message,
                    asynchronous,
                } => {
                    let (handle, is) = self.stream(*stream);
                    let message: Vec<u8> = message.iter().copied().take(64).collect();
                    let data = if message.is_empty() {
                        ptr::null()
                    } else {
                        message.as_ptr()
                    };
                    let live = [
                        GRPCPOOL_OK,
                        GRPCPOOL_STREAM_CLOSED,
                        GRPCPOOL_BUSY,
                        GRPCPOOL_MESSAGE_TOO_LARGE,
                    ];
                    if *asynchronous {
                        let slot = Arc::new(Slot::default());
                        let rc = grpcpool_stream_send_async(
                            handle,
                            data,
                            message.len(),
                            Some(on_send),
                            slot.user_data(),
                        );
                        self.track(rc, slot, "stream send");
                        let allowed: &[grpcpool_result] = if is == Is::Invalid {
                            &[GRPCPOOL_INVALID_HANDLE]
                        } else {
                            &live
                        };
                        expect(rc, allowed, "grpcpool_stream_send_async");
                    } else {
                        let rc = grpcpool_stream_send(handle, data, message.len());
                        let allowed: &[grpcpool_result] = if is == Is::Invalid {
                            &[GRPCPOOL_INVALID_HANDLE]
                        } else {
                            &live
                        };
                        expect(rc, allowed, "grpcpool_stream_send");
                    }
                }
                StreamOp::CloseSend { stream } => {
                    let (handle, is) = self.stream(*stream);
                    let rc = grpcpool_stream_close_send(handle);
                    expect(
                        rc,
                        &[if is == Is::Invalid {
                            GRPCPOOL_INVALID_HANDLE
                        } else {
                            GRPCPOOL_OK
                        }],
                        "grpcpool_stream_close_send",
                    );
                }
                StreamOp::Recv {
                    stream,
                    asynchronous,
                    null_out,
                } => {
                    let (handle, is) = self.stream(*stream);
                    if *asynchronous {
                        let slot = Arc::new(Slot::default());
                        let rc =
                            grpcpool_stream_recv_async(handle, Some(on_recv), slot.user_data());
                        self.track(rc, slot, "stream recv");
                        let allowed: &[grpcpool_result] = if is == Is::Invalid {
                            &[GRPCPOOL_INVALID_HANDLE]
                        } else {
                            &[GRPCPOOL_OK, GRPCPOOL_BUSY]
                        };
                        expect(rc, allowed, "grpcpool_stream_recv_async");
                    } else {
                        let mut message = ptr::null_mut();
                        let out = if *null_out {
                            ptr::null_mut()
                        } else {
                            &mut message as *mut *mut grpcpool_message_t
                        };
                        let rc = grpcpool_stream_recv(handle, out);
                        let allowed: &[grpcpool_result] = if *null_out {
                            &[GRPCPOOL_NULL_ARGUMENT]
                        } else if is == Is::Invalid {
                            &[GRPCPOOL_INVALID_HANDLE]
                        } else {
                            &[GRPCPOOL_OK, GRPCPOOL_BUSY]
                        };
                        expect(rc, allowed, "grpcpool_stream_recv");
                        check_message(message);
                        grpcpool_message_free(message);
                    }
                }
                StreamOp::Headers { stream, null_out } => {
                    let (handle, is) = self.stream(*stream);
                    let mut headers = ptr::null_mut();
                    let out = if *null_out {
                        ptr::null_mut()
                    } else {
                        &mut headers as *mut *mut grpcpool_metadata_t
                    };
                    let rc = grpcpool_stream_headers(handle, out);
                    let allowed: &[grpcpool_result] = if *null_out {
                        &[GRPCPOOL_NULL_ARGUMENT]
                    } else if is == Is::Invalid {
                        &[GRPCPOOL_INVALID_HANDLE]
                    } else {
                        &[GRPCPOOL_OK, GRPCPOOL_BUSY]
                    };
                    expect(rc, allowed, "grpcpool_stream_headers");
                    check_metadata(headers);
                    grpcpool_metadata_free(headers);
                }
                StreamOp::Cancel { stream } => {
                    let (handle, is) = self.stream(*stream);
                    let rc = grpcpool_stream_cancel(handle);
                    expect(
                        rc,
                        &[if is == Is::Invalid {
                            GRPCPOOL_INVALID_HANDLE
                        } else {
                            GRPCPOOL_OK
                        }],
                        "grpcpool_stream_cancel",
                    );
                }
                StreamOp::Finish {
                    stream,
                    asynchronous,
                    null_out,
                } => {
                    let (handle, is) = self.stream(*stream);
                    if *asynchronous {
                        let slot = Arc::new(Slot::default());
                        let rc =
                            grpcpool_stream_finish_async(handle, Some(on_finish), slot.user_data());
                        self.track(rc, slot, "stream finish");
                        let allowed: &[grpcpool_result] = if is == Is::Invalid {
                            &[GRPCPOOL_INVALID_HANDLE]
                        } else {
                            &[GRPCPOOL_OK, GRPCPOOL_BUSY]
                        };
                        expect(rc, allowed, "grpcpool_stream_finish_async");
                    } else {
                        let mut response = ptr::null_mut();
                        let out = if *null_out {
                            ptr::null_mut()
                        } else {
                            &mut response as *mut *mut grpcpool_response_t
                        };
                        let rc = grpcpool_stream_finish(handle, out);
                        let allowed: &[grpcpool_result] = if *null_out {
                            &[GRPCPOOL_NULL_ARGUMENT]
                        } else if is == Is::Invalid {
                            &[GRPCPOOL_INVALID_HANDLE]
                        } else {
                            &[GRPCPOOL_OK, GRPCPOOL_BUSY]
                        };
                        expect(rc, allowed, "grpcpool_stream_finish");
                        if rc == GRPCPOOL_OK {
                            check_response(response);
                            grpcpool_response_free(response);
                        }
                    }
                }
                StreamOp::Free { stream } => {
                    let (handle, is) = self.stream(*stream);
                    let rc = grpcpool_stream_free(handle);
                    match is {
                        Is::Live(index) => {
                            expect(rc, &[GRPCPOOL_OK], "free of a live stream");
                            let freed = self.streams.swap_remove(index);
                            self.stale_streams.push(freed.handle);
                        }
                        _ if handle == 0 => expect(rc, &[GRPCPOOL_OK], "grpcpool_stream_free(0)"),
                        _ => expect(rc, &[GRPCPOOL_INVALID_HANDLE], "free of a dead stream"),
                    }
                }
            }
        }
    }

    /// # Safety
    /// The world's pointers are live.
    unsafe fn lease_open_stream(&mut self, lease: Handle, call: &CallArgs) {
        let (handle, is) = self.lease(lease);
        let mut args = self.args(call, true);
        args.timeout_ms = call.timeout.bounded();
        let chosen = self.options(call.form, true, args.timeout_ms);
        let mut stream = 0;
        let out = if call.null_out {
            ptr::null_mut()
        } else {
            &mut stream as *mut u64
        };
        // SAFETY: arguments alive for the call.
        let rc = unsafe {
            match call.form {
                Form::Plain => grpcpool_lease_open_stream(
                    handle,
                    c_ptr(&args.method),
                    entries(&args),
                    args.entries.len(),
                    args.timeout_ms,
                    out,
                ),
                _ => grpcpool_lease_open_stream_with(handle, c_ptr(&args.method), chosen.ptr, out),
            }
        };
        let allowed = match is {
            _ if call.null_out => vec![GRPCPOOL_NULL_ARGUMENT],
            Is::Live(index) => {
                let mut allowed = self.call_results(&args, call.form, self.leases[index].pool);
                allowed.extend([GRPCPOOL_BUSY, GRPCPOOL_UNAVAILABLE]);
                allowed
            }
            _ => {
                // The method is read before the lease.
                vec![args.method_error.unwrap_or(GRPCPOOL_INVALID_HANDLE)]
            }
        };
        expect(rc, &allowed, "grpcpool_lease_open_stream");
        if rc == GRPCPOOL_OK {
            let Is::Live(index) = is else {
                unreachable!("checked above")
            };
            let pool = self.leases[index].pool;
            self.streams.push(Live {
                handle: stream,
                pool,
            });
        }
    }

    /// # Safety
    /// The world's pointers are live.
    unsafe fn pool_open_stream(
        &mut self,
        pool: Option<u8>,
        target: &TargetChoice,
        call: &CallArgs,
        server: &Server,
    ) {
        let pool = self.pool(pool);
        let Some((target_text, target_error)) = target_text(target, server) else {
            return;
        };
        let mut args = self.args(call, true);
        args.timeout_ms = call.timeout.bounded();
        let chosen = self.options(call.form, true, args.timeout_ms);
        let mut stream = 0;
        let out = if call.null_out {
            ptr::null_mut()
        } else {
            &mut stream as *mut u64
        };
        let pool_ptr = self.pool_ptr(pool);
        // SAFETY: arguments alive for the call.
        let rc = unsafe {
            match call.form {
                Form::Plain => grpcpool_open_stream(
                    pool_ptr,
                    c_ptr(&target_text),
                    c_ptr(&args.method),
                    entries(&args),
                    args.entries.len(),
                    args.timeout_ms,
                    out,
                ),
                _ => grpcpool_open_stream_with(
                    pool_ptr,
                    c_ptr(&target_text),
                    c_ptr(&args.method),
                    chosen.ptr,
                    out,
                ),
            }
        };
        let allowed = match pool {
            _ if pool.is_none() || call.null_out => vec![GRPCPOOL_NULL_ARGUMENT],
            Some(index) => {
                let mut allowed = self.call_results(&args, call.form, index);
                allowed.extend(target_error);
                allowed.extend([GRPCPOOL_UNAVAILABLE, GRPCPOOL_ACQUIRE_TIMEOUT]);
                if target_error.is_some() {
                    allowed.retain(|&rc| rc != GRPCPOOL_OK);
                }
                allowed
            }
            None => unreachable!("handled above"),
        };
        expect(rc, &allowed, "grpcpool_open_stream");
        if rc == GRPCPOOL_OK {
            let pool = pool.expect("an open on NULL cannot succeed");
            self.streams.push(Live {
                handle: stream,
                pool,
            });
        }
    }
}
