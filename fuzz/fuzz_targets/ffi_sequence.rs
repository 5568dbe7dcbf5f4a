//! Fuzzes the C ABI as a C program would use it, the idea of gRPC C-core's api_fuzzer: each
//! input is a sequence of up to 64 calls into `libgrpcpool` (the grpcpool-ffi crate, as in
//! include/grpcpool.h) against an in-process echo server (grpcpool-testserver on 127.0.0.1,
//! started once per fuzz process). The calls make and free configs, call options and pools,
//! shut pools down, acquire and release leases, make unary calls (blocking and async with
//! callbacks, with and without call options, on leases and one-shot), cancel calls, open
//! streams and send, half-close, receive, read headers, cancel, finish and free them, read
//! stats and JSON, and hand in handles that are live, stale (released, freed, their pool
//! freed), forged (random or bit-flipped), of another kind, or 0, and NULL pointers.
//!
//! It checks that:
//! - nothing crashes, panics (anywhere: libFuzzer aborts on any panic) or trips ASan;
//! - every call returns a documented result, one the header names, and every result other
//!   than OK leaves a non-empty `grpcpool_last_error()`;
//! - a stale, forged or other-kind handle gives `GRPCPOOL_INVALID_HANDLE` (0 to
//!   `grpcpool_stream_free` is ignored), and NULL where a pointer is required gives
//!   `GRPCPOOL_NULL_ARGUMENT`;
//! - the C setters agree with the core: `grpcpool_config_set` accepts exactly what
//!   `Config::set_text` does, `grpcpool_pool_new` exactly the configs `Pool::new` does;
//! - a call with a timeout of 0 ends DEADLINE_EXCEEDED; a clean call to the echo method on
//!   a pool with the default config comes back OK with the request as its body;
//! - responses, messages and metadata lists read back consistently through their
//!   accessors, and NULL accessors give the documented defaults;
//! - every async operation that started runs its callback exactly once (by the time its
//!   pool is freed), one that did not start never does, a cancelled call's callback sees
//!   CANCELLED, and blocking functions called from a callback give
//!   `GRPCPOOL_BLOCKING_IN_CALLBACK`;
//! - at the end of each input everything it made is freed, and every handle it held is
//!   then `GRPCPOOL_INVALID_HANDLE`, so no state leaks into the next input.
//!
//! Inputs stay fast: timeouts are a few milliseconds, messages tiny, and every stream and
//! every call that could wait for something has a deadline of at most 100 ms; settings that
//! would make a pool start many threads or connections are left out.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|ops: Vec<grpcpool_fuzz::ffi::Op>| grpcpool_fuzz::ffi::run(&ops));
