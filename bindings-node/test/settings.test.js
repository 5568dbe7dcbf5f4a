'use strict';
// Pool options come from the core's settings table: every setting is taken by its name, the
// names are exactly the keys of the generated PoolOptions (settings.d.ts), and each option is
// converted by its type. A setting added to the core but missing from settings.d.ts (or the
// other way round) fails here.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Pool, poolOptionNames, poolOptionDefaults } = require('..');
const native = require('../lib/native');
const { POOL_OPTION_KEYS } = require('../lib/pool');
const { startEchoServer } = require('./helpers/echo_server');
const { METHOD, encode, decode } = require('./helpers/codec');

const SETTINGS_DTS = path.join(__dirname, '..', 'settings.d.ts');
const PEM_TYPE = 'string | Buffer | Uint8Array';
const JSON_TYPE = 'string | Record<string, unknown>';

/** The members of `export interface PoolOptions` in settings.d.ts: name -> TypeScript type. */
function generatedOptions() {
  const text = fs.readFileSync(SETTINGS_DTS, 'utf8');
  const body = /export interface PoolOptions \{([\s\S]*?)\n\}/.exec(text);
  assert.ok(body, 'settings.d.ts declares no PoolOptions interface');
  const members = new Map();
  for (const match of body[1].matchAll(/^\s*(\w+)\?: ([^;]+);$/gm)) {
    members.set(match[1], match[2]);
  }
  return members;
}

/**
 * A throwaway self-signed certificate and its key (PEM), made with the openssl command; or a
 * reason to skip the PEM settings when there is no openssl.
 */
function makeCertificate() {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'grpcpool-node-pem-'));
  try {
    const made = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', path.join(directory, 'key.pem'), '-out', path.join(directory, 'cert.pem'),
      '-days', '1', '-subj', '/CN=grpcpool-node-test',
    ], { stdio: 'pipe', encoding: 'utf8' });
    if (made.error || made.status !== 0) {
      return { skip: `no PEM to test with: openssl could not make one (${made.error?.message ?? made.stderr.trim()})` };
    }
    return {
      cert: fs.readFileSync(path.join(directory, 'cert.pem'), 'utf8'),
      key: fs.readFileSync(path.join(directory, 'key.pem'), 'utf8'),
    };
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

