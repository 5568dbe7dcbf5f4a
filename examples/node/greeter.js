'use strict';
// grpcpool from Node: an ordinary @grpc/grpc-js client whose calls run over grpcpool's pooled
// connections (grpcpool.Channel as its channelOverride), with a grpc-js interceptor adding a
// token, and the same service through grpcpool's own Promise client.
//
// It starts its own grpc-js Greeter server on 127.0.0.1; with an address argument it calls
// that server instead:
//
//     npm install grpcpool @grpc/grpc-js @grpc/proto-loader
//     node greeter.js [http://127.0.0.1:50051]

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const grpcpool = require('grpcpool');

const definition = protoLoader.loadSync(path.join(__dirname, '..', 'greeter.proto'));
const { Greeter } = grpc.loadPackageDefinition(definition).greeter;

/** A Greeter server that wants `authorization: Bearer demo`; resolves with its target. */
async function startServer() {
  const server = new grpc.Server();
  const authorized = (call) => call.metadata.get('authorization')[0] === 'Bearer demo';
  server.addService(Greeter.service, {
    sayHello(call, callback) {
      if (!authorized(call)) return callback({ code: grpc.status.UNAUTHENTICATED, details: 'no token' });
      callback(null, { message: `Hello, ${call.request.name}` });
    },
    sayHelloToMany(call) {
      if (!authorized(call)) return call.destroy({ code: grpc.status.UNAUTHENTICATED, details: 'no token' });
      call.on('data', (request) => call.write({ message: `Hello, ${request.name}` }));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  return { target: `http://127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

/** A grpc-js client interceptor: adds the token to every call's metadata. */
const addToken = (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
  start(metadata, listener, next) {
    metadata.set('authorization', 'Bearer demo');
    next(metadata, listener);
  },
});

async function main() {
  const server = process.argv[2] ? undefined : await startServer();
  const target = process.argv[2] ?? server.target;
  const pool = new grpcpool.Pool({ maxConnectionsPerTarget: 2 });
  try {
    // The grpc-js client, unchanged: only its channel is the pool's. The address argument is
    // not used; the Channel's target is.
    const channel = new grpcpool.Channel(pool, target);
    const client = new Greeter('unused', grpc.credentials.createInsecure(), { channelOverride: channel, interceptors: [addToken] });
    const reply = await new Promise((resolve, reject) => {
      client.sayHello({ name: 'grpc-js' }, { deadline: Date.now() + 2000 }, (error, response) => (error ? reject(error) : resolve(response)));
    });
    console.log('grpc-js client over grpcpool:', reply.message);

    const stream = client.sayHelloToMany();
    for (const name of ['a', 'b', 'c']) stream.write({ name });
    stream.end();
    const replies = [];
    for await (const response of stream) replies.push(response.message);
    console.log('bidi streaming:', replies.join(' / '));

    // grpcpool's own client: Promises and async iterables, the same interceptor.
    const promised = grpcpool.createClient(pool, target, definition['greeter.Greeter'], { interceptors: [addToken] });
    console.log('createClient:', (await promised.sayHello({ name: 'Promise' }, { timeoutMs: 2000 })).message);

    const targetStats = pool.stats().targets.find((entry) => entry.target === target);
    console.log(`calls on ${target}: ${targetStats.callsStarted}, connections: ${targetStats.connections.ready}`);
    client.close();
  } finally {
    await pool.close();
    server?.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
