'use strict';
// Promises of native operations in flight. Each operation gets an id; the addon reports its
// end as a Completion with that id, in batches, through `settle` (one wake-up of the event
// loop per batch). While any operation is in flight a timer holds the event loop open, so an
// awaited call keeps the program alive and an idle pool does not.

const { errorFromFailure, cancelledError } = require('./errors');
const { signalOf } = require('./check');

/** id -> { resolve, reject, convert, owner, detach } */
const inFlight = new Map();
let lastId = 0;
let loopHold = null;

function holdLoop() {
  if (loopHold === null) {
    loopHold = setInterval(() => {}, 0x7fffffff);
  } else {
    loopHold.ref();
  }
}

function releaseLoop() {
  loopHold?.unref();
}

/**
 * Starts an operation. `launch(id, cancellable)` calls the addon and returns a Failure (or
 * nothing); `convert(completion)` makes the resolved value. `owner` is kept alive until the
 * end. With a `signal` in `options`, aborting drops the operation via `cancel(id)` and rejects
 * with CANCELLED. Bad input rejects; nothing throws synchronously.
 */
function begin(owner, launch, convert, options, cancel) {
  return new Promise((resolve, reject) => {
    const signal = signalOf(options);
    if (signal?.aborted) {
      reject(cancelledError(signal));
      return;
    }
    lastId = (lastId + 1) >>> 0;
    const id = lastId;
    const failure = launch(id, signal !== undefined);
    if (failure) {
      reject(errorFromFailure(failure));
      return;
    }
    const entry = { resolve, reject, convert, owner, detach: undefined };
    if (signal !== undefined) {
      const onAbort = () => {
        if (inFlight.get(id) === entry) {
          forget(id);
          cancel(id);
          reject(cancelledError(signal));
        }
      };
      signal.addEventListener('abort', onAbort, { once: true });
      entry.detach = () => signal.removeEventListener('abort', onAbort);
    }
    inFlight.set(id, entry);
    if (inFlight.size === 1) {
      holdLoop();
    }
  });
}

function forget(id) {
  const entry = inFlight.get(id);
  inFlight.delete(id);
  entry?.detach?.();
  if (inFlight.size === 0) {
    releaseLoop();
  }
  return entry;
}

/** Settles the promises of a batch of completions (called by the addon on this thread). */
function settle(batch) {
  for (const completion of batch) {
    const entry = forget(completion.id);
    if (entry === undefined) {
      // Cancelled meanwhile (an aborted signal), after the addon had finished: what it made
      // is nobody's, so give it back now rather than when it is collected.
      completion.stream?.cancel();
      completion.lease?.release();
      continue;
    }
    if (completion.failure) {
      entry.reject(errorFromFailure(completion.failure));
      continue;
    }
    try {
      entry.resolve(entry.convert(completion));
    } catch (error) {
      entry.reject(error);
    }
  }
}

/** How many operations are in flight (for tests). */
function inFlightCount() {
  return inFlight.size;
}

module.exports = { begin, settle, inFlightCount };
