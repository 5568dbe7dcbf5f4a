//! Logging from C: a callback of the caller's, or standard error under `GRPCPOOL_LOG`.

use std::ffi::{c_char, c_void};
use std::fmt::Write as _;
use std::sync::OnceLock;

use parking_lot::RwLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::error::{ffi_boundary, grpcpool_result, FfiError};

/// Receives one log line: `level` 1 = error, 2 = warn, 3 = info, 4 = debug, 5 = trace;
/// `message` is UTF-8, `message_len` bytes, not NUL-terminated, valid only during the call.
/// Runs on whichever thread logged; it must not block or call into grpcpool.
#[allow(non_camel_case_types)]
pub type grpcpool_log_callback_t = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: i32,
        message: *const c_char,
        message_len: usize,
    ),
>;

struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, i32, *const c_char, usize),
    user_data: usize,
    max_level: i32,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALLED: OnceLock<bool> = OnceLock::new();

fn level_number(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

struct CallbackLayer;

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?} ");
        } else {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value} ");
        } else {
            let _ = write!(self.0, "{}={value} ", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for CallbackLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let sink = SINK.read();
        let Some(sink) = sink.as_ref() else { return };
        let level = level_number(event.metadata().level());
        // Only the library's own lines; its dependencies' chatter is not the caller's concern.
        if level > sink.max_level || !event.metadata().target().starts_with("grpcpool") {
            return;
        }
        let mut line = Line(format!("{}: ", event.metadata().target()));
        event.record(&mut line);
        let text = line.0.trim_end();
        // SAFETY: the caller registered this function for exactly this use.
        unsafe {
            (sink.callback)(
                sink.user_data as *mut c_void,
                level,
                text.as_ptr().cast(),
                text.len(),
            )
        };
    }
}

/// Installs the global subscriber once: the callback layer, plus standard error when
/// `GRPCPOOL_LOG` is set (an env-filter directive such as `debug` or `grpcpool_core=trace`).
fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        let stderr = std::env::var("GRPCPOOL_LOG").ok().map(|filter| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new(filter))
        });
        let subscriber = tracing_subscriber::registry()
            .with(CallbackLayer)
            .with(stderr);
        tracing::subscriber::set_global_default(subscriber).is_ok()
    })
}

/// Called when a pool is made: honours `GRPCPOOL_LOG` even without a callback.
pub(crate) fn init_from_env() {
    if std::env::var_os("GRPCPOOL_LOG").is_some() {
        let _ = install();
    }
}

/// Routes the library's own log lines up to `max_level` (1 = error .. 5 = trace) to `callback`,
/// with `user_data` passed back each time. NULL `callback` stops it. Without a callback the
/// library is silent unless `GRPCPOOL_LOG` is set. May be called at any time from any thread.
#[no_mangle]
pub extern "C" fn grpcpool_set_log_callback(
    callback: grpcpool_log_callback_t,
    user_data: *mut c_void,
    max_level: i32,
) -> grpcpool_result {
    ffi_boundary!({
        if !(0..=5).contains(&max_level) {
            return Err(FfiError::new(
                grpcpool_result::GRPCPOOL_INVALID_ARGUMENT,
                "max_level must be 0..=5",
            ));
        }
        if !install() {
            return Err(FfiError::new(
                grpcpool_result::GRPCPOOL_INTERNAL,
                "the program already installed a global tracing subscriber; grpcpool logs through it",
            ));
        }
        *SINK.write() = callback.map(|callback| Sink {
            callback,
            user_data: user_data as usize,
            max_level,
        });
        Ok(())
    })
}
