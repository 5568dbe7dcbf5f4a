//! One unary call: the attempt on a connection, transparent retry elsewhere when the request
//! never reached the server, configured retries and hedging, and the response with its status.

use std::sync::Arc;
use std::time::Instant;

use crate::attempt::{attempt, Attempt};
use crate::channel::StreamError;
use crate::connection::Connection;
use crate::hedging;
use crate::metrics::MethodStats;
use crate::prepared_call::PreparedCall;
use crate::response::Response;
use crate::retry::Retries;
use crate::slot::Slot;
use crate::stats::Counters;
use crate::target_pool::TargetPool;
use crate::Code;

/// How many times a call that never left the client is moved to another connection.
const MAX_UNSENT_RETRIES: u32 = 4;
/// How many times a call the server refused unprocessed (REFUSED_STREAM, or above a GOAWAY's
/// last stream) is moved: once, as gRPC A6 allows.
const MAX_REFUSED_RETRIES: u32 = 1;

/// Runs a call on the slot's connection, moving it when the connection died before the
/// request left (gRPC A6 transparent retry). Every outcome is a `Response`.
pub(crate) async fn run(slot: &Slot, mut call: PreparedCall) -> Response {
    let pool = slot.pool();
    call.bind_target(pool.text());
    let started = Instant::now();
    let method = pool.method_metrics().of(call.path.as_str());
    Counters::bump(&pool.counters().calls_started);
    if call
        .deadline()
        .is_some_and(|deadline| Instant::now() >= deadline)
    {
        // Already over (a timeout of 0): as every gRPC client, fail without sending.
        pool.counters().call_finished(Code::DeadlineExceeded);
        method.call_ended(Code::DeadlineExceeded, started.elapsed());
        return Response::with_status(
            Code::DeadlineExceeded,
            "deadline exceeded before the call started",
        );
    }
    let response = match call.deadline() {
        Some(deadline) => match pool
            .shared()
            .until(deadline, attempts(slot, &call, &method))
            .await
        {
            Some(response) => response.after_deadline(Some(deadline)),
            None => Response::with_status(
                Code::DeadlineExceeded,
                "deadline exceeded before the response arrived",
            ),
        },
        None => attempts(slot, &call, &method).await,
    };
    let response = closed_under(pool.shared(), response);
    pool.counters().call_finished(response.code);
    method.call_ended(response.code, started.elapsed());
    response
}

/// A call cut off because the pool shut its connections says so, instead of showing the
/// transport error the shutdown caused (a broken pipe, a reset).
pub(crate) fn closed_under(shared: &crate::shared::Shared, response: Response) -> Response {
    if response.is_ok() || response.code == Code::DeadlineExceeded || !shared.is_closed() {
        return response;
    }
    Response {
        code: Code::Unavailable,
        message: format!(
            "pool closed while the call was in flight ({})",
            response.message
        ),
        ..response
    }
}

async fn attempts(slot: &Slot, call: &PreparedCall, method: &MethodStats) -> Response {
    if let Some(policy) = call.hedging_policy() {
        return hedging::hedged(slot, call, policy, method).await;
    }
    let pool = slot.pool();
    let mut budget = RetryBudget::default();
    let mut retries = Retries::new(call.retry_policy());
    loop {
        let connection = match slot.connection() {
            Some(connection) => connection,
            // A retry earlier found no slot; this call looks for one.
            None => match reacquire(slot, call).await {
                Ok(connection) => connection,
                Err(response) => return response,
            },
        };
        let previous = retries.previous_attempts();
        let error = match attempt(&connection, call, previous, method).await {
            Attempt::Finished {
                response,
                committed,
                pushback,
            } => {
                if response.code == Code::Unavailable && connection.is_broken() {
                    pool.connection_failed(&connection);
                }
                if response.is_ok() {
                    if let Some(throttle) = pool.retry_throttle() {
                        throttle.succeeded();
                    }
                }
                if committed {
                    return response;
                }
                let throttle = pool.retry_throttle();
                let Some(delay) = retries.after(
                    &response,
                    pushback,
                    call.deadline(),
                    throttle,
                    pool.counters(),
                ) else {
                    return response;
                };
                // The next attempt picks a connection afresh, as gRPC's do; the slot goes
                // back while this one waits out its backoff.
                slot.give_back();
                pool.shared().sleep(delay).await;
                if let Err(next) = reacquire(slot, call).await {
                    return Response {
                        message: format!("{}; then {}", response.message, next.message),
                        ..next
                    };
                }
                continue;
            }
            Attempt::Unprocessed(error) => error,
        };
        if !budget.may_move(pool, &connection, &error) {
            return Response::with_status(error.code, error.message);
        }
        // Give the old slot back before waiting for a new one, so retries in a full pool do
        // not hold slots others wait for.
        slot.give_back();
        if let Err(response) = reacquire(slot, call).await {
            return Response {
                message: format!("{error}; then {}", response.message),
                ..response
            };
        }
    }
}

/// How many more times a call the server never processed may move to another connection
/// (gRPC A6 transparent retry), for unary calls and the opening of streams alike.
#[derive(Default)]
pub(crate) struct RetryBudget {
    unsent: u32,
    refused: u32,
}

impl RetryBudget {
    /// After `error` on `connection`: takes the connection out of rotation when the error says
    /// it is going away, and whether the call may move once more (counted as a transparent
    /// retry when it may).
    pub(crate) fn may_move(
        &mut self,
        pool: &TargetPool,
        connection: &Connection,
        error: &StreamError,
    ) -> bool {
        if error.calm_down {
            pool.note_goaway(connection, h2::Reason::ENHANCE_YOUR_CALM);
        } else if error.connection_lost {
            pool.connection_failed(connection);
        }
        let (retries, limit) = if error.never_sent {
            (&mut self.unsent, MAX_UNSENT_RETRIES)
        } else {
            (&mut self.refused, MAX_REFUSED_RETRIES)
        };
        *retries += 1;
        if *retries > limit {
            return false;
        }
        Counters::bump(&pool.counters().transparent_retries);
        tracing::debug!(target = %pool.text(), error = %error, "moving a call the server never processed");
        true
    }
}

/// Gets a new slot within the call's deadline; the failure as a status.
pub(crate) async fn reacquire(
    slot: &Slot,
    call: &PreparedCall,
) -> Result<Arc<Connection>, Response> {
    let pool = slot.pool();
    let wait = call.acquire_wait(pool.config());
    match pool.acquire(wait, call.wait_for_ready()).await {
        Ok(connection) => {
            slot.take(Arc::clone(&connection));
            Ok(connection)
        }
        Err(error) => Err(Response::with_status(error.code(), error.to_string())),
    }
}
