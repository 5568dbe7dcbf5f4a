//! One HTTP/2 connection to one address: its state, its reserved slots, and the task that
//! drives it and sends keepalive pings.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use crate::batched_writes::BatchedWrites;
use crate::channel::H2Channel;
use crate::outlier_detection::AddressRecord;
use crate::stats::ConnectionStats;
use crate::target::Address;
use crate::transport::{Io, Stream};
use crate::Code;

const READY: u8 = 0;
const DRAINING: u8 = 1;
const CLOSED: u8 = 2;

/// Health (gRPC A17): serving, or not checked.
const SERVING: u8 = 0;
/// The server said NOT_SERVING (or UNKNOWN, SERVICE_UNKNOWN), or its health watch failed.
const NOT_SERVING: u8 = 1;
/// Checked, and no answer yet: no calls until the server says SERVING.
const AWAITING: u8 = 2;

/// A pooled connection. Leases hold slots on it; the pool picks it by load.
pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) address: Address,
    pub(crate) channel: H2Channel,
    state: AtomicU8,
    reserved: AtomicU32,
    /// Calls running on it now (keepalive pings only while some are).
    active_streams: AtomicU32,
    stream_limit: AtomicU32,
    opened_at: Instant,
    /// When max connection age (with jitter) retires it, if ever.
    pub(crate) retire_at: Option<Instant>,
    /// Milliseconds after `opened_at` at which the last slot was released.
    last_used_ms: AtomicU64,
    /// A replacement has been dialed for it (make-before-break).
    pub(crate) replacement_started: AtomicBool,
    /// A GOAWAY from the server has been counted for it.
    pub(crate) goaway_counted: AtomicBool,
    /// It failed or was told to go away; its replacement counts as a reconnect.
    pub(crate) lost: AtomicBool,
    /// SERVING, NOT_SERVING or AWAITING, from its health watch (SERVING when not checked).
    health: AtomicU8,
    /// A health watch runs on it, taking one of the server's concurrent streams.
    health_checked: AtomicBool,
    /// Calls (and streams) it has carried.
    calls: AtomicU64,
    /// The error code of the GOAWAY it received, if any (h2's reason as a number).
    goaway_code: AtomicU32,
    stop: Notify,
    /// Its address's record for outlier detection, when that is on.
    outlier: Option<Arc<AddressRecord>>,
}

/// No GOAWAY received: `goaway_code` holds this.
const NO_GOAWAY: u32 = u32::MAX;

impl Connection {
    pub(crate) fn new(
        id: u64,
        address: Address,
        channel: H2Channel,
        max_age: Option<Duration>,
        outlier: Option<Arc<AddressRecord>>,
    ) -> Connection {
        let opened_at = Instant::now();
        let retire_at = max_age.and_then(|age| {
            let jitter = 1.0 + 0.1 * (fastrand::f64() * 2.0 - 1.0);
            opened_at.checked_add(age.mul_f64(jitter))
        });
        Connection {
            id,
            address,
            channel,
            state: AtomicU8::new(READY),
            reserved: AtomicU32::new(0),
            active_streams: AtomicU32::new(0),
            stream_limit: AtomicU32::new(0),
            opened_at,
            retire_at,
            last_used_ms: AtomicU64::new(0),
            replacement_started: AtomicBool::new(false),
            goaway_counted: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            health: AtomicU8::new(SERVING),
            health_checked: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            goaway_code: AtomicU32::new(NO_GOAWAY),
            stop: Notify::new(),
            outlier,
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.state.load(Ordering::SeqCst) == READY
    }

    /// Ready, and serving as far as its health check says: what calls may be given to.
    pub(crate) fn takes_calls(&self) -> bool {
        self.is_ready() && self.health.load(Ordering::Acquire) == SERVING && !self.is_ejected()
    }

    /// Whether outlier detection has ejected its address (gRPC A50).
    pub(crate) fn is_ejected(&self) -> bool {
        self.outlier
            .as_ref()
            .is_some_and(|record| record.is_ejected())
    }

    /// Counts an attempt that ended on it with `code` for outlier detection, when that is on.
    pub(crate) fn attempt_ended(&self, code: Code) {
        if let Some(record) = &self.outlier {
            record.attempt_ended(code == Code::Ok);
        }
    }

    /// A health watch starts on it: no calls until the server says SERVING.
    pub(crate) fn await_health(&self) {
        self.health_checked.store(true, Ordering::Release);
        self.health.store(AWAITING, Ordering::Release);
    }

    /// Records what its health watch said; true when that changed whether it takes calls.
    pub(crate) fn set_serving(&self, serving: bool) -> bool {
        let next = if serving { SERVING } else { NOT_SERVING };
        let before = self.health.swap(next, Ordering::AcqRel);
        (before == SERVING) != serving
    }

    /// Whether its server said it is not serving (not merely: no answer yet).
    pub(crate) fn reports_not_serving(&self) -> bool {
        self.health.load(Ordering::Acquire) == NOT_SERVING
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.state.load(Ordering::SeqCst) == DRAINING
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::SeqCst) == CLOSED
    }

