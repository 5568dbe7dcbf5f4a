'use strict';
// Loads the addon that scripts/install.js built (grpcpool.node beside package.json).
// GRPCPOOL_NODE_ADDON names another build, e.g. a release build for benchmarks.

const path = require('node:path');

const file = process.env.GRPCPOOL_NODE_ADDON || path.join(__dirname, '..', 'grpcpool.node');

function load() {
  try {
    return require(file);
  } catch (error) {
    if (error && error.code === 'MODULE_NOT_FOUND') {
      throw new Error(
        `grpcpool: the native addon is not built (${file} is missing): ` +
          'run `npm install` in the package, which builds it with cargo (Rust is needed)',
        { cause: error },
      );
    }
    throw error;
  }
}

module.exports = load();
