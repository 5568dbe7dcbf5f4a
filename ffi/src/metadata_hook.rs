//! Metadata hooks from C: a C callback adapted to core's `MetadataHook`, which runs it for
//! every attempt of every call; the sink it adds entries to; and the setters on the config
//! and the call options.

use std::ffi::{c_char, c_void, CString};

use grpcpool_core::{Code, HookContext, HookError, Metadata, MetadataHook, MetadataValue};

use crate::args::{self, grpcpool_metadata_entry_t, non_null};
use crate::call_options::grpcpool_call_options_t;
use crate::config::grpcpool_config_t;
use crate::error::{ffi_boundary, grpcpool_result, FfiError};

/// Adds request metadata to one attempt of a call, with `grpcpool_metadata_sink_add`; set
/// with `grpcpool_config_set_metadata_hook` or `grpcpool_call_options_set_metadata_hook`.
///
/// It runs once per attempt (each retry and hedge runs it again), just before the attempt's
/// request goes out, on a grpcpool worker thread for every call, blocking or async, and every
/// stream (a blocking call runs as a task on a worker while the caller waits). It may run on
/// several threads at once, so it must be thread-safe; it must return
/// quickly and must not block (hand out a token refreshed elsewhere), and it must not call
/// blocking grpcpool functions (they fail with `GRPCPOOL_BLOCKING_IN_CALLBACK`). `target` is
/// the target as the call named it, `method` the method path; both, and `sink`, are valid only
/// until it returns. `user_data` is the pointer given with the hook.
///
/// It returns an `int` so that any value is safe: `GRPCPOOL_OK` (0) sends the entries added;
/// anything else fails the attempt (it is never sent) with status UNAVAILABLE, as gRPC fails a call whose call credentials fail; `grpcpool_metadata_sink_fail`
/// chooses the status instead. An entry the sink refuses fails the attempt with INTERNAL. The
/// method's retry policy may retry a failed attempt like any other.
#[allow(non_camel_case_types)]
pub type grpcpool_metadata_hook_t = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        target: *const c_char,
        method: *const c_char,
        sink: *mut grpcpool_metadata_sink_t,
    ) -> i32,
>;

/// Lets go of a hook's `user_data`: called exactly once, when the library no longer needs it
/// (the hook was replaced, or the config or options holding it and every pool and call made
/// with them are gone), on whichever thread let go last: the caller's or a grpcpool worker.
#[allow(non_camel_case_types)]
pub type grpcpool_user_data_release_t = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Where a metadata hook puts the entries it adds, valid only while the hook runs.
#[allow(non_camel_case_types)]
pub struct grpcpool_metadata_sink_t {
    metadata: *mut Metadata,
    failure: Option<HookError>,
}

/// A C hook and its user data, released when the last holder lets go.
struct CHook {
    hook: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const c_char,
        *mut grpcpool_metadata_sink_t,
    ) -> i32,
    user_data: *mut c_void,
    release: grpcpool_user_data_release_t,
}

// SAFETY: the hook's contract makes it callable from any thread, at once on several, with its
// user data; the library never reads the user data itself.
unsafe impl Send for CHook {}
// SAFETY: as above.
unsafe impl Sync for CHook {}

impl Drop for CHook {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the caller's function, for exactly this use, called once.
            unsafe { release(self.user_data) };
        }
    }
}

impl CHook {
    fn run(&self, context: &HookContext<'_>, metadata: &mut Metadata) -> Result<(), HookError> {
        // A NUL cannot be in a checked target or method path; if one were, the hook is told "".
        let target = CString::new(context.target).unwrap_or_default();
        let method = CString::new(context.method).unwrap_or_default();
        let mut sink = grpcpool_metadata_sink_t {
            metadata,
            failure: None,
        };
        // SAFETY: the caller's function with its user data; the strings and the sink live
        // until it returns.
        let result =
            unsafe { (self.hook)(self.user_data, target.as_ptr(), method.as_ptr(), &mut sink) };
        if let Some(failure) = sink.failure {
            return Err(failure);
        }
        if result != grpcpool_result::GRPCPOOL_OK as i32 {
            return Err(HookError::new(format!("the hook returned {result}")));
        }
        Ok(())
    }
}

/// Core's hook for a C hook, `None` when `hook` is NULL (then `release`, if any, runs now).
fn adapt(
    hook: grpcpool_metadata_hook_t,
    user_data: *mut c_void,
    release: grpcpool_user_data_release_t,
) -> Option<MetadataHook> {
    let adapted = CHook {
        hook: hook?,
        user_data,
        release,
    };
    Some(MetadataHook::new(move |context, metadata| {
        adapted.run(context, metadata)
    }))
}

/// Releases `user_data` when no hook was taken (a NULL hook, or a setter that failed).
fn release_unused(user_data: *mut c_void, release: grpcpool_user_data_release_t) {
    if let Some(release) = release {
        // SAFETY: the caller's function, for exactly this use, called once.
        unsafe { release(user_data) };
    }
}

