'use strict';
// The pool's metrics for prom-client: `registerMetrics(pool, registry)` registers each family of
// `pool.metricsText()` (gRPC's OpenTelemetry client metrics, A66, and the pool's own
// `grpcpool_*`) as a prom-client metric read afresh at every scrape. prom-client is needed
// only here, and only when no registry is passed in.

/** Reads one sample line's label block, `{a="x",b="y"}`, from `at`; the labels and the end. */
function readLabels(line, at) {
  const labels = {};
  let index = at + 1;
  while (index < line.length && line[index] !== '}') {
    const equals = line.indexOf('=', index);
    const name = line.slice(index, equals).trim();
    let value = '';
    index = equals + 2; // past ="
    while (index < line.length && line[index] !== '"') {
      if (line[index] === '\\' && index + 1 < line.length) {
        const next = line[index + 1];
        value += next === 'n' ? '\n' : next;
        index += 2;
      } else {
        value += line[index];
        index += 1;
      }
    }
    labels[name] = value;
    index += 1; // past the closing quote
    if (line[index] === ',') index += 1;
  }
  return { labels, end: index + 1 };
}

/** A sample value as the text format writes it. */
function readValue(text) {
  switch (text) {
    case '+Inf': return Infinity;
    case '-Inf': return -Infinity;
    case 'NaN': return NaN;
    default: return Number(text);
  }
}

/**
 * The families of a Prometheus text exposition, by name, in prom-client's shape:
 * `{ name, help, type, values: [{ metricName, labels, value }] }`. A sample belongs to the
 * family whose `# TYPE` line came last, as the pool writes its text.
 */
function parseFamilies(text) {
  const families = new Map();
  let current;
  const family = (name) => {
    if (!families.has(name)) {
      families.set(name, { name, help: '', type: 'untyped', aggregator: 'sum', values: [] });
    }
    return families.get(name);
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [, , name, ...help] = line.split(' ');
      family(name).help = help.join(' ').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    } else if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      current = family(name);
      current.type = type;
    } else if (line !== '' && !line.startsWith('#') && current !== undefined) {
      const brace = line.indexOf('{');
      const space = line.indexOf(' ');
      let metricName;
      let labels = {};
      let rest;
      if (brace !== -1 && brace < space) {
        metricName = line.slice(0, brace);
        const read = readLabels(line, brace);
        labels = read.labels;
        rest = line.slice(read.end).trim();
      } else {
        metricName = line.slice(0, space);
        rest = line.slice(space + 1).trim();
      }
      current.values.push({ metricName, labels, value: readValue(rest.split(' ')[0]) });
    }
  }
  return families;
}

/**
 * Registers the pool's metric families in `registry` (prom-client's default registry when
 * omitted); each scrape reads the pool's metrics text once for all of them. Returns the
 * names registered; `registry.removeSingleMetric(name)` takes one away again.
 */
function registerMetrics(pool, registry) {
  const target = registry ?? require('prom-client').register;
  // One read of the pool per scrape: prom-client asks every metric within the same turn.
  let snapshot;
  const read = () => {
    if (snapshot === undefined) {
      snapshot = parseFamilies(pool.metricsText());
      setImmediate(() => { snapshot = undefined; });
    }
    return snapshot;
  };
  const names = [];
  for (const [name, family] of parseFamilies(pool.metricsText())) {
    const { help, type } = family;
    target.registerMetric({
      name,
      help,
      type,
      aggregator: 'sum',
      async get() {
        const now = read().get(name);
        return { name, help, type, aggregator: 'sum', values: now === undefined ? [] : now.values };
      },
      reset() {},
    });
    names.push(name);
  }
  return names;
}

module.exports = { registerMetrics, parseFamilies };
