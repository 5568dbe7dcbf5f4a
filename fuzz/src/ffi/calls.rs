//! Unary calls: blocking and async, on leases and one-shot, in their short and `_with`
//! forms, and cancellation. Each result is one the input allows; responses are checked, a
//! timeout of 0 must end DEADLINE_EXCEEDED and a clean call to the echo method on a default
//! pool must come back OK with the request as its body.

use std::ffi::CStr;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use grpcpool::grpcpool_result::{self, *};
use grpcpool::*;

use super::args::{c_ptr, data, entries, target_text, Args, Chosen};
use super::checks::{check_response, expect, on_unary, Slot};
use super::input::{AsyncArgs, CallArgs, CallOp, Form, Handle, Ms, TargetChoice};
use super::peers::Server;
use super::world::{CallEntry, Is, World};
use super::BOUND_MS;

impl World {
    /// Unary calls and their cancellation.
    ///
    /// # Safety
    /// The world's pointers are live.
    pub(super) unsafe fn call_op(&mut self, op: &CallOp, server: &Server) {
        // SAFETY (every call below): pointers come from the world (live) or are NULL, strings
        // are NUL-terminated and outlive the call, out-parameters point to locals.
        unsafe {
            match op {
                CallOp::OnLease { lease, call } => self.lease_unary(*lease, call),
                CallOp::OneShot { pool, target, call } => {
                    self.pool_unary(*pool, target, call, server)
                }
                CallOp::OnLeaseAsync {
                    lease,
                    call,
                    on_done,
                } => self.lease_unary_async(*lease, call, *on_done),
                CallOp::OneShotAsync {
                    pool,
                    target,
                    call,
                    on_done,
                } => self.pool_unary_async(*pool, target, call, *on_done, server),
                CallOp::Cancel { call } => {
                    let (handle, is) = self.call(*call);
                    let rc = grpcpool_call_cancel(handle);
                    match is {
                        Is::Invalid => {
                            expect(rc, &[GRPCPOOL_INVALID_HANDLE], "cancel of a dead call")
                        }
                        _ => {
                            expect(
                                rc,
                                &[GRPCPOOL_OK, GRPCPOOL_INVALID_HANDLE],
                                "grpcpool_call_cancel",
                            );
                            if rc == GRPCPOOL_OK {
                                if let Some(call) =
                                    self.calls.iter().find(|call| call.handle == handle)
                                {
                                    self.cancelled.push(Arc::clone(&call.slot));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// # Safety
    /// The world's pointers are live.
    unsafe fn lease_unary(&mut self, lease: Handle, call: &CallArgs) {
        let (handle, is) = self.lease(lease);
        let pool_default = match is {
            Is::Live(index) => self.pools[self.leases[index].pool].default,
            _ => false,
        };
        let mut args = self.args(call, false);
        // No deadline only where nothing can make the call wait.
        args.timeout_ms = match call.timeout {
            Ms::None | Ms::Long if !pool_default => BOUND_MS,
            timeout => timeout.plain(),
        };
        let chosen = self.options(call.form, !pool_default, args.timeout_ms);
        let mut response = ptr::null_mut();
        let out = if call.null_out {
            ptr::null_mut()
        } else {
            &mut response as *mut *mut grpcpool_response_t
        };
        // SAFETY: arguments from `args`, alive for the call.
        let rc = unsafe {
            match call.form {
                Form::Plain => grpcpool_lease_unary(
                    handle,
                    c_ptr(&args.method),
                    data(&args.request),
                    args.request.len(),
                    entries(&args),
                    args.entries.len(),
                    args.timeout_ms,
                    out,
                ),
                _ => grpcpool_lease_unary_with(
                    handle,
                    c_ptr(&args.method),
                    data(&args.request),
                    args.request.len(),
                    chosen.ptr,
                    out,
                ),
            }
        };
        let allowed = match is {
            _ if call.null_out => vec![GRPCPOOL_NULL_ARGUMENT],
            Is::Invalid | Is::Unknown => vec![GRPCPOOL_INVALID_HANDLE],
            Is::Live(index) => self.call_results(&args, call.form, self.leases[index].pool),
        };
        expect(rc, &allowed, "grpcpool_lease_unary");
        if rc == GRPCPOOL_OK {
            // SAFETY: a response the caller owns.
            unsafe { self.check_call(response, &args, &chosen, pool_default) };
        } else {
            assert!(
                response.is_null(),
                "an out-parameter was written on failure"
            );
        }
    }

    /// Checks a blocking call's response: consistent accessors; DEADLINE_EXCEEDED for a
    /// timeout of 0; the echo for a clean call on a default pool.
    ///
    /// # Safety
    /// `response` is a live response the caller owns; it is freed here.
    unsafe fn check_call(
        &self,
        response: *mut grpcpool_response_t,
        args: &Args,
        chosen: &Chosen,
        pool_default: bool,
    ) {
        // SAFETY (accessors): a live response.
        unsafe {
            check_response(response);
            let code = grpcpool_response_code(response);
            if chosen.timeout == Some(Duration::ZERO) {
                assert_eq!(code, 4, "a timeout of 0 must be DEADLINE_EXCEEDED");
            }
            let no_short_deadline = chosen
                .timeout
                .is_none_or(|timeout| timeout >= Duration::from_secs(5));
            if args.echo && chosen.clean && pool_default && no_short_deadline {
                let body = grpcpool_response_body(response);
                let body = if body.len == 0 {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(body.data, body.len)
                };
                let message = CStr::from_ptr(grpcpool_response_message(response))
                    .to_string_lossy()
                    .into_owned();
                assert_eq!(code, 0, "a clean echo call failed: {message}");
                assert_eq!(
                    body,
                    args.request.as_slice(),
                    "the echo's body is not the request"
                );
            }
            grpcpool_response_free(response);
        }
    }

    /// # Safety
    /// The world's pointers are live.
    unsafe fn pool_unary(
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
        let to_server = matches!(target, TargetChoice::Server);
        let pool_default = pool.is_some_and(|index| self.pools[index].default);
        let mut args = self.args(call, false);
        args.echo &= to_server;
        let unbounded_ok = pool_default && to_server;
        args.timeout_ms = match call.timeout {
            Ms::None | Ms::Long if !unbounded_ok => BOUND_MS,
            timeout => timeout.plain(),
        };
        let chosen = self.options(call.form, !unbounded_ok, args.timeout_ms);
        let mut response = ptr::null_mut();
        let out = if call.null_out {
            ptr::null_mut()
        } else {
            &mut response as *mut *mut grpcpool_response_t
        };
        let pool_ptr = self.pool_ptr(pool);
        // SAFETY: arguments alive for the call.
        let rc = unsafe {
            match call.form {
                Form::Plain => grpcpool_unary(
                    pool_ptr,
                    c_ptr(&target_text),
                    c_ptr(&args.method),
                    data(&args.request),
                    args.request.len(),
                    entries(&args),
                    args.entries.len(),
                    args.timeout_ms,
                    out,
                ),
                _ => grpcpool_unary_with(
                    pool_ptr,
                    c_ptr(&target_text),
                    c_ptr(&args.method),
                    data(&args.request),
                    args.request.len(),
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
                if target_error.is_some() {
                    allowed.retain(|&rc| rc != GRPCPOOL_OK);
                }
                allowed
            }
            None => unreachable!("handled above"),
        };
        expect(rc, &allowed, "grpcpool_unary");
        if rc == GRPCPOOL_OK {
            // SAFETY: a response the caller owns.
            unsafe { self.check_call(response, &args, &chosen, pool_default && to_server) };
        }
    }

    /// # Safety
    /// The world's pointers are live.
    unsafe fn lease_unary_async(&mut self, lease: Handle, call: &CallArgs, on_done: AsyncArgs) {
        let (handle, is) = self.lease(lease);
        let pool = match is {
            Is::Live(index) => Some(self.leases[index].pool),
            _ => None,
        };
        let mut args = self.args(call, false);
        args.timeout_ms = call.timeout.bounded();
        let chosen = self.options(call.form, true, args.timeout_ms);
        let slot = Arc::new(Slot::default());
        if on_done.probe {
            *slot
                .probe_pool
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) =
                pool.map(|index| self.pools[index].ptr as usize);
        }
        let callback: grpcpool_unary_callback_t = if on_done.null_callback {
            None
        } else {
            Some(on_unary)
        };
        let mut call_handle = 0;
        let out_call = if on_done.null_out_call {
            ptr::null_mut()
        } else {
            &mut call_handle as *mut u64
        };
        // SAFETY: arguments alive for the call.
        let rc = unsafe {
            match call.form {
                Form::Plain => grpcpool_lease_unary_async(
                    handle,
                    c_ptr(&args.method),
                    data(&args.request),
                    args.request.len(),
                    entries(&args),
                    args.entries.len(),
                    args.timeout_ms,
                    callback,
                    slot.user_data(),
                    out_call,
                ),
                _ => grpcpool_lease_unary_async_with(
                    handle,
                    c_ptr(&args.method),
                    data(&args.request),
                    args.request.len(),
                    chosen.ptr,
                    callback,
                    slot.user_data(),
                    out_call,
                ),
            }
        };
        let allowed = match pool {
            None => vec![GRPCPOOL_INVALID_HANDLE],
            Some(pool) => {
                let mut allowed = self.call_results(&args, call.form, pool);
                if on_done.null_callback {
                    allowed.push(GRPCPOOL_NULL_ARGUMENT);
                    allowed.retain(|&rc| rc != GRPCPOOL_OK);
                }
                allowed
            }
        };
        expect(rc, &allowed, "grpcpool_lease_unary_async");
        self.started_call(rc, slot, call_handle, on_done);
    }

    fn started_call(
        &mut self,
        rc: grpcpool_result,
        slot: Arc<Slot>,
        handle: u64,
        on_done: AsyncArgs,
    ) {
        if rc == GRPCPOOL_OK && !on_done.null_out_call {
            assert_ne!(handle, 0, "an async call without a handle");
            if on_done.cancel {
                let cancelled = grpcpool_call_cancel(handle);
                expect(
                    cancelled,
                    &[GRPCPOOL_OK, GRPCPOOL_INVALID_HANDLE],
                    "cancel right after the start",
                );
                if cancelled == GRPCPOOL_OK {
                    self.cancelled.push(Arc::clone(&slot));
                }
            }
            self.calls.push(CallEntry {
                handle,
                slot: Arc::clone(&slot),
            });
        }
        self.track(rc, slot, "unary call");
    }

    /// # Safety
    /// The world's pointers are live.
    unsafe fn pool_unary_async(
        &mut self,
        pool: Option<u8>,
        target: &TargetChoice,
        call: &CallArgs,
        on_done: AsyncArgs,
        server: &Server,
    ) {
        let pool = self.pool(pool);
        let Some((target_text, target_error)) = target_text(target, server) else {
            return;
        };
        let mut args = self.args(call, false);
        args.timeout_ms = call.timeout.bounded();
        let chosen = self.options(call.form, true, args.timeout_ms);
        let slot = Arc::new(Slot::default());
        if on_done.probe {
            *slot
                .probe_pool
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) =
                pool.map(|index| self.pools[index].ptr as usize);
        }
        let callback: grpcpool_unary_callback_t = if on_done.null_callback {
            None
        } else {
            Some(on_unary)
        };
        let mut call_handle = 0;
        let out_call = if on_done.null_out_call {
            ptr::null_mut()
        } else {
            &mut call_handle as *mut u64
        };
        let pool_ptr = self.pool_ptr(pool);
        // SAFETY: arguments alive for the call.
        let rc = unsafe {
            match call.form {
                Form::Plain => grpcpool_unary_async(
                    pool_ptr,
                    c_ptr(&target_text),
                    c_ptr(&args.method),
                    data(&args.request),
                    args.request.len(),
                    entries(&args),
                    args.entries.len(),
                    args.timeout_ms,
                    callback,
                    slot.user_data(),
                    out_call,
                ),
                _ => grpcpool_unary_async_with(
                    pool_ptr,
                    c_ptr(&target_text),
                    c_ptr(&args.method),
                    data(&args.request),
                    args.request.len(),
                    chosen.ptr,
                    callback,
                    slot.user_data(),
                    out_call,
                ),
            }
        };
        let allowed = match pool {
            None => vec![GRPCPOOL_NULL_ARGUMENT],
            Some(index) => {
                let mut allowed = self.call_results(&args, call.form, index);
                allowed.extend(target_error);
                if on_done.null_callback {
                    allowed.push(GRPCPOOL_NULL_ARGUMENT);
                }
                if on_done.null_callback || target_error.is_some() {
                    allowed.retain(|&rc| rc != GRPCPOOL_OK);
                }
                allowed
            }
        };
        expect(rc, &allowed, "grpcpool_unary_async");
        self.started_call(rc, slot, call_handle, on_done);
    }
}
