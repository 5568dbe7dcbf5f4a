'use strict';
// Encodes and decodes the echo messages with the serializers @grpc/proto-loader made.

const { EchoService } = require('./echo_server');

const METHOD = {
  unary: '/grpcpool.test.Echo/Unary',
  serverStream: '/grpcpool.test.Echo/ServerStream',
  clientStream: '/grpcpool.test.Echo/ClientStream',
  bidi: '/grpcpool.test.Echo/Bidi',
};

/** EchoRequest bytes. */
const encode = (request) => EchoService.Unary.requestSerialize(request);
/** An EchoReply from bytes. */
const decode = (bytes) => EchoService.Unary.responseDeserialize(bytes);

module.exports = { METHOD, encode, decode };
