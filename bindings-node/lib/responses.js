'use strict';
// What call promises resolve to, made from the addon's completions.

const { Metadata } = require('./metadata');
const { errorFromResult } = require('./errors');

/** The body of a unary call; a non-OK status throws its GrpcError. */
function bodyOf(completion) {
  if (completion.result !== undefined) {
    if (completion.result.code !== 0) {
      throw errorFromResult(completion.result);
    }
    return completion.result.body;
  }
  return completion.body;
}

/** The whole outcome of a call: `{ code, details, headers, trailers, body, statusDetails }`. */
function responseOf(completion) {
  return callResponse(completion.result);
}

function callResponse(result) {
  return {
    code: result.code,
    details: result.details,
    headers: Metadata.fromEntries(result.headers),
    trailers: Metadata.fromEntries(result.trailers),
    body: result.body,
    statusDetails: result.statusDetails,
  };
}

module.exports = { bodyOf, responseOf, callResponse };
