'use strict';
// Errors: GrpcError for gRPC statuses (as @grpc/grpc-js's ServiceError), Node-style errors
// with a `code` string for misuse of the library.

const { Metadata } = require('./metadata');
const { Status, statusName } = require('./status');

/** A call ended with a non-OK status; `code`, `details` and `metadata` as @grpc/grpc-js. */
class GrpcError extends Error {
  /**
   * @param {number} code the gRPC status code
   * @param {string} details the status message
   * @param {Metadata} [metadata] the trailers
   * @param {object} [extra] `headers` (Metadata), `statusDetails` (Buffer), `cause`
   */
  constructor(code, details, metadata, extra = {}) {
    super(`${code} ${statusName(code)}: ${details}`, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'GrpcError';
    /** The gRPC status code (see Status). */
    this.code = code;
    /** The status message. */
    this.details = details;
    /** The trailing metadata. */
    this.metadata = metadata ?? new Metadata();
    /** The response headers (initial metadata). */
    this.headers = extra.headers ?? new Metadata();
    /** The `grpc-status-details-bin` bytes, if the server sent any. */
    this.statusDetails = extra.statusDetails;
  }
}

/**
 * The `code` of the Error for each kind of Failure that is neither a status nor bad input.
 * ERR_GRPCPOOL_BUSY: other work in flight refuses the operation now (opening a stream on a
 * lease with unary calls in flight, a second write or read on a stream while one waits);
 * nothing happened, and it may be tried again once that work is done.
 */
const FAILURE_CODES = {
  closed: 'ERR_GRPCPOOL_CLOSED',
  released: 'ERR_GRPCPOOL_LEASE_RELEASED',
  'stream-closed': 'ERR_GRPCPOOL_STREAM_CLOSED',
  busy: 'ERR_GRPCPOOL_BUSY',
  internal: 'ERR_GRPCPOOL_INTERNAL',
};

/** The Error for a Failure from the addon. */
function errorFromFailure(failure) {
  if (failure.kind === 'status') {
    return new GrpcError(failure.code, failure.message);
  }
  if (failure.kind === 'invalid') {
    return withCode(new TypeError(failure.message), 'ERR_INVALID_ARG_VALUE');
  }
  return withCode(new Error(failure.message), FAILURE_CODES[failure.kind] ?? 'ERR_GRPCPOOL_INTERNAL');
}

/** The GrpcError for a non-OK CallResult from the addon. */
function errorFromResult(result) {
  return new GrpcError(result.code, result.details, Metadata.fromEntries(result.trailers), {
    headers: Metadata.fromEntries(result.headers),
    statusDetails: result.statusDetails,
  });
}

/** The GrpcError for a call cancelled through its AbortSignal. */
function cancelledError(signal) {
  return new GrpcError(Status.CANCELLED, 'Cancelled on client', undefined, { cause: signal?.reason });
}

function withCode(error, code) {
  error.code = code;
  return error;
}

module.exports = { GrpcError, errorFromFailure, errorFromResult, cancelledError, withCode };
