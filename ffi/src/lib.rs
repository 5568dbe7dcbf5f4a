//! The C ABI of grpcpool, built as `libgrpcpool.so` and `libgrpcpool.a`, described by the
//! generated `include/grpcpool.h`.
//!
//! Conventions (model: rustls-ffi): every export runs inside one panic boundary and checks its
//! pointers; results are a stable enum; out-parameters are written only on success; leases,
//! async calls and streams are generation-checked handles; each library object has one `_free` that accepts
//! NULL. A non-OK gRPC status is a response, not an error.
#![allow(unsafe_code)]

mod acquire_async;
mod args;
mod call_options;
mod calls;
mod completion;
mod config;
mod connectivity;
mod error;
mod handles;
mod leases;
mod log;
mod message;
mod metadata_hook;
mod pool;
mod registry;
mod response;
mod streams;
mod streams_async;

use std::ffi::c_char;

pub use acquire_async::{grpcpool_acquire_async, grpcpool_acquire_callback_t};
pub use args::{grpcpool_bytes_t, grpcpool_metadata_entry_t};
pub use call_options::{
    grpcpool_call_options_add_metadata, grpcpool_call_options_free, grpcpool_call_options_new,
    grpcpool_call_options_set, grpcpool_call_options_set_compression,
    grpcpool_call_options_set_timeout_ms, grpcpool_call_options_set_wait_for_ready,
    grpcpool_call_options_t, GRPCPOOL_NO_TIMEOUT,
};
pub use calls::{
    grpcpool_call_cancel, grpcpool_call_t, grpcpool_lease_unary, grpcpool_lease_unary_async,
    grpcpool_lease_unary_async_with, grpcpool_lease_unary_with, grpcpool_unary,
    grpcpool_unary_async, grpcpool_unary_async_with, grpcpool_unary_callback_t,
    grpcpool_unary_with,
};
pub use config::*;
pub use connectivity::{
    grpcpool_connectivity, grpcpool_pool_connectivity, grpcpool_pool_wait_connectivity_change,
};
pub use error::{grpcpool_last_error, grpcpool_result, grpcpool_result_name};
pub use leases::{grpcpool_acquire, grpcpool_acquire_at, grpcpool_lease_t, grpcpool_release};
pub use log::{grpcpool_log_callback_t, grpcpool_set_log_callback};
pub use message::{
    grpcpool_message_bytes, grpcpool_message_free, grpcpool_message_t, grpcpool_metadata_count,
    grpcpool_metadata_free, grpcpool_metadata_get, grpcpool_metadata_t,
};
pub use metadata_hook::{
    grpcpool_call_options_set_metadata_hook, grpcpool_config_set_metadata_hook,
    grpcpool_metadata_hook_t, grpcpool_metadata_sink_add, grpcpool_metadata_sink_fail,
    grpcpool_metadata_sink_t, grpcpool_user_data_release_t,
};
pub use pool::{
    grpcpool_pool_free, grpcpool_pool_leaks_json, grpcpool_pool_new, grpcpool_pool_shutdown,
    grpcpool_pool_stats_json, grpcpool_pool_t, grpcpool_string_free,
};
pub use response::*;
pub use streams::{
    grpcpool_lease_open_stream, grpcpool_lease_open_stream_with, grpcpool_open_stream,
    grpcpool_open_stream_with, grpcpool_stream_cancel, grpcpool_stream_close_send,
    grpcpool_stream_finish, grpcpool_stream_free, grpcpool_stream_headers, grpcpool_stream_recv,
    grpcpool_stream_send, grpcpool_stream_t,
};
pub use streams_async::{
    grpcpool_stream_finish_async, grpcpool_stream_finish_callback_t, grpcpool_stream_recv_async,
    grpcpool_stream_recv_callback_t, grpcpool_stream_send_async, grpcpool_stream_send_callback_t,
};

/// Major version of the library these declarations describe.
pub const GRPCPOOL_VERSION_MAJOR: u32 = 0;
/// Minor version of the library these declarations describe.
pub const GRPCPOOL_VERSION_MINOR: u32 = 1;
/// Patch version of the library these declarations describe.
pub const GRPCPOOL_VERSION_PATCH: u32 = 0;

/// The library's version, "MAJOR.MINOR.PATCH", from the library actually loaded (compare with
/// the `GRPCPOOL_VERSION_*` macros of the header compiled against). The string is static.
#[no_mangle]
pub extern "C" fn grpcpool_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_version_constants_match_cargo_toml() {
        let version =
            format!("{GRPCPOOL_VERSION_MAJOR}.{GRPCPOOL_VERSION_MINOR}.{GRPCPOOL_VERSION_PATCH}");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        // SAFETY: a static NUL-terminated string.
        let loaded = unsafe { std::ffi::CStr::from_ptr(grpcpool_version()) };
        assert_eq!(loaded.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
