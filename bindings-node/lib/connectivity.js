'use strict';
// gRPC's connectivity states and grpc-js's `watchConnectivityState` over the pool's own
// connectivity (the core's, per target: Pool.connectivity and Pool.connectivityChanged).

/** gRPC's connectivity states, numbered as @grpc/grpc-js's `connectivityState`. */
const Connectivity = Object.freeze({ IDLE: 0, CONNECTING: 1, READY: 2, TRANSIENT_FAILURE: 3, SHUTDOWN: 4 });

/** setTimeout's longest wait: a deadline further away is as good as none. */
const LONGEST_MS = 0x7fffffff;

/**
 * Calls `callback()` once `target`'s state in `pool` is other than `current`, or
 * `callback(error)` when `deadline` (a Date or epoch milliseconds; Infinity for none) passes
 * first, as grpc-js's `watchConnectivityState`. Aborting `signal` (the channel's close) calls
 * `callback()`: the channel's state changed to SHUTDOWN.
 */
function watchState(pool, target, current, deadline, signal, callback) {
  const until = deadline instanceof Date ? deadline.getTime() : deadline;
  if (typeof until !== 'number' || Number.isNaN(until)) {
    throw new TypeError('deadline must be a Date or a number of milliseconds since the epoch');
  }
  const expired = () => new Error('Deadline passed without connectivity state change');
  const wait = until - Date.now();
  if (wait <= 0) {
    process.nextTick(callback, expired());
    return;
  }
  const timeoutMs = wait > LONGEST_MS ? undefined : wait;
  pool.connectivityChanged(target, current, { timeoutMs, signal }).then(
    (state) => (state === current ? callback(expired()) : callback()),
    (error) => (signal.aborted ? callback() : callback(error)),
  );
}

module.exports = { Connectivity, watchState };
