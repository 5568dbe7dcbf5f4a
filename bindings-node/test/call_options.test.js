'use strict';
// Per-call options on every kind of call: compression (checked against the repository's own
// echo server, which reports the request's grpc-encoding) and a timeout of 0.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Pool, GrpcError, Status, createClient } = require('..');
const { echoSuite } = require('./helpers/suite');
const { EchoService } = require('./helpers/echo_server');
const { startRustEchoServer, unavailable, UNARY } = require('./helpers/rust_echo_server');
const { METHOD, encode, decode } = require('./helpers/codec');

const ENCODING = 'x-received-grpc-encoding';

async function rejection(promise) {
  return promise.then(() => assert.fail('resolved'), (error) => error);
}

describe('compression', { skip: unavailable() }, () => {
  let server;
  let pool;
  before(async () => {
    server = await startRustEchoServer();
    pool = new Pool();
  });
  after(async () => {
    await pool?.close();
    await server?.close();
  });

  it('gzip reaches the server, one-shot and on a lease', async () => {
    const request = Buffer.from('squeeze me '.repeat(100));
    const once = await pool.unaryResponse(server.target, UNARY, request, { compression: 'gzip' });
    assert.equal(once.code, Status.OK, once.details);
    assert.deepEqual(once.headers.get(ENCODING), ['gzip']);
    assert.deepEqual(once.body, request);
    const lease = await pool.acquire(server.target);
    try {
      const leased = await lease.unaryResponse(UNARY, request, { compression: 'gzip', timeoutMs: 5000 });
      assert.deepEqual(leased.headers.get(ENCODING), ['gzip']);
      assert.deepEqual(leased.body, request);
    } finally {
      lease.release();
    }
  });

  it('identity, or no compression, sends the request as it is', async () => {
    for (const options of [{ compression: 'identity' }, {}, { compression: undefined }]) {
      const response = await pool.unaryResponse(server.target, UNARY, Buffer.from('plain'), options);
      assert.equal(response.code, Status.OK);
      assert.notDeepEqual(response.headers.get(ENCODING), ['gzip'], JSON.stringify(options));
    }
  });
});

describe('call options on a @grpc/grpc-js server', () => {
  const suite = echoSuite();
  let server;
  let pool;
  before(() => ({ server, pool } = suite));

  it('gzip requests are read by grpc-js, on streams and generated clients too', async () => {
    const message = 'compressible '.repeat(200);
    const body = await pool.unary(server.target, METHOD.unary, encode({ message }), { compression: 'gzip' });
    assert.equal(decode(body).message, message);
    const stream = await pool.openStream(server.target, METHOD.bidi, { compression: 'gzip' });
    await stream.write(encode({ message }));
    assert.equal(decode(await stream.read()).message, message);
    assert.equal((await stream.finish()).code, Status.OK);
    const lease = await pool.acquire(server.target);
    const leased = await lease.openStream(METHOD.bidi, { compression: 'gzip' });
    await leased.write(encode({ message: 'leased' }));
    assert.equal(decode(await leased.read()).message, 'leased');
    assert.equal((await leased.finish()).code, Status.OK);
    const client = createClient(pool, server.target, EchoService);
    assert.equal((await client.unary({ message }, { compression: 'gzip' })).message, message);
    const replies = [];
    for await (const reply of client.bidi([{ message: 'a' }, { message: 'b' }], { compression: 'gzip' })) {
      replies.push(reply.message);
    }
    assert.deepEqual(replies, ['a', 'b']);
  });

  it('refuses a compression the core does not know, on every call', async () => {
    const options = { compression: 'br' };
    const lease = await pool.acquire(server.target);
    try {
      for (const call of [
        () => pool.unary(server.target, METHOD.unary, encode({}), options),
        () => pool.unaryResponse(server.target, METHOD.unary, encode({}), options),
        () => pool.openStream(server.target, METHOD.bidi, options),
        () => lease.unary(METHOD.unary, encode({}), options),
        () => lease.unaryResponse(METHOD.unary, encode({}), options),
        () => lease.openStream(METHOD.bidi, options),
      ]) {
        const error = await rejection(call());
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /unsupported compression "br"/);
      }
      const error = await rejection(lease.unary(METHOD.unary, encode({}), { compression: 1 }));
      assert.match(error.message, /compression must be a string, not number/);
      assert.equal(lease.released, false);
    } finally {
      lease.release();
    }
  });

  it('a timeout of 0 is a deadline already past: DEADLINE_EXCEEDED on every call', async () => {
    const cold = new Pool();
    try {
      const error = await rejection(cold.unary(server.target, METHOD.unary, encode({}), { timeoutMs: 0 }));
      assert.ok(error instanceof GrpcError, String(error));
      assert.equal(error.code, Status.DEADLINE_EXCEEDED);
    } finally {
      await cold.close();
    }
    // A pool with a ready connection too.
    await pool.unary(server.target, METHOD.unary, encode({}));
    for (const call of [
      () => pool.unary(server.target, METHOD.unary, encode({}), { timeoutMs: 0 }),
      () => pool.unaryResponse(server.target, METHOD.unary, encode({}), { timeoutMs: 0 }).then((response) => {
        throw new GrpcError(response.code, response.details);
      }),
    ]) {
      assert.equal((await rejection(call())).code, Status.DEADLINE_EXCEEDED);
    }
    const lease = await pool.acquire(server.target);
    try {
      assert.equal((await rejection(lease.unary(METHOD.unary, encode({}), { timeoutMs: 0 }))).code, Status.DEADLINE_EXCEEDED);
    } finally {
      lease.release();
    }
    // A stream fails to open, or opens and ends, with DEADLINE_EXCEEDED.
    const code = await pool.openStream(server.target, METHOD.bidi, { timeoutMs: 0 })
      .then((stream) => stream.finish().then((status) => status.code), (error) => error.code);
    assert.equal(code, Status.DEADLINE_EXCEEDED);
  });

  it('a timeout of 0 never sends the call, as in grpc-js', async () => {
    await pool.unary(server.target, METHOD.unary, encode({}));
    const before = server.calls();
    const lease = await pool.acquire(server.target);
    try {
      for (let index = 0; index < 5; index += 1) {
        await rejection(pool.unary(server.target, METHOD.unary, encode({}), { timeoutMs: 0 }));
        await rejection(lease.unary(METHOD.unary, encode({}), { timeoutMs: 0 }));
        const stream = await pool.openStream(server.target, METHOD.bidi, { timeoutMs: 0 }).catch(() => undefined);
        await stream?.finish();
      }
    } finally {
      lease.release();
    }
    // Give a call that was sent time to reach the handler.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(server.calls(), before);
  });
});