/// Sets the pool's metadata hook: `hook(user_data, target, method, sink)` adds metadata (an
/// auth token, say) to every attempt of every call and stream of pools made from this config,
/// before a call's own hook. NULL removes it (and `release(user_data)` runs at once). `release(user_data)` (may be NULL) runs once
/// when the library lets go of `user_data`: after the hook is replaced, or once the config and
/// every pool made from it are freed and their calls over. Until then `user_data` must stay
/// valid. On an error result (NULL config) `release` runs at once. See
/// `grpcpool_metadata_hook_t` for the thread the hook runs on and what its failure does.
///
/// # Safety
/// `config` is NULL or a live config; `hook` and `release` are NULL or valid functions.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_metadata_hook(
    config: *mut grpcpool_config_t,
    hook: grpcpool_metadata_hook_t,
    user_data: *mut c_void,
    release: grpcpool_user_data_release_t,
) -> grpcpool_result {
    if config.is_null() {
        release_unused(user_data, release);
    }
    ffi_boundary!({
        non_null(config, "config")?;
        // SAFETY: non-NULL, from grpcpool_config_new, not shared across threads per its docs.
        let config = unsafe { &mut *config };
        config.config.metadata_hook = adapt(hook, user_data, release);
        if hook.is_none() {
            release_unused(user_data, release);
        }
        Ok(())
    })
}

/// Sets the call's own metadata hook, run for every attempt after the pool's; NULL removes
/// it. Calls started with these options keep the hook until they end; `release(user_data)`
/// (may be NULL) runs once when the options are freed (or the hook replaced) and every call
/// started with them is over. As `grpcpool_config_set_metadata_hook` otherwise.
///
/// # Safety
/// `options` is NULL or a live options object; `hook` and `release` are NULL or valid
/// functions.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_call_options_set_metadata_hook(
    options: *mut grpcpool_call_options_t,
    hook: grpcpool_metadata_hook_t,
    user_data: *mut c_void,
    release: grpcpool_user_data_release_t,
) -> grpcpool_result {
    if options.is_null() {
        release_unused(user_data, release);
    }
    ffi_boundary!({
        non_null(options, "options")?;
        // SAFETY: non-NULL, from grpcpool_call_options_new, not shared across threads.
        let options = unsafe { &mut *options };
        options.set_metadata_hook(adapt(hook, user_data, release));
        if hook.is_none() {
            release_unused(user_data, release);
        }
        Ok(())
    })
}

/// Adds one entry to the attempt's metadata (`value_len` bytes, copied; NULL allowed when 0):
/// keys ending in `-bin` take any bytes, others printable ASCII; gRPC's own keys (`grpc-*`,
/// `content-type`, ...) are refused. A refused entry gives `GRPCPOOL_INVALID_METADATA` (or
/// `GRPCPOOL_NULL_ARGUMENT`) and fails the attempt with INTERNAL, whatever the hook returns.
/// Only during the hook.
///
/// # Safety
/// `sink` is NULL or the sink the running hook was given; `key` is NULL or NUL-terminated;
/// `value` covers `value_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_metadata_sink_add(
    sink: *mut grpcpool_metadata_sink_t,
    key: *const c_char,
    value: *const u8,
    value_len: usize,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(sink, "sink")?;
        // SAFETY: non-NULL, the running hook's sink per the contract.
        let sink = unsafe { &mut *sink };
        let entry = grpcpool_metadata_entry_t {
            key,
            value,
            value_len,
        };
        // SAFETY: one entry whose pointers follow this function's contract.
        let checked = unsafe { args::metadata(&entry, 1) }
            .and_then(|added| added.validate().map(|()| added).map_err(FfiError::from));
        let added = match checked {
            Ok(added) => added,
            Err(error) => {
                if sink.failure.is_none() {
                    sink.failure = Some(HookError::invalid_metadata(error.message.clone()));
                }
                return Err(error);
            }
        };
        // SAFETY: the metadata the running hook fills, alive until it returns.
        let metadata = unsafe { &mut *sink.metadata };
        for (key, value) in added.iter() {
            match value {
                MetadataValue::Ascii(text) => metadata.insert_ascii(key, text.clone()),
                MetadataValue::Binary(bytes) => metadata.insert_binary(key, bytes.clone()),
            };
        }
        Ok(())
    })
}

/// Fails the attempt with gRPC status `code` (1 to 16; UNAUTHENTICATED (16) for a token that
/// cannot be had, say) and `message` (NULL for none), whatever the hook returns. As gRPC A54
/// has it for call credentials, the codes kept for the control plane (INVALID_ARGUMENT,
/// NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, DATA_LOSS) become
/// INTERNAL, as does a code outside 1..16 (which also gives `GRPCPOOL_INVALID_ARGUMENT`).
/// When the attempt has already failed (a refused entry, an earlier call) the first failure
/// stands. Only during the hook.
///
/// # Safety
/// `sink` is NULL or the sink the running hook was given; `message` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_metadata_sink_fail(
    sink: *mut grpcpool_metadata_sink_t,
    code: i32,
    message: *const c_char,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(sink, "sink")?;
        // SAFETY: non-NULL, the running hook's sink per the contract.
        let sink = unsafe { &mut *sink };
        let message = if message.is_null() {
            String::new()
        } else {
            // SAFETY: non-NULL and NUL-terminated per the contract.
            unsafe { args::text(message, "message") }
                .unwrap_or("(not UTF-8)")
                .to_owned()
        };
        if sink.failure.is_some() {
            // The first failure stands: a refused entry is not hidden by a later status.
            return Ok(());
        }
        if !(1..=16).contains(&code) {
            sink.failure = Some(HookError::with_code(
                Code::Internal,
                format!("the hook failed with status code {code}, not one of 1..16: {message}"),
            ));
            return Err(FfiError::new(
                grpcpool_result::GRPCPOOL_INVALID_ARGUMENT,
                format!("status code {code} is not one of 1..16"),
            ));
        }
        sink.failure = Some(HookError::with_code(Code::from_i32(code), message));
        Ok(())
    })
}
