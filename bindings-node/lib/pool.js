'use strict';
// Pool: the object a program makes once; leases, one-shot calls and streams come from it.

const native = require('./native');
const { begin, settle } = require('./completions');
const { checkString, checkBytes, checkObject, checkOptions, checkMillis, checkBoolean } = require('./check');
const { callOptions, POOL_CALL_KEYS } = require('./call_options');
const { bodyOf, responseOf } = require('./responses');
const { Lease } = require('./lease');
const { Stream } = require('./stream');
const { errorFromFailure, withCode } = require('./errors');

/**
 * Every pool option name, one per setting of the core's table (PoolOptions in settings.d.ts),
 * from the addon: this package keeps no list of its own.
 */
const POOL_OPTION_KEYS = Object.freeze(native.poolOptionNames());

const ACQUIRE_KEYS = ['timeoutMs', 'waitForReady', 'site', 'signal'];

/** A pool of gRPC connections to any number of targets. */
class Pool {
  #native;

  /**
   * @param {import('../settings').PoolOptions} [options] every core setting, all optional;
   *   the addon refuses a key that names none
   */
  constructor(options) {
    const checked = checkObject('pool options', options);
    try {
      this.#native = new native.NativePool(checked, settle);
    } catch (error) {
      const refused = new TypeError(error.message);
      refused.code = 'ERR_INVALID_ARG_VALUE';
      throw refused;
    }
  }

