'use strict';
// Per-call options: timeoutMs, metadata, compression, signal (and waitForReady on one-shot
// calls).

const { checkOptions, checkMillis, checkBoolean, checkOptionalString, checkSignal } = require('./check');
const { toEntries } = require('./metadata');

const LEASE_CALL_KEYS = ['timeoutMs', 'metadata', 'compression', 'signal'];
const POOL_CALL_KEYS = [...LEASE_CALL_KEYS, 'waitForReady'];

/**
 * The checked options of a call, in the form the addon takes. A timeoutMs of 0 is a deadline
 * already past: the call ends DEADLINE_EXCEEDED, as in grpc-js. The compression's name
 * ('gzip', or 'identity' for none) is checked by the addon against the core's list.
 */
function callOptions(options, keys) {
  const checked = checkOptions('call options', options, keys);
  return {
    timeoutMs: checkMillis('timeoutMs', checked.timeoutMs),
    metadata: toEntries(checked.metadata),
    waitForReady: checkBoolean('waitForReady', checked.waitForReady),
    compression: checkOptionalString('compression', checked.compression),
    signal: checkSignal(checked.signal),
  };
}

module.exports = { callOptions, LEASE_CALL_KEYS, POOL_CALL_KEYS };
