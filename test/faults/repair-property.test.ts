/**
 * Property test for repair (issue 11): from a random history written by both writers (library
 * persists; legacy pipelines, whole or cut after their k-th command, k = 0..6; legacy writes of
 * snapshots already outside the window), apply random damage (deleted keys, wrong or no TTLs,
 * keys of foreign types, a latest naming nothing), then repair once. Then:
 *   - a dry run first lists exactly the findings and writes of the repair;
 *   - verify reports only findings documented as unrepairable (UNREPAIRABLE);
 *   - a second repair changes nothing (no changes reported, keyspace byte-identical);
 *   - no payload readable before is lost: every by-id key of a snapshot inside the window holds
 *     the same payload, and where the application's read path (latest → by-id) yielded a snapshot
 *     inside the window, it still yields one, no older unless repair could not learn the age of
 *     the one before (left unindexed, reported).
 *
 * Seeds are printed; replay one with REPAIR_SEED=<seed> (REPAIR_RUNS=<n> runs, default 60).
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { createSnapshotStore, keySchemas, type KeySchema, type SnapshotStore } from '../../src/index.js';
import { UNREPAIRABLE, repair, verify } from '../../src/ops.js';
import { dumpKeyspace } from '../support/keyspace.js';
import { legacyCut } from '../support/legacy.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const RETENTION = 90 * DAY;
const NOW = Date.now();
const CUTOFF = NOW - RETENTION;
const BASE = Math.floor((NOW - 20 * DAY) / HOUR) * HOUR;
const REGIONS = ['mena', 'europe', 'latam'] as const;
const SEED = Number(process.env.REPAIR_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = Number(process.env.REPAIR_RUNS ?? 60);

type Write =
  | { writer: 'library'; region: number; slot: number; trigger: boolean }
  | { writer: 'legacy'; region: number; slot: number; cutAfter: number; old: boolean };
type Damage =
  | { kind: 'delete'; pick: number }
  | { kind: 'ttl'; pick: number; days: number }
  | { kind: 'persist'; pick: number }
  | { kind: 'foreign'; pick: number; type: 'hash' | 'list' | 'set' }
  | { kind: 'dangling'; region: number };

const write: fc.Arbitrary<Write> = fc.oneof(
  fc.record({ writer: fc.constant('library' as const), region: fc.nat(2), slot: fc.nat(40), trigger: fc.boolean() }),
  fc.record({ writer: fc.constant('legacy' as const), region: fc.nat(2), slot: fc.nat(40), cutAfter: fc.nat(6), old: fc.nat(3).map((n) => n === 0) }),
);
const damage: fc.Arbitrary<Damage> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('ttl' as const), pick: fc.nat(), days: fc.integer({ min: 1, max: 200 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('persist' as const), pick: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('foreign' as const), pick: fc.nat(), type: fc.constantFrom('hash' as const, 'list' as const, 'set' as const) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('dangling' as const), region: fc.nat(2) }), weight: 1 },
);

/**
 * The layouts the property runs under. The legacy writer writes `worldmonitor-v1` keys with the
 * payload in the timestamp key, so it joins only where those are the keys the store reads.
 */
const layouts: Array<{ name: string; schema: KeySchema; timestampKey: 'payload' | 'id'; legacy: boolean }> = [
  { name: "worldmonitor-v1, both writers", schema: keySchemas['worldmonitor-v1'], timestampKey: 'payload', legacy: true },
  { name: "worldmonitor-v1, timestampKey 'id', both writers", schema: keySchemas['worldmonitor-v1'], timestampKey: 'id', legacy: true },
  { name: "cluster schema, library only", schema: keySchemas.cluster, timestampKey: 'payload', legacy: false },
];

async function stringOrNull(raw: Redis, key: string): Promise<string | null> {
  return (await raw.type(key)) === 'string' ? raw.get(key) : null;
}

/** The application's read path: latest, then by-id; foreign types read as nothing. */
async function appRead(raw: Redis, schema: KeySchema, region: string): Promise<{ id: string; payload: string } | null> {
  const id = await stringOrNull(raw, schema.latest(region));
  const payload = id === null ? null : await stringOrNull(raw, schema.byId(region, id));
  return id === null || payload === null ? null : { id, payload };
}

async function history(raw: Redis, store: SnapshotStore, writes: Write[], timestamps: Map<string, number>, legacy: boolean): Promise<void> {
  for (const [n, w] of writes.entries()) {
    if (w.writer === 'legacy' && !legacy) continue;
    const region = REGIONS[w.region]!;
    const id = `${region}-${n}`;
    const timestamp = w.writer === 'legacy' && w.old ? NOW - 95 * DAY + w.slot * HOUR : BASE + w.slot * HOUR;
    timestamps.set(id, timestamp);
    const payload = JSON.stringify({ region_id: region, generated_at: timestamp, meta: { snapshot_id: id } });
    if (w.writer === 'library') {
      await store.persist({ region, id, timestamp, payload, ...(w.trigger ? { trigger: 'scheduled_6h' } : {}) }, { now: NOW }).catch(() => undefined);
    } else {
      await legacyCut(raw, { region, id, timestamp, payload, trigger: 'scheduled_6h' }, w.cutAfter, NOW);
    }
  }
}

