'use strict';
// Where a prebuilt addon for this machine sits in the package: prebuilds/<key>/grpcpool.node,
// the key being platform-arch, plus the C library on Linux (linux-x64-gnu, linux-arm64-musl),
// as prebuildify and napi-rs name them. Used by install.js (to find one) and prebuild.js (to
// put one there when packing).

const path = require('node:path');

const packageDir = path.join(__dirname, '..');

/** `gnu` or `musl` on Linux (glibc reports its version in the process report), else undefined. */
function libc() {
  if (process.platform !== 'linux') {
    return undefined;
  }
  const header = process.report?.getReport?.().header;
  return header?.glibcVersionRuntime ? 'gnu' : 'musl';
}

/** This machine's prebuild key: `linux-x64-gnu`, `darwin-arm64`, `win32-x64`. */
function platformKey() {
  return [process.platform, process.arch, libc()].filter(Boolean).join('-');
}

/** The path of the prebuilt addon for `key` (this machine's by default) in the package. */
function prebuiltPath(key = platformKey()) {
  return path.join(packageDir, 'prebuilds', key, 'grpcpool.node');
}

module.exports = { platformKey, prebuiltPath, packageDir };
