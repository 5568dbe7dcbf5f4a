// Types of the npm package `grpcpool`. The pool options come from settings.d.ts, generated
// from the core's settings table (scripts/gen-header.sh); the statistics and status codes from
// native.d.ts, which napi-rs generates from the addon's Rust (scripts/gen-types.sh); this file
// declares the JavaScript layer over them (lib/).

import type { PoolOptions, TargetOptions } from './settings';
// Types only, from the optional peer dependency @grpc/grpc-js (Channel and interceptors).
import type { ChannelInterface, Deadline, Interceptor, connectivityState } from '@grpc/grpc-js';
import type { PoolStats, TargetStats, ConnectionCounts, ConnectionStats, LeakedLease, WaitPercentiles, XdsStats, XdsResource } from './native';
import { Status, poolOptionNames, poolOptionDefaults } from './native';

export { Status, poolOptionNames, poolOptionDefaults };
export type { PoolOptions, TargetOptions, PoolStats, TargetStats, ConnectionCounts, ConnectionStats, LeakedLease, WaitPercentiles, XdsStats, XdsResource };

/** Request metadata: a Metadata, or key -> string (Buffer for `-bin` keys), or arrays of them. */
export type MetadataInit = Metadata | Record<string, string | Uint8Array | Array<string | Uint8Array>>;

/** Message bytes. */
export type Bytes = Buffer | Uint8Array;

/** gRPC metadata, read as @grpc/grpc-js's Metadata. Keys are lower case. */
export declare class Metadata implements Iterable<[string, string | Buffer]> {
  constructor(init?: Record<string, string | Uint8Array | Array<string | Uint8Array>>);
  /** Replaces the values of `key`. */
  set(key: string, value: string | Uint8Array): this;
  /** Adds a value to `key`. */
  add(key: string, value: string | Uint8Array): this;
  /** Removes every value of `key`. */
  remove(key: string): void;
  /** Every value of `key`, in order. */
  get(key: string): Array<string | Buffer>;
  /** The first value of each key. */
  getMap(): Record<string, string | Buffer>;
  /** Every key with all its values. */
  toJSON(): Record<string, Array<string | Buffer>>;
  /** A copy. */
  clone(): Metadata;
  [Symbol.iterator](): Iterator<[string, string | Buffer]>;
}

/** A call ended with a non-OK status (as @grpc/grpc-js's ServiceError). */
export declare class GrpcError extends Error {
  constructor(code: Status | number, details: string, metadata?: Metadata, extra?: { headers?: Metadata; statusDetails?: Buffer; cause?: unknown });
  /** The gRPC status code. */
  readonly code: Status | number;
  /** The status message. */
  readonly details: string;
  /** The trailing metadata. */
  readonly metadata: Metadata;
  /** The response headers (initial metadata). */
  readonly headers: Metadata;
  /** The `grpc-status-details-bin` bytes, if the server sent any. */
  readonly statusDetails: Buffer | undefined;
}

/** Options of a call on a lease. */
export interface CallOptions {
  /** The deadline, in milliseconds from now; 0 is a deadline already past (DEADLINE_EXCEEDED). */
  timeoutMs?: number;
  /** Request metadata. */
  metadata?: MetadataInit;
  /** How the request is compressed: 'gzip', or 'identity' (the default) for not at all. */
  compression?: 'gzip' | 'identity';
  /** Aborting cancels the call (it rejects with a CANCELLED GrpcError). */
  signal?: AbortSignal;
}

/** Options of a one-shot call or stream on a pool. */
export interface PoolCallOptions extends CallOptions {
  /** Wait for a connection while the target is unreachable instead of failing fast. */
  waitForReady?: boolean;
}

/** Options of `Pool.acquire`. */
export interface AcquireOptions {
  /** How long to wait for a slot (default: the pool's `acquireTimeoutMs`). */
  timeoutMs?: number;
  /** Wait for a connection while the target is unreachable instead of failing fast. */
  waitForReady?: boolean;
  /** Where the lease is taken, for leak reports. */
  site?: string;
  /** Aborting gives up the wait (it rejects with a CANCELLED GrpcError). */
  signal?: AbortSignal;
}

/** A call's whole outcome. */
export interface CallResponse {
  /** The status code (0 is OK). */
  code: Status | number;
  /** The status message. */
  details: string;
  /** Response headers. */
  headers: Metadata;
  /** Response trailers. */
  trailers: Metadata;
  /** The response message (empty unless the status is OK). */
  body: Buffer;
  /** The `grpc-status-details-bin` bytes, if any. */
  statusDetails: Buffer | undefined;
}

/** The final status of a stream. */
export type StreamStatus = Omit<CallResponse, 'body'>;

