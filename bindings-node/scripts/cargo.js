'use strict';
// Builds the addon (crate grpcpool-node) with cargo and gives the path of the library cargo
// made. Shared by install.js (the fallback build) and prebuild.js (the prebuilt to pack).
// Builds from rust/ (the sources `npm pack` bundles) when present, else from the repository's
// workspace around the package. Every build honours CARGO_TARGET_DIR; CARGO names the cargo.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { packageDir } = require('./prebuilt');

function fail(message) {
  process.stderr.write(`grpcpool: ${message}\n`);
  process.exit(1);
}

/** The bundled sources' manifest, else the repository's; the repository's first with `fromRepository`. */
function manifestPath(fromRepository) {
  const bundled = path.join(packageDir, 'rust', 'Cargo.toml');
  const workspace = path.join(packageDir, '..', 'Cargo.toml');
  const inRepository = fs.existsSync(workspace) && fs.readFileSync(workspace, 'utf8').includes('"bindings-node"');
  if (fromRepository && inRepository) {
    return workspace;
  }
  if (fs.existsSync(bundled)) {
    return bundled;
  }
  if (inRepository) {
    return workspace;
  }
  return fail('no Rust sources found: expected rust/Cargo.toml (from npm pack) or the grpcpool repository around the package');
}

/**
 * Builds the addon with `profile` ('release' or 'debug'); the path of the built library.
 * `fromRepository` builds in the repository's workspace even when rust/ is there.
 */
function buildAddon(profile, fromRepository = false) {
  const cargo = process.env.CARGO || 'cargo';
  const args = ['build', '--manifest-path', manifestPath(fromRepository), '-p', 'grpcpool-node', '--message-format=json-render-diagnostics'];
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
    return fail(`could not run ${cargo} (${result.error.message}): building grpcpool from source needs Rust, see rustup`);
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

/** Copies `from` to `to` by way of a temporary name, so no process sees a half-written file. */
function installFile(from, to) {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  const temporary = `${to}.${process.pid}.tmp`;
  fs.copyFileSync(from, temporary);
  fs.renameSync(temporary, to);
}

module.exports = { buildAddon, installFile, fail };
