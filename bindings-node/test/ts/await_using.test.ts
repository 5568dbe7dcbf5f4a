// `await using` releases a lease at the end of its scope. Node 20 has no such syntax:
// tsc (5.2+) compiles this file to test/build/ (test.sh), and node --test runs the output.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Pool } from '../../index';

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