/** A pool of gRPC connections to any number of targets. */
export declare class Pool implements AsyncDisposable {
  constructor(options?: PoolOptions);
  /** Acquires a lease on `target` (`http://host:port`, `https://host:port`, `unix:/path`, `dns:///name:port`). */
  acquire(target: string, options?: AcquireOptions): Promise<Lease>;
  /** A one-shot unary call (acquire, call, release); resolves with the response body. */
  unary(target: string, method: string, request: Bytes, options?: PoolCallOptions): Promise<Buffer>;
  /** As `unary`, resolving with the whole outcome for any status. */
  unaryResponse(target: string, method: string, request: Bytes, options?: PoolCallOptions): Promise<CallResponse>;
  /** Acquires a lease and opens a streaming call on it. */
  openStream(target: string, method: string, options?: PoolCallOptions): Promise<Stream>;
  /** The connectivity of `target` now (`Connectivity`); `tryToConnect` makes an idle target start connecting. */
  connectivity(target: string, options?: { tryToConnect?: boolean }): connectivityState;
  /** Resolves with `target`'s connectivity once it is other than `last`, or the state at `timeoutMs`; never dials. */
  connectivityChanged(target: string, last: connectivityState, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<connectivityState>;
  /** A snapshot of the pool's counters. */
  stats(): PoolStats;
  /** The pool's metrics in the Prometheus text exposition format: gRPC's OpenTelemetry client metrics (A66) by method, target and status, and the pool's own `grpcpool_*`. */
  metricsText(): string;
  /** Sets the endpoints of `static:///name` targets (`'host:port'` or `'unix:/path'` each, or `{ address, weight }`: round_robin gives an endpoint `weight` turns per round); targets naming it follow at once, opening connections to new addresses before draining removed ones. Throws TypeError (ERR_INVALID_ARG_VALUE) naming a bad name, endpoint or weight. */
  setEndpoints(name: string, endpoints: Array<string | { address: string; weight?: number }>): void;
  /** Leases held longer than `leaseLeakThresholdMs` now, with where they were acquired. */
  leakedLeases(): LeakedLease[];
  /** Stops new work, waits up to `graceMs` for slots in use, closes every connection; resolves with the slots still in use. */
  close(options?: { graceMs?: number }): Promise<number>;
  /** Whether `close` has been called. */
  readonly closed: boolean;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A slot on a pooled connection; release it, or let `using` / `await using` do it. */
export declare class Lease implements Disposable, AsyncDisposable {
  private constructor();
  /** A unary call on the lease's connection; resolves with the response body. */
  unary(method: string, request: Bytes, options?: CallOptions): Promise<Buffer>;
  /** As `unary`, resolving with the whole outcome for any status. */
  unaryResponse(method: string, request: Bytes, options?: CallOptions): Promise<CallResponse>;
  /**
   * Opens a streaming call on the lease's connection, using the lease's slot until the call
   * ends. The lease stays usable once the stream is over, and still needs `release()`; the slot
   * returns once both are done. Rejects with `code: 'ERR_GRPCPOOL_BUSY'` while calls or another
   * stream are in flight on the lease.
   */
  openStream(method: string, options?: CallOptions): Promise<Stream>;
  /** Releases the lease: the slot returns now, or when a stream opened on it ends. Releasing twice does nothing. */
  release(): void;
  /** Whether the lease was released. */
  readonly released: boolean;
  /** The target the lease is for. */
  readonly target: string;
  /** The address of the connection the lease holds ("" once released). */
  readonly address: string;
  [Symbol.dispose](): void;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A streaming call: write requests, read responses (an async iterable of Buffers). One write
 * and one read (`read` or `headers`) may wait at a time; a second of either rejects at once
 * with `code: 'ERR_GRPCPOOL_BUSY'`.
 */
export declare class Stream implements AsyncIterable<Buffer>, AsyncDisposable {
  private constructor();
  /** Sends a request message; resolves once flow control took it. Await it before the next write. */
  write(message: Bytes): Promise<void>;
  /** Half-closes: no more requests (after a write already started). */
  end(): void;
  /** The response headers. */
  headers(): Promise<Metadata>;
  /** The next response, or null at the end of an OK call; rejects with a GrpcError otherwise. */
  read(): Promise<Buffer | null>;
  /** Half-closes, reads to the end and resolves with the final status, whatever the code. */
  finish(): Promise<StreamStatus>;
  /** Cancels the call. */
  cancel(): void;
  /** The address of the connection the call opened on (`host:port` or `unix:/path`); "" for a hedged call. */
  readonly peer: string;
  /** Whether the final status was read. */
  readonly ended: boolean;
  [Symbol.asyncIterator](): AsyncIterator<Buffer>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A streaming call of a generated client: decoded responses, typed requests. */
export interface ResponseStream<Request = any, Response = any> extends AsyncIterable<Response> {
  /** Sends one request; await it before the next (a second write while one waits rejects with `code: 'ERR_GRPCPOOL_BUSY'`). */
  write(request: Request): Promise<void>;
  /** Half-closes. */
  end(): Promise<void>;
  /** The response headers. */
  headers(): Promise<Metadata>;
  /** Cancels the call. */
  cancel(): void;
  /** The final status after reading to the end. */
  finish(): Promise<StreamStatus>;
}

/** A method definition as @grpc/proto-loader makes them. */
export interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(message: any): Buffer;
  responseDeserialize(bytes: Buffer): any;
  originalName?: string;
}

/** A service definition as @grpc/proto-loader makes them (or a grpc-js client constructor with `.service`). */
export type ServiceDefinition = Record<string, MethodDefinition> | { service: Record<string, MethodDefinition> };

/**
 * Options of a createClient call: the pool's, plus grpc-js `interceptors` that replace the
 * client's for this call (such a call takes no `compression`).
 */
export interface ClientCallOptions extends PoolCallOptions {
  interceptors?: Interceptor[];
}

/** Options of `createClient`. */
export interface ClientOptions {
  /** @grpc/grpc-js client interceptors run on every call (in grpc-js's client, over a Channel). */
  interceptors?: Interceptor[];
}

/** A generated client method, by kind. */
export type ClientMethod =
  | ((request: any, options?: ClientCallOptions) => Promise<any>)
  | ((request: any, options?: ClientCallOptions) => ResponseStream)
  | ((requests: Iterable<any> | AsyncIterable<any>, options?: ClientCallOptions) => Promise<any>)
  | ((requests?: Iterable<any> | AsyncIterable<any>, options?: ClientCallOptions) => ResponseStream);

/** A generated client: unary and client-streaming methods return Promises, server-streaming and bidi methods ResponseStreams. */
export type Client = Record<string, any>;

/** A client for `service` on `target`, making its calls through `pool`. */
export declare function createClient(pool: Pool, target: string, service: ServiceDefinition, options?: ClientOptions): Client;

/** gRPC's connectivity states, numbered as @grpc/grpc-js's `connectivityState`. */
export declare const Connectivity: {
  readonly IDLE: connectivityState.IDLE;
  readonly CONNECTING: connectivityState.CONNECTING;
  readonly READY: connectivityState.READY;
  readonly TRANSIENT_FAILURE: connectivityState.TRANSIENT_FAILURE;
  readonly SHUTDOWN: connectivityState.SHUTDOWN;
};

/**
 * @grpc/grpc-js's ChannelInterface over a Pool: `new Client(address, credentials,
 * { channelOverride: new Channel(pool, target) })` runs a grpc-js client's calls on the pool.
 * Closing the channel leaves the pool open.
 */
export declare class Channel implements ChannelInterface {
  constructor(pool: Pool, target: string);
  /** The pool target. */
  getTarget(): string;
  /** New calls throw from now on; the state is SHUTDOWN. */
  close(): void;
  /** The target's connectivity in the pool (SHUTDOWN once the channel is closed); `tryToConnect` makes an idle target start connecting. */
  getConnectivityState(tryToConnect: boolean): connectivityState;
  /** Calls back once the state leaves `currentState`, or with an Error when `deadline` passes first. */
  watchConnectivityState(currentState: connectivityState, deadline: Date | number, callback: (error?: Error) => void): void;
  /** A reference naming the channel; not registered with grpc-js's channelz. */
  getChannelzRef(): ReturnType<ChannelInterface['getChannelzRef']>;
  /** A call on one pool stream (a `host` override ends it UNIMPLEMENTED). */
  createCall(
    method: string,
    deadline: Deadline,
    host: string | null | undefined,
    parentCall: Parameters<ChannelInterface['createCall']>[3],
    propagateFlags: number | null | undefined,
  ): ReturnType<ChannelInterface['createCall']>;
}

/** What `registerMetrics` needs of a registry: prom-client's `Registry` has it. */
export interface MetricRegistry {
  registerMetric(metric: any): void;
}

/**
 * Registers the pool's metric families (`pool.metricsText()`: gRPC's OpenTelemetry client
 * metrics and the pool's own `grpcpool_*`) in a prom-client registry, the default one when
 * omitted; each scrape reads the pool once. Returns the names registered.
 */
export declare function registerMetrics(pool: Pool, registry?: MetricRegistry): string[];
