'use strict';
// Stream: one streaming call (server-, client- or bidirectional streaming). Write requests
// with write()/end(), read responses with read() or `for await`; the final status ends it.

const { begin } = require('./completions');
const { checkBytes } = require('./check');
const { Metadata } = require('./metadata');
const { errorFromResult } = require('./errors');
const { callResponse } = require('./responses');

/**
 * A streaming call. Responses are an async iterable of Buffers; a non-OK final status makes
 * the iteration (or `read()`) reject with a GrpcError. One write and one read (`read()` or
 * `headers()`) may wait at a time, and a write and a read may wait together: a second write
 * (or read) while one waits rejects at once with ERR_GRPCPOOL_BUSY, so await each write (it
 * waits for flow control) before the next.
 */
class Stream {
  #native;
  #pool;
  #result;
  #detach;

  /** @internal Made by Pool.openStream and Lease.openStream. */
  constructor(pool, nativeStream, signal) {
    this.#pool = pool;
    this.#native = nativeStream;
    if (signal !== undefined) {
      if (signal.aborted) {
        nativeStream.cancel();
      } else {
        const onAbort = () => this.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        this.#detach = () => signal.removeEventListener('abort', onAbort);
      }
    }
  }

  /**
   * Sends a request message; resolves once HTTP/2 flow control took it. Rejects with
   * ERR_GRPCPOOL_BUSY while another write waits, and with ERR_GRPCPOOL_STREAM_CLOSED once
   * sending is over (after end(), a cancel, or the call's end: reading then gives the status).
   */
  write(message) {
    return begin(this, (id) => this.#native.send(id, checkBytes('message', message)), () => undefined);
  }

  /**
   * Half-closes: no more requests (after a write already started, as in `write(m); end()`).
   * Reading goes on.
   */
  end() {
    this.#native.closeSend();
  }

  /**
   * The response headers, once they arrive (empty if the call ended without any). Counts as a
   * read: ERR_GRPCPOOL_BUSY while a read waits.
   */
  headers() {
    return begin(this, (id) => this.#native.headers(id), (completion) => Metadata.fromEntries(completion.metadata));
  }

  /**
   * The next response message, or null at the end of an OK call; rejects with a GrpcError
   * when the call ended with another status, and with ERR_GRPCPOOL_BUSY while another read
   * (or `headers()`) waits.
   */
  read() {
    return begin(this, (id) => this.#native.recv(id), (completion) => {
      if (completion.body !== undefined) {
        return completion.body;
      }
      this.#ended(completion.result);
      if (completion.result.code !== 0) {
        throw errorFromResult(completion.result);
      }
      return null;
    });
  }

  /**
   * Half-closes, reads to the end (dropping unread messages) and resolves with the final
   * status `{ code, details, headers, trailers }`, whatever the code.
   */
  async finish() {
    this.end();
    while (this.#result === undefined) {
      try {
        await this.read();
      } catch (error) {
        if (this.#result === undefined) {
          throw error;
        }
      }
    }
    return callResponse(this.#result);
  }

  /** Cancels the call: the server sees it cancelled and the status is CANCELLED. */
  cancel() {
    this.#native.cancel();
  }

  /**
   * The address of the connection the call opened on (`host:port`, or `unix:/path`), or ""
   * when it has no single one (a hedged call).
   */
  get peer() {
    return this.#native.peer;
  }

  /** Whether the call has ended (its final status was read). */
  get ended() {
    return this.#result !== undefined;
  }

  /** The response messages; leaving the loop early cancels the call. */
  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        const message = await this.read();
        if (message === null) {
          return;
        }
        yield message;
      }
    } finally {
      if (this.#result === undefined) {
        this.cancel();
      }
    }
  }

  /** Cancels the call, if it is still going, at the end of an `await using` scope. */
  async [Symbol.asyncDispose]() {
    if (this.#result === undefined) {
      this.cancel();
    }
  }

  #ended(result) {
    this.#result = result;
    this.#detach?.();
    this.#pool = undefined;
  }
}

module.exports = { Stream };
