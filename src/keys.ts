import { ValidationError } from './errors.js';

/**
 * Where a region's keys live. Every argument reaching a schema has been validated, so a schema
 * only arranges names; it must give the six keys of one call one hash slot under Redis Cluster.
 */
export interface KeySchema {
  /** Payload keyed by region and generation time (ms). */
  timestamp(region: string, timestamp: number): string;
  /** Payload keyed by snapshot id. Must contain `id` verbatim, once (read.lua derives it). */
  byId(region: string, id: string): string;
  /** Bare id of the region's newest snapshot. */
  latest(region: string): string;
  /** Sorted set of the region's snapshot ids, scored by timestamp. */
  index(region: string): string;
  /** Deleted whenever latest moves. */
  live(region: string): string;
  /** Claims one trigger's time bucket for one snapshot id. */
  dedup(region: string, trigger: string, bucket: number): string;
}

export type KeySchemaName = 'worldmonitor-v1' | 'cluster';

/** Byte-compatible with the keys the legacy seeder wrote and its readers read. */
const worldmonitorV1: KeySchema = {
  timestamp: (r, t) => `intelligence:snapshot:v1:${r}:${t}`,
  byId: (_r, id) => `intelligence:snapshot-by-id:v1:${id}`,
  latest: (r) => `intelligence:snapshot:v1:${r}:latest`,
  index: (r) => `intelligence:snapshot-index:v1:${r}`,
  live: (r) => `intelligence:snapshot:v1:${r}:live`,
  dedup: (r, trigger, bucket) => `dedup:snapshot:v1:${r}:${trigger}:${bucket}`,
};

/** The same names with the region as a hash tag in every key, so a call maps to one slot. */
const cluster: KeySchema = {
  timestamp: (r, t) => `intelligence:snapshot:v1:{${r}}:${t}`,
  byId: (r, id) => `intelligence:snapshot-by-id:v1:{${r}}:${id}`,
  latest: (r) => `intelligence:snapshot:v1:{${r}}:latest`,
  index: (r) => `intelligence:snapshot-index:v1:{${r}}`,
  live: (r) => `intelligence:snapshot:v1:{${r}}:live`,
  dedup: (r, trigger, bucket) => `dedup:snapshot:v1:{${r}}:${trigger}:${bucket}`,
};

export const keySchemas: Readonly<Record<KeySchemaName, KeySchema>> = { 'worldmonitor-v1': worldmonitorV1, cluster };

const schemaMethods = ['timestamp', 'byId', 'latest', 'index', 'live', 'dedup'] as const;

/** A schema method that throws or returns no string fails as a ValidationError, never raw. */
function guarded(base: KeySchema): KeySchema {
  const wrap =
    <A extends unknown[]>(method: (typeof schemaMethods)[number], f: (...args: A) => string) =>
    (...args: A): string => {
      let key: unknown;
      try {
        key = f.apply(base, args);
      } catch {
        throw new ValidationError('options.keys.schema', `${method}() threw`);
      }
      if (typeof key !== 'string' || key === '') throw new ValidationError('options.keys.schema', `${method}() returned no key name`);
      return key;
    };
  return {
    timestamp: wrap('timestamp', base.timestamp),
    byId: wrap('byId', base.byId),
    latest: wrap('latest', base.latest),
    index: wrap('index', base.index),
    live: wrap('live', base.live),
    dedup: wrap('dedup', base.dedup),
  };
}

/**
 * A schema that would corrupt data is refused when the store is created: tried on two regions,
 * every key of a call is distinct from the others (and from the other region's), the id occurs
 * exactly once in `byId`, and every key but `byId` names its region.
 */
function checkSchema(schema: KeySchema): void {
  const fault = (reason: string) => new ValidationError('options.keys.schema', reason);
  const keysOf = (region: string) => ({
    timestamp: schema.timestamp(region, 1700000000000),
    byId: schema.byId(region, 'probe-id'),
    latest: schema.latest(region),
    index: schema.index(region),
    live: schema.live(region),
    dedup: schema.dedup(region, 'probe-trigger', 1888888),
  });
  const a = keysOf('probe-region-a');
  const b = keysOf('probe-region-b');
  const names = Object.entries(a);
  names.forEach(([role, key], i) => {
    const same = names.slice(i + 1).find(([, other]) => other === key);
    if (same) throw fault(`${role}() and ${same[0]}() give the same key`);
    if (role !== 'byId' && (!key.includes('probe-region-a') || key === b[role as keyof typeof b])) throw fault(`${role}() must contain the region`);
  });
  if (a.byId.split('probe-id').length !== 2) throw fault('byId(region, id) must contain the id exactly once');
  if (schema.timestamp('probe-region-a', 1700000000001) === a.timestamp) throw fault('timestamp() must contain the timestamp');
  if (schema.dedup('probe-region-a', 'other-trigger', 1888888) === a.dedup || schema.dedup('probe-region-a', 'probe-trigger', 1888889) === a.dedup) {
    throw fault('dedup() must contain the trigger and the bucket');
  }
}

/** Resolves the `keys` option to a schema, with the optional prefix applied to every key. */
export function resolveKeySchema(schema: KeySchemaName | KeySchema = 'worldmonitor-v1', prefix = ''): KeySchema {
  const named = typeof schema === 'string';
  const given = named ? keySchemas[schema] : schema;
  if (!given || typeof given !== 'object' || schemaMethods.some((m) => typeof given[m] !== 'function')) {
    throw new ValidationError('options.keys.schema', `expected 'worldmonitor-v1', 'cluster' or an object with ${schemaMethods.join(', ')}`);
  }
  if (typeof prefix !== 'string' || /[\s*?[\]]/.test(prefix)) {
    throw new ValidationError('options.keys.prefix', 'expected a string without whitespace or glob characters');
  }
  const base = named ? given : guarded(given);
  if (!named) checkSchema(base);
  if (prefix === '') return base;
  return {
    timestamp: (r, t) => prefix + base.timestamp(r, t),
    byId: (r, id) => prefix + base.byId(r, id),
    latest: (r) => prefix + base.latest(r),
    index: (r) => prefix + base.index(r),
    live: (r) => prefix + base.live(r),
    dedup: (r, trigger, bucket) => prefix + base.dedup(r, trigger, bucket),
  };
}

/** The by-id key of `region` around the id, as read.lua rebuilds it: [before, after]. */
export function byIdTemplate(schema: KeySchema, region: string): [string, string] {
  // NUL never occurs in a valid id or region, so it marks where the id goes.
  const parts = schema.byId(region, '\u0000').split('\u0000');
  if (parts.length !== 2) throw new ValidationError('options.keys.schema', 'byId(region, id) must contain the id exactly once');
  return [parts[0]!, parts[1]!];
}
