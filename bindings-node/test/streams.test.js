'use strict';
// Streaming calls with raw bytes: server, client and bidi streaming, headers and trailers,
// status, deadlines, AbortSignal cancellation, one write and one read at a time (busy), and
// streams on a lease (which leave it usable, and are refused as busy while it is in use).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Pool, GrpcError, Status } = require('..');
const { echoSuite } = require('./helpers/suite');
const { METHOD, encode, decode } = require('./helpers/codec');
const { waitFor } = require('./helpers/wait');
const { startRustEchoServer, unavailable } = require('./helpers/rust_echo_server');

const BIDI = '/grpcpool.test.Echo/Bidi';
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function rejection(promise) {
  return promise.then(() => assert.fail('resolved'), (error) => error);
}

/** Asserts `error` is the face's own busy refusal: no TypeError, no gRPC status. */
function assertBusy(error) {
  assert.ok(error instanceof Error && !(error instanceof TypeError) && !(error instanceof GrpcError), String(error));
  assert.equal(error.code, 'ERR_GRPCPOOL_BUSY');
  assert.match(error.message, /in flight/);
}

describe('streams', () => {
  const suite = echoSuite();
  let server;
  let pool;
  before(() => ({ server, pool } = suite));

  it('server streaming: every message as a Buffer, then an OK status with headers and trailers', async () => {
    const stream = await pool.openStream(server.target, METHOD.serverStream, { metadata: { 'x-tag': 'server' } });
    await stream.write(encode({ message: 'm', count: 5 }));
    stream.end();
    assert.deepEqual((await stream.headers()).get('x-tag'), ['server']);
    const seen = [];
    for await (const message of stream) {
      assert.ok(Buffer.isBuffer(message));
      seen.push(decode(message).index);
    }
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    assert.equal(stream.ended, true);
    const status = await stream.finish();
    assert.equal(status.code, Status.OK);
    assert.deepEqual(status.trailers.get('x-tag'), ['server']);
    assert.equal(pool.stats().streamsInFlight, 0);
  });

  it('client streaming on a lease', async () => {
    const lease = await pool.acquire(server.target);
    try {
      const stream = await lease.openStream(METHOD.clientStream);
      for (const word of ['a', 'b', 'c']) {
        await stream.write(encode({ message: word }));
      }
      stream.end();
      const reply = decode(await stream.read());
      assert.deepEqual(reply, { message: 'a,b,c', index: 3 });
      assert.equal(await stream.read(), null);
    } finally {
      lease.release();
    }
    assert.equal(pool.stats().leasesOut, 0);
  });

  it('bidi streaming: reads and writes interleave', async () => {
    const stream = await pool.openStream(server.target, METHOD.bidi);
    for (let i = 0; i < 3; i += 1) {
      await stream.write(encode({ message: `ping ${i}` }));
      assert.deepEqual(decode(await stream.read()), { message: `ping ${i}`, index: i });
    }
    stream.end();
    assert.equal(await stream.read(), null);
    await assert.rejects(stream.write(encode({})), { code: 'ERR_GRPCPOOL_STREAM_CLOSED' });
  });

  it('a non-OK final status rejects the iteration with a GrpcError', async () => {
    const stream = await pool.openStream(server.target, METHOD.serverStream, { metadata: { 'x-why': 'test' } });
    await stream.write(encode({ count: 2, status: Status.ABORTED, statusMessage: 'stopped' }));
    stream.end();
    const seen = [];
    const error = await (async () => {
      for await (const message of stream) seen.push(message);
    })().then(() => assert.fail('resolved'), (e) => e);
    assert.equal(seen.length, 2);
    assert.ok(error instanceof GrpcError);
    assert.equal(error.code, Status.ABORTED);
    assert.equal(error.details, 'stopped');
    assert.deepEqual(error.metadata.get('x-why'), ['test']);
    assert.equal((await stream.finish()).code, Status.ABORTED);
  });

  it('a deadline ends a stream with DEADLINE_EXCEEDED', async () => {
    const stream = await pool.openStream(server.target, METHOD.serverStream, { timeoutMs: 150 });
    await stream.write(encode({ count: 10, sleepMs: 100 }));
    stream.end();
    const error = await (async () => {
      for await (const message of stream) void message;
    })().then(() => assert.fail('resolved'), (e) => e);
    assert.equal(error.code, Status.DEADLINE_EXCEEDED);
  });

  it('an AbortSignal cancels a stream; the server sees it', async () => {
    const before = server.cancelled();
    const controller = new AbortController();
    const stream = await pool.openStream(server.target, METHOD.bidi, { signal: controller.signal });
    await stream.write(encode({ message: 'one' }));
    assert.equal(decode(await stream.read()).message, 'one');
    const pending = stream.read();
    controller.abort();
    const error = await pending.then(() => assert.fail('resolved'), (e) => e);
    assert.equal(error.code, Status.CANCELLED);
    await waitFor(() => server.cancelled() > before);
    assert.equal(pool.stats().streamsInFlight, 0);
  });

  it('an aborted signal cancels opening a stream', async () => {
    await assert.rejects(pool.openStream(server.target, METHOD.bidi, { signal: AbortSignal.abort() }), { code: Status.CANCELLED });
  });

  it('leaving a for await loop early cancels the call', async () => {
    const before = server.cancelled();
    const stream = await pool.openStream(server.target, METHOD.serverStream);
    await stream.write(encode({ count: 1000, sleepMs: 5 }));
    stream.end();
    let count = 0;
    for await (const message of stream) {
      void message;
      count += 1;
      if (count === 3) break;
    }
    await waitFor(() => server.cancelled() > before);
    await waitFor(() => pool.stats().streamsInFlight === 0);
  });

  it('many streams at once', async () => {
    const runs = [];
    for (let i = 0; i < 50; i += 1) {
      runs.push((async () => {
        const stream = await pool.openStream(server.target, METHOD.bidi);
        await stream.write(encode({ message: `s${i}` }));
        stream.end();
        const messages = [];
        for await (const message of stream) messages.push(decode(message).message);
        return messages;
      })());
    }
    const results = await Promise.all(runs);
    results.forEach((messages, i) => assert.deepEqual(messages, [`s${i}`]));
  });

  it('write(m); end() sends m: the half-close comes after a write already started', async () => {
    for (let round = 0; round < 20; round += 1) {
      const stream = await pool.openStream(server.target, METHOD.clientStream);
      const written = stream.write(encode({ message: `m${round}` }));
      stream.end();
      await written;
      assert.deepEqual(decode(await stream.read()), { message: `m${round}`, index: 1 });
      assert.equal((await stream.finish()).code, Status.OK);
      await assert.rejects(stream.write(encode({})), { code: 'ERR_GRPCPOOL_STREAM_CLOSED' });
    }
  });

  it('a second read while one waits is refused as busy; the first goes on', async () => {
    const stream = await pool.openStream(server.target, METHOD.bidi);
    const first = stream.read();
    await assert.rejects(stream.read(), { code: 'ERR_GRPCPOOL_BUSY' });
    await assert.rejects(stream.headers(), { code: 'ERR_GRPCPOOL_BUSY' });
    await stream.write(encode({ message: 'after' }));
    assert.equal(decode(await first).message, 'after');
    stream.end();
    assert.equal(await stream.read(), null);
  });
});

