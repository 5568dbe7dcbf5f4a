'use strict';
// `npm pack` (prepack): copies the Rust sources the addon builds from into rust/, as a small
// workspace of grpcpool-core and grpcpool-node, so the tarball installs like the repository
// does. `--clean` (postpack) removes rust/ again.

const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.join(__dirname, '..');
const repo = path.join(packageDir, '..');
const out = path.join(packageDir, 'rust');

fs.rmSync(out, { recursive: true, force: true });
if (process.argv.includes('--clean')) {
  process.exit(0);
}

function copy(from, to) {
  fs.cpSync(path.join(repo, from), path.join(out, to), { recursive: true });
}

// The workspace: the repository's settings and shared dependencies, with two members.
const root = fs.readFileSync(path.join(repo, 'Cargo.toml'), 'utf8');
const workspace = root
  .replace(/^members = \[.*\]$/m, 'members = ["core", "bindings-node"]')
  .replace(/^grpcpool-testserver = .*\n/m, '');
if (!workspace.includes('members = ["core", "bindings-node"]')) {
  throw new Error('bundle-rust: could not rewrite the workspace members of Cargo.toml');
}
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'Cargo.toml'), `# Bundled by scripts/bundle-rust.js for npm pack.\n${workspace}`);
copy('Cargo.lock', 'Cargo.lock');

// The engine, without its dev-dependencies (test servers that are not bundled) and its test,
// bench and example targets (whose files are not bundled: cargo refuses a manifest naming
// missing ones).
copy('core/src', 'core/src');
const core = fs.readFileSync(path.join(repo, 'core', 'Cargo.toml'), 'utf8');
const coreManifest = core
  .replace(/\n\[dev-dependencies\]\n(?:[^\[\n].*\n|\n)*/m, '\n')
  .replace(/^\[\[(?:test|bench|example)\]\]\n(?:[^\[\n].*\n|\n)*/gm, '');
if (/^\[\[(?:test|bench|example)\]\]/m.test(coreManifest) || /^\[dev-dependencies\]/m.test(coreManifest)) {
  throw new Error('bundle-rust: could not remove the test targets and dev-dependencies of core/Cargo.toml');
}
fs.writeFileSync(path.join(out, 'core', 'Cargo.toml'), coreManifest);

// The addon.
for (const item of ['Cargo.toml', 'build.rs', 'src']) {
  copy(path.join('bindings-node', item), path.join('bindings-node', item));
}
process.stderr.write(`grpcpool: bundled the Rust sources into ${path.relative(process.cwd(), out)}\n`);
