'use strict';
// One @grpc/grpc-js echo server and one Pool for a suite of tests: started before its first
// test, closed after its last.

const { before, after } = require('node:test');
const { Pool } = require('../..');
const { startEchoServer } = require('./echo_server');

/**
 * Registers the suite's before/after hooks; the returned object holds `server` and `pool`
 * once the suite's tests run.
 * @param {import('../..').PoolOptions} [poolOptions]
 */
function echoSuite(poolOptions) {
  const suite = {};
  before(async () => {
    suite.server = await startEchoServer();
    suite.pool = new Pool(poolOptions);
  });
  after(async () => {
    await suite.pool.close();
    await suite.server.close();
  });
  return suite;
}

module.exports = { echoSuite };
