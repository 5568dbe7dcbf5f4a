'use strict';
// The Node face's answers to the cross-face parity scenarios: `node parity.js <target>
// <down_target>`, where <target> is the repository's echo server (grpcpool-echo-server, from
// testserver/) and <down_target> a target nothing listens on. Prints one JSON object per line,
// `{"scenario", "class", "via", "detail"}`, for each scenario, each on a fresh pool:
// - class: ok, deadline_exceeded, resource_exhausted, invalid_argument, pool_closed,
//   unavailable, cancelled, busy, stream_closed, or other:<what>;
// - via: "status" (the call ended with that status), "error" (the call was refused or failed
//   as a library error: a rejected promise) or "ok".
// Uses the package in bindings-node/ (built: `npm install` or scripts/install.js there). Exits
// by itself once every pool is closed.

const path = require('node:path');
const { Pool, Connectivity, GrpcError, Status, poolOptionNames, poolOptionDefaults } = require(path.join(__dirname, '..', '..', '..', 'bindings-node'));

const UNARY = '/grpcpool.test.Echo/Unary';
const BIDI = '/grpcpool.test.Echo/Bidi';

const STATUS_CLASSES = {
  [Status.OK]: 'ok',
  [Status.CANCELLED]: 'cancelled',
  [Status.DEADLINE_EXCEEDED]: 'deadline_exceeded',
  [Status.RESOURCE_EXHAUSTED]: 'resource_exhausted',
  [Status.INVALID_ARGUMENT]: 'invalid_argument',
  [Status.UNAVAILABLE]: 'unavailable',
};

const ERROR_CLASSES = {
  ERR_GRPCPOOL_CLOSED: 'pool_closed',
  ERR_GRPCPOOL_BUSY: 'busy',
  ERR_GRPCPOOL_STREAM_CLOSED: 'stream_closed',
  ERR_INVALID_ARG_VALUE: 'invalid_argument',
  ERR_INVALID_ARG_TYPE: 'invalid_argument',
};

function statusName(code) {
  return Object.keys(Status).find((name) => Status[name] === code) ?? `code ${code}`;
}

function statusClass(code) {
  return STATUS_CLASSES[code] ?? `other:${statusName(code)}`;
}

/** The outcome of a call that resolved with a status (unaryResponse resolves with any). */
function fromResponse(response) {
  if (response.code === Status.OK) {
    return { class: 'ok', via: 'ok', detail: `${response.body.length} bytes` };
  }
  return { class: statusClass(response.code), via: 'status', detail: response.details };
}

/** The outcome of a call whose promise rejected. */
function fromError(error) {
  if (error instanceof GrpcError) {
    return { class: statusClass(error.code), via: 'error', detail: error.details };
  }
  const known = ERROR_CLASSES[error?.code];
  return {
    class: known ?? `other:${error?.code ?? error?.name ?? typeof error}`,
    via: 'error',
    detail: String(error?.message ?? error),
  };
}

