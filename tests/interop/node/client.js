'use strict';
// The gRPC interop cases through the Node package `grpcpool` (bindings-node) against an
// interop server (grpc-go's). Environment:
//   GRPCPOOL_INTEROP_TARGET       http://127.0.0.1:PORT or https://127.0.0.1:PORT
//   GRPCPOOL_INTEROP_CA_FILE      (TLS) the CA certificate, PEM
//   GRPCPOOL_INTEROP_SERVER_NAME  (TLS) the name to check the server's certificate against
// Prints `  ok   <case> (<ms> ms)` or `  FAIL <case>: <reason>` per case, then
// `<N> passed, <M> failed`; exits 0 only when nothing failed. Needs the package built
// (bindings-node/test.sh, or npm install in bindings-node) and its dev dependencies.

const fs = require('node:fs');
const path = require('node:path');

const PACKAGE = path.join(__dirname, '..', '..', '..', 'bindings-node');
const { Pool, GrpcError, Status } = require(PACKAGE);
const protoLoader = require(require.resolve('@grpc/proto-loader', { paths: [PACKAGE] }));

const CALL_TIMEOUT_MS = 10000;
const CASE_TIMEOUT_MS = 20000;
const SIZES = [[27182, 31415], [8, 9], [1828, 2653], [45904, 58979]];
const SPECIAL_MESSAGE = '\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \u{1f608}\t\n';
const SERVICE = '/grpc.testing.TestService/';

const definition = protoLoader.loadSync(path.join(__dirname, '..', 'grpc_testing.proto'), { defaults: true });
const methods = definition['grpc.testing.TestService'];
const encode = (method, message) => methods[method].requestSerialize(message);
const decode = (method, bytes) => methods[method].responseDeserialize(bytes);
const zeros = (size) => ({ body: Buffer.alloc(size) });

function check(condition, reason) {
  if (!condition) throw new Error(reason);
}

function checkZeros(payload, size) {
  const body = payload?.body ?? Buffer.alloc(0);
  check(body.length === size && body.every((byte) => byte === 0), `payload of ${body.length} bytes, expected ${size} zero bytes`);
}

async function unary(pool, target, method, request, options = {}) {
  return pool.unaryResponse(target, SERVICE + method, encode(method, request), { timeoutMs: CALL_TIMEOUT_MS, ...options });
}

function checkOk(response) {
  check(response.code === Status.OK, `status ${response.code}: ${response.details}`);
}

