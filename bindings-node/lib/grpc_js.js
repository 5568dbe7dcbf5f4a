'use strict';
// @grpc/grpc-js, the program's own copy (an optional peer dependency): Channel hands grpc-js's
// client its Metadata objects, and createClient's interceptors run in its client. Loaded on
// first use, so a program that uses neither does not need it.

let loaded;

/** The program's @grpc/grpc-js module; throws a clear Error when it is not installed. */
function grpcJs() {
  if (loaded === undefined) {
    try {
      loaded = require('@grpc/grpc-js');
    } catch (error) {
      if (error && error.code === 'MODULE_NOT_FOUND') {
        const missing = new Error(
          'grpcpool: Channel and interceptors need @grpc/grpc-js (npm install @grpc/grpc-js)',
          { cause: error },
        );
        missing.code = 'ERR_GRPCPOOL_NO_GRPC_JS';
        throw missing;
      }
      throw error;
    }
  }
  return loaded;
}

module.exports = { grpcJs };
