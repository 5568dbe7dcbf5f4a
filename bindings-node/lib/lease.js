'use strict';
// Lease: a reserved slot on one pooled connection, for calls until it is released.

const { begin } = require('./completions');
const { checkString, checkBytes } = require('./check');
const { callOptions, LEASE_CALL_KEYS } = require('./call_options');
const { bodyOf, responseOf } = require('./responses');
const { errorFromFailure } = require('./errors');
const { Stream } = require('./stream');

/**
 * A slot on a pooled connection. Release it with `release()`, or let `using` / `await using`
 * do it; a lease collected unreleased is released and counted as a leak.
 */
class Lease {
  #native;
  #pool;

  /** @internal Made by Pool.acquire. */
  constructor(pool, nativeLease) {
    this.#pool = pool;
    this.#native = nativeLease;
  }

  /** A unary call on the lease's connection; resolves with the response body. */
  unary(method, request, options) {
    return this.#unary(method, request, options, false, bodyOf);
  }

  /** As `unary`, resolving with `{ code, details, headers, trailers, body }` for any status. */
  unaryResponse(method, request, options) {
    return this.#unary(method, request, options, true, responseOf);
  }

  #unary(method, request, options, full, convert) {
    return begin(this, (id, cancellable) => {
      checkString('method', method);
      checkBytes('request', request);
      const o = callOptions(options, LEASE_CALL_KEYS);
      return this.#native.unary(id, method, request, o.timeoutMs, o.metadata, o.compression, full, cancellable);
    }, convert, options, this.#cancel);
  }

  /**
   * Opens a streaming call on the lease's connection, using the lease's slot until the call
   * ends. The lease stays usable once the stream is over and still needs release(); the slot
   * returns once both are done. Rejects with ERR_GRPCPOOL_BUSY while calls or another stream
   * are in flight on the lease.
   */
  async openStream(method, options) {
    checkString('method', method);
    const o = callOptions(options, LEASE_CALL_KEYS);
    const opened = this.#native.openStream(method, o.timeoutMs, o.metadata, o.compression);
    if (opened.kind !== undefined) {
      throw errorFromFailure(opened);
    }
    return new Stream(this.#pool, opened, o.signal);
  }

  /**
   * Releases the lease: the slot returns now, or when a stream opened on it ends. Releasing
   * twice does nothing.
   */
  release() {
    this.#native.release();
  }

  /** Whether the lease was released. */
  get released() {
    return this.#native.released;
  }

  /** The target the lease is for. */
  get target() {
    return this.#native.target;
  }

  /** The address of the connection the lease holds ("" once released). */
  get address() {
    return this.#native.address;
  }

  /** Releases the lease at the end of a `using` scope. */
  [Symbol.dispose]() {
    this.release();
  }

  /** Releases the lease at the end of an `await using` scope. */
  async [Symbol.asyncDispose]() {
    this.release();
  }

  #cancel = (id) => this.#native.cancel(id);
}

module.exports = { Lease };