    /// Stops new picks; calls in flight finish. True if this call made the change.
    pub(crate) fn mark_draining(&self) -> bool {
        self.state
            .compare_exchange(READY, DRAINING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Marks it closed and tells its driver to drop the socket.
    pub(crate) fn close(&self) {
        self.state.store(CLOSED, Ordering::SeqCst);
        self.stop.notify_one();
    }

    /// The most streams it may carry: the peer's MAX_CONCURRENT_STREAMS, as last read, less
    /// the one its health watch takes (but at least one).
    pub(crate) fn stream_limit(&self) -> u32 {
        let limit = self.stream_limit.load(Ordering::Relaxed);
        if self.health_checked.load(Ordering::Relaxed) {
            limit.saturating_sub(1).max(1)
        } else {
            limit
        }
    }

    /// Reads the peer's MAX_CONCURRENT_STREAMS again (it locks h2's state, so not per pick).
    pub(crate) fn refresh_stream_limit(&self) {
        let limit = u32::try_from(self.channel.send.current_max_send_streams()).unwrap_or(u32::MAX);
        self.stream_limit.store(limit, Ordering::Relaxed);
    }

    /// Whether h2 already knows the connection is gone (closed, failed or told to go away).
    pub(crate) fn is_broken(&self) -> bool {
        let mut send = self.channel.send.clone();
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        matches!(
            send.poll_ready(&mut context),
            std::task::Poll::Ready(Err(_))
        )
    }

    pub(crate) fn reserved(&self) -> u32 {
        self.reserved.load(Ordering::SeqCst)
    }

    /// Takes a slot if fewer than `limit` are taken; atomic, so two pickers cannot both take the last.
    pub(crate) fn try_reserve(&self, limit: u32) -> bool {
        self.reserved
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                (taken < limit).then_some(taken + 1)
            })
            .is_ok()
    }

    /// Returns a slot.
    pub(crate) fn release(&self) {
        let elapsed = u64::try_from(self.opened_at.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_used_ms.store(elapsed, Ordering::Relaxed);
        self.reserved.fetch_sub(1, Ordering::SeqCst);
    }

    /// Counts a call as running on this connection until the guard drops.
    pub(crate) fn stream_started(&self) -> ActiveStream<'_> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.active_streams.fetch_add(1, Ordering::Relaxed);
        ActiveStream(self)
    }

    /// Records the GOAWAY the server sent.
    pub(crate) fn note_goaway(&self, reason: h2::Reason) {
        self.goaway_code.store(u32::from(reason), Ordering::Relaxed);
    }

    /// A snapshot for the target's stats.
    pub(crate) fn stats(&self, now: Instant) -> ConnectionStats {
        let state = match self.state.load(Ordering::SeqCst) {
            READY => "ready",
            DRAINING => "draining",
            _ => "closed",
        };
        let health = if !self.health_checked.load(Ordering::Relaxed) {
            "unchecked"
        } else {
            match self.health.load(Ordering::Acquire) {
                SERVING => "serving",
                NOT_SERVING => "not_serving",
                _ => "awaiting",
            }
        };
        let goaway = self.goaway_code.load(Ordering::Relaxed);
        ConnectionStats {
            id: self.id,
            address: self.address.to_string(),
            state: state.to_owned(),
            age_ms: u64::try_from(now.saturating_duration_since(self.opened_at).as_millis())
                .unwrap_or(u64::MAX),
            streams_in_flight: u64::from(self.reserved()),
            stream_limit: u64::from(self.stream_limit()),
            calls: self.calls.load(Ordering::Relaxed),
            last_goaway: (goaway != NO_GOAWAY).then(|| format!("{:?}", h2::Reason::from(goaway))),
            health: health.to_owned(),
            ejected: self.is_ejected(),
        }
    }

    /// How long it has carried nothing, or zero while it carries something.
    pub(crate) fn idle_for(&self, now: Instant) -> Duration {
        if self.reserved() > 0 {
            return Duration::ZERO;
        }
        let last_used =
            self.opened_at + Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(last_used)
    }
}

/// A stream running on a connection for as long as this lives; the owned form of
/// [`ActiveStream`], for streams that outlive a borrow.
pub(crate) struct OwnedActiveStream(Arc<Connection>);

