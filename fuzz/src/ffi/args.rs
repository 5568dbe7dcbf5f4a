//! An operation's C arguments: strings (NULL, cut at a NUL, maybe not UTF-8), metadata
//! entries, the echo server's controls tamed, call options with bounded deadlines, targets
//! that stay on loopback, and which results the arguments alone allow.

use std::ffi::{c_char, CString};
use std::ptr;
use std::time::Duration;

use grpcpool::grpcpool_result::{self, *};
use grpcpool::*;
use grpcpool_core::fuzzing::{metadata_to_wire, parse_target, ParsedEndpoint};
use grpcpool_core::{ErrorKind, Metadata};
use grpcpool_testserver::{BIDI_PATH, CLIENT_STREAM_PATH, SERVER_STREAM_PATH, UNARY_PATH};

use super::checks::expect;
use super::input::{CallArgs, Form, Key, Method, Str, TargetChoice};
use super::peers::Server;
use super::world::World;
use super::{BOUND_MS, CLEAN_KEYS, KEYS, MISSING_SOCKET, UNIMPLEMENTED_PATH, UNREACHABLE};

/// The call options a call is made with, as far as its outcome goes.
pub(super) struct Chosen {
    pub(super) ptr: *const grpcpool_call_options_t,
    /// Only metadata that leaves an echo call's outcome alone.
    pub(super) clean: bool,
    /// The call's timeout; `None` for no deadline.
    pub(super) timeout: Option<Duration>,
}

/// Owned C arguments of a call.
pub(super) struct Args {
    pub(super) method: Option<CString>,
    pub(super) request: Vec<u8>,
    /// What `entries` points into.
    pub(super) _keys: Vec<Option<CString>>,
    pub(super) _values: Vec<Vec<u8>>,
    pub(super) entries: Vec<grpcpool_metadata_entry_t>,
    pub(super) timeout_ms: u32,
    /// Which errors the input may give, and whether one of them is certain.
    pub(super) errors: Vec<grpcpool_result>,
    pub(super) certain_error: bool,
    /// The error reading the method gives (NULL, not UTF-8).
    pub(super) method_error: Option<grpcpool_result>,
    /// An echo call whose outcome is known: OK with the request as the body.
    pub(super) echo: bool,
}

pub(super) fn c_string(text: &Str) -> Option<CString> {
    match text {
        Str::Null => None,
        Str::Text(bytes) => {
            let end = bytes
                .iter()
                .position(|&byte| byte == 0)
                .unwrap_or(bytes.len());
            Some(CString::new(&bytes[..end.min(64)]).unwrap_or_default())
        }
    }
}

/// The error the first string argument that is NULL or not UTF-8 gives, in the order the
/// library reads them; OK when all are fine.
pub(super) fn text_error(texts: &[&Option<CString>]) -> grpcpool_result {
    for text in texts {
        match text.as_ref().map(|text| text.to_str()) {
            None => return GRPCPOOL_NULL_ARGUMENT,
            Some(Err(_)) => return GRPCPOOL_INVALID_ARGUMENT,
            Some(Ok(_)) => {}
        }
    }
    GRPCPOOL_OK
}

pub(super) fn c_ptr(text: &Option<CString>) -> *const c_char {
    text.as_ref().map_or(ptr::null(), |text| text.as_ptr())
}

/// The result the C face gives for a core error.
pub(super) fn code_of(kind: ErrorKind) -> grpcpool_result {
    match kind {
        ErrorKind::InvalidTarget => GRPCPOOL_INVALID_TARGET,
        ErrorKind::InvalidMethod => GRPCPOOL_INVALID_METHOD,
        ErrorKind::InvalidMetadata => GRPCPOOL_INVALID_METADATA,
        ErrorKind::InvalidCompression => GRPCPOOL_INVALID_ARGUMENT,
        ErrorKind::MessageTooLarge => GRPCPOOL_MESSAGE_TOO_LARGE,
        ErrorKind::InvalidConfig => GRPCPOOL_INVALID_CONFIG,
        ErrorKind::Tls => GRPCPOOL_TLS_ERROR,
        ErrorKind::AcquireTimeout => GRPCPOOL_ACQUIRE_TIMEOUT,
        ErrorKind::Unavailable => GRPCPOOL_UNAVAILABLE,
        ErrorKind::PoolClosed => GRPCPOOL_POOL_CLOSED,
        ErrorKind::BlockingInAsync => GRPCPOOL_BLOCKING_IN_CALLBACK,
        ErrorKind::StreamClosed => GRPCPOOL_STREAM_CLOSED,
        ErrorKind::Busy => GRPCPOOL_BUSY,
        ErrorKind::Runtime => GRPCPOOL_RUNTIME_ERROR,
    }
}

