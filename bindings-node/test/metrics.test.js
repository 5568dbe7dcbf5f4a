'use strict';
// The metrics text through the Node face: after a known mix of calls against a grpc-js server
// (OK, NOT_FOUND, DEADLINE_EXCEEDED) its samples count the calls made, by method and status.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { Registry } = require('prom-client');
const { Status, GrpcError, registerMetrics } = require('..');
const { echoSuite } = require('./helpers/suite');
const { METHOD, encode } = require('./helpers/codec');

/** The value of the sample `name{labels}` in the text, or undefined. */
function sample(text, series) {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics text', () => {
  const suite = echoSuite();

  it('counts a known mix of calls by method and status', async () => {
    const { pool, server } = suite;
    for (let call = 0; call < 3; call += 1) {
      await pool.unary(server.target, METHOD.unary, encode({ message: 'ok' }), { timeoutMs: 5000 });
    }
    for (let call = 0; call < 2; call += 1) {
      await assert.rejects(
        pool.unary(server.target, METHOD.unary, encode({ status: Status.NOT_FOUND }), { timeoutMs: 5000 }),
        (error) => error instanceof GrpcError && error.code === Status.NOT_FOUND,
      );
    }
    await assert.rejects(
      pool.unary(server.target, METHOD.unary, encode({ sleepMs: 1000 }), { timeoutMs: 100 }),
      (error) => error instanceof GrpcError && error.code === Status.DEADLINE_EXCEEDED,
    );
    const text = pool.metricsText();
    const labels = `grpc_method="grpcpool.test.Echo/Unary",grpc_target="${server.target}"`;
    const calls = (status) => sample(text, `grpc_client_call_duration_seconds_count{${labels},grpc_status="${status}"}`);
    assert.equal(calls('OK'), 3, text);
    assert.equal(calls('NOT_FOUND'), 2);
    assert.equal(calls('DEADLINE_EXCEEDED'), 1);
    assert.equal(sample(text, `grpc_client_attempt_started_total{${labels}}`), 6);
    assert.equal(sample(text, `grpcpool_connections{grpc_target="${server.target}",state="ready"}`), 1);
    assert.match(text, /^# TYPE grpc_client_call_duration_seconds histogram$/m);
    // The per-connection view: the one connection carried every call.
    const [connection] = pool.stats().targets.find((entry) => entry.target === server.target).perConnection;
    assert.equal(connection.address, server.target.replace('http://', ''));
    assert.equal(connection.state, 'ready');
    assert.ok(connection.calls >= 6, `${connection.calls}`);
    assert.equal(connection.ejected, false);

    // Scraped through prom-client: the same families and figures.
    const registry = new Registry();
    const names = registerMetrics(pool, registry);
    assert.ok(names.includes('grpc_client_call_duration_seconds'), names.join(' '));
    assert.ok(names.includes('grpcpool_ejections_total'), names.join(' '));
    const scraped = await registry.metrics();
    const scrapedCalls = (status) => sample(scraped, `grpc_client_call_duration_seconds_count{${labels},grpc_status="${status}"}`);
    assert.equal(scrapedCalls('OK'), 3, scraped);
    assert.equal(scrapedCalls('NOT_FOUND'), 2);
    assert.equal(scrapedCalls('DEADLINE_EXCEEDED'), 1);
    assert.equal(sample(scraped, `grpc_client_attempt_started_total{${labels}}`), 6);
    assert.match(scraped, /^# TYPE grpc_client_call_duration_seconds histogram$/m);
    assert.equal(
      sample(scraped, `grpc_client_call_duration_seconds_bucket{${labels},grpc_status="OK",le="+Inf"}`),
      3,
    );
    // A later scrape reads the pool again.
    await pool.unary(server.target, METHOD.unary, encode({ message: 'ok' }), { timeoutMs: 5000 });
    await new Promise((resolve) => setImmediate(resolve));
    const later = await registry.metrics();
    assert.equal(sample(later, `grpc_client_call_duration_seconds_count{${labels},grpc_status="OK"}`), 4);
  });
});
