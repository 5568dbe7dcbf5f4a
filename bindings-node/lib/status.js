'use strict';
// The gRPC status codes by name (the addon's Status enum, frozen), and names by number.

const native = require('./native');

/** The gRPC status codes, named and numbered as @grpc/grpc-js's `status`. */
const Status = Object.freeze({ ...native.Status });

const names = [];
for (const [name, code] of Object.entries(Status)) {
  names[code] = name;
}

/** The name of a status code ("DEADLINE_EXCEEDED"), or "UNKNOWN" for a number outside 0..16. */
function statusName(code) {
  return names[code] ?? 'UNKNOWN';
}

module.exports = { Status, statusName };