async function damageKeyspace(raw: Redis, schema: KeySchema, damages: Damage[]): Promise<void> {
  for (const d of damages) {
    const keys = (await raw.keys('*')).sort();
    if (d.kind === 'dangling') {
      await raw.del(schema.latest(REGIONS[d.region]!));
      await raw.set(schema.latest(REGIONS[d.region]!), 'nobody', 'EX', 7_776_000);
      continue;
    }
    if (keys.length === 0) continue;
    const key = keys[d.pick % keys.length]!;
    if (d.kind === 'delete') await raw.del(key);
    else if (d.kind === 'ttl') await raw.pexpireat(key, NOW + d.days * DAY);
    else if (d.kind === 'persist') await raw.persist(key);
    else {
      await raw.del(key);
      if (d.type === 'hash') await raw.hset(key, 'x', '1');
      else if (d.type === 'list') await raw.rpush(key, 'x');
      else await raw.sadd(key, 'x');
    }
  }
}

const test = suite<{ redis: RedisServer; raw: Redis }>('repair property (issue 11)', layouts.length);

test.before(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.raw = ctx.redis.client();
});
test.after(async ({ redis }) => redis?.stop());

for (const { name, schema, timestampKey, legacy } of layouts) test(`one repair converges and loses nothing readable, whatever the history and damage (${name})`, async ({ raw }) => {
  const store = createSnapshotStore({ client: raw, keys: { schema, timestampKey } });
  console.log(`repair property (${name}): seed ${SEED}, ${RUNS} runs (replay: REPAIR_SEED=${SEED})`);
  const at = { now: NOW };
  let findingsLeft = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(write, { minLength: 1, maxLength: 25 }), fc.array(damage, { maxLength: 6 }), async (writes, damages) => {
      await raw.flushall();
      const timestamps = new Map<string, number>();
      await history(raw, store, writes, timestamps, legacy);
      await damageKeyspace(raw, schema, damages);

      const readable = new Map<string, string>();
      const byIdKey = (id: string) => schema.byId(id.slice(0, id.lastIndexOf('-')), id);
      for (const [id, timestamp] of timestamps) {
        const payload = timestamp > CUTOFF ? await stringOrNull(raw, byIdKey(id)) : null;
        if (payload !== null) readable.set(id, payload);
      }
      const appBefore = new Map(await Promise.all(REGIONS.map(async (r) => [r, await appRead(raw, schema, r)] as const)));

      const planned = await repair(store, 'all', { ...at, dryRun: true });
      const repaired = await repair(store, 'all', at);
      assert.equal(repaired.changes, planned.changes, `dryRun lists exactly the writes repair makes: ${JSON.stringify([planned.changes, repaired.changes])}`);
      assert.equal(repaired.findings, planned.findings, `dryRun finds what repair finds: ${JSON.stringify([planned.findings, repaired.findings])}`);
      const left = (await verify(store, 'all', at)).findings;
      findingsLeft += left.length;
      const repairable = left.filter((f) => !UNREPAIRABLE.includes(f.class));
      assert.equal(repairable, [], `verify after one repair: only unrepairable findings; left: ${JSON.stringify(repairable)}; repair: ${JSON.stringify(repaired)}`);
      const after = await dumpKeyspace(raw);
      const second = await repair(store, 'all', at);
      assert.equal(second.changes, [], `a second repair changes nothing: ${JSON.stringify(second)}; first: ${JSON.stringify(repaired)}`);
      assert.equal(await dumpKeyspace(raw), after, 'a second repair writes nothing');

      for (const [id, payload] of readable) assert.is(await stringOrNull(raw, byIdKey(id)), payload, `by-id payload of ${id} readable before, readable after`);
      for (const region of REGIONS) {
        const before = appBefore.get(region);
        if (!before || timestamps.get(before.id)! <= CUTOFF) continue;
        const now = await appRead(raw, schema, region);
        assert.ok(now !== null, `${region}: the application read ${before.id} before repair and nothing after`);
        const index = schema.index(region);
        const unknownAge = (await raw.type(index)) !== 'zset' || (await raw.zscore(index, before.id)) === null;
        assert.ok(timestamps.get(now.id)! >= timestamps.get(before.id)! || unknownAge, `${region}: latest moved from ${before.id} back to ${now.id}`);
      }
    }),
    { seed: SEED, numRuns: RUNS },
  ).catch((error: Error) => {
    // uvu prints the message only: carry the failed assertion's along.
    throw new Error(`${error.message}\ncaused by: ${(error.cause as Error | undefined)?.message ?? 'see above'}`);
  });
  console.log(`repair property (${name}): seed ${SEED}: ${RUNS} runs passed, ${findingsLeft} unrepairable finding(s) left in all`);
});

test.run();
