'use strict';
// Per-call options: timeoutMs, metadata, signal (and waitForReady on one-shot calls).

const { checkOptions, checkMillis, checkBoolean, checkSignal } = require('./check');
const { toEntries } = require('./metadata');

const LEASE_CALL_KEYS = ['timeoutMs', 'metadata', 'signal'];
const POOL_CALL_KEYS = [...LEASE_CALL_KEYS, 'waitForReady'];

/** The checked options of a call, in the form the addon takes. */
function callOptions(options, keys) {
  const checked = checkOptions('call options', options, keys);
  return {
    timeoutMs: checkMillis('timeoutMs', checked.timeoutMs),
    metadata: toEntries(checked.metadata),
    waitForReady: checkBoolean('waitForReady', checked.waitForReady),
    signal: checkSignal(checked.signal),
  };
}

module.exports = { callOptions, LEASE_CALL_KEYS, POOL_CALL_KEYS };