describe('streams on a lease', () => {
  const suite = echoSuite();
  let server;
  let pool;
  before(() => ({ server, pool } = suite));

  it('leaves the lease usable: calls on it after the stream, then release', async () => {
    const lease = await pool.acquire(server.target);
    const stream = await lease.openStream(METHOD.bidi);
    assert.equal(lease.released, false);
    await stream.write(encode({ message: 'streamed' }));
    assert.equal(decode(await stream.read()).message, 'streamed');
    assert.equal((await stream.finish()).code, Status.OK);
    // The stream is over, the lease is not released: the slot is still out.
    assert.equal(pool.stats().leasesOut, 1);
    assert.equal(decode(await lease.unary(METHOD.unary, encode({ message: 'after' }))).message, 'after');
    const again = await lease.openStream(METHOD.bidi);
    assert.equal((await again.finish()).code, Status.OK);
    assert.equal(pool.stats().leasesOut, 1);
    lease.release();
    assert.equal(lease.released, true);
    assert.equal(pool.stats().leasesOut, 0);
  });

  it('a lease released while its stream runs gives the slot back when the stream ends', async () => {
    const lease = await pool.acquire(server.target);
    const stream = await lease.openStream(METHOD.bidi);
    lease.release();
    assert.equal(lease.released, true);
    assert.equal(pool.stats().leasesOut, 1);
    await stream.write(encode({ message: 'still open' }));
    assert.equal(decode(await stream.read()).message, 'still open');
    assert.equal((await stream.finish()).code, Status.OK);
    assert.equal(pool.stats().leasesOut, 0);
  });

  it('refuses a second stream while one is open as busy, and opens it afterwards', async () => {
    const lease = await pool.acquire(server.target);
    try {
      const first = await lease.openStream(METHOD.bidi);
      assertBusy(await rejection(lease.openStream(METHOD.bidi)));
      await first.write(encode({ message: 'first' }));
      assert.equal(decode(await first.read()).message, 'first');
      assert.equal((await first.finish()).code, Status.OK);
      const second = await lease.openStream(METHOD.bidi);
      await second.write(encode({ message: 'second' }));
      assert.equal(decode(await second.read()).message, 'second');
      assert.equal((await second.finish()).code, Status.OK);
    } finally {
      lease.release();
    }
  });

  it('refuses a stream while a unary call is in flight on the lease, from the moment it starts', async () => {
    const lease = await pool.acquire(server.target);
    try {
      for (let round = 0; round < 10; round += 1) {
        // No wait for the call to reach the server: it counts as in flight once started.
        const slow = lease.unary(METHOD.unary, encode({ message: `slow ${round}`, sleepMs: 20 }));
        assertBusy(await rejection(lease.openStream(METHOD.bidi)));
        assert.equal(lease.released, false);
        assert.equal(decode(await slow).message, `slow ${round}`);
      }
      const stream = await lease.openStream(METHOD.bidi);
      await stream.write(encode({ message: 'now' }));
      assert.equal(decode(await stream.read()).message, 'now');
      assert.equal((await stream.finish()).code, Status.OK);
    } finally {
      lease.release();
    }
  });
});