  /** Acquires a lease on `target`: `{ timeoutMs, waitForReady, site, signal }`. */
  acquire(target, options) {
    return begin(this, (id, cancellable) => {
      checkString('target', target);
      const o = checkOptions('acquire options', options, ACQUIRE_KEYS);
      const timeoutMs = checkMillis('timeoutMs', o.timeoutMs);
      const waitForReady = checkBoolean('waitForReady', o.waitForReady);
      const site = o.site === undefined ? callerSite() : checkString('site', o.site);
      return this.#native.acquire(id, target, timeoutMs, waitForReady, site, cancellable);
    }, (completion) => new Lease(this, completion.lease), options, this.#cancel);
  }

  /** A one-shot unary call (acquire, call, release); resolves with the response body. */
  unary(target, method, request, options) {
    return this.#unary(target, method, request, options, false, bodyOf);
  }

  /** As `unary`, resolving with `{ code, details, headers, trailers, body }` for any status. */
  unaryResponse(target, method, request, options) {
    return this.#unary(target, method, request, options, true, responseOf);
  }

  #unary(target, method, request, options, full, convert) {
    return begin(this, (id, cancellable) => {
      checkString('target', target);
      checkString('method', method);
      checkBytes('request', request);
      const o = callOptions(options, POOL_CALL_KEYS);
      return this.#native.unary(id, target, method, request, o.timeoutMs, o.metadata, o.waitForReady, o.compression, full, cancellable);
    }, convert, options, this.#cancel);
  }

  /** Acquires a lease on `target` and opens a streaming call on it; resolves with a Stream. */
  openStream(target, method, options) {
    let signal;
    return begin(this, (id, cancellable) => {
      checkString('target', target);
      checkString('method', method);
      const o = callOptions(options, POOL_CALL_KEYS);
      signal = o.signal;
      return this.#native.openStream(id, target, method, o.timeoutMs, o.metadata, o.waitForReady, o.compression, cancellable);
    }, (completion) => new Stream(this, completion.stream, signal), options, this.#cancel);
  }

  /**
   * The connectivity of `target` now, in gRPC's five states (`Connectivity`, numbered as
   * grpc-js's `connectivityState`); `{ tryToConnect: true }` makes an idle target start
   * connecting. A target the pool has not used is IDLE; a closed pool SHUTDOWN.
   */
  connectivity(target, options) {
    checkString('target', target);
    const o = checkOptions('connectivity options', options, ['tryToConnect']);
    const state = this.#native.connectivity(target, checkBoolean('tryToConnect', o.tryToConnect) ?? false);
    if (typeof state !== 'number') throw errorFromFailure(state);
    return state;
  }

  /**
   * Resolves with `target`'s connectivity once it is other than `last`, or with the state at
   * `{ timeoutMs }` (then possibly `last`); never dials. `signal` gives up the wait (it rejects
   * with CANCELLED).
   */
  connectivityChanged(target, last, options) {
    return begin(this, (id, cancellable) => {
      checkString('target', target);
      const o = checkOptions('connectivityChanged options', options, ['timeoutMs', 'signal']);
      if (!Number.isInteger(last) || last < 0) {
        throw withCode(new TypeError(`last must be a connectivity state (0 to 4), not ${String(last)}`), 'ERR_INVALID_ARG_VALUE');
      }
      return this.#native.connectivityChanged(id, target, last, checkMillis('timeoutMs', o.timeoutMs), cancellable);
    }, (completion) => completion.count, options, this.#cancel);
  }

  /** Leases held longer than `leaseLeakThresholdMs` now: `[{ target, site, heldMs }]`. */
  leakedLeases() {
    return this.#native.leakedLeases();
  }

  /** A snapshot of the pool's counters (see PoolStats in native.d.ts). */
  stats() {
    return this.#native.stats();
  }

  /** The pool's metrics in the Prometheus text exposition format. */
  metricsText() {
    return this.#native.metricsText();
  }

  /**
   * Sets the endpoints of `static:///name` targets: `'host:port'` (an IP literal,
   * `'[v6]:port'` or a name resolved as DNS targets are) or `'unix:/path'` each, or
   * `{ address, weight }` with a weight of 1 or more, which round_robin gives that many turns
   * per round. Targets naming it follow at once; with none, calls that do not wait for ready
   * fail UNAVAILABLE.
   */
  setEndpoints(name, endpoints) {
    checkString('name', name);
    if (!Array.isArray(endpoints)) {
      throw withCode(new TypeError('endpoints must be an array'), 'ERR_INVALID_ARG_TYPE');
    }
    const addresses = [];
    const weights = [];
    endpoints.forEach((endpoint, index) => {
      if (typeof endpoint === 'string') {
        addresses.push(endpoint);
        weights.push(1);
        return;
      }
      checkObject(`endpoints[${index}]`, endpoint);
      checkString(`endpoints[${index}].address`, endpoint.address);
      const weight = endpoint.weight ?? 1;
      if (!Number.isInteger(weight) || weight < 0 || weight > 0xffffffff) {
        throw withCode(new TypeError(`endpoints[${index}].weight must be an integer of 1 or more`), 'ERR_INVALID_ARG_VALUE');
      }
      addresses.push(endpoint.address);
      weights.push(weight);
    });
    const failure = this.#native.setEndpoints(name, addresses, weights);
    if (failure) throw errorFromFailure(failure);
  }

  /**
   * Stops new work, waits up to `graceMs` (default 5000) for leases and calls in use, then
   * closes every connection. Resolves with the slots still in use when it gave up.
   */
  close(options) {
    return begin(this, (id) => {
      const o = checkOptions('close options', options, ['graceMs']);
      return this.#native.close(id, checkMillis('graceMs', o.graceMs));
    }, (completion) => completion.count);
  }

  /** Whether `close` has been called. */
  get closed() {
    return this.#native.closed;
  }

  #cancel = (id) => this.#native.cancel(id);

  /** Closes the pool at the end of an `await using` scope. */
  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/** Where user code called `acquire` (file:line:column), for leak reports. */
function callerSite() {
  const holder = {};
  Error.captureStackTrace(holder, Pool.prototype.acquire);
  const frame = holder.stack.split('\n', 3)[1];
  return frame === undefined ? 'unknown' : frame.trim().replace(/^at /, '');
}

module.exports = { Pool, POOL_OPTION_KEYS };
