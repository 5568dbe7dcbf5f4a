'use strict';
// Channel: @grpc/grpc-js's ChannelInterface over a Pool, so grpc-js clients (from
// loadPackageDefinition, grpc-tools, makeGenericClientConstructor) run over the pool
// unchanged: `new Client(address, grpc.credentials.createInsecure(), { channelOverride:
// new Channel(pool, target) })`. grpc-js's client (serialization, interceptors, its call
// objects) stays above; each call becomes one pool stream (ChannelCall).

const { checkString } = require('./check');
const { ChannelCall } = require('./channel_call');
const { Connectivity, watchState } = require('./connectivity');

/** A grpc-js channel to `target` whose calls go through `pool`. */
class Channel {
  #pool;
  #target;
  #closed = false;
  /** Aborted by close(): ends the channel's connectivity watches. */
  #closing = new AbortController();

  /**
   * @param {import('./pool').Pool} pool the pool the calls go through (the channel does not
   *   own it: closing the channel leaves the pool open)
   * @param {string} target a pool target (`http://host:port`, `dns:///name:port`, ...)
   */
  constructor(pool, target) {
    // Not an instanceof check: a Pool from another copy of this package works as well.
    if (typeof pool?.openStream !== 'function' || typeof pool?.stats !== 'function') {
      const error = new TypeError('pool must be a grpcpool Pool');
      error.code = 'ERR_INVALID_ARG_TYPE';
      throw error;
    }
    this.#pool = pool;
    this.#target = checkString('target', target);
  }

  /** The pool target the channel's calls go to. */
  getTarget() {
    return this.#target;
  }

  /**
   * Closes the channel: new calls throw, its state is SHUTDOWN; calls in flight go on. The
   * pool stays open (close it with `pool.close()`).
   */
  close() {
    this.#closed = true;
    this.#closing.abort();
  }

  /**
   * The target's connectivity in the pool (the core's, per target); SHUTDOWN once the channel
   * or the pool is closed. With `tryToConnect`, an idle target starts connecting, so grpc-js's
   * `client.waitForReady` works.
   */
  getConnectivityState(tryToConnect) {
    return this.#closed ? Connectivity.SHUTDOWN : this.#pool.connectivity(this.#target, { tryToConnect: Boolean(tryToConnect) });
  }

  /**
   * Calls `callback()` when the state is no longer `currentState`, or `callback(error)` when
   * `deadline` passes first. Throws once the channel is closed, as grpc-js.
   */
  watchConnectivityState(currentState, deadline, callback) {
    if (this.getConnectivityState(false) === Connectivity.SHUTDOWN) {
      throw new Error('Channel has been shut down');
    }
    watchState(this.#pool, this.#target, currentState, deadline, this.#closing.signal, callback);
  }

  /**
   * grpc-js's channelz reference, naming the channel. The channel is not registered with
   * grpc-js's channelz (the pool has no channelz entities): the id refers to nothing there.
   */
  getChannelzRef() {
    return { kind: 'channel', id: -1, name: this.#target };
  }

  /**
   * A call for grpc-js's client: `method` is the full path, `deadline` a Date or epoch
   * milliseconds (Infinity for none); `parentCall` propagates its deadline and cancellation
   * as `propagateFlags` (grpc.propagate) say. A `host` override is refused (UNIMPLEMENTED).
   */
  createCall(method, deadline, host, parentCall, propagateFlags) {
    if (typeof method !== 'string') {
      throw new TypeError('Channel#createCall: method must be a string');
    }
    if (!(typeof deadline === 'number' || deadline instanceof Date)) {
      throw new TypeError('Channel#createCall: deadline must be a number or Date');
    }
    if (this.#closed) {
      throw new Error('Channel has been shut down');
    }
    return new ChannelCall(this.#pool, this.#target, method, deadline, host, parentCall, propagateFlags);
  }
}

module.exports = { Channel, Connectivity };
