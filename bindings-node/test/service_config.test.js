'use strict';
// The service config through the Node face, against a @grpc/grpc-js server that fails the
// first attempts of each call: retries to success with grpc-previous-rpc-attempts counted,
// codes the policy does not name left alone, an object or a string accepted, bad configs
// refused when the pool is made.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const { Pool, GrpcError, Status } = require('..');

const METHOD = '/retry.Flaky/Call';
const identity = (buffer) => buffer;
const FLAKY = {
  call: {
    path: METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const POLICY = {
  methodConfig: [{
    name: [{ service: 'retry.Flaky' }],
    retryPolicy: {
      maxAttempts: 4,
      initialBackoff: '0.01s',
      maxBackoff: '0.05s',
      backoffMultiplier: 2,
      retryableStatusCodes: ['UNAVAILABLE'],
    },
  }],
};

describe('service config', () => {
  let server;
  let target;
  const attempts = new Map();
  before(async () => {
    server = new grpc.Server();
    server.addService(FLAKY, {
      call(call, callback) {
        const header = (key, fallback) => String(call.metadata.get(key)[0] ?? fallback);
        const previous = Number(header('grpc-previous-rpc-attempts', '0'));
        const id = header('x-id', '');
        attempts.set(id, [...(attempts.get(id) ?? []), previous]);
        if (previous < Number(header('x-fail', '0'))) {
          callback({ code: grpc.status[header('x-code', 'UNAVAILABLE')], details: 'not yet' });
          return;
        }
        callback(null, call.request);
      },
    });
    const port = await new Promise((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (
        error ? reject(error) : resolve(bound)));
    });
    target = `http://127.0.0.1:${port}`;
  });
  after(() => new Promise((resolve) => server.tryShutdown(resolve)));

  for (const form of ['object', 'string']) {
    it(`retries until the server answers (config as ${form})`, async () => {
      const pool = new Pool({ serviceConfig: form === 'object' ? POLICY : JSON.stringify(POLICY) });
      try {
        const id = `ok-${form}`;
        const reply = await pool.unary(target, METHOD, Buffer.from('hello'), {
          timeoutMs: 5000, metadata: { 'x-id': id, 'x-fail': '2' },
        });
        assert.equal(Buffer.from(reply).toString(), 'hello');
        assert.deepEqual(attempts.get(id), [0, 1, 2]);
        const refusedId = `refused-${form}`;
        await assert.rejects(
          pool.unary(target, METHOD, Buffer.alloc(0), {
            timeoutMs: 5000, metadata: { 'x-id': refusedId, 'x-fail': '2', 'x-code': 'INVALID_ARGUMENT' },
          }),
          (error) => error instanceof GrpcError && error.code === Status.INVALID_ARGUMENT,
        );
        assert.deepEqual(attempts.get(refusedId), [0], 'a code the policy does not name is not retried');
        const spentId = `spent-${form}`;
        await assert.rejects(
          pool.unary(target, METHOD, Buffer.alloc(0), { timeoutMs: 5000, metadata: { 'x-id': spentId, 'x-fail': '9' } }),
          (error) => error instanceof GrpcError && error.code === Status.UNAVAILABLE,
        );
        assert.deepEqual(attempts.get(spentId), [0, 1, 2, 3], 'maxAttempts 4');
        assert.equal(pool.stats().targets[0].retries, 2 + 3);
      } finally {
        await pool.close();
      }
    });
  }

  it('refuses bad service configs when the pool is made, naming the field', () => {
    const cases = [
      [{ methodConfig: [{ name: [{}], timeout: 5 }] }, 'methodConfig[0].timeout'],
      [{ methodConfig: [{ name: [{}], retryPolicy: { maxAttempts: 1 } }] }, 'retryPolicy'],
      [{ loadBalancingConfig: [{ grpclb: {} }] }, 'loadBalancingConfig'],
      ['{', 'not valid JSON'],
    ];
    for (const [config, field] of cases) {
      assert.throws(() => new Pool({ serviceConfig: config }), (error) => error.message.includes(field), field);
    }
    assert.throws(() => new Pool({ serviceConfig: 42 }), /serviceConfig must be JSON text or a plain object/);
  });
});

describe('balancing policies', () => {
  const servers = [];
  const counts = [0, 0, 0];
  let target;
  before(async () => {
    const hosts = [];
    for (const [index, octet] of [1, 2, 3].entries()) {
      const server = new grpc.Server();
      server.addService(FLAKY, {
        call(call, callback) {
          counts[index] += 1;
          callback(null, call.request);
        },
      });
      const port = await new Promise((resolve, reject) => {
        server.bindAsync(`127.0.0.${octet}:0`, grpc.ServerCredentials.createInsecure(), (error, bound) => (
          error ? reject(error) : resolve(bound)));
      });
      servers.push(server);
      hosts.push(`127.0.0.${octet}:${port}`);
    }
    target = `http://${hosts.join(',')}`;
  });
  after(() => Promise.all(servers.map((server) => new Promise((resolve) => server.tryShutdown(resolve)))));

  it('round_robin spreads calls over every address', async () => {
    const pool = new Pool({ serviceConfig: { loadBalancingConfig: [{ round_robin: {} }] } });
    try {
      await pool.unary(target, METHOD, Buffer.from('warm'), { timeoutMs: 5000 });
      // Bounded: until a connection to every address is up.
      for (let round = 0; round < 500 && pool.stats().targets[0].connections.ready < 3; round += 1) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const before = [...counts];
      for (let call = 0; call < 300; call += 1) {
        await pool.unary(target, METHOD, Buffer.from('x'), { timeoutMs: 5000 });
      }
      assert.deepEqual(counts.map((count, index) => count - before[index]), [100, 100, 100]);
    } finally {
      await pool.close();
    }
  });

  it('pick_first sends every call to the first address', async () => {
    const before = [...counts];
    const pool = new Pool({ serviceConfig: '{"loadBalancingConfig": [{"pick_first": {}}]}' });
    try {
      for (let call = 0; call < 100; call += 1) {
        await pool.unary(target, METHOD, Buffer.from('x'), { timeoutMs: 5000 });
      }
    } finally {
      await pool.close();
    }
    assert.deepEqual(counts.map((count, index) => count - before[index]), [100, 0, 0]);
  });
});

describe('settings of single targets', () => {
  it('applies a target\'s own service config and keepalive, and refuses pool-wide settings', async () => {
    const server = new grpc.Server();
    const seen = new Map();
    server.addService(FLAKY, {
      call(call, callback) {
        const id = String(call.metadata.get('x-id')[0]);
        const previous = Number(call.metadata.get('grpc-previous-rpc-attempts')[0] ?? '0');
        seen.set(id, [...(seen.get(id) ?? []), previous]);
        if (previous < 1) return callback({ code: grpc.status.UNAVAILABLE, details: 'not yet' });
        return callback(null, call.request);
      },
    });
    const port = await new Promise((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (
        error ? reject(error) : resolve(bound)));
    });
    const own = `http://127.0.0.1:${port}`;
    const other = `http://localhost:${port}`;
    const pool = new Pool({ targets: { [own]: { serviceConfig: POLICY, keepaliveTimeMs: 60000 } } });
    try {
      await pool.unary(own, METHOD, Buffer.from('own'), { timeoutMs: 5000, metadata: { 'x-id': 'n1' } });
      await assert.rejects(
        pool.unary(other, METHOD, Buffer.alloc(0), { timeoutMs: 5000, metadata: { 'x-id': 'n2' } }),
        (error) => error instanceof GrpcError && error.code === Status.UNAVAILABLE,
      );
      assert.deepEqual(seen.get('n1'), [0, 1]);
      assert.deepEqual(seen.get('n2'), [0]);
      const stats = new Map(pool.stats().targets.map((entry) => [entry.target, entry]));
      assert.equal(stats.get(own).keepaliveTimeMs, 60000);
      assert.equal(stats.get(other).keepaliveTimeMs, 300000);
    } finally {
      await pool.close();
      await new Promise((resolve) => server.tryShutdown(resolve));
    }
    assert.throws(() => new Pool({ targets: { [own]: { workerThreads: 2 } } }), /workerThreads|worker_threads belongs to the pool/);
    assert.throws(() => new Pool({ targets: { [own]: { maxConnectionsPerTarget: 0 } } }), /target http:\/\/127\.0\.0\.1:\d+: max_connections_per_target/);
  });
});
