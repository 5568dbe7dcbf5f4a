'use strict';
// The Node client rows of grpcpool-bench, speaking the harness's driver protocol
// (bench/src/driver.rs):
//
//   node driver.js --client CLIENT --target URL --concurrency N --seconds S --payload BYTES
//       [--connections K] [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]
//   node driver.js --client CLIENT --check
//
// CLIENT is grpcpool (this repository's addon through bindings-node, N concurrent promise
// loops on the one JavaScript thread) or grpc-js (@grpc/grpc-js from bindings-node's
// node_modules, K channels in rotation, each with a subchannel pool of its own so that each is
// a connection of its own). After --warmup seconds uncounted, and on until 5,000 calls are
// done (at most 4 s) so that V8 has optimized the hot JavaScript, it runs N closed loops of
// unary calls for S seconds and prints one JSON line: calls, errors, seconds, qps, p50_us,
// p99_us, cpu_us_per_call (process.cpuUsage of this process, every thread, over the counted
// window only) and peak_rss_kib. grpcpool keeps K connections (min = max = K). Requests are
// pre-encoded bytes, as in every other row, so protobuf is not measured.
//
// The grpcpool row loads a release build of the addon: target/release/libgrpcpool_node.so
// (cargo build --release -p grpcpool-node), copied to a *.node file because Node loads addons
// only from those, or the file GRPCPOOL_NODE_ADDON names. --check builds nothing: it says why
// the row cannot run when the addon or bindings-node/node_modules is missing.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const PACKAGE = path.join(ROOT, 'bindings-node');
const RELEASE_ADDON = path.join(ROOT, 'target', 'release', 'libgrpcpool_node.so');
const INTEROP_UNARY = '/grpc.testing.TestService/UnaryCall';
const CLIENTS = ['grpcpool', 'grpc-js'];
// Bounds every loop by count as well as by time.
const MAX_CALLS_PER_WORKER = 2_000_000;
const WARM_UP_CONCURRENCY_CAP = 1024;
const CALL_TIMEOUT_MS = 10_000;
// The warm-up runs at least this many calls (JIT), but no longer than the cap.
const WARM_UP_CALLS = 5_000;
const WARM_UP_CAP_SECONDS = 4;

