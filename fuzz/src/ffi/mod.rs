//! The C-ABI call-sequence fuzzer behind `fuzz_targets/ffi_sequence.rs` (whose doc comment
//! says what it checks): each input is a list of operations on `libgrpcpool`'s C API, run
//! against in-process peers; everything an input makes is freed at its end.

mod args;
mod calls;
mod checks;
mod input;
mod peers;
mod setup;
mod streams;
mod world;

use std::ffi::{c_char, CStr};
use std::ptr;

use grpcpool::grpcpool_result::*;
use grpcpool::*;

pub use input::Op;

use checks::{check_json, expect, null_accessors, on_log};
use input::MiscOp;
use peers::server;
use world::World;

/// The most operations one input runs.
pub(crate) const MAX_OPS: usize = 64;
/// The longest deadline a stream, or a call that may wait, is given.
pub(crate) const BOUND_MS: u32 = 100;
/// A target nothing listens on: connections are refused at once.
pub(crate) const UNREACHABLE: &CStr = c"http://127.0.0.1:1";
/// A unix socket that does not exist.
pub(crate) const MISSING_SOCKET: &CStr = c"unix:/nonexistent/grpcpool-fuzz.sock";
/// A method the echo server does not serve.
pub(crate) const UNIMPLEMENTED_PATH: &str = "/grpcpool.test.Echo/Nope";
/// Metadata keys worth trying: plain, binary, the echo server's controls, reserved, invalid.
pub(crate) const KEYS: &[&str] = &[
    "x-a",
    "x-a-bin",
    "x-echo-a",
    "x-trailer-a",
    "x-trailer-b-bin",
    "x-status-code",
    "x-status-message",
    "x-status-details-bin",
    "x-sleep-ms",
    "x-count",
    "x-interval-ms",
    "x-response-compression",
    "grpc-timeout",
    "content-type",
    "X-Upper",
    "",
];
/// Keys that change nothing about an echo call's outcome.
pub(crate) const CLEAN_KEYS: &[&str] = &[
    "x-a",
    "x-a-bin",
    "x-echo-a",
    "x-trailer-a",
    "x-trailer-b-bin",
];

/// Runs one input: its first [`MAX_OPS`] operations, then frees everything and checks what
/// must hold once it is gone.
pub fn run(ops: &[Op]) {
    let server = server();
    let ops = &ops[..ops.len().min(MAX_OPS)];
    if crate::tracing() {
        eprintln!("{ops:#?}");
    }
    let mut world = World::default();
    for op in ops {
        // SAFETY: every pointer the world holds is live, every handle is only data.
        unsafe {
            match op {
                Op::Config(op) => world.config(op),
                Op::Options(op) => world.options_op(op),
                Op::Pool(op) => world.pool_op(op, server),
                Op::Call(op) => world.call_op(op, server),
                Op::Stream(op) => world.stream_op(op, server),
                Op::Misc(op) => world.misc(op),
            }
        }
    }
    // SAFETY: as above.
    unsafe { world.finish() };
}

impl World {
    /// Result names, the version, the settings JSON, the log callback, NULL accessors.
    ///
    /// # Safety
    /// The world's pointers are live.
    pub(super) unsafe fn misc(&mut self, op: &MiscOp) {
        // SAFETY (every call below): pointers come from the world (live) or are NULL, strings
        // are NUL-terminated and outlive the call, out-parameters point to locals.
        unsafe {
            match op {
                MiscOp::ResultName(code) => {
                    let name = CStr::from_ptr(grpcpool_result_name(*code));
                    let name = name.to_str().expect("result names are ASCII");
                    assert_eq!(
                        name == "GRPCPOOL_UNKNOWN",
                        !(0..=19).contains(code),
                        "result {code}: {name}"
                    );
                }
                MiscOp::Version => {
                    let version = CStr::from_ptr(grpcpool_version());
                    let expected = format!("{GRPCPOOL_VERSION_MAJOR}.{GRPCPOOL_VERSION_MINOR}.{GRPCPOOL_VERSION_PATCH}");
                    assert_eq!(
                        version.to_str().ok(),
                        Some(expected.as_str()),
                        "grpcpool_version"
                    );
                }
                MiscOp::SettingsJson { null_out } => {
                    let mut json: *mut c_char = ptr::null_mut();
                    let out = if *null_out {
                        ptr::null_mut()
                    } else {
                        &mut json as *mut *mut c_char
                    };
                    let rc = grpcpool_settings_json(out);
                    expect(
                        rc,
                        &[if *null_out {
                            GRPCPOOL_NULL_ARGUMENT
                        } else {
                            GRPCPOOL_OK
                        }],
                        "grpcpool_settings_json",
                    );
                    if rc == GRPCPOOL_OK {
                        check_json(json);
                    }
                }
                MiscOp::LogCallback { on, level } => {
                    let rc = grpcpool_set_log_callback(
                        if *on { Some(on_log) } else { None },
                        ptr::null_mut(),
                        *level,
                    );
                    expect(
                        rc,
                        &[GRPCPOOL_OK, GRPCPOOL_INVALID_ARGUMENT],
                        "grpcpool_set_log_callback",
                    );
                    self.logging |= *on;
                }
                MiscOp::NullAccessors => null_accessors(),
            }
        }
    }
}