/// The echo server's controls, tamed: short sleeps, few messages.
pub(super) fn tame(key: &[u8], value: &[u8]) -> Vec<u8> {
    let small = |limit: u8| {
        (value.first().copied().unwrap_or(0) % limit)
            .to_string()
            .into_bytes()
    };
    match key {
        b"x-sleep-ms" => small(10),
        b"x-count" => small(5),
        b"x-interval-ms" => small(5),
        _ => value.iter().copied().take(32).collect(),
    }
}

impl World {
    /// The C arguments of a call, and what its input alone says about its result.
    pub(super) fn args(&self, call: &CallArgs, for_stream: bool) -> Args {
        let mut errors = Vec::new();
        let mut valid = true;
        let mut method_error = None;
        let mut echo = !for_stream;
        let method = match &call.method {
            Method::Unary => Some(UNARY_PATH.to_owned()),
            Method::Bidi => Some(BIDI_PATH.to_owned()),
            Method::ServerStream => Some(SERVER_STREAM_PATH.to_owned()),
            Method::ClientStream => Some(CLIENT_STREAM_PATH.to_owned()),
            Method::Unimplemented => Some(UNIMPLEMENTED_PATH.to_owned()),
            Method::Text(text) => {
                valid = false;
                match c_string(text) {
                    None => method_error = Some(GRPCPOOL_NULL_ARGUMENT),
                    Some(text) => match text.to_str() {
                        // Whether the core takes it is for the call to say.
                        Ok(_) => errors.push(GRPCPOOL_INVALID_METHOD),
                        Err(_) => method_error = Some(GRPCPOOL_INVALID_ARGUMENT),
                    },
                }
                None
            }
        };
        echo &= matches!(call.method, Method::Unary);
        let method = match (&call.method, method) {
            (Method::Text(text), _) => c_string(text),
            (_, Some(method)) => Some(CString::new(method).expect("paths have no NUL")),
            (_, None) => None,
        };
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut metadata = Metadata::new();
        let mut metadata_known = true;
        let mut certain_error = method_error.is_some();
        errors.extend(method_error);
        // The `_with` forms take metadata from their options object instead.
        let metadata_entries = if matches!(call.form, Form::Plain) {
            &call.metadata[..]
        } else {
            &[]
        };
        for entry in metadata_entries.iter().take(4) {
            let key = match &entry.key {
                Key::Known(index) => {
                    Some(CString::new(KEYS[usize::from(*index) % KEYS.len()]).expect("no NUL"))
                }
                Key::Text(text) => c_string(text),
            };
            let value = key.as_ref().map_or_else(
                || entry.value.clone(),
                |key| tame(key.as_bytes(), &entry.value),
            );
            match key.as_ref().map(|key| key.to_str()) {
                None => {
                    valid = false;
                    certain_error = true;
                    metadata_known = false;
                    errors.push(GRPCPOOL_NULL_ARGUMENT);
                }
                Some(Err(_)) => {
                    valid = false;
                    certain_error = true;
                    metadata_known = false;
                    errors.push(GRPCPOOL_INVALID_ARGUMENT);
                }
                Some(Ok(text)) => {
                    echo &= CLEAN_KEYS.contains(&text);
                    if text.ends_with("-bin") {
                        metadata.insert_binary(text, value.clone());
                    } else {
                        match String::from_utf8(value.clone()) {
                            Ok(ascii) => {
                                metadata.insert_ascii(text, ascii);
                            }
                            Err(_) => {
                                valid = false;
                                certain_error = true;
                                metadata_known = false;
                                errors.push(GRPCPOOL_INVALID_METADATA);
                            }
                        }
                    }
                }
            }
            keys.push(key);
            values.push(value);
        }
        if metadata_known {
            if let Err(error) = metadata_to_wire(&metadata) {
                valid = false;
                certain_error = true;
                errors.push(code_of(error.kind()));
            }
        }
        let entries = keys
            .iter()
            .zip(&values)
            .map(|(key, value)| grpcpool_metadata_entry_t {
                key: c_ptr(key),
                value: if value.is_empty() {
                    ptr::null()
                } else {
                    value.as_ptr()
                },
                value_len: value.len(),
            })
            .collect();
        let request: Vec<u8> = call.request.iter().copied().take(64).collect();
        echo &= valid;
        Args {
            method,
            request,
            _keys: keys,
            _values: values,
            entries,
            timeout_ms: 0,
            errors,
            certain_error,
            method_error,
            echo,
        }
    }

