'use strict';
// ChannelCall: the `Call` that Channel.createCall gives @grpc/grpc-js's client, over one pool
// stream (Pool.openStream). It translates grpc-js's listener protocol to the stream and back:
// start -> open the stream with the call's metadata and deadline; sendMessageWithContext ->
// write; halfClose -> end; startRead -> hand over the next message; cancelWithStatus ->
// cancel. The stream (core's shared stream) owns the call's state; this keeps only what the
// translation needs: whether grpc-js asked for a message, and the one message read ahead.
//
// Why one message ahead: grpc-js reports the final status without being asked (a unary
// response asks for one message, then waits for the status), while the stream learns of the
// end only by reading. So after handing over a message the call reads the next one at once;
// it keeps that message until grpc-js asks for it, and HTTP/2 flow control holds the rest.

const { grpcJs } = require('./grpc_js');
const { GrpcError } = require('./errors');
const { Status } = require('./status');

/** grpc-js's Propagate bits this call honours. */
const PROPAGATE_DEADLINE = 1;
const PROPAGATE_CANCELLATION = 8;
const PROPAGATE_DEFAULTS = 0xffff;

/** Codes a call-credentials plugin may not give a call (gRPC's A54); INTERNAL instead. */
const CONTROL_PLANE_CODES = new Set([
  Status.INVALID_ARGUMENT, Status.NOT_FOUND, Status.ALREADY_EXISTS, Status.FAILED_PRECONDITION,
  Status.ABORTED, Status.OUT_OF_RANGE, Status.DATA_LOSS,
]);

let lastCallNumber = 0;

class ChannelCall {
  #pool;
  #target;
  #method;
  #deadline;
  #callNumber;
  #credentials;
  #listener;
  /** Resolves with the Stream once it is open; rejects when it could not open. */
  #opening;
  #stream;
  /** Aborted by cancelWithStatus: drops the open, or cancels the stream. */
  #abort = new AbortController();
  /** Whether the status was given to grpc-js (or is about to be). */
  #ended = false;
  /** The response headers were given to grpc-js. */
  #headersGiven = false;
  /** grpc-js asked for a message (startRead) and has none yet. */
  #wanted = false;
  /** A read is running on the stream. */
  #reading = false;
  /** The message read ahead, until grpc-js asks for it. */
  #held;
  /** Why the call cannot start, found at createCall (a host override, say). */
  #refusal;

  /** @internal Made by Channel.createCall. */
  constructor(pool, target, method, deadline, host, parentCall, propagateFlags) {
    this.#pool = pool;
    this.#target = target;
    this.#method = method;
    this.#callNumber = (lastCallNumber = (lastCallNumber + 1) >>> 0);
    this.#deadline = deadline;
    if (typeof host === 'string' && host !== '') {
      this.#refusal = { code: Status.UNIMPLEMENTED, details: `grpcpool.Channel does not override the authority per call (host ${JSON.stringify(host)})` };
    }
    if (parentCall) {
      const flags = propagateFlags ?? PROPAGATE_DEFAULTS;
      if (flags & PROPAGATE_DEADLINE) {
        this.#deadline = earlier(this.#deadline, parentCall.getDeadline());
      }
      if (flags & PROPAGATE_CANCELLATION) {
        parentCall.on('cancelled', () => this.cancelWithStatus(Status.CANCELLED, 'Cancelled by parent call'));
      }
    }
  }

