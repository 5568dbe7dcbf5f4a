// Type-checked with `tsc --noEmit --strict` (never run): the public types accept the
// documented usage and refuse misuse.

import * as grpc from '@grpc/grpc-js';
import { Pool, Lease, Stream, GrpcError, Status, Metadata, createClient, Channel, Connectivity, type ClientCallOptions, poolOptionNames, poolOptionDefaults, type PoolOptions, type PoolStats, type CallResponse } from '../../index';

export async function usage(target: string, bytes: Uint8Array, signal: AbortSignal): Promise<void> {
  const options: PoolOptions = { maxConnectionsPerTarget: 4, keepaliveTimeMs: 60000, tlsCaPem: 'PEM', workerThreads: 2 };
  const pool = new Pool(options);
  const names: string[] = poolOptionNames();
  const defaults: Record<string, number | boolean | string | Buffer> = poolOptionDefaults();
  void names;
  void defaults;
  const lease: Lease = await pool.acquire(target, { timeoutMs: 1000, waitForReady: false, site: 'here', signal });
  try {
    const body: Buffer = await lease.unary('/pkg.Service/Method', Buffer.from(bytes), { timeoutMs: 2000, metadata: { k: 'v', 'k-bin': Buffer.from([1]) }, signal });
    void body;
    const response: CallResponse = await lease.unaryResponse('/pkg.Service/Method', bytes, { metadata: new Metadata().set('k', 'v'), compression: 'gzip' });
    const headers: Array<string | Buffer> = response.headers.get('k');
    void headers;
  } finally {
    lease.release();
  }
  {
    using scoped = await pool.acquire(target);
    void scoped.address;
  }
  {
    await using scoped = await pool.acquire(target);
    void scoped.target;
  }
  const once: Buffer = await pool.unary(target, '/pkg.Service/Method', bytes, { waitForReady: true, compression: 'identity', timeoutMs: 0 });
  void once;
  const stream: Stream = await pool.openStream(target, '/pkg.Service/Bidi', { timeoutMs: 1000 });
  await stream.write(bytes);
  stream.end();
  for await (const message of stream) {
    const chunk: Buffer = message;
    void chunk;
  }
  const status = await stream.finish();
  const code: number = status.code;
  void code;
  const stats: PoolStats = pool.stats();
  const leaks: number = stats.leaksDetected;
  void leaks;
  try {
    await pool.unary(target, '/pkg.Service/Method', bytes);
  } catch (error) {
    if (error instanceof GrpcError && error.code === Status.DEADLINE_EXCEEDED) {
      const details: string = error.details;
      const trailers: Metadata = error.metadata;
      void details;
      void trailers;
    }
  }
  const client = createClient(pool, target, { Method: { path: '/p.S/Method', requestStream: false, responseStream: false, requestSerialize: () => Buffer.alloc(0), responseDeserialize: (b: Buffer) => b } });
  void client;

  // A grpc-js client over the pool, with an interceptor; the same interceptors on createClient.
  const channel = new Channel(pool, target);
  const addToken: grpc.Interceptor = (callOptions, nextCall) => new grpc.InterceptingCall(nextCall(callOptions), {
    start(metadata, listener, next) {
      metadata.set('authorization', 'Bearer t');
      next(metadata, listener);
    },
  });
  const Generic = grpc.makeGenericClientConstructor({}, 'S');
  const overGrpcJs = new Generic('ignored', grpc.credentials.createInsecure(), { channelOverride: channel, interceptors: [addToken] });
  overGrpcJs.close();
  const state: grpc.connectivityState = channel.getConnectivityState(true);
  const ready: boolean = state === Connectivity.READY;
  void ready;
  channel.watchConnectivityState(state, Date.now() + 1000, (error?: Error) => void error);
  const next: grpc.connectivityState = await pool.connectivityChanged(target, pool.connectivity(target, { tryToConnect: true }), { timeoutMs: 100 });
  void next;
  const intercepted = createClient(pool, target, { M: { path: '/p.S/M', requestStream: false, responseStream: false, requestSerialize: () => Buffer.alloc(0), responseDeserialize: (b: Buffer) => b } }, { interceptors: [addToken] });
  const perCall: ClientCallOptions = { timeoutMs: 100, interceptors: [addToken] };
  await intercepted.M({}, perCall);
  const peer: string = (await pool.openStream(target, '/p.S/M')).peer;
  void peer;
  const left: number = await pool.close({ graceMs: 100 });
  void left;

  // @ts-expect-error a string is not bytes
  await pool.unary(target, '/pkg.Service/Method', 'text');
  // @ts-expect-error an unknown pool setting
  new Pool({ maxConnections: 4 });
  // @ts-expect-error timeoutMs is a number of milliseconds
  await pool.acquire(target, { timeoutMs: '1s' });
  // @ts-expect-error a compression the core does not know
  await pool.unary(target, '/pkg.Service/Method', bytes, { compression: 'br' });
  // @ts-expect-error a Channel takes a Pool
  new Channel({}, target);
  // @ts-expect-error interceptors are grpc-js interceptors
  createClient(pool, target, {}, { interceptors: ['no'] });
  // @ts-expect-error a PEM setting takes text or bytes
  new Pool({ tlsCaPem: 42 });
}
