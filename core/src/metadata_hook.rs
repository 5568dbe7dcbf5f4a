//! Metadata hooks: code that adds request metadata (an auth token, say) to every attempt of a
//! call, set on the pool ([`Config::metadata_hook`](crate::Config::metadata_hook)) or on one
//! call ([`CallOptions::metadata_hook`](crate::CallOptions::metadata_hook)). They run as gRPC
//! call credentials do: once per attempt (configured retries, hedges and transparent retries
//! each get fresh metadata, since a token may have expired meanwhile), before the attempt's
//! request goes out.
//!
//! A hook that fails fails the attempt, as a call credentials failure does (gRPC A54, grpc-go):
//! UNAVAILABLE unless the hook gives a status; a status among the codes A54 keeps for the
//! control plane (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED,
//! OUT_OF_RANGE, DATA_LOSS) becomes INTERNAL. Metadata a hook adds that breaks gRPC's rules fails
//! the attempt with INTERNAL, as grpc-go fails a call whose metadata is invalid. A failed attempt
//! never reaches the server; the method's retry policy may try again, as for any status before
//! response headers.

use std::borrow::Cow;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use tonic::metadata::MetadataMap;

use crate::response::Response;
use crate::{Code, Metadata};

/// What a metadata hook is told about the attempt it adds metadata to.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct HookContext<'a> {
    /// The target as the call named it (`http://host:port`, ...).
    pub target: &'a str,
    /// The method path, `/package.Service/Method`.
    pub method: &'a str,
    /// Attempts of this call made before this one (retries and hedges; 0 for the first).
    pub previous_attempts: u32,
}

/// Why a metadata hook failed: the attempt ends with this status and is never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    code: Code,
    message: String,
}

impl HookError {
    /// A failure without a status of its own: the attempt ends with UNAVAILABLE, as gRPC ends
    /// one whose call credentials failed.
    pub fn new(message: impl Into<String>) -> HookError {
        HookError {
            code: Code::Unavailable,
            message: message.into(),
        }
    }

    /// A failure with the status the hook chose (UNAUTHENTICATED for a token that cannot be
    /// had, say). A54's control-plane codes and OK become INTERNAL.
    pub fn with_code(code: Code, message: impl Into<String>) -> HookError {
        let code = match code {
            Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss => Code::Internal,
            Code::Cancelled
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::PermissionDenied
            | Code::ResourceExhausted
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::Unauthenticated => code,
        };
        HookError {
            code,
            message: message.into(),
        }
    }

    /// Metadata the hook gave that gRPC does not allow (a reserved key, a value that is not
    /// printable ASCII): the attempt ends with INTERNAL.
    pub fn invalid_metadata(message: impl Into<String>) -> HookError {
        HookError {
            code: Code::Internal,
            message: message.into(),
        }
    }