  /** Opens the stream with `metadata` (a grpc-js Metadata); `listener` hears the responses. */
  start(metadata, listener) {
    this.#listener = listener;
    if (this.#refusal !== undefined) {
      this.#opening = Promise.reject(new GrpcError(this.#refusal.code, this.#refusal.details));
    } else {
      const credentials = this.#credentials;
      const open = (extra) => this.#pool.openStream(this.#target, this.#method, this.#options(metadata, extra));
      this.#opening = credentials === undefined
        ? open(undefined)
        : credentials.generateMetadata({ method_name: this.#method, service_url: serviceUrl(this.#target, this.#method) })
          .then(open, (error) => {
            const code = typeof error?.code === 'number' ? error.code : Status.UNKNOWN;
            throw new GrpcError(CONTROL_PLANE_CODES.has(code) ? Status.INTERNAL : code,
              `Getting metadata from plugin failed with error: ${error?.message ?? String(error)}`);
          });
    }
    this.#opening.then((stream) => this.#opened(stream), (error) => this.#end(statusOf(error)));
  }

  /** Writes `message` (a Buffer); `context.callback` runs once HTTP/2 flow control took it. */
  sendMessageWithContext(context, message) {
    const done = () => context?.callback?.();
    this.#opening.then((stream) => stream.write(message).then(done, (error) => {
      // A call that is over refuses writes; its status comes by the read side, as in grpc-js.
      if (error?.code !== 'ERR_GRPCPOOL_STREAM_CLOSED') {
        if (error instanceof GrpcError) {
          this.cancelWithStatus(error.code, error.details);
        } else {
          this.cancelWithStatus(Status.INTERNAL, `grpcpool: the message could not be sent: ${error?.message ?? String(error)}`);
        }
      }
      done();
    }), done);
  }

  /** As sendMessageWithContext with no context. */
  sendMessage(message) {
    this.sendMessageWithContext({}, message);
  }

  /** Half-closes (after the writes already started). */
  halfClose() {
    this.#opening.then((stream) => stream.end(), () => {});
  }

  /** Asks for the next message: the one read ahead now, else the next the stream reads. */
  startRead() {
    if (this.#ended) {
      return;
    }
    if (this.#held === undefined) {
      this.#wanted = true;
      return;
    }
    const message = this.#held;
    this.#held = undefined;
    // As grpc-js, never into the listener from inside startRead.
    process.nextTick(() => {
      if (!this.#ended) {
        this.#listener.onReceiveMessage(message);
      }
    });
    this.#read();
  }

  /**
   * Cancels the call: the stream is reset (the server sees it cancelled) and grpc-js hears
   * `{ code, details }` as the final status.
   */
  cancelWithStatus(code, details) {
    if (this.#ended) {
      return;
    }
    this.#abort.abort();
    this.#end({ code, details, metadata: undefined }, true);
  }

  /** The address of the connection the call runs on, or the target before the call opened. */
  getPeer() {
    return this.#stream?.peer || this.#target;
  }

  /** A number for this call, unique in the process (for grpc-js's traces). */
  getCallNumber() {
    return this.#callNumber;
  }

  /** Call credentials (from the call options): their metadata joins the call's at start. */
  setCredentials(credentials) {
    this.#credentials = credentials;
  }

  /** Not known: the pool does not expose the connection's TLS session. */
  getAuthContext() {
    return null;
  }

  #options(metadata, extra) {
    const entries = metadata.toJSON();
    if (extra !== undefined) {
      for (const [key, values] of Object.entries(extra.toJSON())) {
        entries[key] = [...(entries[key] ?? []), ...values];
      }
    }
    const options = { metadata: entries, signal: this.#abort.signal };
    const timeoutMs = timeoutOf(this.#deadline);
    if (timeoutMs !== undefined) {
      options.timeoutMs = timeoutMs;
    }
    if (metadata.getOptions().waitForReady) {
      options.waitForReady = true;
    }
    return options;
  }

  #opened(stream) {
    this.#stream = stream;
    if (this.#ended) {
      return;
    }
    stream.headers().then((headers) => {
      // A call that ended without headers (Trailers-Only) reports none, as grpc-js; headers
      // without entries wait for the first message, which tells the two apart.
      if (!this.#ended && !isEmpty(headers)) {
        this.#giveHeaders(headers);
      }
      this.#read();
    }, (error) => this.#end(statusOf(error)));
  }

  /** Starts the next read, unless one runs, a message waits for startRead, or it is over. */
  #read() {
    if (this.#reading || this.#held !== undefined || this.#ended) {
      return;
    }
    this.#reading = true;
    this.#stream.read().then((message) => {
      this.#reading = false;
      if (this.#ended) {
        return;
      }
      if (message === null) {
        this.#stream.finish().then(
          (status) => this.#end({ code: status.code, details: status.details, metadata: status.trailers, headers: status.headers }),
          (error) => this.#end(statusOf(error)),
        );
        return;
      }
      this.#giveHeaders(undefined);
      if (this.#wanted) {
        this.#wanted = false;
        this.#listener.onReceiveMessage(message);
        this.#read();
      } else {
        this.#held = message;
      }
    }, (error) => {
      this.#reading = false;
      this.#end(statusOf(error));
    });
  }

  /** Gives grpc-js the response headers once: `headers`, or the stream's (empty) ones. */
  #giveHeaders(headers) {
    if (this.#headersGiven) {
      return;
    }
    this.#headersGiven = true;
    this.#listener.onReceiveMetadata(toGrpcMetadata(headers));
  }

  /** Gives grpc-js the final status, once; `later` defers it out of the caller's stack. */
  #end(status, later = false) {
    if (this.#ended) {
      return;
    }
    this.#ended = true;
    this.#held = undefined;
    const give = () => {
      if (!this.#headersGiven && status.headers !== undefined && !isEmpty(status.headers)) {
        this.#giveHeaders(status.headers);
      }
      this.#listener.onReceiveStatus({ code: status.code, details: status.details, metadata: toGrpcMetadata(status.metadata) });
    };
    if (later) {
      process.nextTick(give);
    } else {
      give();
    }
  }
}

/** The earlier of two grpc-js deadlines (Date or epoch milliseconds). */
function earlier(a, b) {
  const ms = (deadline) => (deadline instanceof Date ? deadline.getTime() : deadline);
  return ms(b) < ms(a) ? b : a;
}

/** The pool's timeoutMs for a grpc-js deadline: undefined for none (Infinity). */
function timeoutOf(deadline) {
  const until = deadline instanceof Date ? deadline.getTime() : deadline;
  if (until === Infinity) {
    return undefined;
  }
  return Math.max(0, Math.ceil(until - Date.now()));
}

/** grpc-js's `service_url` for call credentials: https://authority/package.Service. */
function serviceUrl(target, method) {
  const authority = target.replace(/^[a-z]+:(\/\/\/?)?/, '').replace(/\/.*$/, '');
  return `https://${authority}${method.slice(0, method.lastIndexOf('/'))}`;
}

/** The status (code, details, trailers, headers) of why a call failed. */
function statusOf(error) {
  if (error instanceof GrpcError) {
    return { code: error.code, details: error.details, metadata: error.metadata, headers: error.headers };
  }
  // The pool refused the call: closed (as grpc-js's shut-down channel), or bad request
  // metadata grpc-js let through.
  const code = error?.code === 'ERR_GRPCPOOL_CLOSED' ? Status.UNAVAILABLE : Status.INTERNAL;
  return { code, details: `grpcpool: ${error?.message ?? String(error)}`, metadata: undefined };
}

function isEmpty(metadata) {
  return metadata[Symbol.iterator]().next().done === true;
}

/** A grpc-js Metadata with the entries of this package's `metadata` (none when undefined). */
function toGrpcMetadata(metadata) {
  const out = new (grpcJs().Metadata)();
  if (metadata !== undefined) {
    for (const [key, value] of metadata) {
      out.add(key, value);
    }
  }
  return out;
}

module.exports = { ChannelCall };
