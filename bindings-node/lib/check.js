'use strict';
// Argument checks with clear messages, before anything reaches the addon.

const { describe } = require('./metadata');

function invalid(message) {
  const error = new TypeError(message);
  error.code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

/** A non-empty string. */
function checkString(name, value) {
  if (typeof value !== 'string' || value.length === 0) {
    throw invalid(`${name} must be a non-empty string, not ${describe(value)}`);
  }
  return value;
}

/** Message bytes: a Buffer or Uint8Array. */
function checkBytes(name, value) {
  if (!(value instanceof Uint8Array)) {
    throw invalid(`${name} must be a Buffer or Uint8Array, not ${describe(value)}`);
  }
  return value;
}

/** An options object, or undefined (or null) for none: `{}` then. */
function checkObject(name, options) {
  if (options === undefined || options === null) {
    return {};
  }
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`${name} must be an object, not ${describe(options)}`);
  }
  return options;
}

/** An options object, or undefined for none; keys outside `known` are refused. */
function checkOptions(name, options, known) {
  const checked = checkObject(name, options);
  for (const key of Object.keys(checked)) {
    if (!known.includes(key)) {
      throw invalid(`unknown ${name} key ${JSON.stringify(key)}; known keys: ${known.join(', ')}`);
    }
  }
  return checked;
}

/** Milliseconds: undefined, or a finite number >= 0. */
function checkMillis(name, value) {
  if (value === undefined) {
    return undefined;
  }
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid(`${name} must be a finite number of milliseconds >= 0, not ${describe(value)} ${String(value)}`);
  }
  return value;
}

/** A string or undefined (its meaning is checked by the addon). */
function checkOptionalString(name, value) {
  if (value !== undefined && typeof value !== 'string') {
    throw invalid(`${name} must be a string, not ${describe(value)}`);
  }
  return value;
}

/** A boolean or undefined. */
function checkBoolean(name, value) {
  if (value !== undefined && typeof value !== 'boolean') {
    throw invalid(`${name} must be a boolean, not ${describe(value)}`);
  }
  return value;
}

/** An AbortSignal or undefined. */
function checkSignal(signal) {
  if (signal === undefined) {
    return undefined;
  }
  if (typeof signal !== 'object' || signal === null || typeof signal.addEventListener !== 'function' || typeof signal.aborted !== 'boolean') {
    throw invalid(`signal must be an AbortSignal, not ${describe(signal)}`);
  }
  return signal;
}

/** The signal of call options, checked (the other options are checked when the call starts). */
function signalOf(options) {
  if (options === undefined || options === null || typeof options !== 'object') {
    return undefined;
  }
  return checkSignal(options.signal);
}

module.exports = {
  signalOf, checkString, checkBytes, checkObject, checkOptions, checkMillis, checkBoolean, checkOptionalString, checkSignal,
};
