'use strict';
// grpcpool.Channel as @grpc/grpc-js's channelOverride: clients from loadPackageDefinition and
// makeGenericClientConstructor (what grpc-tools generates) run over the pool unchanged, against
// real grpc-js servers: every method kind, metadata both ways, statuses with trailers,
// deadlines, cancellation the server sees, interceptors, call credentials, connectivity.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { Pool, Channel, Connectivity, Status } = require('..');
const { startEchoServer, PROTO, EchoService } = require('./helpers/echo_server');
const { waitFor } = require('./helpers/wait');

const { Echo } = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO)).grpcpool.test;

/** A callback-style call as a Promise of `{ error, response }`. */
function settle(start) {
  return new Promise((resolve) => {
    start((error, response) => resolve({ error, response }));
  });
}

/**
 * A grpc-js server of the echo service whose unary handler needs `authorization: Bearer
 * secret` and, for the message "wait", waits for the client's cancel (up to 10 s), counting
 * the cancels it saw while it waited.
 */
async function startGuardedServer() {
  const seen = { cancelledWhileWaiting: 0, waiting: 0 };
  const server = new grpc.Server();
  server.addService(EchoService, {
    unary(call, callback) {
      if (call.metadata.get('authorization')[0] !== 'Bearer secret') {
        const trailers = new grpc.Metadata();
        trailers.set('x-reason', 'no token');
        return callback({ code: Status.UNAUTHENTICATED, details: 'token required', metadata: trailers });
      }
      if (call.request.message !== 'wait') {
        return callback(null, { message: `authorized ${call.request.message}`, index: 0 });
      }
      seen.waiting += 1;
      const timer = setTimeout(() => callback(null, { message: 'not cancelled', index: 0 }), 10000);
      call.on('cancelled', () => {
        clearTimeout(timer);
        seen.cancelledWhileWaiting += 1;
      });
    },
    serverStream(call) { call.end(); },
    clientStream(call, callback) { call.on('data', () => {}); call.on('end', () => callback(null, {})); },
    // Holds the call open until the client ends or cancels it.
    bidi(call) {
      seen.waiting += 1;
      call.on('data', () => {});
      call.on('end', () => call.end());
      call.on('cancelled', () => {
        if (!call.writableEnded) seen.cancelledWhileWaiting += 1;
      });
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  return { target: `http://127.0.0.1:${port}`, seen, close: () => server.forceShutdown() };
}

/** A loopback port nothing listens on. */
async function closedPort() {
  const listener = net.createServer();
  await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address();
  await new Promise((resolve) => listener.close(resolve));
  return port;
}

describe('Channel (grpc-js channelOverride)', () => {
  let server;
  let guarded;
  let pool;
  let channel;
  let client;
  before(async () => {
    server = await startEchoServer();
    guarded = await startGuardedServer();
    pool = new Pool();
    channel = new Channel(pool, server.target);
    client = new Echo('anything', grpc.credentials.createInsecure(), { channelOverride: channel });
  });
  after(async () => {
    client.close();
    await pool.close();
    await server.close();
    guarded.close();
  });

  it('unary: request metadata (with -bin) out, headers, trailers and status in as grpc-js Metadata', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-text', 'value');
    metadata.add('x-text', 'second');
    metadata.set('x-data-bin', Buffer.from([0, 1, 255]));
    let headers;
    let status;
    const { error, response } = await settle((done) => {
      const call = client.unary({ message: 'hello' }, metadata, done);
      call.on('metadata', (value) => { headers = value; });
      call.on('status', (value) => { status = value; });
    });
    assert.equal(error, null);
    assert.deepEqual(response, { message: 'hello', index: 0 });
    await waitFor(() => status !== undefined);
    assert.ok(headers instanceof grpc.Metadata);
    // Node's http2 server joins a repeated header's values, so the grpc-js server echoes one.
    assert.deepEqual(headers.get('x-text'), ['value, second']);
    assert.deepEqual(headers.get('x-data-bin'), [Buffer.from([0, 1, 255])]);
    assert.equal(status.code, grpc.status.OK);
    assert.ok(status.metadata instanceof grpc.Metadata);
    assert.deepEqual(status.metadata.get('x-data-bin'), [Buffer.from([0, 1, 255])]);
  });

  it('server streaming: every message, then the status', async () => {
    const call = client.serverStream({ message: 'm', count: 4 }, (() => { const m = new grpc.Metadata(); m.set('x-k', 'v'); return m; })());
    const status = new Promise((resolve) => call.on('status', resolve));
    const indexes = [];
    for await (const reply of call) {
      indexes.push(reply.index);
    }
    assert.deepEqual(indexes, [0, 1, 2, 3]);
    const { code, metadata } = await status;
    assert.equal(code, grpc.status.OK);
    assert.deepEqual(metadata.get('x-k'), ['v']);
  });

  it('client streaming: the requests joined into one reply', async () => {
    const { error, response } = await settle((done) => {
      const call = client.clientStream(done);
      for (const word of ['a', 'b', 'c']) call.write({ message: word });
      call.end();
    });
    assert.equal(error, null);
    assert.deepEqual(response, { message: 'a,b,c', index: 3 });
  });

  it('bidi: ping-pong, each reply before the next request', async () => {
    const call = client.bidi();
    const replies = [];
    const ended = new Promise((resolve) => call.on('status', resolve));
    for (const word of ['one', 'two', 'three']) {
      call.write({ message: word });
      const [reply] = await new Promise((resolve) => call.once('data', (...args) => resolve(args)));
      replies.push(`${reply.index}:${reply.message}`);
    }
    call.end();
    call.resume();
    assert.deepEqual(replies, ['0:one', '1:two', '2:three']);
    assert.equal((await ended).code, grpc.status.OK);
  });

  it('a non-OK status: code, details and trailers as grpc-js gives them, for unary and streams', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-why', 'asked');
    const { error } = await settle((done) => client.unary({ status: Status.NOT_FOUND, statusMessage: 'no such thing' }, metadata, done));
    assert.equal(error.code, grpc.status.NOT_FOUND);
    assert.equal(error.details, 'no such thing');
    assert.ok(error.metadata instanceof grpc.Metadata);
    assert.deepEqual(error.metadata.get('x-why'), ['asked']);
    assert.match(error.message, /^5 NOT_FOUND: no such thing/);

    const stream = client.serverStream({ message: 'm', count: 2, status: Status.ABORTED, statusMessage: 'stopped' });
    const seen = [];
    const failure = await (async () => {
      try {
        for await (const reply of stream) seen.push(reply.index);
      } catch (caught) {
        return caught;
      }
      return assert.fail('the stream ended without its error');
    })();
    assert.deepEqual(seen, [0, 1]);
    assert.equal(failure.code, grpc.status.ABORTED);
    assert.equal(failure.details, 'stopped');
  });

  it('the grpc-js deadline becomes the call\'s timeout: DEADLINE_EXCEEDED', async () => {
    const { error } = await settle((done) => client.unary({ message: 'slow', sleepMs: 5000 }, { deadline: Date.now() + 100 }, done));
    assert.equal(error.code, grpc.status.DEADLINE_EXCEEDED);
    const past = await settle((done) => client.unary({ message: 'late' }, { deadline: new Date(Date.now() - 1000) }, done));
    assert.equal(past.error.code, grpc.status.DEADLINE_EXCEEDED);
  });

  it('call.cancel() on a stream: the caller gets CANCELLED and the slot returns', async () => {
    const guardedClient = new Echo('x', grpc.credentials.createInsecure(), { channelOverride: new Channel(pool, guarded.target) });
    const waitingBefore = guarded.seen.waiting;
    const call = guardedClient.bidi();
    const failed = new Promise((resolve) => call.on('error', resolve));
    call.write({ message: 'hold' });
    await waitFor(() => guarded.seen.waiting > waitingBefore);
    call.cancel();
    const error = await failed;
    assert.equal(error.code, grpc.status.CANCELLED);
    assert.equal(error.details, 'Cancelled on client');
    await waitFor(() => pool.stats().streamsInFlight === 0);
  });

  it('call.cancel() on a unary call: the caller gets CANCELLED and the slot returns', async () => {
    const guardedClient = new Echo('x', grpc.credentials.createInsecure(), { channelOverride: new Channel(pool, guarded.target) });
    const metadata = new grpc.Metadata();
    metadata.set('authorization', 'Bearer secret');
    const waitingBefore = guarded.seen.waiting;
    let call;
    const outcome = settle((done) => { call = guardedClient.unary({ message: 'wait' }, metadata, done); });
    await waitFor(() => guarded.seen.waiting > waitingBefore);
    call.cancel();
    const { error } = await outcome;
    assert.equal(error.code, grpc.status.CANCELLED);
    assert.equal(error.details, 'Cancelled on client');
    await waitFor(() => pool.stats().streamsInFlight === 0);
  });

  // The server hearing of the cancel, on a unary call (a stream the Channel half-closed before
  // it was cancelled). A bidi call is left out here: a grpc-js server reports a reset bidi call
  // as ended by the client first, with grpc-js's own client too, so it cannot tell a cancel from
  // a half-close; core/tests/cancel_after_half_close.rs checks bidi against a server that can.
  it('call.cancel() on a unary call: the server sees it cancelled', async () => {
    const guardedClient = new Echo('x', grpc.credentials.createInsecure(), { channelOverride: new Channel(pool, guarded.target) });
    const metadata = new grpc.Metadata();
    metadata.set('authorization', 'Bearer secret');
    const before = guarded.seen.cancelledWhileWaiting;
    const waitingBefore = guarded.seen.waiting;
    const call = guardedClient.unary({ message: 'wait' }, metadata, () => {});
    call.on('error', () => {});
    await waitFor(() => guarded.seen.waiting > waitingBefore);
    await new Promise((resolve) => setTimeout(resolve, 100));
    call.cancel();
    await waitFor(() => guarded.seen.cancelledWhileWaiting > before, 2000);
  });

  it('interceptors run above the channel: one adds the token the server checks, one sees the replies', async () => {
    const noToken = new Echo('x', grpc.credentials.createInsecure(), { channelOverride: new Channel(pool, guarded.target) });
    const refused = await settle((done) => noToken.unary({ message: 'hi' }, done));
    assert.equal(refused.error.code, grpc.status.UNAUTHENTICATED);
    assert.deepEqual(refused.error.metadata.get('x-reason'), ['no token']);

    const replies = [];
    const addToken = (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', 'Bearer secret');
        next(metadata, {
          onReceiveMessage(message, nextMessage) {
            replies.push(message.message);
            nextMessage(message);
          },
        });
      },
    });
    const withToken = new Echo('x', grpc.credentials.createInsecure(), {
      channelOverride: new Channel(pool, guarded.target), interceptors: [addToken],
    });
    const accepted = await settle((done) => withToken.unary({ message: 'hi' }, done));
    assert.equal(accepted.error, null);
    assert.equal(accepted.response.message, 'authorized hi');
    assert.deepEqual(replies, ['authorized hi']);

    // Per-call interceptors, as grpc-js takes them in the call options.
    const perCall = await settle((done) => noToken.unary({ message: 'call' }, { interceptors: [addToken] }, done));
    assert.equal(perCall.response.message, 'authorized call');
  });

  it('call credentials from the call options join the request metadata', async () => {
    const guardedClient = new Echo('x', grpc.credentials.createInsecure(), { channelOverride: new Channel(pool, guarded.target) });
    let serviceUrl;
    const credentials = grpc.credentials.createFromMetadataGenerator((options, callback) => {
      serviceUrl = options.service_url;
      const metadata = new grpc.Metadata();
      metadata.set('authorization', 'Bearer secret');
      callback(null, metadata);
    });
    const { error, response } = await settle((done) => guardedClient.unary({ message: 'creds' }, { credentials }, done));
    assert.equal(error, null);
    assert.equal(response.message, 'authorized creds');
    assert.match(serviceUrl, /^https:\/\/127\.0\.0\.1:\d+\/grpcpool\.test\.Echo$/);

    const failing = grpc.credentials.createFromMetadataGenerator((options, callback) => callback(new Error('no key')));
    const failed = await settle((done) => guardedClient.unary({ message: 'creds' }, { credentials: failing }, done));
    assert.equal(failed.error.code, grpc.status.UNKNOWN);
    assert.match(failed.error.details, /no key/);
  });

  it('a makeGenericClientConstructor client (as grpc-tools generates) works the same', async () => {
    const Generic = grpc.makeGenericClientConstructor(EchoService, 'Echo');
    const generic = new Generic('x', grpc.credentials.createInsecure(), { channelOverride: channel });
    const { error, response } = await settle((done) => generic.unary({ message: 'generic' }, done));
    assert.equal(error, null);
    assert.equal(response.message, 'generic');
  });

  it('getPeer gives the connection\'s address; the calls run on pooled connections', async () => {
    let call;
    await settle((done) => { call = client.unary({ message: 'peer' }, done); });
    assert.equal(call.getPeer(), server.target.replace('http://', ''));
    const stats = pool.stats().targets.find((entry) => entry.target === server.target);
    assert.ok(stats.callsStarted > 0);
    assert.equal(stats.connections.ready, 1);
  });

  it('connectivity: IDLE before use, READY through client.waitForReady, SHUTDOWN once closed', async () => {
    const other = await startEchoServer();
    after(() => other.close());
    const fresh = new Channel(pool, other.target);
    assert.equal(fresh.getConnectivityState(false), Connectivity.IDLE);
    assert.equal(fresh.getConnectivityState(false), grpc.connectivityState.IDLE);
    const freshClient = new Echo('x', grpc.credentials.createInsecure(), { channelOverride: fresh });
    await new Promise((resolve, reject) => freshClient.waitForReady(Date.now() + 5000, (error) => (error ? reject(error) : resolve())));
    assert.equal(fresh.getConnectivityState(false), grpc.connectivityState.READY);

    const watched = new Promise((resolve) => fresh.watchConnectivityState(grpc.connectivityState.READY, Date.now() + 5000, resolve));
    freshClient.close();
    assert.equal(await watched, undefined);
    assert.equal(fresh.getConnectivityState(false), grpc.connectivityState.SHUTDOWN);
    assert.throws(() => fresh.createCall('/grpcpool.test.Echo/Unary', Infinity, undefined, null, undefined), /shut down/);
    assert.throws(() => fresh.watchConnectivityState(grpc.connectivityState.SHUTDOWN, Infinity, () => {}), /shut down/);
    assert.equal(pool.closed, false);
  });

  it('connectivity: a target that refuses connections goes to TRANSIENT_FAILURE; a watch times out', async () => {
    const port = await closedPort();
    const down = new Channel(pool, `http://127.0.0.1:${port}`);
    assert.equal(down.getConnectivityState(false), grpc.connectivityState.IDLE);
    // The core reports the state after asking to connect (grpc-js the one before); a refused
    // dial on loopback may have failed already.
    const asked = down.getConnectivityState(true);
    assert.ok([grpc.connectivityState.CONNECTING, grpc.connectivityState.TRANSIENT_FAILURE].includes(asked), String(asked));
    await waitFor(() => down.getConnectivityState(false) === grpc.connectivityState.TRANSIENT_FAILURE, 5000);
    const downClient = new Echo('x', grpc.credentials.createInsecure(), { channelOverride: down });
    const { error } = await settle((done) => downClient.unary({ message: 'x' }, done));
    assert.equal(error.code, grpc.status.UNAVAILABLE);
    const timedOut = await new Promise((resolve) => down.watchConnectivityState(down.getConnectivityState(false), Date.now() + 50, resolve));
    assert.match(timedOut.message, /Deadline passed/);
  });

  it('Pool.connectivity and connectivityChanged: the core\'s state, and a wait for its change', async () => {
    const other = await startEchoServer();
    after(() => other.close());
    const own = new Pool();
    assert.equal(own.connectivity(other.target), Connectivity.IDLE);
    assert.equal(await own.connectivityChanged(other.target, Connectivity.IDLE, { timeoutMs: 20 }), Connectivity.IDLE);
    const changed = own.connectivityChanged(other.target, Connectivity.IDLE, { timeoutMs: 5000 });
    own.connectivity(other.target, { tryToConnect: true });
    assert.notEqual(await changed, Connectivity.IDLE);
    await waitFor(() => own.connectivity(other.target) === Connectivity.READY, 5000);
    assert.throws(() => own.connectivity('nonsense://x'), TypeError);
    await own.close();
    assert.equal(own.connectivity(other.target), Connectivity.SHUTDOWN);
  });

  it('checks its arguments as grpc-js does', () => {
    assert.throws(() => new Channel({}, server.target), TypeError);
    assert.throws(() => new Channel(pool, ''), TypeError);
    assert.throws(() => channel.createCall(7, Infinity), TypeError);
    assert.throws(() => channel.createCall('/a/b', 'soon'), TypeError);
    assert.equal(channel.getTarget(), server.target);
    assert.deepEqual(channel.getChannelzRef(), { kind: 'channel', id: -1, name: server.target });
  });
});
