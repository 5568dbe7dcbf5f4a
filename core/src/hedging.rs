//! Hedged unary calls (gRPC A6): the call goes out again every `hedgingDelay` while no attempt
//! has answered, up to `maxAttempts` in flight at once; the first OK (or fatal) answer ends the
//! call and the other attempts are cancelled, which resets their streams on the server.

use std::future::pending;
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

/// A slot a hedge took beside the lease's own; given back when the hedge ends or is cancelled.
struct HedgeSlot<'a> {
    pool: &'a TargetPool,
    connection: Arc<Connection>,
}

impl Drop for HedgeSlot<'_> {
    fn drop(&mut self) {
        self.pool.release(&self.connection);
    }
}

/// Runs `call` under `policy`: the first attempt on the lease's slot, hedges on slots of their
/// own. Bounded by the caller's deadline, which wraps this.
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
    let throttle = pool.retry_throttle();
    let mut running = FuturesUnordered::new();
    running.push(Box::pin(one(first, None, call, 0, method)));
    let mut sent = 1;
    let mut next_at = Instant::now() + policy.hedging_delay;
    let mut stop_hedging = false;
    let mut last = None;
    loop {
        let may_send = sent < policy.max_attempts && !stop_hedging;
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
            Some(outcome) = running.next() => {
                let (response, committed, pushback) = match outcome {
                    Attempt::Finished { response, committed, pushback } => (response, committed, pushback),
                    // Never processed: as good as a non-fatal failure; the next hedge goes now.
                    Attempt::Unprocessed(error) => (
                        Response::with_status(error.code, error.message),
                        false,
                        Pushback::None,
                    ),
                };
                if response.is_ok() {
                    if let Some(throttle) = throttle {
                        throttle.succeeded();
                    }
                    return response;
                }
                // A fatal status, or one after response headers: the call ends with it, and
                // dropping `running` cancels the other attempts.
                if committed || !policy.is_non_fatal(response.code) {
                    return response;
                }
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
                last = Some(response);
                if running.is_empty() && (sent >= policy.max_attempts || stop_hedging) {
                    return last.unwrap_or_else(|| {
                        Response::with_status(Code::Unavailable, "every hedged attempt failed")
                    });
                }
            }
            () = timer => {
                if throttle.is_some_and(|throttle| !throttle.allows()) {
                    Counters::bump(&pool.counters().retries_throttled);
                    stop_hedging = true;
                } else if let Some(connection) = pool.try_acquire() {
                    let extra = HedgeSlot { pool, connection: Arc::clone(&connection) };
                    running.push(Box::pin(one(connection, Some(extra), call, sent, method)));
                    sent += 1;
                    Counters::bump(&pool.counters().hedges);
                    next_at = Instant::now() + policy.hedging_delay;
                } else {
                    // No free slot now: look again shortly rather than queue behind others.
                    next_at = Instant::now() + policy.hedging_delay.max(Duration::from_millis(1));
                }
                if running.is_empty() && stop_hedging {
                    return last.unwrap_or_else(|| {
                        Response::with_status(Code::Unavailable, "no hedged attempt could start")
                    });
                }
            }
        }
    }
}

/// One attempt; its extra slot (none for the lease's own) goes back when it ends or is dropped.
async fn one(
    connection: Arc<Connection>,
    slot: Option<HedgeSlot<'_>>,
    call: &PreparedCall,
    previous_attempts: u32,
    method: &MethodStats,
) -> Attempt {
    let outcome = attempt(&connection, call, previous_attempts, method).await;
    drop(slot);
    outcome
}
