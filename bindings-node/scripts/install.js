'use strict';
// `npm install` of the package: puts the addon at grpcpool.node. A prebuilt addon for this
// platform, architecture and C library (prebuilds/<key>/grpcpool.node, which `npm pack` adds
// for the machine that packs) is used when present and it loads; otherwise the addon is built
// with cargo from the bundled rust/ sources (or the repository around the package). Needs no
// devDependencies; Rust only for the build.
// GRPCPOOL_NODE_PROFILE=debug builds a debug addon (default: release).
// GRPCPOOL_NODE_BUILD_FROM_SOURCE=1 builds even when a prebuilt is there.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { platformKey, prebuiltPath, packageDir } = require('./prebuilt');
const { buildAddon, installFile } = require('./cargo');

const profile = process.env.GRPCPOOL_NODE_PROFILE === 'debug' ? 'debug' : 'release';
const destination = path.join(packageDir, 'grpcpool.node');

/** Whether Node loads `file` (in a child process, so this one holds no copy of it). */
function loads(file) {
  const result = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (result.status !== 0) {
    process.stderr.write(`grpcpool: the prebuilt addon ${file} does not load here:\n${result.stderr}`);
  }
  return result.status === 0;
}

function prebuilt() {
  if (process.env.GRPCPOOL_NODE_BUILD_FROM_SOURCE === '1') {
    return undefined;
  }
  const file = prebuiltPath();
  if (!fs.existsSync(file)) {
    process.stderr.write(`grpcpool: no prebuilt addon for ${platformKey()}\n`);
    return undefined;
  }
  return loads(file) ? file : undefined;
}

const found = prebuilt();
installFile(found ?? buildAddon(profile), destination);
const what = found ? `the prebuilt addon for ${platformKey()}` : `a ${profile} build`;
process.stderr.write(`grpcpool: installed ${path.relative(process.cwd(), destination) || destination} (${what})\n`);