    /// The options a call is made with: the input's, with the deadline bounded to
    /// [`BOUND_MS`] when `bound` (a call that may wait), or NULL, which `bound` replaces with
    /// a bounded options object. `plain_ms` is the timeout of the short form.
    ///
    /// # Safety
    /// The world's options pointers are live.
    pub(super) unsafe fn options(&mut self, form: Form, bound: bool, plain_ms: u32) -> Chosen {
        let limit = Duration::from_millis(u64::from(BOUND_MS));
        let index = match form {
            Form::Plain => {
                return Chosen {
                    ptr: ptr::null(),
                    clean: true,
                    timeout: (plain_ms != GRPCPOOL_NO_TIMEOUT)
                        .then(|| Duration::from_millis(u64::from(plain_ms))),
                }
            }
            Form::WithNull => None,
            Form::With(index) => Self::pick(&self.options, index),
        };
        match index {
            None if !bound => Chosen {
                ptr: ptr::null(),
                clean: true,
                timeout: None,
            },
            None => {
                let bounded = *self.bounded.get_or_insert_with(|| {
                    let options = grpcpool_call_options_new();
                    // SAFETY: a new, live options object.
                    let rc = unsafe { grpcpool_call_options_set_timeout_ms(options, BOUND_MS) };
                    expect(rc, &[GRPCPOOL_OK], "set_timeout_ms");
                    options
                });
                Chosen {
                    ptr: bounded.cast_const(),
                    clean: true,
                    timeout: Some(limit),
                }
            }
            Some(index) => {
                let entry = &mut self.options[index];
                if bound && entry.timeout.is_none_or(|timeout| timeout > limit) {
                    // SAFETY: a live options object.
                    let rc = unsafe { grpcpool_call_options_set_timeout_ms(entry.ptr, BOUND_MS) };
                    expect(rc, &[GRPCPOOL_OK], "set_timeout_ms");
                    entry.timeout = Some(limit);
                }
                Chosen {
                    ptr: entry.ptr.cast_const(),
                    clean: entry.clean,
                    timeout: entry.timeout,
                }
            }
        }
    }

    /// The expected outcome of a `_with` call's options: invalid metadata is refused by the
    /// call.
    pub(super) fn options_errors(&self, form: Form) -> Option<grpcpool_result> {
        let Form::With(index) = form else {
            return None;
        };
        let index = Self::pick(&self.options, index)?;
        metadata_to_wire(&self.options[index].metadata)
            .err()
            .map(|error| code_of(error.kind()))
    }

    /// What a call on a live lease or pool may give: its input's errors, a closed pool, or OK.
    pub(super) fn call_results(
        &self,
        args: &Args,
        form: Form,
        pool: usize,
    ) -> Vec<grpcpool_result> {
        let mut allowed = args.errors.clone();
        let options_error = self.options_errors(form);
        allowed.extend(options_error);
        let entry = &self.pools[pool];
        if entry.closed {
            allowed.push(GRPCPOOL_POOL_CLOSED);
        } else if !args.certain_error && options_error.is_none() {
            allowed.push(GRPCPOOL_OK);
        }
        if !entry.default {
            allowed.push(GRPCPOOL_MESSAGE_TOO_LARGE);
        }
        allowed
    }
}

pub(super) fn data(bytes: &[u8]) -> *const u8 {
    if bytes.is_empty() {
        ptr::null()
    } else {
        bytes.as_ptr()
    }
}

pub(super) fn entries(args: &Args) -> *const grpcpool_metadata_entry_t {
    if args.entries.is_empty() {
        ptr::null()
    } else {
        args.entries.as_ptr()
    }
}

/// The target string for a choice, and the error it must give (none when it is valid).
/// `None` for a target that would make the pool resolve names or dial beyond loopback.
pub(super) fn target_text(
    choice: &TargetChoice,
    server: &Server,
) -> Option<(Option<CString>, Option<grpcpool_result>)> {
    match choice {
        TargetChoice::Server => Some((Some(server.target.clone()), None)),
        TargetChoice::HangUp => Some((Some(server.hang_up.clone()), None)),
        TargetChoice::Unreachable => Some((Some(UNREACHABLE.to_owned()), None)),
        TargetChoice::MissingSocket => Some((Some(MISSING_SOCKET.to_owned()), None)),
        TargetChoice::Text(text) => {
            let text = c_string(text);
            let error = match text.as_ref().map(|text| text.to_str()) {
                None => Some(GRPCPOOL_NULL_ARGUMENT),
                Some(Err(_)) => Some(GRPCPOOL_INVALID_ARGUMENT),
                Some(Ok(text)) => match parse_target(text) {
                    Err(_) => Some(GRPCPOOL_INVALID_TARGET),
                    Ok(parsed) => {
                        let local = parsed.endpoints.iter().all(|endpoint| match endpoint {
                            ParsedEndpoint::Tcp { host, .. } => {
                                host == "127.0.0.1" || host == "::1"
                            }
                            ParsedEndpoint::Unix(_) => true,
                        });
                        if !local || parsed.tls {
                            return None;
                        }
                        None
                    }
                },
            };
            Some((text, error))
        }
    }
}
