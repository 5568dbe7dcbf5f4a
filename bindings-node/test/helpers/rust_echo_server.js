'use strict';
// The repository's own test server (testserver/, the grpcpool-echo-server binary) in a child
// process. The tests use it where a @grpc/grpc-js server cannot tell: it answers a unary call
// with what the request arrived with (`x-received-grpc-encoding`), which grpc-js hides from its
// handlers. Built with cargo (honouring CARGO_TARGET_DIR, as every build here does); test.sh
// builds it first, so the build in a test is a quick up-to-date check.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const WORKSPACE = path.join(__dirname, '..', '..', '..');
const MANIFEST = path.join(WORKSPACE, 'Cargo.toml');

/** Its unary method: echoes the request body. */
const UNARY = '/grpcpool.test.Echo/Unary';

/** Why the server cannot be had here (no repository around the package), or undefined. */
function unavailable() {
  if (!fs.existsSync(path.join(WORKSPACE, 'testserver', 'Cargo.toml'))) {
    return 'the repository\'s testserver/ is not around the package (an installed copy)';
  }
  return undefined;
}

let built;

/** The path of the built binary; builds it the first time. */
function binary() {
  if (built !== undefined) return built;
  const cargo = process.env.CARGO || 'cargo';
  const result = spawnSync(cargo, [
    'build', '--quiet', '--manifest-path', MANIFEST, '-p', 'grpcpool-testserver', '--bin', 'grpcpool-echo-server',
    '--message-format=json-render-diagnostics',
  ], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(`building grpcpool-echo-server failed (${result.error?.message ?? `exit ${result.status}`})`);
  }
  for (const line of result.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const message = JSON.parse(line);
    if (message.reason === 'compiler-artifact' && message.target?.name === 'grpcpool-echo-server' && message.executable) {
      built = message.executable;
      return built;
    }
  }
  throw new Error('cargo did not report the grpcpool-echo-server binary');
}

/** Starts the server on a free port; resolves with `{ port, target, close() }`. */
function startRustEchoServer() {
  const child = spawn(binary(), ['--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    const failed = (error) => reject(error);
    child.once('error', failed);
    child.once('exit', (code) => reject(new Error(`grpcpool-echo-server exited with ${code} before listening`)));
    lines.on('line', (line) => {
      const match = /^LISTENING (\d+)$/.exec(line.trim());
      if (!match) return;
      child.removeAllListeners('exit');
      const port = Number(match[1]);
      resolve({
        port,
        target: `http://127.0.0.1:${port}`,
        close: () => new Promise((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.once('exit', () => done());
          child.kill('SIGTERM');
        }),
      });
    });
  });
}

module.exports = { startRustEchoServer, unavailable, UNARY };