impl OwnedActiveStream {
    pub(crate) fn new(connection: Arc<Connection>) -> OwnedActiveStream {
        connection.active_streams.fetch_add(1, Ordering::Relaxed);
        OwnedActiveStream(connection)
    }

    /// The connection the stream runs on.
    pub(crate) fn connection(&self) -> &Connection {
        &self.0
    }
}

impl Drop for OwnedActiveStream {
    fn drop(&mut self) {
        self.0.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A call running on a connection; see [`Connection::stream_started`].
pub(crate) struct ActiveStream<'a>(&'a Connection);

impl Drop for ActiveStream<'_> {
    fn drop(&mut self) {
        self.0.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How the driver of a connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The pool closed it.
    Stopped,
    /// The peer closed it cleanly, after a GOAWAY or at end of stream.
    Closed,
    /// It failed: an I/O or protocol error, or GOAWAY with an error code.
    Failed(h2::Error),
    /// A keepalive ping went unanswered.
    KeepaliveTimeout,
}

/// Keepalive settings for one driver; the interval is shared by the target so it can be doubled.
pub(crate) struct Keepalive {
    pub(crate) interval_ms: Arc<AtomicU64>,
    pub(crate) timeout: Duration,
    pub(crate) while_idle: bool,
}

/// Drives the HTTP/2 connection until it ends or the pool stops it, pinging as configured.
///
/// The first ping goes out at once: its answer tells `settled` that the server's SETTINGS
/// (among them MAX_CONCURRENT_STREAMS) have been applied, since a peer sends them first.
pub(crate) async fn drive(
    connection: Arc<Connection>,
    mut io: h2::client::Connection<Io, Bytes>,
    writes: Arc<BatchedWrites<Stream>>,
    keepalive: Keepalive,
    mut settled: Option<oneshot::Sender<()>>,
) -> Ended {
    let mut ping_pong = io.ping_pong();
    let interval = || {
        let millis = keepalive.interval_ms.load(Ordering::Relaxed);
        (millis > 0).then(|| Duration::from_millis(millis))
    };
    let far_future = || Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let after = |every: Duration| Instant::now().checked_add(every).unwrap_or_else(far_future);
    let mut next_ping = interval().map_or_else(far_future, after);
    let mut ping_sent_at: Option<Instant> = None;
    if let Some(ping_pong) = ping_pong.as_mut() {
        if ping_pong.send_ping(h2::Ping::opaque()).is_ok() {
            ping_sent_at = Some(Instant::now());
        }
    }
    loop {
        let wake_at = match ping_sent_at {
            Some(sent) => sent
                .checked_add(keepalive.timeout)
                .unwrap_or_else(far_future),
            None => next_ping,
        };
        let pong = std::future::poll_fn(|cx| match (&mut ping_pong, ping_sent_at) {
            (Some(ping_pong), Some(_)) => ping_pong.poll_pong(cx).map(Some),
            _ => std::task::Poll::Pending,
        });
        // Each poll of the connection is a round of batched writes (core/src/batched_writes.rs):
        // held while more than one call shares the connection, written out after the round.
        let round = std::future::poll_fn(|cx| {
            let several_calls = connection.active_streams.load(Ordering::Relaxed) > 1;
            writes.begin_round(several_calls);
            let polled = Pin::new(&mut io).poll(cx);
            writes.end_round(cx);
            polled
        });
        tokio::select! {
            result = round => {
                return match result {
                    Ok(()) => Ended::Closed,
                    Err(error) => Ended::Failed(error),
                };
            }
            _ = connection.stop.notified() => return Ended::Stopped,
            answer = pong => {
                if let Some(Err(error)) = answer {
                    return Ended::Failed(error);
                }
                ping_sent_at = None;
                if let Some(settled) = settled.take() {
                    connection.refresh_stream_limit();
                    let _ = settled.send(());
                }
                next_ping = interval().map_or_else(far_future, after);
            }
            _ = tokio::time::sleep_until(wake_at.into()) => {
                if ping_sent_at.is_some() {
                    return Ended::KeepaliveTimeout;
                }
                // Only streams count: a held lease with no call in flight is idle to the server,
                // and grpc-go servers punish pings without streams by default.
                let busy = connection.active_streams.load(Ordering::Relaxed) > 0;
                match (&mut ping_pong, interval()) {
                    (Some(ping_pong), Some(_)) if busy || keepalive.while_idle => {
                        if let Err(error) = ping_pong.send_ping(h2::Ping::opaque()) {
                            return Ended::Failed(error);
                        }
                        ping_sent_at = Some(Instant::now());
                    }
                    (_, every) => {
                        next_ping = every.map_or_else(far_future, after);
                    }
                }
            }
        }
    }
}
