'use strict';
// createClient over a service loaded from a .proto file with @grpc/proto-loader: plain
// objects and Promises for every method kind.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const protoLoader = require('@grpc/proto-loader');
const grpc = require('@grpc/grpc-js');
const { Pool, GrpcError, Status, createClient } = require('..');
const { startEchoServer, PROTO } = require('./helpers/echo_server');

describe('createClient', () => {
  let server;
  let pool;
  let client;
  before(async () => {
    server = await startEchoServer();
    pool = new Pool();
    const definition = protoLoader.loadSync(PROTO, { defaults: true });
    client = createClient(pool, server.target, definition['grpcpool.test.Echo']);
  });
  after(async () => {
    await pool.close();
    await server.close();
  });

  it('unary: a plain object in, a Promise of a plain object out, under both method names', async () => {
    assert.deepEqual(await client.Unary({ message: 'hi' }), { message: 'hi', index: 0 });
    assert.deepEqual(await client.unary({ message: 'camel' }, { timeoutMs: 2000, metadata: { 'x-k': 'v' } }), { message: 'camel', index: 0 });
  });

  it('unary: a non-OK status rejects with a GrpcError', async () => {
    const error = await client.unary({ status: Status.NOT_FOUND, statusMessage: 'missing' }).then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof GrpcError);
    assert.equal(error.code, Status.NOT_FOUND);
    assert.equal(error.details, 'missing');
  });

  it('server streaming: an async iterable of plain objects', async () => {
    const replies = [];
    for await (const reply of client.serverStream({ message: 'r', count: 3 })) {
      replies.push(reply);
    }
    assert.deepEqual(replies, [0, 1, 2].map((index) => ({ message: 'r', index })));
  });

  it('client streaming: requests from an iterable or async iterable, a Promise of the reply', async () => {
    assert.deepEqual(await client.clientStream([{ message: 'a' }, { message: 'b' }]), { message: 'a,b', index: 2 });
    async function* words() {
      yield { message: 'x' };
      await new Promise((resolve) => setTimeout(resolve, 10));
      yield { message: 'y' };
    }
    assert.deepEqual(await client.clientStream(words()), { message: 'x,y', index: 2 });
    await assert.rejects(client.clientStream(42), { name: 'TypeError', message: /iterable/ });
  });

  it('bidi streaming: write and read in turn, or pipe an iterable', async () => {
    const call = client.bidi();
    const replies = call[Symbol.asyncIterator]();
    for (const message of ['one', 'two']) {
      await call.write({ message });
      assert.equal((await replies.next()).value.message, message);
    }
    await call.end();
    assert.equal((await replies.next()).done, true);
    const piped = [];
    for await (const reply of client.bidi([{ message: 'p' }, { message: 'q' }])) piped.push(reply.message);
    assert.deepEqual(piped, ['p', 'q']);
  });

  it('a streaming call to an unreachable target fails when read', async () => {
    const definition = protoLoader.loadSync(PROTO, { defaults: true });
    const dead = createClient(pool, 'http://127.0.0.1:1', definition['grpcpool.test.Echo']);
    const error = await (async () => {
      for await (const reply of dead.serverStream({ count: 1 })) void reply;
    })().then(() => assert.fail('resolved'), (e) => e);
    assert.equal(error.code, Status.UNAVAILABLE);
  });

  it('takes a @grpc/grpc-js service client constructor too', async () => {
    const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO));
    const viaGrpcJs = createClient(pool, server.target, loaded.grpcpool.test.Echo);
    assert.equal((await viaGrpcJs.unary({ message: 'g' })).message, 'g');
  });

  it('refuses what is not a service definition', () => {
    assert.throws(() => createClient(pool, server.target, null), TypeError);
    assert.throws(() => createClient(pool, server.target, { Method: {} }), /not a method definition/);
    assert.throws(() => createClient(pool, '', {}), /target must be a non-empty string/);
  });
});