function usage(message) {
  process.stderr.write(`driver.js: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {
    client: undefined,
    check: false,
    target: undefined,
    concurrency: 1,
    seconds: 1,
    warmup: 0.3,
    payload: 0,
    connections: 1,
    method: INTEROP_UNARY,
    tlsCa: undefined,
    serverName: undefined,
  };
  const numbers = new Set(['--concurrency', '--seconds', '--warmup', '--payload', '--connections']);
  const names = {
    '--client': 'client',
    '--target': 'target',
    '--concurrency': 'concurrency',
    '--seconds': 'seconds',
    '--warmup': 'warmup',
    '--payload': 'payload',
    '--connections': 'connections',
    '--method': 'method',
    '--tls-ca': 'tlsCa',
    '--server-name': 'serverName',
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    if (flag === '--check') {
      args.check = true;
      continue;
    }
    const key = names[flag];
    if (key === undefined) usage(`unknown driver argument ${JSON.stringify(flag)}`);
    if (i + 1 >= argv.length) usage(`${flag} needs a value`);
    const value = argv[++i];
    if (numbers.has(flag)) {
      const number = Number(value);
      if (!Number.isFinite(number) || number < 0) usage(`${flag} takes a number`);
      args[key] = number;
    } else {
      args[key] = value;
    }
  }
  if (!CLIENTS.includes(args.client)) usage(`--client must be one of ${CLIENTS.join(', ')}`);
  args.concurrency = Math.max(Math.floor(args.concurrency), 1);
  args.connections = Math.max(Math.floor(args.connections), 1);
  args.payload = Math.floor(args.payload);
  return args;
}

function varint(value) {
  const out = [];
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Buffer.from(out);
}

/** The interop SimpleRequest{response_size: payload, payload: {body: payload zero bytes}}. */
function request(payload) {
  if (payload === 0) return Buffer.alloc(0);
  const body = Buffer.concat([Buffer.from([0x12]), varint(payload), Buffer.alloc(payload)]);
  return Buffer.concat([Buffer.from([0x10]), varint(payload), Buffer.from([0x1a]), varint(body.length), body]);
}

/** The addon build to load: GRPCPOOL_NODE_ADDON, else the release build; throws why not. */
function addonFile() {
  const named = process.env.GRPCPOOL_NODE_ADDON;
  if (named) {
    if (!fs.existsSync(named)) throw new Error(`GRPCPOOL_NODE_ADDON names ${named}, which does not exist`);
    return named;
  }
  if (!fs.existsSync(RELEASE_ADDON)) {
    throw new Error(`no release addon at ${RELEASE_ADDON} (cargo build --release -p grpcpool-node)`);
  }
  return RELEASE_ADDON;
}

/**
 * Loads bindings-node with the given addon build. A build named *.node loads as it is; any
 * other is copied once per build (size and time) to a *.node file in the temporary directory.
 */
function loadGrpcpool() {
  const file = addonFile();
  let addon = file;
  if (!file.endsWith('.node')) {
    const stat = fs.statSync(file);
    addon = path.join(os.tmpdir(), `grpcpool-bench-addon-${stat.size}-${Math.floor(stat.mtimeMs)}.node`);
    if (!fs.existsSync(addon)) {
      const partial = `${addon}.${process.pid}.tmp`;
      fs.copyFileSync(file, partial);
      fs.renameSync(partial, addon);
    }
  }
  process.env.GRPCPOOL_NODE_ADDON = addon;
  return require(PACKAGE);
}

function loadGrpcJs() {
  let resolved;
  try {
    resolved = require.resolve('@grpc/grpc-js', { paths: [PACKAGE] });
  } catch {
    throw new Error(`@grpc/grpc-js is not installed in ${path.join(PACKAGE, 'node_modules')} (run bash bindings-node/test.sh, or npm ci there)`);
  }
  return require(resolved);
}

/** Exit status 0 when `client` can run here, else 1 with the reason on stdout. */
function check(client) {
  try {
    if (client === 'grpcpool') {
      if (!fs.existsSync(path.join(PACKAGE, 'index.js'))) throw new Error(`no package at ${PACKAGE}`);
      const { Pool } = loadGrpcpool();
      if (typeof Pool !== 'function') throw new Error('bindings-node exports no Pool');
    } else {
      const grpc = loadGrpcJs();
      if (typeof grpc.Client !== 'function') throw new Error('@grpc/grpc-js exports no Client');
    }
  } catch (error) {
    process.stdout.write(`${error && error.message ? error.message : error}\n`);
    return 1;
  }
  return 0;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  const index = Math.min(Math.max(Math.ceil(sorted.length * q), 1), sorted.length) - 1;
  return sorted[index];
}

/**
 * `loops` closed loops of `call` for `seconds`, and on until `minCalls` calls are done (success
 * or not) but never past `capSeconds`; latencies in µs and the error count.
 */
async function load(call, loops, seconds, minCalls = 0, capSeconds = seconds) {
  const started = performance.now();
  const stop = started + seconds * 1000;
  const cap = started + Math.max(capSeconds, seconds) * 1000;
  const latencies = [];
  let errors = 0;
  const going = (now) => now < stop || (latencies.length + errors < minCalls && now < cap);
  await Promise.all(Array.from({ length: loops }, async () => {
    for (let done = 0; done < MAX_CALLS_PER_WORKER && going(performance.now()); done += 1) {
      const started = performance.now();
      try {
        await call();
      } catch {
        errors += 1;
        continue;
      }
      latencies.push((performance.now() - started) * 1000);
    }
  }));
  return { latencies, errors };
}

function readFile(file) {
  return file === undefined ? undefined : fs.readFileSync(file);
}

/** The grpcpool row: one pool with K connections, calls through Pool.unary. */
function grpcpoolClient(args, body) {
  const { Pool } = loadGrpcpool();
  const options = {
    minConnectionsPerTarget: args.connections,
    maxConnectionsPerTarget: args.connections,
    streamsPerConnection: 1000,
  };
  if (args.tlsCa !== undefined) options.tlsCaPem = readFile(args.tlsCa);
  if (args.serverName !== undefined) options.tlsServerName = args.serverName;
  const pool = new Pool(options);
  const { target, method } = args;
  const callOptions = { timeoutMs: CALL_TIMEOUT_MS };
  return {
    call: () => pool.unary(target, method, body, callOptions),
    close: () => pool.close({ graceMs: 1000 }),
  };
}

/** The grpc-js row: K channels, each its own connection, used in rotation. */
function grpcJsClient(args, body) {
  const grpc = loadGrpcJs();
  const url = new URL(args.target);
  const address = url.host;
  const options = { 'grpc.use_local_subchannel_pool': 1 };
  let credentials;
  if (url.protocol === 'https:') {
    credentials = grpc.credentials.createSsl(readFile(args.tlsCa) ?? null);
    if (args.serverName !== undefined) options['grpc.ssl_target_name_override'] = args.serverName;
  } else {
    credentials = grpc.credentials.createInsecure();
  }
  const clients = Array.from({ length: args.connections }, () => new grpc.Client(address, credentials, options));
  const identity = (bytes) => bytes;
  const { method } = args;
  let next = 0;
  return {
    call: () => new Promise((resolve, reject) => {
      const client = clients[next];
      next = (next + 1) % clients.length;
      client.makeUnaryRequest(method, identity, identity, body, { deadline: Date.now() + CALL_TIMEOUT_MS }, (error, reply) => (error ? reject(error) : resolve(reply)));
    }),
    close: async () => {
      for (const client of clients) client.close();
    },
  };
}

async function run(args) {
  const body = request(args.payload);
  const client = args.client === 'grpcpool' ? grpcpoolClient(args, body) : grpcJsClient(args, body);
  // V8 optimizes the calls' JavaScript (all of grpc-js's, the binding's for grpcpool) only
  // after thousands of them, so a short --warmup would measure interpreted code: the warm-up
  // goes on until WARM_UP_CALLS calls are done, for at most WARM_UP_CAP_SECONDS.
  await load(client.call, Math.min(args.concurrency, WARM_UP_CONCURRENCY_CAP), args.warmup, WARM_UP_CALLS, WARM_UP_CAP_SECONDS);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const { latencies, errors } = await load(client.call, args.concurrency, args.seconds);
  const wall = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await client.close();
  latencies.sort((a, b) => a - b);
  const calls = latencies.length;
  return {
    calls,
    errors,
    seconds: wall,
    qps: calls / Math.max(wall, 1e-9),
    p50_us: percentile(latencies, 0.5),
    p99_us: percentile(latencies, 0.99),
    cpu_us_per_call: calls ? (cpu.user + cpu.system) / calls : 0,
    peak_rss_kib: process.resourceUsage().maxRSS, // KiB on Linux
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.check) return check(args.client);
  if (!args.target) usage('--target is required');
  const report = await run(args);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return 0;
}

main().then(
  (status) => process.exit(status),
  (error) => {
    process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
    process.exit(1);
  },
);
