// `await using` releases a lease at the end of its scope (a stream opened on it goes on, and
// gives the slot back at its end). Node 20 has no such syntax:
// tsc (5.2+) compiles this file to test/build/ (test.sh), and node --test runs the output.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Pool, Status } from '../../index';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startEchoServer } = require('../helpers/echo_server');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { METHOD, encode, decode } = require('../helpers/codec');

test('await using releases the lease at scope end, using too, and await using closes a pool', async () => {
  const server = await startEchoServer();
  try {
    let outside;
    {
      await using pool = new Pool();
      {
        await using lease = await pool.acquire(server.target);
        outside = lease;
        const body = await lease.unary(METHOD.unary, encode({ message: 'scoped' }));
        assert.equal(decode(body).message, 'scoped');
        assert.equal(pool.stats().leasesOut, 1);
        assert.equal(lease.released, false);
      }
      assert.equal(outside.released, true);
      assert.equal(pool.stats().leasesOut, 0);
      {
        using lease = await pool.acquire(server.target);
        assert.equal(pool.stats().leasesOut, 1);
        void lease;
      }
      assert.equal(pool.stats().leasesOut, 0);
      assert.equal(pool.stats().leaksDetected, 0);
      outside = pool;
    }
    assert.equal(outside.closed, true);
  } finally {
    await server.close();
  }
});

test('await using releases a lease whose stream goes on; the slot returns when the stream ends', async () => {
  const server = await startEchoServer();
  const pool = new Pool();
  try {
    let stream;
    {
      await using lease = await pool.acquire(server.target);
      stream = await lease.openStream(METHOD.bidi);
      await stream.write(encode({ message: 'in scope' }));
      assert.equal(decode(await stream.read()).message, 'in scope');
    }
    assert.equal(pool.stats().leasesOut, 1);
    await stream.write(encode({ message: 'out of scope' }));
    assert.equal(decode(await stream.read()).message, 'out of scope');
    assert.equal((await stream.finish()).code, Status.OK);
    assert.equal(pool.stats().leasesOut, 0);
    assert.equal(pool.stats().leaksDetected, 0);
  } finally {
    await pool.close();
    await server.close();
  }
});
