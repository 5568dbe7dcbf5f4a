'use strict';
// grpcpool: pooled, multiplexed gRPC connections for Node, on grpcpool's Rust engine.

const { Pool } = require('./lib/pool');
const { Lease } = require('./lib/lease');
const { Stream } = require('./lib/stream');
const { GrpcError } = require('./lib/errors');
const { Status } = require('./lib/status');
const { Metadata } = require('./lib/metadata');
const { createClient } = require('./lib/client');
const { Channel, Connectivity } = require('./lib/channel');
const { poolOptionNames, poolOptionDefaults } = require('./lib/native');
const { registerMetrics } = require('./lib/metrics');

module.exports = {
  Pool, Lease, Stream, GrpcError, Status, Metadata, createClient, Channel, Connectivity, poolOptionNames,
  poolOptionDefaults, registerMetrics,
};