const cases = {
  async empty_unary(pool, target) {
    const response = await unary(pool, target, 'EmptyCall', {});
    checkOk(response);
    check(response.body.length === 0, `${response.body.length} bytes back`);
  },

  async large_unary(pool, target) {
    const response = await unary(pool, target, 'UnaryCall', { responseSize: 314159, payload: zeros(271828) });
    checkOk(response);
    checkZeros(decode('UnaryCall', response.body).payload, 314159);
  },

  async custom_metadata(pool, target) {
    const metadata = {
      'x-grpc-test-echo-initial': 'test_initial_metadata_value',
      'x-grpc-test-echo-trailing-bin': Buffer.from([0xab, 0xab, 0xab]),
    };
    const checkEchoed = (headers, trailers, where) => {
      check(headers.get('x-grpc-test-echo-initial')[0] === 'test_initial_metadata_value', `${where}: initial metadata ${JSON.stringify(headers.get('x-grpc-test-echo-initial'))}`);
      const trailing = trailers.get('x-grpc-test-echo-trailing-bin')[0];
      check(Buffer.isBuffer(trailing) && trailing.equals(Buffer.from([0xab, 0xab, 0xab])), `${where}: trailing metadata ${String(trailing && trailing.toString('hex'))}`);
    };
    const response = await unary(pool, target, 'UnaryCall', { responseSize: 314159, payload: zeros(271828) }, { metadata });
    checkOk(response);
    checkEchoed(response.headers, response.trailers, 'UnaryCall');

    const stream = await pool.openStream(target, `${SERVICE}FullDuplexCall`, { timeoutMs: CALL_TIMEOUT_MS, metadata });
    await stream.write(encode('FullDuplexCall', { responseParameters: [{ size: 314159 }], payload: zeros(271828) }));
    stream.end();
    const reply = await stream.read();
    check(reply !== null, 'FullDuplexCall: no response');
    checkZeros(decode('FullDuplexCall', reply).payload, 314159);
    const status = await stream.finish();
    check(status.code === Status.OK, `FullDuplexCall: status ${status.code}: ${status.details}`);
    checkEchoed(status.headers, status.trailers, 'FullDuplexCall');
  },

  async status_code_and_message(pool, target) {
    const responseStatus = { code: 2, message: 'test status message' };
    const response = await unary(pool, target, 'UnaryCall', { responseStatus });
    check(response.code === 2 && response.details === responseStatus.message, `UnaryCall: status ${response.code}: ${JSON.stringify(response.details)}`);
    // The same through the rejecting form: a GrpcError.
    const error = await pool.unary(target, `${SERVICE}UnaryCall`, encode('UnaryCall', { responseStatus }), { timeoutMs: CALL_TIMEOUT_MS })
      .then(() => null, (e) => e);
    check(error instanceof GrpcError && error.code === 2 && error.details === responseStatus.message, `UnaryCall (unary): ${error}`);

    const stream = await pool.openStream(target, `${SERVICE}FullDuplexCall`, { timeoutMs: CALL_TIMEOUT_MS });
    await stream.write(encode('FullDuplexCall', { responseStatus }));
    stream.end();
    const status = await stream.finish();
    check(status.code === 2 && status.details === responseStatus.message, `FullDuplexCall: status ${status.code}: ${JSON.stringify(status.details)}`);
  },

  async special_status_message(pool, target) {
    const response = await unary(pool, target, 'UnaryCall', { responseStatus: { code: 2, message: SPECIAL_MESSAGE } });
    check(response.code === 2 && response.details === SPECIAL_MESSAGE, `status ${response.code}: ${JSON.stringify(response.details)}`);
  },

  async unimplemented_method(pool, target) {
    const response = await unary(pool, target, 'UnimplementedCall', {});
    check(response.code === Status.UNIMPLEMENTED, `status ${response.code}: ${response.details}`);
  },

  async server_streaming(pool, target) {
    const stream = await pool.openStream(target, `${SERVICE}StreamingOutputCall`, { timeoutMs: CALL_TIMEOUT_MS });
    await stream.write(encode('StreamingOutputCall', { responseParameters: SIZES.map(([, size]) => ({ size })) }));
    stream.end();
    const sizes = [];
    for await (const message of stream) {
      const { payload } = decode('StreamingOutputCall', message);
      checkZeros(payload, payload?.body?.length ?? 0);
      sizes.push(payload?.body?.length ?? 0);
    }
    check(JSON.stringify(sizes) === JSON.stringify(SIZES.map(([, size]) => size)), `sizes ${sizes}`);
  },

  async ping_pong(pool, target) {
    const stream = await pool.openStream(target, `${SERVICE}FullDuplexCall`, { timeoutMs: CALL_TIMEOUT_MS });
    for (const [requestSize, responseSize] of SIZES) {
      await stream.write(encode('FullDuplexCall', { responseParameters: [{ size: responseSize }], payload: zeros(requestSize) }));
      const reply = await stream.read();
      check(reply !== null, `no reply to the ${requestSize}-byte request`);
      checkZeros(decode('FullDuplexCall', reply).payload, responseSize);
    }
    stream.end();
    check((await stream.read()) === null, 'a reply after the last one');
    const status = await stream.finish();
    check(status.code === Status.OK, `status ${status.code}: ${status.details}`);
  },
};

function withDeadline(promise, ms) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

async function main() {
  const target = process.env.GRPCPOOL_INTEROP_TARGET;
  if (!target) {
    process.stderr.write('GRPCPOOL_INTEROP_TARGET is not set (http://127.0.0.1:PORT or https://127.0.0.1:PORT)\n');
    process.exit(2);
  }
  const options = {};
  if (process.env.GRPCPOOL_INTEROP_CA_FILE) {
    options.tlsCaPem = fs.readFileSync(process.env.GRPCPOOL_INTEROP_CA_FILE);
  }
  if (process.env.GRPCPOOL_INTEROP_SERVER_NAME) {
    options.tlsServerName = process.env.GRPCPOOL_INTEROP_SERVER_NAME;
  }
  const pool = new Pool(options);
  let passed = 0;
  let failed = 0;
  for (const [name, run] of Object.entries(cases)) {
    const started = process.hrtime.bigint();
    try {
      await withDeadline(run(pool, target), CASE_TIMEOUT_MS);
      const ms = Number((process.hrtime.bigint() - started) / 1000000n);
      process.stdout.write(`  ok   ${name} (${ms} ms)\n`);
      passed += 1;
    } catch (error) {
      process.stdout.write(`  FAIL ${name}: ${String(error && error.message).replace(/\s+/g, ' ')}\n`);
      failed += 1;
    }
  }
  await pool.close({ graceMs: 1000 });
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((error) => {
  process.stderr.write(`interop client: ${error && error.stack}\n`);
  process.exit(1);
});
