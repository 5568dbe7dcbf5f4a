'use strict';
// `npm install` of the package: builds the addon with cargo and copies it to grpcpool.node.
// Needs only Rust (cargo) and Node; no devDependencies. Builds from rust/ (the sources
// `npm pack` bundles) when present, else from the repository's workspace around the package.
// GRPCPOOL_NODE_PROFILE=debug builds a debug addon (default: release).

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.join(__dirname, '..');
const profile = process.env.GRPCPOOL_NODE_PROFILE === 'debug' ? 'debug' : 'release';

function fail(message) {
  process.stderr.write(`grpcpool: ${message}\n`);
  process.exit(1);
}

function manifestPath() {
  const bundled = path.join(packageDir, 'rust', 'Cargo.toml');
  if (fs.existsSync(bundled)) {
    return bundled;
  }
  const workspace = path.join(packageDir, '..', 'Cargo.toml');
  if (fs.existsSync(workspace) && fs.readFileSync(workspace, 'utf8').includes('"bindings-node"')) {
    return workspace;
  }
  return fail('no Rust sources found: expected rust/Cargo.toml (from npm pack) or the grpcpool repository around the package');
}

function build() {
  const cargo = process.env.CARGO || 'cargo';
  const args = ['build', '--manifest-path', manifestPath(), '-p', 'grpcpool-node', '--message-format=json-render-diagnostics'];
  if (profile === 'release') {
    args.push('--release');
  }
  process.stderr.write(`grpcpool: building the native addon (${cargo} ${args.join(' ')})\n`);
  const result = spawnSync(cargo, args, {
    cwd: packageDir,
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'utf8',
  });
  if (result.error) {
    return fail(`could not run ${cargo} (${result.error.message}): installing grpcpool needs Rust, see rustup`);
  }
  if (result.status !== 0) {
    return fail(`cargo build failed with exit code ${result.status}`);
  }
  return builtLibrary(result.stdout);
}

/** The cdylib cargo reports for grpcpool-node. */
function builtLibrary(messages) {
  for (const line of messages.split('\n')) {
    if (!line.startsWith('{')) continue;
    const message = JSON.parse(line);
    if (message.reason === 'compiler-artifact' && message.target?.name === 'grpcpool_node') {
      const library = message.filenames.find((file) => /\.(so|dylib|dll)$/.test(file));
      if (library) return library;
    }
  }
  return fail('cargo did not report the grpcpool_node library');
}

const library = build();
const destination = path.join(packageDir, 'grpcpool.node');
// Copy to a temporary name and rename, so a running process never sees a half-written file.
const temporary = `${destination}.${process.pid}.tmp`;
fs.copyFileSync(library, temporary);
fs.renameSync(temporary, destination);
process.stderr.write(`grpcpool: installed ${path.relative(process.cwd(), destination) || destination} (${profile})\n`);
