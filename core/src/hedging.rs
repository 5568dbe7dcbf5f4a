//! Hedged calls (gRPC A6): the call goes out again every `hedgingDelay` while no attempt has
//! answered, up to `maxAttempts` in all; the first OK answer (a unary call's response, a
//! stream's response headers) or fatal status ends the call and the other attempts are
//! cancelled, which resets their streams on the server. A non-fatal status sends the next
//! attempt at once (or after the server's pushback); a pushback saying stop, or the throttle,
//! ends hedging. The driver here is shared by unary calls and streams; what an attempt is and
//! how its end is judged are theirs.

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::attempt::{attempt, Attempt};
use crate::connection::Connection;
use crate::metrics::MethodStats;
use crate::prepared_call::PreparedCall;
use crate::response::Response;
use crate::retry::Pushback;
use crate::service_config::HedgingPolicy;
use crate::slot::Slot;
use crate::stats::Counters;
use crate::target_pool::TargetPool;
use crate::Code;

/// A slot a hedge took beside the lease's own; given back when the hedge ends or is cancelled,
/// unless the call adopts it.
pub(crate) struct HedgeSlot<'a> {
    pool: &'a TargetPool,
    connection: Arc<Connection>,
    adopted: bool,
}

impl HedgeSlot<'_> {
    /// The connection the hedge runs on.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// Moves the lease's slot to this hedge's connection: the winning hedge's slot becomes the
    /// call's, and the slot the lease held goes back.
    pub(crate) fn adopt_into(mut self, slot: &Slot) {
        slot.take(Arc::clone(&self.connection));
        self.adopted = true;
    }
}

impl Drop for HedgeSlot<'_> {
    fn drop(&mut self) {
        if !self.adopted {
            self.pool.release(&self.connection);
        }
    }
}

/// One attempt of a hedged call, running.
pub(crate) type AttemptFuture<'a, T> = Pin<Box<dyn Future<Output = Outcome<T>> + Send + 'a>>;

/// How one attempt of a hedged call ended.
pub(crate) enum Outcome<T> {
    /// It answered (an OK response, a stream's response headers): the call ends with it.
    Won(T),
    /// A fatal status, or one after the call committed: the call ends with it.
    Ended(T),
    /// A non-fatal status, or never processed: the next attempt goes at once, or after the
    /// server's pushback.
    NonFatal(T, Pushback),
    /// Stopped because the call committed to another attempt.
    Abandoned,
}

/// Runs a hedged call: `first` on the lease's slot, then `next(slot, previous_attempts)` on a
/// slot of its own each `hedging_delay` while no attempt has answered, `may_hedge()` holds and
/// the policy, the throttle and the pushback allow; `gave_up(why)` is the call's end when no
/// attempt is left to answer. Bounded by the caller's deadline, which wraps this.
pub(crate) async fn hedge<'a, T>(
    pool: &'a Arc<TargetPool>,
    policy: &HedgingPolicy,
    first: AttemptFuture<'a, T>,
    mut next: impl FnMut(HedgeSlot<'a>, u32) -> AttemptFuture<'a, T>,
    may_hedge: impl Fn() -> bool,
    gave_up: impl Fn(&'static str) -> T,
) -> T {
    let throttle = pool.retry_throttle();
    let mut running = FuturesUnordered::new();
    running.push(first);
    let mut sent = 1;
    let mut next_at = Instant::now() + policy.hedging_delay;
    let mut stop_hedging = false;
    let mut last = None;
    loop {
        stop_hedging |= !may_hedge();
        let may_send = sent < policy.max_attempts && !stop_hedging;
        if running.is_empty() && !may_send {
            return last.unwrap_or_else(|| gave_up("no hedged attempt could start"));
        }
        let timer = async {
            if may_send {
                pool.shared()
                    .sleep(next_at.saturating_duration_since(Instant::now()))
                    .await;
            } else {
                pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            Some(outcome) = running.next() => match outcome {
                Outcome::Won(answer) => {
                    if let Some(throttle) = throttle {
                        throttle.succeeded();
                    }
                    // Dropping `running` cancels the other attempts.
                    return answer;
                }
                Outcome::Ended(answer) => return answer,
                Outcome::NonFatal(answer, pushback) => {
                    if throttle.is_some_and(|throttle| !throttle.failed()) {
                        stop_hedging = true;
                    }
                    match pushback {
                        Pushback::Stop => {
                            Counters::bump(&pool.counters().retry_pushbacks);
                            stop_hedging = true;
                        }
                        Pushback::After(delay) => {
                            Counters::bump(&pool.counters().retry_pushbacks);
                            next_at = Instant::now() + delay;
                        }
                        // A6: a non-fatal failure sends the next hedge at once.
                        Pushback::None => next_at = Instant::now(),
                    }
                    last = Some(answer);
                }
                Outcome::Abandoned => {}
            },
            () = timer => {
                if throttle.is_some_and(|throttle| !throttle.allows()) {
                    Counters::bump(&pool.counters().retries_throttled);
                    stop_hedging = true;
                } else if let Some(connection) = pool.try_acquire() {
                    let slot = HedgeSlot { pool, connection, adopted: false };
                    running.push(next(slot, sent));
                    sent += 1;
                    Counters::bump(&pool.counters().hedges);
                    next_at = Instant::now() + policy.hedging_delay;
                } else {
                    // No free slot now: look again shortly rather than queue behind others.
                    next_at = Instant::now() + policy.hedging_delay.max(Duration::from_millis(1));
                }
            }
        }
    }
}

/// Runs a unary `call` under `policy`: the first attempt on the lease's slot, hedges on slots
/// of their own.
pub(crate) async fn hedged(
    slot: &Slot,
    call: &PreparedCall,
    policy: &HedgingPolicy,
    method: &MethodStats,
) -> Response {
    let pool = slot.pool();
    let Some(first) = slot.connection() else {
        return Response::with_status(Code::Unavailable, "the lease lost its connection");
    };
    hedge(
        pool,
        policy,
        Box::pin(one(first, None, call, policy, 0, method)),
        |extra, previous| {
            let connection = Arc::clone(extra.connection());
            Box::pin(one(connection, Some(extra), call, policy, previous, method))
        },
        || true,
        |why| Response::with_status(Code::Unavailable, why),
    )
    .await
}

/// One unary attempt, judged for the driver; its extra slot (none for the lease's own) goes
/// back when it ends or is dropped.
async fn one(
    connection: Arc<Connection>,
    slot: Option<HedgeSlot<'_>>,
    call: &PreparedCall,
    policy: &HedgingPolicy,
    previous_attempts: u32,
    method: &MethodStats,
) -> Outcome<Response> {
    let outcome = attempt(&connection, call, previous_attempts, method).await;
    drop(slot);
    match outcome {
        Attempt::Finished { response, .. } if response.is_ok() => Outcome::Won(response),
        Attempt::Finished {
            response,
            committed,
            pushback,
        } => {
            if committed || !policy.is_non_fatal(response.code) {
                Outcome::Ended(response)
            } else {
                Outcome::NonFatal(response, pushback)
            }
        }
        // Never processed: as good as a non-fatal failure; the next hedge goes now.
        Attempt::Unprocessed(error) => Outcome::NonFatal(
            Response::with_status(error.code, error.message),
            Pushback::None,
        ),
    }
}
