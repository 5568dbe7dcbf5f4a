'use strict';
// gRPC metadata: ordered keys with one or more values each, read as @grpc/grpc-js's Metadata.

/** A string value, or bytes (a Buffer) for keys ending in `-bin`. */
function checkValue(key, value) {
  if (typeof value === 'string') {
    return value;
  }
  if (value instanceof Uint8Array) {
    return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  throw new TypeError(
    `metadata value for ${JSON.stringify(key)} must be a string or, for keys ending in -bin, ` +
      `a Buffer or Uint8Array, not ${describe(value)}`,
  );
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? `an object (${value.constructor?.name ?? 'Object'})` : typeof value;
}

/** Metadata of a call: request metadata to send, or headers and trailers received. */
class Metadata {
  #entries = new Map();

  /**
   * @param {Record<string, string | Buffer | Array<string | Buffer>>} [init] key -> value(s)
   */
  constructor(init) {
    if (init !== undefined) {
      for (const [key, value] of Object.entries(init)) {
        for (const one of Array.isArray(value) ? value : [value]) {
          this.add(key, one);
        }
      }
    }
  }

  /** Replaces the values of `key` with `value`. */
  set(key, value) {
    const name = String(key).toLowerCase();
    this.#entries.set(name, [checkValue(name, value)]);
    return this;
  }

  /** Adds `value` to the values of `key`. */
  add(key, value) {
    const name = String(key).toLowerCase();
    const values = this.#entries.get(name);
    if (values) {
      values.push(checkValue(name, value));
    } else {
      this.#entries.set(name, [checkValue(name, value)]);
    }
    return this;
  }

  /** Removes every value of `key`. */
  remove(key) {
    this.#entries.delete(String(key).toLowerCase());
  }

  /** Every value of `key`, in order (an empty array when there is none). */
  get(key) {
    return [...(this.#entries.get(String(key).toLowerCase()) ?? [])];
  }

  /** The first value of each key. */
  getMap() {
    const map = {};
    for (const [key, values] of this.#entries) {
      map[key] = values[0];
    }
    return map;
  }

  /** Every key with all its values. */
  toJSON() {
    const json = {};
    for (const [key, values] of this.#entries) {
      json[key] = [...values];
    }
    return json;
  }

  /** A copy. */
  clone() {
    const copy = new Metadata();
    for (const [key, value] of this) {
      copy.add(key, value);
    }
    return copy;
  }

  /** Shows the entries in console.log and util.inspect. */
  [Symbol.for('nodejs.util.inspect.custom')](depth, options, inspect) {
    return `Metadata ${inspect(this.toJSON(), options)}`;
  }

  /** `[key, value]` pairs in order, one per value. */
  *[Symbol.iterator]() {
    for (const [key, values] of this.#entries) {
      for (const value of values) {
        yield [key, value];
      }
    }
  }

  /** Metadata from the addon's entries. */
  static fromEntries(entries) {
    const metadata = new Metadata();
    for (const { key, value } of entries ?? []) {
      metadata.add(key, value);
    }
    return metadata;
  }
}

/**
 * The addon's entries for request metadata given as a Metadata or a plain object; undefined
 * for none. Keys and values are checked by the addon against gRPC's rules.
 */
function toEntries(metadata) {
  if (metadata === undefined || metadata === null) {
    return undefined;
  }
  const entries = [];
  if (metadata instanceof Metadata) {
    for (const [key, value] of metadata) {
      entries.push({ key, value });
    }
    return entries;
  }
  if (typeof metadata !== 'object' || Array.isArray(metadata) || metadata instanceof Uint8Array) {
    throw new TypeError(
      `metadata must be a Metadata or an object of key -> string/Buffer (or arrays of them), not ${describe(metadata)}`,
    );
  }
  for (const [key, value] of Object.entries(metadata)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      entries.push({ key, value: checkValue(key, one) });
    }
  }
  return entries;
}

module.exports = { Metadata, toEntries, describe };
