'use strict';
// The pool's runtime cannot start: this process caps its user's threads (RLIMIT_NPROC, with
// prlimit) at what it has plus one, then drops root for an unprivileged user so the cap holds.
// The first call must reject instead of hanging. Prints one JSON line; needs root
// (tests/parity/run.sh runs it so).

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Pool } = require(path.join(__dirname, '..', '..', '..', 'bindings-node'));

function threadsNow() {
  const match = /^Threads:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return Number(match[1]);
}

async function main() {
  const target = process.argv[2];
  // One more thread than node has now: the runtime's two workers cannot both start.
  execFileSync('prlimit', ['--pid', String(process.pid), `--nproc=${threadsNow() + 1}`]);
  process.setgid(65534);
  process.setuid(65534);
  const pool = new Pool({ workerThreads: 2 });
  const started = performance.now();
  let outcome;
  let detail = '';
  try {
    await pool.unary(target, '/grpcpool.test.Echo/Unary', Buffer.from('x'), { timeoutMs: 2000 });
    outcome = 'ok';
  } catch (error) {
    outcome = error.code === 'ERR_GRPCPOOL_INTERNAL' ? 'runtime_error' : `other:${error.code}`;
    detail = error.message;
  }
  const elapsed = (performance.now() - started).toFixed(1);
  console.log(JSON.stringify({ scenario: 'runtime_refused', class: outcome, via: 'error', detail: `after ${elapsed} ms: ${detail}` }));
}

main();
