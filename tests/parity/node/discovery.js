'use strict';
// The Node face of the parity suite's discovery scenarios (tests/parity/discovery.sh):
// `node discovery.js <A> <B> <C> <D>`, each backend's ip:port. Calls to xds:///svc through the
// control plane the runner started (the bootstrap is in GRPC_XDS_BOOTSTRAP), then static:///load
// under load while pool.setEndpoints adds, removes and replaces its endpoints. Prints one JSON
// line per scenario, as parity.js does; the rules are the same in every face (see
// tests/parity/expected-discovery.txt). The load is concurrent promises on one event loop.

const path = require('node:path');
const { Pool, Status } = require(path.join(__dirname, '..', '..', '..', 'bindings-node'));

const UNARY = '/grpcpool.test.Echo/Unary';
/** The xds_weighted_split scenario's calls. */
const SPLIT_CALLS = 800;
/** The load: loops in flight at once, each making at most MAX_CALLS calls, within LOAD_LIMIT_MS. */
const WORKERS = 8;
const MAX_CALLS = 4000;
const LOAD_LIMIT_MS = 30000;
/** After an update, the new set must be all that answers within this long. */
const SETTLE_MS = 2000;
/** The new set has settled once this many calls in a row came from it. */
const SETTLED_RUN = 20;
/** Each set then takes the load this long before the next update. */
const HOLD_MS = 300;
/** round_robin: connections to every address, so every member of a set takes calls. */
const ROUND_ROBIN = { loadBalancingConfig: [{ round_robin: {} }] };
/** A failed call in the record. */
const FAILED = -1;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function report(scenario, klass, detail) {
  process.stdout.write(`${JSON.stringify({ scenario, class: klass, via: 'node', detail })}\n`);
}

/** Which backend answered one call: its index, backends.length for none of them, FAILED. */
async function servedBy(pool, target, backends) {
  let response;
  try {
    response = await pool.unaryResponse(target, UNARY, Buffer.from('x'), {
      timeoutMs: 10000,
      metadata: { 'x-report-calls': '1' },
    });
  } catch {
    return FAILED;
  }
  if (response.code !== Status.OK) return FAILED;
  const [by] = response.headers.get('x-echo-served-by');
  const index = backends.indexOf(String(by));
  return index >= 0 ? index : backends.length;
}

/** The pool's xDS stats after the calls: connected, a resource of each kind held, no NACK. */
function xdsStats(pool) {
  const { xds } = pool.stats();
  const kinds = new Set((xds?.resources ?? []).map((resource) => resource.kind));
  const missing = ['listener', 'route_config', 'cluster', 'endpoints'].filter((kind) => !kinds.has(kind));
  let klass = 'connected_all_kinds';
  if (!xds) klass = 'no_xds_stats';
  else if (!xds.connected) klass = 'not_connected';
  else if (xds.nacks !== 0) klass = 'nacked';
  else if (missing.length > 0) klass = 'missing_kind';
  report('xds_stats', klass, missing.length > 0 ? `no ${missing.join(', ')}` : '');
}

/** 800 calls to xds:///svc, counted by who answered; discovery.sh judges the counts. */
async function weightedSplit(backends) {
  const pool = new Pool();
  const served = new Array(backends.length + 1).fill(0);
  let failed = 0;
  for (let i = 0; i < SPLIT_CALLS; i++) {
    const by = await servedBy(pool, 'xds:///svc', backends);
    if (by === FAILED) failed++;
    else served[by]++;
  }
  xdsStats(pool);
  await pool.close({ graceMs: 1000 });
  const [a, b, c] = served;
  report('xds_weighted_split', 'counted', `A=${a} B=${b} C=${c} D=${served[3]} other=${served[4]} failed=${failed}`);
}

/** Whether the calls recorded since `start` reached every member and the last SETTLED_RUN came from the set. */
function settled(record, start, members) {
  const since = record.slice(start);
  return (
    members.every((member) => since.includes(member)) &&
    since.length >= SETTLED_RUN &&
    since.slice(-SETTLED_RUN).every((by) => members.includes(by))
  );
}

async function pushedUnderLoad(backends) {
  const steps = [
    ['pushed_add', [0, 1]],
    ['pushed_remove', [1]],
    ['pushed_replace', [2, 3]],
  ];
  const pool = new Pool({ serviceConfig: ROUND_ROBIN });
  pool.setEndpoints('load', [backends[0]]);
  const record = [];
  let stop = false;
  const until = Date.now() + LOAD_LIMIT_MS;
  const work = async () => {
    for (let i = 0; i < MAX_CALLS && !stop && Date.now() < until; i++) {
      record.push(await servedBy(pool, 'static:///load', backends));
    }
  };
  const workers = Array.from({ length: WORKERS }, work);
  for (const waited = Date.now() + 5000; record.length < 50 && Date.now() < waited; ) await sleep(10);
  const marks = [];
  const took = [];
  for (const [, members] of steps) {
    marks.push(record.length);
    const started = Date.now();
    pool.setEndpoints('load', members.map((member) => backends[member]));
    took.push(-1);
    while (Date.now() - started <= SETTLE_MS) {
      if (settled(record, marks[marks.length - 1], members)) {
        took[took.length - 1] = Date.now() - started;
        break;
      }
      await sleep(5);
    }
    await sleep(HOLD_MS);
  }
  stop = true;
  await Promise.all(workers);
  marks.push(record.length);
  await pool.close({ graceMs: 1000 });
  steps.forEach(([scenario], index) => {
    const calls = record.slice(marks[index], marks[index + 1]);
    const failed = calls.filter((by) => by === FAILED).length;
    const klass = failed > 0 ? 'failed_calls' : took[index] < 0 ? 'not_within_2s' : 'ok';
    report(scenario, klass, `${calls.length} calls, ${failed} failed, new set alone after ${took[index]} ms`);
  });
}

async function main() {
  const backends = process.argv.slice(2);
  if (backends.length !== 4) {
    process.stderr.write('usage: node discovery.js <A> <B> <C> <D>\n');
    process.exit(2);
  }
  await weightedSplit(backends);
  await pushedUnderLoad(backends);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
