'use strict';
// `npm pack` (prepack): builds the addon for the packing machine and puts it at
// prebuilds/<key>/grpcpool.node, so installing the tarball on the same platform, architecture
// and C library needs no Rust. GRPCPOOL_NODE_PREBUILD_PROFILE picks the build: release (the
// default, for real packaging), debug (quick, for tests), or none (a tarball that always
// builds from source). `--clean` (postpack) removes prebuilds/ again.

const fs = require('node:fs');
const path = require('node:path');
const { platformKey, prebuiltPath, packageDir } = require('./prebuilt');
const { buildAddon, installFile, fail } = require('./cargo');

fs.rmSync(path.join(packageDir, 'prebuilds'), { recursive: true, force: true });
if (process.argv.includes('--clean')) {
  process.exit(0);
}
const profile = process.env.GRPCPOOL_NODE_PREBUILD_PROFILE || 'release';
if (!['release', 'debug', 'none'].includes(profile)) {
  fail(`GRPCPOOL_NODE_PREBUILD_PROFILE must be release, debug or none, not ${JSON.stringify(profile)}`);
}
if (profile !== 'none') {
  // From the repository's workspace (its target/ has the crates built already), never rust/.
  installFile(buildAddon(profile, true), prebuiltPath());
  process.stderr.write(`grpcpool: packed a ${profile} prebuilt addon for ${platformKey()}\n`);
}