describe('pool options from the settings table', () => {
  const generated = generatedOptions();
  const names = poolOptionNames();
  const defaults = poolOptionDefaults();
  const pem = makeCertificate();
  let server;
  before(async () => {
    server = await startEchoServer();
  });
  after(async () => {
    await server.close();
  });

  /** A valid value for option `name`: its default where it has one. */
  function validValue(name) {
    if (name in defaults) return defaults[name];
    const type = generated.get(name);
    if (type === PEM_TYPE) return /key/i.test(name) ? pem.key : pem.cert;
    if (type === 'string') return 'localhost';
    if (type === JSON_TYPE) return {};
    return assert.fail(`no default and no test value for ${name} (${type})`);
  }

  /**
   * The options that make `name` valid on its own: a client certificate and its key only go
   * together (the core refuses one without the other), so each brings the other.
   */
  function optionsFor(name) {
    const options = { [name]: validValue(name) };
    const partner = { tlsClientCertPem: 'tlsClientKeyPem', tlsClientKeyPem: 'tlsClientCertPem' }[name];
    if (partner !== undefined) options[partner] = validValue(partner);
    return options;
  }

  it('names exactly the keys of the generated PoolOptions interface', () => {
    assert.ok(names.length > 20, `only ${names.length} names`);
    // PoolOptions has every setting, and `targets` for settings of single targets.
    assert.deepEqual([...names, 'targets'].sort(), [...generated.keys()].sort());
    assert.equal(new Set(names).size, names.length, 'names are unique');
    assert.deepEqual([...POOL_OPTION_KEYS], names);
    assert.ok(Object.isFrozen(POOL_OPTION_KEYS));
  });

  it('gives defaults of the types the generated interface declares', () => {
    for (const [name, value] of Object.entries(defaults)) {
      const type = generated.get(name);
      assert.ok(type !== undefined, `default for ${name}, which PoolOptions lacks`);
      if (type === PEM_TYPE) {
        assert.ok(Buffer.isBuffer(value), name);
      } else {
        assert.equal(typeof value, type, name);
      }
    }
    assert.equal(defaults.connectTimeoutMs, 20000);
    assert.equal(defaults.keepaliveWhileIdle, false);
  });

  it('accepts every setting by name', (t) => {
    for (const name of names) {
      if (generated.get(name) === PEM_TYPE && pem.skip) {
        t.diagnostic(`${name}: skipped, ${pem.skip}`);
        continue;
      }
      const pool = new Pool(optionsFor(name));
      assert.equal(pool.closed, false, name);
    }
  });

  it('accepts every setting at once and calls with them', async () => {
    const options = {};
    for (const name of names) {
      if (generated.get(name) === PEM_TYPE && pem.skip) continue;
      options[name] = validValue(name);
    }
    const pool = new Pool(options);
    try {
      // TLS settings apply to https:// targets only; this one is plaintext.
      const body = await pool.unary(server.target, METHOD.unary, encode({ message: 'all of them' }));
      assert.equal(decode(body).message, 'all of them');
    } finally {
      await pool.close();
    }
  });

  it('takes PEM as a string, a Buffer or a Uint8Array', { skip: pem.skip }, () => {
    for (const value of [pem.cert, Buffer.from(pem.cert), new Uint8Array(Buffer.from(pem.cert))]) {
      void new Pool({ tlsCaPem: value });
    }
    void new Pool({ tlsClientCertPem: Buffer.from(pem.cert), tlsClientKeyPem: new Uint8Array(Buffer.from(pem.key)) });
  });

  it('leaves an undefined option at its default', () => {
    const options = Object.fromEntries(names.map((name) => [name, undefined]));
    void new Pool(options);
  });

  it('refuses a value of the wrong type for every setting, naming the option', () => {
    for (const name of names) {
      // An object is a JSON option's value; a number is wrong for it as for text.
      const wrong = generated.get(name) === JSON_TYPE ? 42 : {};
      assert.throws(() => new Pool({ [name]: wrong }), (error) => {
        assert.equal(error.name, 'TypeError', name);
        assert.ok(error.message.startsWith(`${name} must be `), error.message);
        return true;
      });
    }
    assert.throws(() => new Pool({ keepaliveWhileIdle: 'yes' }), { name: 'TypeError', message: /keepaliveWhileIdle must be a boolean, not a string/ });
    assert.throws(() => new Pool({ tlsServerName: 42 }), { name: 'TypeError', message: /tlsServerName must be a string, not a number/ });
    assert.throws(() => new Pool({ tlsCaPem: [1, 2] }), { name: 'TypeError', message: /tlsCaPem must be PEM text/ });
  });

  it('refuses numbers out of a setting\'s range', () => {
    assert.throws(() => new Pool({ workerThreads: 1e9 }), { name: 'TypeError', message: /workerThreads must be a whole number from 0 to \d+, not 1000000000/ });
    assert.throws(() => new Pool({ streamsPerConnection: -1 }), { name: 'TypeError', message: /streamsPerConnection must be a whole number/ });
    assert.throws(() => new Pool({ maxSendMessageSize: 2 ** 40 }), { name: 'TypeError', message: /maxSendMessageSize must be a whole number from 0 to 4294967295/ });
    assert.throws(() => new Pool({ backoffMultiplier: NaN }), { name: 'TypeError', message: /backoffMultiplier must be a finite number/ });
    assert.throws(() => new Pool({ backoffJitter: Infinity }), { name: 'TypeError', message: /backoffJitter must be a finite number/ });
    assert.throws(() => new Pool({ idleTimeoutMs: NaN }), { name: 'TypeError', message: /idleTimeoutMs must be a finite number of milliseconds/ });
    assert.throws(() => new Pool({ acquireTimeoutMs: -1 }), { name: 'TypeError', message: /acquireTimeoutMs/ });
    // Ranges the core checks when the pool is made.
    assert.throws(() => new Pool({ backoffMultiplier: 0.5 }), { name: 'TypeError', message: /multiplier/ });
    assert.throws(() => new Pool({ initialStreamWindowSize: 10 }), { name: 'TypeError', message: /initial_stream_window_size/ });
  });

  it('turns off with 0 a duration that can be turned off, and refuses 0 for one that cannot', () => {
    void new Pool({ keepaliveTimeMs: 0, tcpKeepaliveMs: 0, maxConnectionAgeMs: 0 });
    assert.throws(() => new Pool({ connectTimeoutMs: 0 }), { name: 'TypeError', message: /connect_timeout/ });
  });

  it('refuses an unknown option, naming it', () => {
    assert.throws(() => new Pool({ maxConnections: 2 }), (error) => {
      assert.equal(error.name, 'TypeError');
      assert.match(error.message, /unknown pool options key "maxConnections"; known keys: /);
      assert.ok(error.message.includes(names.join(', ')));
      return true;
    });
    // Snake case is C's and Python's spelling, not Node's.
    assert.throws(() => new Pool({ max_connections_per_target: 2 }), { name: 'TypeError', message: /unknown pool options key "max_connections_per_target"/ });
    assert.throws(() => new Pool([4]), { name: 'TypeError', message: /pool options must be an object, not an array/ });
  });

  it('is checked by the addon itself, not only by the JavaScript layer', () => {
    const settle = () => {};
    assert.throws(() => new native.NativePool({ nope: 1 }, settle), /unknown pool options key "nope"/);
    assert.throws(() => new native.NativePool('fast', settle), /pool options must be an object, not a string/);
    assert.throws(() => new native.NativePool({ connectTimeoutMs: '1s' }, settle), /connectTimeoutMs must be a number of milliseconds, not a string/);
    // Inherited enumerable keys are read too, so they are checked too.
    assert.throws(() => new native.NativePool(Object.create({ nope: 1 }), settle), /unknown pool options key "nope"/);
    void new native.NativePool(Object.create({ workerThreads: 1 }), settle);
    void new native.NativePool(undefined, settle);
  });
});
