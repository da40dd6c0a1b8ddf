import type { Redis } from 'ioredis';
import { createSnapshotStore, type SnapshotStoreOptions } from '../src/index.js';
import { keySchemas, resolveKeySchema } from '../src/keys.js';
import { legacyPersist, legacyPipeline } from '../test/support/legacy.js';

/** One persist's input. Every field is unique per persist, so nothing is a replay or a duplicate. */
export interface BenchSnapshot {
  region: string;
  id: string;
  timestamp: number;
  trigger: string;
  /** The seeder's document: every strategy serialises it once, as the seeder would. */
  payload: object;
}

/** The six legacy writes take JSON text: the seeder's one JSON.stringify per persist. */
export const asText = (s: BenchSnapshot) => ({ ...s, payload: JSON.stringify(s.payload) });

export const RETENTION_MS = 7_776_000_000;
const legacyKeys = keySchemas['worldmonitor-v1'];

/**
 * One way of persisting a snapshot. To measure a new one (a transfer mode, a key layout), add
 * one object to `strategies`.
 */
export interface Strategy {
  readonly name: string;
  /** This module's persist: DESIGN.md's targets apply to it. */
  readonly module: boolean;
  /**
   * The commands the client sends at top level, whose `INFO commandstats` usec is the server
   * time. Redis 7 adds a command's nested calls (a transaction's commands, a script's
   * redis.call) to its own usec and also counts them under their own names: listing only
   * top-level commands counts each microsecond once.
   */
  readonly serverCommands: readonly string[];
  /** A persist function bound to a client. */
  bind(client: Redis): (s: BenchSnapshot) => Promise<unknown>;
  /** The keys that hold one snapshot (not the region's shared latest/index/live keys). */
  snapshotKeys(s: BenchSnapshot): string[];
}

const dedupBucket = (s: BenchSnapshot) => Math.floor(s.timestamp / 900_000);

/** The keys the legacy seeder creates per snapshot: the payload twice and the dedup claim. */
const legacySnapshotKeys = (s: BenchSnapshot) => [
  legacyKeys.timestamp(s.region, s.timestamp),
  legacyKeys.byId(s.region, s.id),
  legacyKeys.dedup(s.region, s.trigger, dedupBucket(s)),
];

export const legacy: Strategy = {
  name: 'legacy pipeline',
  module: false,
  serverCommands: ['set', 'zadd', 'zremrangebyscore', 'del'],
  bind: (client) => (s) => legacyPersist(client, asText(s)),
  snapshotKeys: legacySnapshotKeys,
};

export const multiExec: Strategy = {
  name: 'MULTI/EXEC',
  module: false,
  // EXEC's usec includes the commands it ran; MULTI is the transaction's other top-level command.
  serverCommands: ['multi', 'exec'],
  bind: (client) => (s) => {
    // The legacy six writes, queued on a transaction that opens with the dedup claim.
    const transaction = () => client.multi().set(legacyKeys.dedup(s.region, s.trigger, dedupBucket(s)), s.id, 'EX', 900, 'NX');
    return legacyPipeline({ pipeline: transaction } as unknown as Redis, asText(s)).exec();
  },
  snapshotKeys: legacySnapshotKeys,
};

/**
 * This module's persist with the given store options. `serverCommands`: what the store sends at
 * top level; a path that wraps the script call in a transaction sends `multi` and `exec`.
 */
export function moduleStrategy(name: string, options: Omit<SnapshotStoreOptions, 'client'> = {}, serverCommands = ['evalsha', 'eval']): Strategy {
  const schema = resolveKeySchema(options.keys?.schema, options.keys?.prefix);
  return {
    name,
    module: true,
    serverCommands,
    bind(client) {
      const store = createSnapshotStore({ ...options, client, retentionMs: RETENTION_MS });
      return (s) => store.persist(s);
    },
    snapshotKeys: (s) => [schema.timestamp(s.region, s.timestamp), schema.byId(s.region, s.id), schema.dedup(s.region, s.trigger, dedupBucket(s))],
  };
}

export const floor: Strategy = {
  name: 'floor: one SET',
  module: false,
  serverCommands: ['set'],
  bind: (client) => (s) => client.set(legacyKeys.byId(s.region, s.id), JSON.stringify(s.payload), 'PXAT', s.timestamp + RETENTION_MS),
  snapshotKeys: (s) => [legacyKeys.byId(s.region, s.id)],
};

/** The floor for the two-copy layout: the payload SET under both keys, in one round trip. */
export const twoSets: Strategy = {
  name: 'floor: two SETs',
  module: false,
  serverCommands: ['set'],
  bind: (client) => (s) => {
    const text = JSON.stringify(s.payload);
    const expireAt = s.timestamp + RETENTION_MS;
    return client.pipeline().set(legacyKeys.timestamp(s.region, s.timestamp), text, 'PXAT', expireAt).set(legacyKeys.byId(s.region, s.id), text, 'PXAT', expireAt).exec();
  },
  snapshotKeys: (s) => [legacyKeys.timestamp(s.region, s.timestamp), legacyKeys.byId(s.region, s.id)],
};

export const inline = moduleStrategy('persist inline', { stagePayloadsFrom: Infinity });
// The script runs inside EXEC, which already counts its time: count the transaction only.
export const staged = moduleStrategy('persist staged', { stagePayloadsFrom: 0 }, ['multi', 'exec']);
export const oneCopy = moduleStrategy('staged one-copy', { stagePayloadsFrom: 0, keys: { timestampKey: 'id' } }, ['multi', 'exec']);

/**
 * In table order: one `moduleStrategy(…)` per transfer mode or key layout of the store. `legacy`,
 * `multiExec` and the floors are the ratios' baselines.
 */
export const strategies: readonly Strategy[] = [legacy, multiExec, inline, staged, oneCopy, floor, twoSets];

/**
 * The client with every `call`, its own or a pipeline's, passed through `rewrite` first: how the
 * bench sees (and the profile redirects) what the store sends, without touching the store.
 */
export function spyClient(client: Redis, rewrite: (args: unknown[]) => unknown[]): Redis {
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'call') return (...args: unknown[]) => (target.call as (...a: unknown[]) => unknown)(...rewrite(args));
      if (prop === 'pipeline') {
        return () => {
          const pipeline = target.pipeline();
          const call = pipeline.call.bind(pipeline) as (...args: unknown[]) => unknown;
          Object.assign(pipeline, { call: (...args: unknown[]) => call(...rewrite(args)) });
          return pipeline;
        };
      }
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * The transfer mode a store with default options uses for `payload`: the row the default-layout
 * targets read. Asked of the store itself (does its persist send MULTI?), so a changed threshold
 * is followed.
 */
export async function defaultStrategy(client: Redis, snapshot: BenchSnapshot): Promise<Strategy> {
  let stagedSent = false;
  const spy = spyClient(client, (args) => {
    if (String(args[0]).toUpperCase() === 'MULTI') stagedSent = true;
    return args;
  });
  await createSnapshotStore({ client: spy, retentionMs: RETENTION_MS }).persist(snapshot);
  return stagedSent ? staged : inline;
}
