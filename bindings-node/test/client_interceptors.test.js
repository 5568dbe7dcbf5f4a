'use strict';
// createClient with @grpc/grpc-js client interceptors (client-wide and per call), against a
// real grpc-js server: they change the request metadata the server sees and see the replies,
// for every method kind; the method shapes, errors and options stay createClient's.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { Pool, GrpcError, Status, createClient } = require('..');
const { startEchoServer, PROTO } = require('./helpers/echo_server');

/** An interceptor that adds `x-auth: <token>` and records each reply it sees in `seen`. */
function tagging(token, seen) {
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('x-auth', token);
      next(metadata, {
        onReceiveMessage(message, nextMessage) {
          seen?.push(message.message);
          nextMessage(message);
        },
      });
    },
  });
}

describe('createClient with grpc-js interceptors', () => {
  let server;
  let pool;
  let service;
  before(async () => {
    server = await startEchoServer();
    pool = new Pool();
    service = protoLoader.loadSync(PROTO, { defaults: true })['grpcpool.test.Echo'];
  });
  after(async () => {
    await pool.close();
    await server.close();
  });

  it('client-wide: every method kind carries the metadata the interceptor adds', async () => {
    const seen = [];
    const client = createClient(pool, server.target, service, { interceptors: [tagging('t1', seen)] });
    assert.deepEqual(await client.unary({ message: 'u' }), { message: 'u', index: 0 });
    assert.deepEqual(seen, ['u']);

    const streamed = client.serverStream({ message: 's', count: 2 });
    assert.deepEqual((await streamed.headers()).get('x-auth'), ['t1']);
    const replies = [];
    for await (const reply of streamed) replies.push(reply.index);
    assert.deepEqual(replies, [0, 1]);

    assert.deepEqual(await client.clientStream([{ message: 'a' }, { message: 'b' }]), { message: 'a,b', index: 2 });

    const bidi = client.bidi();
    await bidi.write({ message: 'x' });
    await bidi.end();
    const echoed = [];
    for await (const reply of bidi) echoed.push(reply.message);
    assert.deepEqual(echoed, ['x']);
    const status = await bidi.finish();
    assert.equal(status.code, Status.OK);
    assert.deepEqual(status.trailers.get('x-auth'), ['t1']);
    assert.ok(pool.stats().targets.find((entry) => entry.target === server.target).callsStarted >= 4);
  });

  it('a non-OK status rejects with a GrpcError carrying the trailers the server sent', async () => {
    const client = createClient(pool, server.target, service, { interceptors: [tagging('t2')] });
    const error = await client.unary({ status: Status.PERMISSION_DENIED, statusMessage: 'denied' }).then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof GrpcError);
    assert.equal(error.code, Status.PERMISSION_DENIED);
    assert.equal(error.details, 'denied');
    assert.deepEqual(error.metadata.get('x-auth'), ['t2']);
    assert.deepEqual(error.headers.get('x-auth'), ['t2']);
  });

  it('per call: a call\'s interceptors replace the client\'s, on a client without any too', async () => {
    const plain = createClient(pool, server.target, service);
    const stream = plain.serverStream({ message: 'p', count: 1 }, { interceptors: [tagging('per-call')], metadata: { 'x-other': 'o' } });
    const headers = await stream.headers();
    assert.deepEqual(headers.get('x-auth'), ['per-call']);
    assert.deepEqual(headers.get('x-other'), ['o']);
    for await (const reply of stream) assert.equal(reply.message, 'p');

    const tagged = createClient(pool, server.target, service, { interceptors: [tagging('client')] });
    const replaced = tagged.serverStream({ message: 'p', count: 1 }, { interceptors: [tagging('call')] });
    assert.deepEqual((await replaced.headers()).get('x-auth'), ['call']);
    await replaced.finish();
  });

  it('timeoutMs, signal and waitForReady keep their meaning; compression is refused', async () => {
    const client = createClient(pool, server.target, service, { interceptors: [tagging('t3')] });
    const late = await client.unary({ sleepMs: 5000 }, { timeoutMs: 50 }).then(() => assert.fail('resolved'), (e) => e);
    assert.equal(late.code, Status.DEADLINE_EXCEEDED);

    const controller = new AbortController();
    const cancelled = client.unary({ sleepMs: 5000 }, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('enough')), 50);
    const error = await cancelled.then(() => assert.fail('resolved'), (e) => e);
    assert.equal(error.code, Status.CANCELLED);
    assert.equal(error.cause.message, 'enough');

    assert.deepEqual(await client.unary({ message: 'w' }, { waitForReady: true, timeoutMs: 5000 }), { message: 'w', index: 0 });
    await assert.rejects(client.unary({ message: 'z' }, { compression: 'gzip' }), /compression is not available/);
    await assert.rejects(client.unary({ message: 'z' }, { bogus: 1 }), /unknown call options key "bogus"/);
    assert.throws(() => createClient(pool, server.target, service, { interceptors: 'no' }), TypeError);
    assert.throws(() => createClient(pool, server.target, service, { other: [] }), TypeError);
  });

  it('leaving a stream early cancels the call', async () => {
    const client = createClient(pool, server.target, service, { interceptors: [tagging('t4')] });
    for await (const reply of client.serverStream({ message: 'e', count: 100, sleepMs: 10 })) {
      assert.equal(reply.index, 0);
      break;
    }
    const deadline = Date.now() + 3000;
    while (pool.stats().streamsInFlight !== 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(pool.stats().streamsInFlight, 0);
  });
});