    /// The status code the attempt ends with.
    pub fn code(&self) -> Code {
        self.code
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for HookError {}

type HookFn = dyn Fn(&HookContext<'_>, &mut Metadata) -> Result<(), HookError> + Send + Sync;

/// Adds request metadata to each attempt of a call: `hook(context, metadata)` appends entries
/// to `metadata` (which starts empty) or fails the attempt. Cheap to clone; clones share the
/// hook. It runs on whichever thread drives the call (the caller's for a blocking call, a
/// worker of the pool's runtime otherwise), possibly on several at once, so it must be quick
/// and must not block: hand out a token refreshed elsewhere. A panic in it fails the attempt
/// with INTERNAL.
#[derive(Clone)]
pub struct MetadataHook {
    hook: Arc<HookFn>,
}

impl MetadataHook {
    /// A hook running `hook`.
    pub fn new(
        hook: impl Fn(&HookContext<'_>, &mut Metadata) -> Result<(), HookError> + Send + Sync + 'static,
    ) -> MetadataHook {
        MetadataHook {
            hook: Arc::new(hook),
        }
    }

    /// Runs the hook, turning a panic into a failure.
    fn run(&self, context: &HookContext<'_>, metadata: &mut Metadata) -> Result<(), HookError> {
        std::panic::catch_unwind(AssertUnwindSafe(|| (self.hook)(context, metadata)))
            .unwrap_or_else(|_| Err(HookError::with_code(Code::Internal, "the hook panicked")))
    }
}

impl fmt::Debug for MetadataHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetadataHook")
    }
}

/// A call's hooks: the pool's, then the call's own, and the target they are told about.
#[derive(Debug, Clone)]
pub(crate) struct CallHooks {
    pool: Option<MetadataHook>,
    call: Option<MetadataHook>,
    target: String,
}

impl CallHooks {
    /// The hooks of a call; `None` (nothing to run per attempt) when there are none.
    pub(crate) fn of(
        pool: Option<&MetadataHook>,
        call: Option<&MetadataHook>,
    ) -> Option<Box<CallHooks>> {
        if pool.is_none() && call.is_none() {
            return None;
        }
        Some(Box::new(CallHooks {
            pool: pool.cloned(),
            call: call.cloned(),
            target: String::new(),
        }))
    }

    /// Names the target the call runs on, once it is known.
    pub(crate) fn bind(&mut self, target: &str) {
        if self.target != target {
            target.clone_into(&mut self.target);
        }
    }

    /// `base` with the hooks' entries after it, for the attempt after `previous_attempts`
    /// others; a failure as the status the attempt ends with.
    pub(crate) fn apply(
        &self,
        method: &str,
        previous_attempts: u32,
        base: &MetadataMap,
    ) -> Result<MetadataMap, HookError> {
        let context = HookContext {
            target: &self.target,
            method,
            previous_attempts,
        };
        let mut added = Metadata::new();
        for hook in [&self.pool, &self.call].into_iter().flatten() {
            hook.run(&context, &mut added)?;
        }
        let wire = added
            .to_wire()
            .map_err(|error| HookError::invalid_metadata(error.to_string()))?;
        let mut metadata = base.clone();
        let headers = metadata.as_mut();
        let mut last = None;
        for (name, value) in wire.into_headers() {
            // HeaderMap's iterator names only the first of repeated entries.
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                headers.append(name.clone(), value);
            }
        }
        Ok(metadata)
    }
}

impl HookError {
    /// The status the failed attempt ends with.
    pub(crate) fn response(&self) -> Response {
        Response::with_status(self.code, format!("metadata hook failed: {}", self.message))
    }
}

/// The request metadata of one attempt: `base`, or with `hooks`' entries when there are any.
pub(crate) fn attempt_metadata<'a>(
    hooks: Option<&CallHooks>,
    method: &str,
    previous_attempts: u32,
    base: &'a MetadataMap,
) -> Result<Cow<'a, MetadataMap>, HookError> {
    match hooks {
        None => Ok(Cow::Borrowed(base)),
        Some(hooks) => hooks.apply(method, previous_attempts, base).map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_codes_become_internal() {
        assert_eq!(HookError::new("x").code(), Code::Unavailable);
        assert_eq!(
            HookError::with_code(Code::Unauthenticated, "x").code(),
            Code::Unauthenticated
        );
        for restricted in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::DataLoss,
            Code::Ok,
        ] {
            assert_eq!(HookError::with_code(restricted, "x").code(), Code::Internal);
        }
    }

    #[test]
    fn hooks_append_in_order_and_failures_are_statuses() {
        let pool = MetadataHook::new(|context, metadata| {
            metadata.insert_ascii(
                "authorization",
                format!("Bearer {}", context.previous_attempts),
            );
            Ok(())
        });
        let call = MetadataHook::new(|_, metadata| {
            metadata.insert_ascii("authorization", "second");
            metadata.insert_binary("x-raw-bin", vec![0u8, 1]);
            Ok(())
        });
        let mut hooks = CallHooks::of(Some(&pool), Some(&call)).expect("two hooks");
        hooks.bind("http://127.0.0.1:1");
        let mut base = MetadataMap::new();
        base.insert("x-own", "1".parse().unwrap());
        let wire = hooks.apply("/a.B/C", 2, &base).expect("hooks ran");
        let values: Vec<_> = wire.get_all("authorization").iter().collect();
        assert_eq!(values, ["Bearer 2", "second"]);
        assert!(wire.get("x-own").is_some() && wire.get_bin("x-raw-bin").is_some());

        let invalid = MetadataHook::new(|_, metadata| {
            metadata.insert_ascii("grpc-timeout", "1S");
            Ok(())
        });
        let hooks = CallHooks::of(Some(&invalid), None).unwrap();
        let error = hooks.apply("/a.B/C", 0, &base).expect_err("reserved key");
        assert_eq!(error.response().code, Code::Internal);

        let panicking = MetadataHook::new(|_, _| panic!("a bug in the hook"));
        let hooks = CallHooks::of(None, Some(&panicking)).unwrap();
        let error = hooks.apply("/a.B/C", 0, &base).expect_err("panicked");
        assert_eq!(error.response().code, Code::Internal);
        assert!(CallHooks::of(None, None).is_none());
    }
}
