'use strict';
// Streaming calls with raw bytes: server, client and bidi streaming, headers and trailers,
// status, deadlines and AbortSignal cancellation.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Pool, GrpcError, Status } = require('..');
const { startEchoServer } = require('./helpers/echo_server');
const { METHOD, encode, decode } = require('./helpers/codec');
const { waitFor } = require('./helpers/wait');

describe('streams', () => {
  let server;
  let pool;
  before(async () => {
    server = await startEchoServer();
    pool = new Pool();
  });
  after(async () => {
    await pool.close();
    await server.close();
  });

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

  it('client streaming on a lease: the stream takes the lease over', async () => {
    const lease = await pool.acquire(server.target);
    const stream = await lease.openStream(METHOD.clientStream);
    assert.equal(lease.released, true);
    for (const word of ['a', 'b', 'c']) {
      await stream.write(encode({ message: word }));
    }
    stream.end();
    const reply = decode(await stream.read());
    assert.deepEqual(reply, { message: 'a,b,c', index: 3 });
    assert.equal(await stream.read(), null);
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
});
