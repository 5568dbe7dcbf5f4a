'use strict';
// A @grpc/grpc-js server of test/fixtures/echo.proto, for the tests (in-process) and the
// benchmark (as a child process: `node echo_server.js` prints the port, serves until killed).
// Request metadata keys starting with "x-" are echoed in the response headers and trailers.

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.join(__dirname, '..', 'fixtures', 'echo.proto');
const definition = protoLoader.loadSync(PROTO, { keepCase: false, defaults: true });
const EchoService = definition['grpcpool.test.Echo'];

function echoed(metadata) {
  const out = new grpc.Metadata();
  for (const [key, values] of Object.entries(metadata.getMap())) {
    if (key.startsWith('x-')) {
      for (const value of metadata.get(key)) {
        out.add(key, value);
      }
    }
    void values;
  }
  return out;
}

function sleep(ms, call) {
  return new Promise((resolve) => {
    if (!ms) return resolve();
    const timer = setTimeout(resolve, ms);
    call.on('cancelled', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function failure(request, metadata) {
  if (!request.status) return null;
  return { code: request.status, details: request.statusMessage, metadata };
}

/**
 * Starts the server on 127.0.0.1 (any port) with @grpc/grpc-js server `options`; resolves with
 * `{ target, port, calls(), cancelled(), close() }`: `calls()` counts the calls that reached a
 * handler, `cancelled()` those the client cancelled.
 */
async function startEchoServer(options = {}) {
  let calls = 0;
  let cancelled = 0;
  const watch = (call) => {
    calls += 1;
    call.on('cancelled', () => { cancelled += 1; });
  };
  const server = new grpc.Server(options);
  server.addService(EchoService, {
    async unary(call, callback) {
      watch(call);
      call.sendMetadata(echoed(call.metadata));
      await sleep(call.request.sleepMs, call);
      if (call.cancelled) return;
      const trailers = echoed(call.metadata);
      const failed = failure(call.request, trailers);
      if (failed) return callback(failed);
      callback(null, { message: call.request.message, index: 0 }, trailers);
    },
    async serverStream(call) {
      watch(call);
      call.sendMetadata(echoed(call.metadata));
      for (let index = 0; index < call.request.count && !call.cancelled; index += 1) {
        await sleep(call.request.sleepMs, call);
        if (call.cancelled) return;
        call.write({ message: call.request.message, index });
      }
      const failed = failure(call.request, echoed(call.metadata));
      if (failed) return call.emit('error', failed);
      call.end(echoed(call.metadata));
    },
    clientStream(call, callback) {
      watch(call);
      const parts = [];
      let last = {};
      call.on('data', (request) => {
        parts.push(request.message);
        last = request;
      });
      call.on('end', () => {
        const failed = failure(last, echoed(call.metadata));
        if (failed) return callback(failed);
        callback(null, { message: parts.join(','), index: parts.length }, echoed(call.metadata));
      });
    },
    bidi(call) {
      watch(call);
      let index = 0;
      let last = {};
      call.on('data', (request) => {
        last = request;
        call.write({ message: request.message, index });
        index += 1;
      });
      call.on('end', () => {
        const failed = failure(last, echoed(call.metadata));
        if (failed) return call.emit('error', failed);
        call.end(echoed(call.metadata));
      });
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound));
  });
  return {
    port,
    target: `http://127.0.0.1:${port}`,
    calls: () => calls,
    cancelled: () => cancelled,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
    forceClose: () => server.forceShutdown(),
  };
}

module.exports = { startEchoServer, PROTO, definition, EchoService };

if (require.main === module) {
  startEchoServer().then((server) => {
    process.stdout.write(`${server.port}\n`);
  });
}