/** One unary call through `unaryResponse`, as an outcome. */
function call(pool, target, request, options) {
  return pool.unaryResponse(target, UNARY, request, options).then(fromResponse, fromError);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A second send while one waits on HTTP/2 flow control: small windows, a bidi stream whose
 * echoes nobody reads, writes until one has not gone out after 300 ms, then one more.
 */
async function concurrentSend(made, target) {
  const pool = made({ initialStreamWindowSize: 65535, initialConnectionWindowSize: 65535 });
  const stream = await pool.openStream(target, BIDI, { timeoutMs: 20000 });
  const chunk = Buffer.alloc(32 * 1024, 1);
  let sent = 0;
  let waiting;
  try {
    for (let index = 0; index < 400 && waiting === undefined; index += 1) {
      const writing = stream.write(chunk);
      const done = await Promise.race([writing.then(() => true), sleep(300).then(() => false)]);
      if (done) {
        sent += 1;
      } else {
        waiting = writing;
      }
    }
    if (waiting === undefined) {
      return { class: 'other:never_blocked', via: 'ok', detail: `after ${sent} sends` };
    }
    const outcome = await stream.write(Buffer.from('x')).then(() => ({ class: 'ok', via: 'ok' }), fromError);
    return { ...outcome, detail: `after ${sent} sends` };
  } finally {
    stream.cancel();
    await waiting?.catch(() => {});
  }
}

/** gRPC's name for a connectivity state, lowercased: the scenarios' class. */
function stateClass(state) {
  const name = Object.keys(Connectivity).find((key) => Connectivity[key] === state);
  return { class: name ? name.toLowerCase() : `other:${state}`, via: 'state', detail: '' };
}

/** tryToConnect, then waits (bounded) for a state other than IDLE and CONNECTING. */
async function settledConnectivity(pool, target) {
  try {
    let state = pool.connectivity(target, { tryToConnect: true });
    for (let round = 0; round < 20; round++) {
      if (state !== Connectivity.IDLE && state !== Connectivity.CONNECTING) break;
      state = await pool.connectivityChanged(target, state, { timeoutMs: 5000 });
    }
    return stateClass(state);
  } catch (error) {
    return fromError(error);
  }
}

/** Every scenario: name -> async (pool factory, targets) => outcome. */
const SCENARIOS = {
  timeout_zero: (made, { target }) => call(made(), target, Buffer.from('zero'), { timeoutMs: 0 }),
  deadline: (made, { target }) => call(made(), target, Buffer.from('slow'), {
    timeoutMs: 100,
    metadata: { 'x-sleep-ms': '500' },
  }),
  oversized_request: (made, { target }) => call(made({ maxSendMessageSize: 1024 }), target, Buffer.alloc(2000, 1)),
  oversized_response: (made, { target }) => call(made({ maxReceiveMessageSize: 512 }), target, Buffer.alloc(800, 1)),
  bad_metadata: (made, { target }) => call(made(), target, Buffer.from('meta'), { metadata: { 'Bad Key': 'v' } }),
  closed_pool: async (made, { target }) => {
    const pool = made();
    await pool.close();
    return call(pool, target, Buffer.from('closed'));
  },
  // unaryResponse, for the response headers: the server names the encoding it received.
  gzip: (made, { target }) => made().unaryResponse(target, UNARY, Buffer.from('gzip me '.repeat(64)), { compression: 'gzip' })
    .then((response) => {
      if (response.code !== Status.OK) return fromResponse(response);
      const encoding = response.headers.get('x-received-grpc-encoding').join(',');
      return {
        class: encoding === 'gzip' ? 'ok' : 'wrong_encoding',
        via: 'ok',
        detail: `x-received-grpc-encoding: ${encoding || '(none)'}`,
      };
    }, fromError),
  fail_fast_down: (made, { down }) => call(made(), down, Buffer.from('down'), { timeoutMs: 1000 }),
  pushed_none: (made) => call(made(), 'static:///parity', Buffer.from('none'), { timeoutMs: 5000 }),
  pushed_endpoints: (made, { target }) => {
    const pool = made();
    pool.setEndpoints('parity', [target.split('//')[1]]);
    return call(pool, 'static:///parity', Buffer.from('pushed'), { timeoutMs: 5000 });
  },
  pushed_bad_endpoint: async (made) => {
    try {
      made().setEndpoints('parity', ['127.0.0.1']);
      return { class: 'ok', via: 'ok', detail: '' };
    } catch (error) {
      return fromError(error);
    }
  },
  wait_for_ready_down: (made, { down }) => call(made(), down, Buffer.from('down'), { timeoutMs: 300, waitForReady: true }),
  concurrent_send: (made, { target }) => concurrentSend(made, target),
  settings_by_name: async (made, { target }) => {
    // Every setting by its name, at its default; one unset by default is given as undefined,
    // which leaves it unset.
    const defaults = poolOptionDefaults();
    const names = poolOptionNames();
    const options = Object.fromEntries(names.map((name) => [name, defaults[name]]));
    let pool;
    try {
      pool = made(options);
    } catch (error) {
      return fromError(error);
    }
    const outcome = await call(pool, target, Buffer.from('settings'));
    return outcome.class === 'ok' ? { ...outcome, detail: `${names.length} settings` } : outcome;
  },
  connectivity_unused: async (made, { target }) => stateClass(made().connectivity(target)),
  connectivity_up: (made, { target }) => settledConnectivity(made(), target),
  connectivity_down: (made, { down }) => settledConnectivity(made(), down),
  connectivity_closed: async (made, { target }) => {
    const pool = made();
    await pool.close();
    return stateClass(pool.connectivity(target));
  },
};

async function main() {
  const [target, down] = process.argv.slice(2);
  if (!target || !down) {
    process.stderr.write('usage: node parity.js <target> <down_target>\n');
    process.exitCode = 2;
    return;
  }
  for (const [scenario, run] of Object.entries(SCENARIOS)) {
    const pools = [];
    const made = (options) => {
      const pool = new Pool(options);
      pools.push(pool);
      return pool;
    };
    let outcome;
    try {
      outcome = await run(made, { target, down });
    } catch (error) {
      outcome = fromError(error);
    } finally {
      await Promise.all(pools.map((pool) => pool.close({ graceMs: 1000 })));
    }
    process.stdout.write(`${JSON.stringify({ scenario, class: outcome.class, via: outcome.via, detail: outcome.detail })}\n`);
  }
}

main().catch((error) => {
  process.stderr.write(`parity.js: ${error?.stack ?? error}\n`);
  process.exitCode = 1;
});
