'use strict';
// Closing, leak counting of a collected lease (one with a stream running too; node
// --expose-gc), and the event loop: an idle or closed pool does not keep a program alive, a
// call in flight does.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { Pool, Status } = require('..');
const { startEchoServer } = require('./helpers/echo_server');
const { METHOD, encode } = require('./helpers/codec');

const PACKAGE = path.join(__dirname, '..');

async function rejection(promise) {
  return promise.then(() => assert.fail('resolved'), (error) => error);
}

/** Runs `source` in a child node; resolves with its exit code and how long it ran. */
function runChild(source, env = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['-e', source], {
      cwd: PACKAGE,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the child did not exit within 10 s; output: ${output}`));
    }, 10000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - started, output });
    });
  });
}

describe('pool lifecycle', () => {
  let server;
  before(async () => {
    server = await startEchoServer();
  });
  after(async () => {
    await server.close();
  });

  it('close resolves with 0 when nothing is in use; later calls reject; closing again is fine', async () => {
    const pool = new Pool();
    await pool.unary(server.target, METHOD.unary, encode({}));
    assert.equal(pool.closed, false);
    assert.equal(await pool.close(), 0);
    assert.equal(pool.closed, true);
    for (const call of [
      () => pool.acquire(server.target),
      () => pool.unary(server.target, METHOD.unary, encode({})),
      () => pool.openStream(server.target, METHOD.bidi),
    ]) {
      const error = await rejection(call());
      assert.equal(error.code, 'ERR_GRPCPOOL_CLOSED');
      assert.match(error.message, /the pool is closed/);
    }
    assert.equal(await pool.close(), 0);
  });

  it('close waits for a held lease up to the grace period, then reports it; the lease then refuses calls', async () => {
    const pool = new Pool();
    const lease = await pool.acquire(server.target);
    const started = Date.now();
    assert.equal(await pool.close({ graceMs: 200 }), 1);
    assert.ok(Date.now() - started >= 150);
    const error = await rejection(lease.unary(METHOD.unary, encode({})));
    assert.equal(error.code, 'ERR_GRPCPOOL_CLOSED');
    lease.release();
  });

  it('close lets a call in flight finish within the grace period', async () => {
    const pool = new Pool();
    const call = pool.unary(server.target, METHOD.unary, encode({ message: 'slow', sleepMs: 200 }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await pool.close({ graceMs: 3000 }), 0);
    assert.ok((await call).length > 0);
  });

  it('counts a lease collected unreleased as a leak and frees its slot', { skip: typeof global.gc !== 'function' && 'needs node --expose-gc' }, async () => {
    const pool = new Pool();
    try {
      await (async () => {
        await pool.acquire(server.target);
      })();
      assert.equal(pool.stats().leasesOut, 1);
      for (let i = 0; i < 50 && pool.stats().leaksDetected === 0; i += 1) {
        global.gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
      const stats = pool.stats();
      assert.equal(stats.leaksDetected, 1);
      assert.equal(stats.leasesOut, 0);
      assert.equal(stats.streamsInFlight, 0);
      // A released lease that is collected is no leak.
      (await pool.acquire(server.target)).release();
      for (let i = 0; i < 5; i += 1) {
        global.gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(pool.stats().leaksDetected, 1);
    } finally {
      await pool.close();
    }
  });

  it('counts a lease collected while its stream runs as a leak; the slot returns when the stream ends', { skip: typeof global.gc !== 'function' && 'needs node --expose-gc' }, async () => {
    const pool = new Pool();
    try {
      // The stream does not hold the JavaScript lease, so the lease can be collected first.
      const stream = await (async () => {
        const lease = await pool.acquire(server.target);
        return lease.openStream(METHOD.bidi);
      })();
      for (let i = 0; i < 50 && pool.stats().leaksDetected === 0; i += 1) {
        global.gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(pool.stats().leaksDetected, 1);
      assert.equal(pool.stats().leasesOut, 1);
      await stream.write(encode({ message: 'still going' }));
      assert.ok(Buffer.isBuffer(await stream.read()));
      assert.equal((await stream.finish()).code, Status.OK);
      assert.equal(pool.stats().leasesOut, 0);
    } finally {
      await pool.close();
    }
  });

  it('reports leases held past the leak threshold with where they were acquired', async () => {
    const pool = new Pool({ leaseLeakThresholdMs: 50 });
    try {
      const lease = await pool.acquire(server.target);
      const named = await pool.acquire(server.target, { site: 'the cache warmer' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const leaked = pool.leakedLeases();
      assert.equal(leaked.length, 2);
      assert.ok(leaked.some((report) => /lifecycle\.test\.js:\d+/.test(report.site)), JSON.stringify(leaked));
      assert.ok(leaked.some((report) => report.site === 'the cache warmer'));
      assert.ok(leaked.every((report) => report.heldMs >= 50 && report.target === server.target));
      lease.release();
      named.release();
      assert.deepEqual(pool.leakedLeases(), []);
    } finally {
      await pool.close();
    }
  });

  it('an idle open pool, and a closed one, do not keep the event loop alive', async () => {
    const open = await runChild(`
      const { Pool } = require('.');
      const pool = new Pool();
      pool.unary(process.env.TARGET, '${METHOD.unary}', Buffer.alloc(0)).then(() => console.log('called'));
    `, { TARGET: server.target });
    assert.equal(open.code, 0, open.output);
    assert.match(open.output, /called/);
    const closed = await runChild(`
      const { Pool } = require('.');
      const pool = new Pool();
      pool.acquire(process.env.TARGET).then((lease) => { lease.release(); return pool.close(); }).then(() => console.log('closed'));
    `, { TARGET: server.target });
    assert.equal(closed.code, 0, closed.output);
    assert.match(closed.output, /closed/);
  });

  it('a call in flight keeps the event loop alive until it ends', async () => {
    const child = await runChild(`
      const { Pool } = require('.');
      new Pool().unary(process.env.TARGET, '${METHOD.unary}', Buffer.from(process.env.REQUEST, 'hex'))
        .then(() => console.log('answered'));
    `, { TARGET: server.target, REQUEST: encode({ sleepMs: 300 }).toString('hex') });
    assert.equal(child.code, 0, child.output);
    assert.match(child.output, /answered/);
    assert.ok(child.ms >= 300);
  });
});
