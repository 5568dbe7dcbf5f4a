'use strict';
// createClient's calls with @grpc/grpc-js client interceptors: they run in grpc-js's own
// client (its interceptor machinery, unchanged) over a Channel on the pool, and this module
// turns grpc-js's call objects into createClient's shapes (Promises, ResponseStream-like
// async iterables) and grpc-js's errors into GrpcErrors.

const { once } = require('node:events');
const { grpcJs } = require('./grpc_js');
const { Channel } = require('./channel');
const { GrpcError, cancelledError, withCode } = require('./errors');
const { Metadata, toEntries } = require('./metadata');
const { checkOptions, checkMillis, checkBoolean, checkSignal } = require('./check');

/** The per-call options on this path: the pool's, less compression, plus interceptors. */
const INTERCEPTED_CALL_KEYS = ['timeoutMs', 'metadata', 'waitForReady', 'signal', 'interceptors', 'compression'];

/** A grpc-js Client on `target` through `pool`, with client-wide `interceptors`. */
function interceptedClient(pool, target, interceptors) {
  const grpc = grpcJs();
  return new grpc.Client(target, grpc.credentials.createInsecure(), {
    channelOverride: new Channel(pool, target),
    interceptors,
  });
}

/** grpc-js's metadata and call options for createClient's call `options`. */
function grpcCallOptions(options) {
  const o = checkOptions('call options', options, INTERCEPTED_CALL_KEYS);
  if (o.compression !== undefined && o.compression !== 'identity') {
    throw withCode(new TypeError('compression is not available on calls with interceptors (they go through grpcpool.Channel)'), 'ERR_INVALID_ARG_VALUE');
  }
  const metadata = new (grpcJs().Metadata)();
  for (const { key, value } of toEntries(o.metadata) ?? []) {
    metadata.add(key, value);
  }
  if (checkBoolean('waitForReady', o.waitForReady)) {
    metadata.setOptions({ waitForReady: true });
  }
  const callOptions = {};
  const timeoutMs = checkMillis('timeoutMs', o.timeoutMs);
  if (timeoutMs !== undefined) {
    callOptions.deadline = Date.now() + timeoutMs;
  }
  if (o.interceptors !== undefined) {
    if (!Array.isArray(o.interceptors)) {
      throw withCode(new TypeError('interceptors must be an array of grpc-js interceptors'), 'ERR_INVALID_ARG_TYPE');
    }
    callOptions.interceptors = o.interceptors;
  }
  return { metadata, callOptions, signal: checkSignal(o.signal) };
}

/** This package's Metadata with a grpc-js Metadata's entries. */
function fromGrpcMetadata(metadata) {
  const out = new Metadata();
  for (const [key, values] of Object.entries(metadata?.toJSON() ?? {})) {
    for (const value of values) {
      out.add(key, value);
    }
  }
  return out;
}

