'use strict';
// Bad input rejects (or, for constructors, throws) with clear errors and never crashes.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Pool, GrpcError, Status } = require('..');
const { echoSuite } = require('./helpers/suite');
const { METHOD, encode } = require('./helpers/codec');

async function rejection(promise) {
  return promise.then(() => assert.fail('resolved'), (error) => error);
}

describe('bad input', () => {
  const suite = echoSuite();
  let server;
  let pool;
  before(() => ({ server, pool } = suite));

  it('rejects a string where bytes are due', async () => {
    const error = await rejection(pool.unary(server.target, METHOD.unary, 'text'));
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /request must be a Buffer or Uint8Array, not string/);
    const lease = await pool.acquire(server.target);
    try {
      const onLease = await rejection(lease.unary(METHOD.unary, { not: 'bytes' }));
      assert.match(onLease.message, /request must be a Buffer or Uint8Array, not an object/);
    } finally {
      lease.release();
    }
  });

  it('rejects malformed targets and methods', async () => {
    for (const target of ['127.0.0.1:50051', 'ftp://x', 'http://', '']) {
      const error = await rejection(pool.acquire(target));
      assert.ok(error instanceof TypeError, `${target}: ${error}`);
      assert.ok(error.message.length > 10);
    }
    assert.match((await rejection(pool.acquire('nope'))).message, /invalid target "nope"/);
    for (const method of ['Service/Method', '/only', '/a/b/c', '']) {
      const error = await rejection(pool.unary(server.target, method, encode({})));
      assert.ok(error instanceof TypeError, `${method}: ${error}`);
    }
    assert.match((await rejection(pool.unary(server.target, 'pkg/M', encode({})))).message, /invalid method "pkg\/M"/);
    assert.match((await rejection(pool.acquire(42))).message, /target must be a non-empty string, not number/);
  });

  it('rejects bad metadata', async () => {
    const cases = [
      [{ 'Upper-Case': 'v' }, /invalid metadata "Upper-Case"/],
      [{ 'x-key': 'line\nbreak' }, /printable ASCII/],
      [{ 'x-key': 42 }, /must be a string or, for keys ending in -bin, a Buffer/],
      [{ 'grpc-timeout': '1S' }, /reserved/],
      [{ 'x-text-bin': 'text' }, /binary value/],
      [{ 'x-raw': Buffer.from([0]) }, /a binary value needs a key ending in -bin/],
      ['k=v', /metadata must be a Metadata or an object/],
    ];
    for (const [metadata, message] of cases) {
      const error = await rejection(pool.unary(server.target, METHOD.unary, encode({}), { metadata }));
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, message);
    }
  });

  it('rejects bad options', async () => {
    assert.match((await rejection(pool.unary(server.target, METHOD.unary, encode({}), { timeoutMs: -1 }))).message, /timeoutMs must be a finite number/);
    assert.match((await rejection(pool.unary(server.target, METHOD.unary, encode({}), { timeout: 5 }))).message, /unknown call options key "timeout"/);
    assert.match((await rejection(pool.unary(server.target, METHOD.unary, encode({}), { signal: 'abort' }))).message, /signal must be an AbortSignal/);
    assert.match((await rejection(pool.acquire(server.target, { timeoutMs: Infinity }))).message, /timeoutMs/);
  });

  it('refuses bad pool settings when the pool is made', () => {
    assert.throws(() => new Pool({ maxConnections: 2 }), { name: 'TypeError', message: /unknown pool options key "maxConnections"/ });
    assert.throws(() => new Pool({ maxConnectionsPerTarget: 0 }), { name: 'TypeError', message: /max_connections_per_target must be at least 1/ });
    assert.throws(() => new Pool({ maxConnectionsPerTarget: 1.5 }), { name: 'TypeError', message: /maxConnectionsPerTarget must be a whole number/ });
    assert.throws(() => new Pool({ connectTimeoutMs: -5 }), { name: 'TypeError', message: /connectTimeoutMs/ });
    assert.throws(() => new Pool({ tlsCaPem: 'not a certificate' }), { name: 'TypeError', message: /TLS/ });
    assert.throws(() => new Pool('fast'), { name: 'TypeError', message: /pool options must be an object/ });
  });

  it('refuses a message over the send limit with RESOURCE_EXHAUSTED', async () => {
    const small = new Pool({ maxSendMessageSize: 16 });
    try {
      const error = await rejection(small.unary(server.target, METHOD.unary, Buffer.alloc(17)));
      assert.ok(error instanceof GrpcError);
      assert.equal(error.code, Status.RESOURCE_EXHAUSTED);
    } finally {
      await small.close();
    }
  });

  it('rejects calls on a released lease, and releasing twice does nothing', async () => {
    const lease = await pool.acquire(server.target);
    lease.release();
    lease.release();
    assert.equal(lease.released, true);
    assert.equal(lease.address, '');
    const error = await rejection(lease.unary(METHOD.unary, encode({})));
    assert.equal(error.code, 'ERR_GRPCPOOL_LEASE_RELEASED');
    assert.match(error.message, /the lease was released/);
    assert.equal((await rejection(lease.openStream(METHOD.bidi))).code, 'ERR_GRPCPOOL_LEASE_RELEASED');
  });

  it('keeps working after all of that', async () => {
    const body = await pool.unary(server.target, METHOD.unary, encode({ message: 'still here' }));
    assert.ok(body.length > 0);
  });
});
