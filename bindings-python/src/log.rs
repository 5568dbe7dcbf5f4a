//! Logs into Python's `logging`: under `GRPCPOOL_LOG` (an env-filter directive such as `debug`
//! or `grpcpool_core=trace`), the engine's events go to the `grpcpool` logger. Silent without it.
//!
//! Events are queued and handed to Python by one thread of their own, so a grpcpool thread that
//! logs never waits for the GIL (it may hold a lock a Python thread is waiting on).

use std::fmt::Write as _;
use std::sync::mpsc;
use std::sync::OnceLock;

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Events waiting for the logging thread; more than this and new ones are dropped.
const QUEUE: usize = 4096;

/// One event for Python: a `logging` level number and the line.
struct Record {
    level: u8,
    line: String,
}

/// Forwards events to the logging thread.
struct PythonLayer {
    queue: mpsc::SyncSender<Record>,
}

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

/// Python's `logging` level for a tracing level (TRACE goes below DEBUG, as 5).
fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

impl<S: Subscriber> Layer<S> for PythonLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = Line(format!("{}: ", metadata.target()));
        event.record(&mut line);
        let record = Record {
            level: python_level(metadata.level()),
            line: line.0.trim_end().to_owned(),
        };
        // A full queue drops the event rather than slow the engine down.
        let _ = self.queue.try_send(record);
    }
}

/// Hands queued events to `logging.getLogger("grpcpool")`, with the GIL, until the process ends.
fn deliver(records: mpsc::Receiver<Record>) {
    for record in records {
        let delivered = Python::try_attach(|py| -> PyResult<()> {
            let logger = py
                .import("logging")?
                .call_method1("getLogger", ("grpcpool",))?;
            logger.call_method1("log", (record.level, record.line))?;
            Ok(())
        });
        match delivered {
            Some(Ok(())) => {}
            Some(Err(_)) => {} // A handler that raises must not stop the logging.
            None => return,    // The interpreter is shutting down.
        }
    }
}

/// Installs the bridge once, if `GRPCPOOL_LOG` is set; called when the module loads.
pub(crate) fn install_from_env() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let Ok(filter) = std::env::var("GRPCPOOL_LOG") else {
            return;
        };
        let (queue, records) = mpsc::sync_channel(QUEUE);
        let started = std::thread::Builder::new()
            .name("grpcpool-log".to_owned())
            .spawn(move || deliver(records));
        if started.is_err() {
            return;
        }
        let subscriber = tracing_subscriber::registry()
            .with(PythonLayer { queue }.with_filter(tracing_subscriber::EnvFilter::new(filter)));
        // Another subscriber set by the embedding program wins.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}