/** Cancels `call` when `signal` aborts; returns a function that stops listening. */
function cancelOnAbort(call, signal) {
  if (signal === undefined) {
    return () => {};
  }
  if (signal.aborted) {
    call.cancel();
    return () => {};
  }
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/**
 * One call's outcome as grpc-js reports it: `headers` (a Promise of this package's Metadata)
 * and `status` (a Promise of grpc-js's status object).
 */
function outcome(call) {
  // Not events.once: that rejects on the 'error' a streaming call emits beside its status.
  const status = new Promise((resolve) => call.once('status', resolve));
  const headers = Promise.race([
    new Promise((resolve) => call.once('metadata', resolve)).then(fromGrpcMetadata),
    status.then(() => new Metadata()),
  ]);
  return { status, headers };
}

/** The GrpcError for a grpc-js call error; `signal`'s abort makes it the pool's CANCELLED. */
async function grpcError(error, headers, signal) {
  if (signal?.aborted) {
    return cancelledError(signal);
  }
  if (typeof error?.code !== 'number') {
    return error;
  }
  return new GrpcError(error.code, error.details, fromGrpcMetadata(error.metadata), { headers: await headers, cause: error });
}

/** A unary (or client-streaming, with `send`) call: a Promise of the decoded response. */
function promiseCall(start, signal, send) {
  return new Promise((resolve, reject) => {
    let headers;
    const call = start((error, response) => {
      stop();
      if (error) {
        grpcError(error, headers, signal).then(reject);
      } else {
        resolve(response);
      }
    });
    headers = outcome(call).headers;
    const stop = cancelOnAbort(call, signal);
    send?.(call).catch((error) => {
      call.cancel();
      reject(error);
    });
  });
}

/** Writes every request of an iterable or async iterable to `call` (waiting on drain), then ends. */
async function sendAll(call, requests) {
  for await (const request of requests) {
    if (!call.write(request)) {
      await once(call, 'drain');
    }
  }
  call.end();
}

/**
 * A streaming call of createClient over a grpc-js call object: the same surface as
 * ResponseStream (write, end, headers, cancel, finish, async iteration of decoded responses).
 */
class InterceptedStream {
  #call;
  #outcome;
  #signal;
  #stop;

  constructor(call, signal) {
    this.#call = call;
    this.#signal = signal;
    this.#outcome = outcome(call);
    // An error is reported where the caller reads; this only keeps it from going unhandled.
    call.on('error', () => {});
    this.#stop = cancelOnAbort(call, signal);
    this.#outcome.status.then(() => this.#stop());
  }

  /** Sends one request; resolves once grpc-js took it. */
  write(request) {
    return new Promise((resolve, reject) => {
      this.#call.write(request, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Half-closes: no more requests. */
  async end() {
    this.#call.end();
  }

  /** Sends every request of `requests`, then half-closes; a failure to send cancels the call. */
  send(requests) {
    const sending = sendAll(this.#call, requests).catch((error) => {
      this.#call.cancel();
      throw error;
    });
    sending.catch(() => {});
    return sending;
  }

  /** The response headers. */
  headers() {
    return this.#outcome.headers;
  }

  /** Cancels the call. */
  cancel() {
    this.#call.cancel();
  }

  /** Reads to the end (dropping unread responses) and resolves with the final status. */
  async finish() {
    if (typeof this.#call.end === 'function' && !this.#call.writableEnded) {
      this.#call.end();
    }
    this.#call.resume();
    const status = await this.#outcome.status;
    return {
      code: status.code,
      details: status.details,
      headers: await this.#outcome.headers,
      trailers: fromGrpcMetadata(status.metadata),
    };
  }

  /** The decoded responses; a non-OK status throws its GrpcError; leaving early cancels. */
  async *[Symbol.asyncIterator]() {
    let done = false;
    try {
      for await (const response of this.#call) {
        yield response;
      }
      done = true;
    } catch (error) {
      done = true;
      throw await grpcError(error, this.#outcome.headers, this.#signal);
    } finally {
      if (!done) {
        this.#call.cancel();
      }
    }
  }
}

/** The createClient method for `method` (a proto-loader method definition) over `client()`. */
function interceptedMethod(client, method) {
  const { path, requestSerialize: encode, responseDeserialize: decode } = method;
  if (!method.requestStream && !method.responseStream) {
    return async (request, options) => {
      const { metadata, callOptions, signal } = grpcCallOptions(options);
      return promiseCall((done) => client().makeUnaryRequest(path, encode, decode, request, metadata, callOptions, done), signal);
    };
  }
  if (!method.requestStream) {
    return (request, options) => {
      const { metadata, callOptions, signal } = grpcCallOptions(options);
      return new InterceptedStream(client().makeServerStreamRequest(path, encode, decode, request, metadata, callOptions), signal);
    };
  }
  if (!method.responseStream) {
    return async (requests, options) => {
      const { metadata, callOptions, signal } = grpcCallOptions(options);
      return promiseCall((done) => client().makeClientStreamRequest(path, encode, decode, metadata, callOptions, done), signal,
        (call) => sendAll(call, requests));
    };
  }
  return (requests, options) => {
    const { metadata, callOptions, signal } = grpcCallOptions(options);
    const stream = new InterceptedStream(client().makeBidiStreamRequest(path, encode, decode, metadata, callOptions), signal);
    if (requests !== undefined && requests !== null) {
      stream.send(requests);
    }
    return stream;
  };
}

module.exports = { interceptedClient, interceptedMethod };