describe('streams on a flow-controlled server', { skip: unavailable() }, () => {
  let server;
  before(async () => {
    server = await startRustEchoServer();
  });
  after(async () => {
    await server?.close();
  });

  it('a second write while one waits on flow control is refused as busy', async () => {
    // Small windows, and nobody reads the echoes: the server stops reading, so a write waits.
    const pool = new Pool({ initialStreamWindowSize: 65535, initialConnectionWindowSize: 65535 });
    try {
      const stream = await pool.openStream(server.target, BIDI, { timeoutMs: 20000 });
      const chunk = Buffer.alloc(32 * 1024, 1);
      let waiting;
      for (let index = 0; index < 400 && waiting === undefined; index += 1) {
        const writing = stream.write(chunk);
        const wrote = await Promise.race([writing.then(() => true), delay(300).then(() => false)]);
        if (!wrote) waiting = writing;
      }
      assert.ok(waiting, 'no write ever waited on flow control');
      const error = await stream.write(Buffer.from('x')).then(() => assert.fail('resolved'), (e) => e);
      assert.equal(error.code, 'ERR_GRPCPOOL_BUSY');
      assert.ok(!(error instanceof TypeError));
      // A cancel wakes the waiting write: sending is over.
      stream.cancel();
      await assert.rejects(waiting, { code: 'ERR_GRPCPOOL_STREAM_CLOSED' });
      assert.equal((await stream.finish()).code, Status.CANCELLED);
    } finally {
      await pool.close();
    }
  });
});
