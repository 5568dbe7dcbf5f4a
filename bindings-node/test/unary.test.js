'use strict';
// Unary calls through leases and one-shot: bodies, metadata both ways, every status code,
// deadlines, AbortSignal cancellation, and many calls at once.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Pool, GrpcError, Status, Metadata } = require('..');
const { startEchoServer } = require('./helpers/echo_server');
const { echoSuite } = require('./helpers/suite');
const { METHOD, encode, decode } = require('./helpers/codec');
const { waitFor } = require('./helpers/wait');

describe('unary calls', () => {
  const suite = echoSuite({ maxConnectionsPerTarget: 4, keepaliveTimeMs: 60000 });
  let server;
  let pool;
  before(() => ({ server, pool } = suite));

  it('returns the response body as a Buffer, on a lease and one-shot', async () => {
    const lease = await pool.acquire(server.target, { timeoutMs: 1000 });
    try {
      const body = await lease.unary(METHOD.unary, encode({ message: 'hello' }), { timeoutMs: 2000 });
      assert.ok(Buffer.isBuffer(body));
      assert.deepEqual(decode(body), { message: 'hello', index: 0 });
    } finally {
      lease.release();
    }
    const body = await pool.unary(server.target, METHOD.unary, encode({ message: 'once' }));
    assert.equal(decode(body).message, 'once');
  });

  it('follows the endpoints set for a static:/// target', async () => {
    const target = 'static:///node-echo';
    await assert.rejects(
      pool.unary(target, METHOD.unary, encode({ message: 'x' }), { timeoutMs: 5000 }),
      (error) => error instanceof GrpcError && error.code === Status.UNAVAILABLE && /setEndpoints|set_endpoints/.test(error.details),
    );
    pool.setEndpoints('node-echo', [server.target.replace('http://', '')]);
    const body = await pool.unary(target, METHOD.unary, encode({ message: 'pushed' }), { timeoutMs: 5000 });
    assert.equal(decode(body).message, 'pushed');
    pool.setEndpoints('node-echo', []);
    await assert.rejects(
      pool.unary(target, METHOD.unary, encode({ message: 'x' }), { timeoutMs: 5000 }),
      (error) => error instanceof GrpcError && error.code === Status.UNAVAILABLE,
    );
    assert.throws(() => pool.setEndpoints('node-echo', ['127.0.0.1']), (error) => error instanceof TypeError && /needs a port/.test(error.message));
    assert.throws(() => pool.setEndpoints('no name', ['127.0.0.1:1']), /no endpoint name/);
    assert.throws(() => pool.setEndpoints('node-echo', '127.0.0.1:1'), { code: 'ERR_INVALID_ARG_TYPE' });
    // Weighted: { address, weight }, 1 or more.
    pool.setEndpoints('node-echo', [{ address: server.target.replace('http://', ''), weight: 3 }]);
    const weighted = await pool.unary(target, METHOD.unary, encode({ message: 'weighted' }), { timeoutMs: 5000 });
    assert.equal(decode(weighted).message, 'weighted');
    assert.throws(() => pool.setEndpoints('node-echo', [{ address: '127.0.0.1:1', weight: 0 }]), /weight 0/);
    assert.throws(() => pool.setEndpoints('node-echo', [{ address: '127.0.0.1:1', weight: -1 }]), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('takes a Uint8Array request', async () => {
    const bytes = new Uint8Array(encode({ message: 'typed' }));
    const body = await pool.unary(server.target, METHOD.unary, bytes);
    assert.equal(decode(body).message, 'typed');
  });

  it('sends metadata and returns headers, trailers and status with unaryResponse', async () => {
    const lease = await pool.acquire(server.target);
    try {
      const response = await lease.unaryResponse(METHOD.unary, encode({ message: 'm' }), {
        metadata: { 'x-text': 'value', 'x-raw-bin': Buffer.from([0, 1, 255]), 'x-many': ['a', 'b'] },
      });
      assert.equal(response.code, Status.OK);
      assert.equal(response.details, '');
      assert.deepEqual(response.headers.get('x-text'), ['value']);
      // Node's HTTP/2 server joins repeated header fields with ", ".
      assert.equal(response.headers.get('x-many').join(', '), 'a, b');
      assert.deepEqual(response.trailers.get('x-raw-bin'), [Buffer.from([0, 1, 255])]);
      assert.equal(decode(response.body).message, 'm');
    } finally {
      lease.release();
    }
  });

  it('takes a Metadata object', async () => {
    const metadata = new Metadata().set('x-one', '1').add('x-one', '2');
    const response = await pool.unaryResponse(server.target, METHOD.unary, encode({}), { metadata });
    assert.equal(response.headers.get('x-one').join(', '), '1, 2');
  });

  it('rejects every non-OK status code with a GrpcError carrying code, details and metadata', async () => {
    for (let code = 1; code <= 16; code += 1) {
      const request = encode({ status: code, statusMessage: `failed with ${code}` });
      const error = await pool
        .unary(server.target, METHOD.unary, request, { metadata: { 'x-code': String(code) } })
        .then(() => assert.fail('resolved'), (e) => e);
      assert.ok(error instanceof GrpcError, `code ${code}: ${error}`);
      assert.ok(error instanceof Error);
      assert.equal(error.code, code);
      assert.equal(error.details, `failed with ${code}`);
      assert.deepEqual(error.metadata.get('x-code'), [String(code)]);
      const name = Object.keys(Status).find((key) => Status[key] === code);
      assert.equal(error.message, `${code} ${name}: failed with ${code}`);
    }
  });

  it('resolves unaryResponse with a non-OK status instead of rejecting', async () => {
    const response = await pool.unaryResponse(server.target, METHOD.unary, encode({ status: Status.NOT_FOUND, statusMessage: 'gone' }));
    assert.equal(response.code, Status.NOT_FOUND);
    assert.equal(response.details, 'gone');
  });

  it('has every status code by name', () => {
    assert.equal(Status.OK, 0);
    assert.equal(Status.DEADLINE_EXCEEDED, 4);
    assert.equal(Status.UNAUTHENTICATED, 16);
    assert.equal(Object.keys(Status).length, 17);
    assert.ok(Object.isFrozen(Status));
  });

  it('fails a call past its deadline with DEADLINE_EXCEEDED', async () => {
    const started = Date.now();
    const error = await pool
      .unary(server.target, METHOD.unary, encode({ sleepMs: 2000 }), { timeoutMs: 100 })
      .then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof GrpcError);
    assert.equal(error.code, Status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 1500, 'the deadline ended the call early');
  });

  it('cancels a call when its AbortSignal aborts; the server sees the cancellation', async () => {
    const before = server.cancelled();
    const controller = new AbortController();
    const lease = await pool.acquire(server.target);
    try {
      const call = lease.unary(METHOD.unary, encode({ sleepMs: 5000 }), { signal: controller.signal });
      setTimeout(() => controller.abort(), 100);
      const started = Date.now();
      const error = await call.then(() => assert.fail('resolved'), (e) => e);
      assert.ok(error instanceof GrpcError);
      assert.equal(error.code, Status.CANCELLED);
      assert.ok(Date.now() - started < 2000);
      await waitFor(() => server.cancelled() > before);
    } finally {
      lease.release();
    }
  });

  it('rejects at once with an already aborted signal, and after completion abort does nothing', async () => {
    const error = await pool
      .unary(server.target, METHOD.unary, encode({}), { signal: AbortSignal.abort() })
      .then(() => assert.fail('resolved'), (e) => e);
    assert.equal(error.code, Status.CANCELLED);
    const controller = new AbortController();
    const body = await pool.unary(server.target, METHOD.unary, encode({ message: 'ok' }), { signal: controller.signal });
    controller.abort();
    assert.equal(decode(body).message, 'ok');
  });

  it('cancels an acquire waiting for a slot', async () => {
    // A server that takes one stream per connection: a second lease has to wait.
    const narrow = await startEchoServer({ 'grpc.max_concurrent_streams': 1 });
    const small = new Pool({ maxConnectionsPerTarget: 1 });
    try {
      const held = await small.acquire(narrow.target);
      const controller = new AbortController();
      const waiting = small.acquire(narrow.target, { timeoutMs: 5000, signal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Released in the same tick as the abort: the slot may reach the cancelled waiter
      // before its task is dropped, and must come back to the pool all the same.
      controller.abort();
      held.release();
      const error = await waiting.then(() => assert.fail('resolved'), (e) => e);
      assert.equal(error.code, Status.CANCELLED);
      const again = await small.acquire(narrow.target, { timeoutMs: 1000 });
      again.release();
    } finally {
      await small.close();
      await narrow.close();
    }
  });

  it('runs 1,000 concurrent calls', async () => {
    const calls = [];
    for (let i = 0; i < 1000; i += 1) {
      calls.push(pool.unary(server.target, METHOD.unary, encode({ message: `m${i}` }), { timeoutMs: 20000 }));
    }
    const bodies = await Promise.all(calls);
    bodies.forEach((body, i) => assert.equal(decode(body).message, `m${i}`));
    const stats = pool.stats();
    assert.ok(stats.callsSucceeded >= 1000);
    assert.equal(stats.streamsInFlight, 0);
  });

  it('reports an unreachable target as UNAVAILABLE', async () => {
    const error = await pool
      .acquire('http://127.0.0.1:1', { timeoutMs: 1000 })
      .then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof GrpcError);
    assert.equal(error.code, Status.UNAVAILABLE);
  });

  it('counts calls in stats', () => {
    const stats = pool.stats();
    assert.ok(stats.callsStarted > 0);
    assert.ok(stats.targets.some((target) => target.target === server.target));
    assert.equal(typeof stats.callsFailed.NOT_FOUND, 'number');
  });
});
