'use strict';
// The benchmark's server: @grpc/grpc-js echoing raw bytes on /bench.Echo/Unary. Run as a
// child process; prints its port, serves until killed.

const path = require('node:path');

const PACKAGE = path.join(__dirname, '..', '..', 'bindings-node');
const grpc = require(require.resolve('@grpc/grpc-js', { paths: [PACKAGE] }));

const identity = (bytes) => bytes;
const service = {
  Unary: {
    path: '/bench.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const server = new grpc.Server();
server.addService(service, { Unary: (call, callback) => callback(null, call.request) });
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${port}\n`);
});
