'use strict';
// createClient: a client for a service loaded by @grpc/proto-loader, whose methods take and
// return plain objects and Promises (async iterables for streamed responses), over a Pool.

const { checkString, checkOptions } = require('./check');
const { Stream } = require('./stream');
const { interceptedClient, interceptedMethod } = require('./intercepted');
const { withCode } = require('./errors');

/**
 * A client for `service` (a service definition from @grpc/proto-loader's `loadSync(...)`,
 * e.g. `packageDefinition['pkg.Service']`, or a @grpc/grpc-js service client constructor) on
 * `target`, making its calls through `pool`. Per method kind:
 * - unary: `(request, options?) => Promise<response>`
 * - server streaming: `(request, options?) => ResponseStream` (async iterable of responses)
 * - client streaming: `(requests, options?) => Promise<response>` (requests: an iterable or
 *   async iterable)
 * - bidi streaming: `(requests?, options?) => ResponseStream` (with `write` and `end` when no
 *   requests iterable is given)
 * Methods are there under their proto names and lowerCamelCase names, as in @grpc/grpc-js.
 *
 * `options.interceptors` (@grpc/grpc-js client interceptors) run on every call, and a call's
 * own `interceptors` option replaces them for that call, as in grpc-js: such calls go through
 * grpc-js's client over a grpcpool Channel (grpc-js's interceptor machinery, unchanged), with
 * the same method shapes; calls without interceptors go to the pool directly.
 */
function createClient(pool, target, service, options) {
  checkString('target', target);
  const interceptors = checkOptions('client options', options, ['interceptors']).interceptors ?? [];
  if (!Array.isArray(interceptors)) {
    throw withCode(new TypeError('interceptors must be an array of grpc-js interceptors'), 'ERR_INVALID_ARG_TYPE');
  }
  let grpcClient;
  const viaGrpcJs = () => (grpcClient ??= interceptedClient(pool, target, interceptors));
  const definition = service?.service ?? service;
  if (typeof definition !== 'object' || definition === null) {
    throw new TypeError('service must be a service definition loaded by @grpc/proto-loader');
  }
  const client = {};
  for (const [name, method] of Object.entries(definition)) {
    if (typeof method?.path !== 'string' || typeof method.requestSerialize !== 'function') {
      throw new TypeError(`service method ${JSON.stringify(name)} is not a method definition (no path or serializers)`);
    }
    const direct = methodCall(pool, target, method);
    const intercepted = checkedRequests(method, interceptedMethod(viaGrpcJs, method));
    const call = interceptors.length > 0
      ? intercepted
      : (requests, callOptions) => (callOptions?.interceptors !== undefined ? intercepted : direct)(requests, callOptions);
    client[name] = call;
    if (method.originalName && !(method.originalName in client)) {
      client[method.originalName] = call;
    }
  }
  return Object.freeze(client);
}

function methodCall(pool, target, method) {
  const encode = (message) => method.requestSerialize(message);
  const decode = (bytes) => method.responseDeserialize(bytes);
  if (!method.requestStream && !method.responseStream) {
    return async (request, options) => decode(await pool.unary(target, method.path, encode(request), options));
  }
  if (!method.requestStream) {
    return (request, options) => {
      const call = new ResponseStream(pool.openStream(target, method.path, options), encode, decode);
      call.send([request]);
      return call;
    };
  }
  if (!method.responseStream) {
    return async (requests, options) => {
      checkIterable(requests);
      const call = new ResponseStream(pool.openStream(target, method.path, options), encode, decode);
      await call.send(requests);
      return call.single();
    };
  }
  return (requests, options) => {
    if (requests !== undefined && requests !== null) {
      checkIterable(requests);
    }
    const call = new ResponseStream(pool.openStream(target, method.path, options), encode, decode);
    if (requests !== undefined && requests !== null) {
      call.send(requests);
    }
    return call;
  };
}

/** `call` with createClient's check of a streaming call's requests first. */
function checkedRequests(method, call) {
  if (!method.requestStream) {
    return call;
  }
  if (!method.responseStream) {
    return async (requests, options) => {
      checkIterable(requests);
      return call(requests, options);
    };
  }
  return (requests, options) => {
    if (requests !== undefined && requests !== null) {
      checkIterable(requests);
    }
    return call(requests, options);
  };
}

function checkIterable(requests) {
  const iterable = requests !== null && typeof requests === 'object' &&
    (Symbol.iterator in requests || Symbol.asyncIterator in requests);
  if (!iterable) {
    throw new TypeError('requests must be an iterable or async iterable of messages');
  }
}

/**
 * A streaming call of a generated client: an async iterable of decoded responses, with
 * `write(request)`, `end()`, `headers()`, `cancel()` and `finish()` (the final status).
 */
class ResponseStream {
  #opening;
  #encode;
  #decode;
  #sending;

  constructor(opening, encode, decode) {
    this.#opening = opening;
    // The failure to open is reported where the caller reads.
    opening.catch(() => {});
    this.#encode = encode;
    this.#decode = decode;
  }

  /** Sends one request; resolves once flow control took it. */
  async write(request) {
    const stream = await this.#opening;
    await stream.write(this.#encode(request));
  }

  /** Half-closes: no more requests. */
  async end() {
    (await this.#opening).end();
  }

  /**
   * Sends every request of an iterable or async iterable, then half-closes. A failure to send
   * (a request that does not encode, say) cancels the call; `single` reports that failure.
   */
  send(requests) {
    this.#sending = (async () => {
      const stream = await this.#opening;
      try {
        for await (const request of requests) {
          await stream.write(this.#encode(request));
        }
        stream.end();
      } catch (error) {
        stream.cancel();
        throw error;
      }
    })();
    // Readers see a failed send through the call's status; `single` rethrows it.
    this.#sending.catch(() => {});
    return this.#sending;
  }

  /** The response headers. */
  async headers() {
    return (await this.#opening).headers();
  }

  /** Cancels the call. */
  cancel() {
    this.#opening.then((stream) => stream.cancel(), () => {});
  }

  /** The final status `{ code, details, headers, trailers }` after reading to the end. */
  async finish() {
    return (await this.#opening).finish();
  }

  /** The one response of a client-streaming call. */
  async single() {
    const stream = await this.#opening;
    let response;
    try {
      response = await stream.read();
    } catch (error) {
      let sendError;
      await this.#sending?.catch((failure) => {
        sendError = failure;
      });
      throw sendError ?? error;
    }
    if (response === null) {
      throw new TypeError('the server ended the call without a response message');
    }
    await stream.finish();
    return this.#decode(response);
  }

  /** The decoded responses; leaving the loop early cancels the call. */
  async *[Symbol.asyncIterator]() {
    const stream = await this.#opening;
    for await (const message of stream) {
      yield this.#decode(message);
    }
  }
}

module.exports = { createClient, ResponseStream, Stream };
