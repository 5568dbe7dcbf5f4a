'use strict';
// Polls until a condition holds, failing after `ms`.

const assert = require('node:assert/strict');

async function waitFor(condition, ms = 3000) {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) assert.fail('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

module.exports = { waitFor };
