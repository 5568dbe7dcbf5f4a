'use strict';
// grpcpool's Node addon against @grpc/grpc-js's client, same @grpc/grpc-js server (a child
// process, so client CPU is the client's own), one run. Each client makes closed-loop unary
// calls (32-byte request, echoed) from N concurrent loops for a fixed time, in alternating
// rounds. Prints QPS and client CPU microseconds per call (process.cpuUsage: user + system,
// every thread of this process), medians over the rounds, and the ratios issue 5 sets targets
// for (QPS ratio at 64 >= 2, CPU ratio <= 0.5). Uses a release build of the addon:
//
//   cargo build --release -p grpcpool-node
//   node bench/node/unary_vs_grpcjs.js [--seconds 3] [--rounds 3] [--concurrency 1,64] [--json]
//                                      [--worker-threads N]  (the pool's runtime threads)
//
// Needs bindings-node's dev dependencies (npm ci in bindings-node, as test.sh does).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const PACKAGE = path.join(ROOT, 'bindings-node');
const METHOD = '/bench.Echo/Unary';
const PAYLOAD = Buffer.from('0123456789abcdef0123456789abcdef');
const MAX_CALLS_PER_LOOP = 10_000_000;

function parseArgs(argv) {
  const args = { seconds: 3, rounds: 3, concurrency: [1, 64], json: false, workerThreads: undefined, addon: path.join(ROOT, 'target', 'release', 'libgrpcpool_node.so') };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    if (flag === '--json') args.json = true;
    else if (flag === '--seconds') args.seconds = Math.min(Number(argv[++i]), 60);
    else if (flag === '--rounds') args.rounds = Math.min(Number(argv[++i]), 20);
    else if (flag === '--concurrency') args.concurrency = argv[++i].split(',').map(Number);
    else if (flag === '--addon') args.addon = argv[++i];
    else if (flag === '--worker-threads') args.workerThreads = Number(argv[++i]);
    else throw new Error(`unknown flag ${flag}`);
  }
  return args;
}

/** Loads the package with the given addon build (Node loads addons only from *.node files). */
function loadGrpcpool(addon) {
  if (!fs.existsSync(addon)) {
    throw new Error(`no release addon at ${addon}: run cargo build --release -p grpcpool-node`);
  }
  const copy = path.join(os.tmpdir(), `grpcpool-bench-${process.pid}.node`);
  fs.copyFileSync(addon, copy);
  process.on('exit', () => fs.rmSync(copy, { force: true }));
  process.env.GRPCPOOL_NODE_ADDON = copy;
  return require(PACKAGE);
}

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.once('error', reject);
    child.stdout.once('data', (chunk) => resolve({ child, port: Number(String(chunk).trim()) }));
  });
}

/** Runs `call` in `loops` closed loops for `seconds`; returns { qps, cpuUs } (CPU µs per call). */
async function load(call, loops, seconds) {
  const stop = performance.now() + seconds * 1000;
  let calls = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  await Promise.all(Array.from({ length: loops }, async () => {
    for (let done = 0; done < MAX_CALLS_PER_LOOP && performance.now() < stop; done += 1) {
      await call();
      calls += 1;
    }
  }));
  const wall = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { qps: calls / wall, cpuUs: (cpu.user + cpu.system) / Math.max(calls, 1) };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { Pool } = loadGrpcpool(args.addon);
  const grpc = require(require.resolve('@grpc/grpc-js', { paths: [PACKAGE] }));
  const { child, port } = await startServer();
  const target = `127.0.0.1:${port}`;
  const pool = new Pool(args.workerThreads === undefined ? {} : { workerThreads: args.workerThreads });
  const identity = (bytes) => bytes;
  const grpcClient = new grpc.Client(target, grpc.credentials.createInsecure());
  const clients = {
    grpcpool: () => pool.unary(`http://${target}`, METHOD, PAYLOAD),
    'grpc-js': () => new Promise((resolve, reject) => {
      grpcClient.makeUnaryRequest(METHOD, identity, identity, PAYLOAD, (error, reply) => (error ? reject(error) : resolve(reply)));
    }),
  };
  const results = {};
  try {
    for (const concurrency of args.concurrency) {
      for (const [name, call] of Object.entries(clients)) {
        await load(call, concurrency, 0.5); // warm up: connections, JIT
        results[`${name}@${concurrency}`] = { qps: [], cpuUs: [] };
      }
      for (let round = 0; round < args.rounds; round += 1) {
        const order = round % 2 ? Object.entries(clients).reverse() : Object.entries(clients);
        for (const [name, call] of order) {
          const measured = await load(call, concurrency, args.seconds);
          results[`${name}@${concurrency}`].qps.push(measured.qps);
          results[`${name}@${concurrency}`].cpuUs.push(measured.cpuUs);
        }
      }
    }
  } finally {
    grpcClient.close();
    await pool.close();
    child.kill();
  }
  const rows = [];
  for (const concurrency of args.concurrency) {
    const ours = results[`grpcpool@${concurrency}`];
    const theirs = results[`grpc-js@${concurrency}`];
    const row = {
      concurrency,
      grpcpool: { qps: median(ours.qps), cpuUsPerCall: median(ours.cpuUs) },
      grpcJs: { qps: median(theirs.qps), cpuUsPerCall: median(theirs.cpuUs) },
    };
    row.qpsRatio = row.grpcpool.qps / row.grpcJs.qps;
    row.cpuRatio = row.grpcpool.cpuUsPerCall / row.grpcJs.cpuUsPerCall;
    rows.push(row);
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ seconds: args.seconds, rounds: args.rounds, node: process.version, rows }, null, 2)}\n`);
    return;
  }
  const pad = (value, width) => String(value).padStart(width);
  process.stdout.write(`unary, 32-byte echo, @grpc/grpc-js server in a child process; ${args.rounds} rounds x ${args.seconds} s, medians\n`);
  process.stdout.write(`${pad('conc', 5)} ${pad('grpcpool QPS', 13)} ${pad('grpc-js QPS', 12)} ${pad('QPS ratio', 10)} ${pad('grpcpool µs/call', 17)} ${pad('grpc-js µs/call', 16)} ${pad('CPU ratio', 10)}\n`);
  for (const row of rows) {
    process.stdout.write(`${pad(row.concurrency, 5)} ${pad(row.grpcpool.qps.toFixed(0), 13)} ${pad(row.grpcJs.qps.toFixed(0), 12)} ${pad(row.qpsRatio.toFixed(2), 10)} ${pad(row.grpcpool.cpuUsPerCall.toFixed(1), 17)} ${pad(row.grpcJs.cpuUsPerCall.toFixed(1), 16)} ${pad(row.cpuRatio.toFixed(2), 10)}\n`);
  }
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack}\n`);
  process.exit(1);
});
