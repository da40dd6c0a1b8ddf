/**
 * Issue 11, "Repair that converges": one repair leaves verify with nothing repair could fix and a
 * second repair with nothing to change, whatever the damage; nothing readable before a repair is
 * unreadable after it; a key of a foreign type is a finding of its own region only; a region of
 * 40,000 snapshots verifies, scanning only the schema's keys.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Redis } from 'ioredis';
import { createSnapshotStore, type SnapshotStore } from '../../src/index.js';
import { UNREPAIRABLE, repair, verify } from '../../src/ops.js';
import { dumpKeyspace } from '../support/keyspace.js';
import { legacyCut, legacyKeys as k, legacyPersist } from '../support/legacy.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const RETENTION = 90 * DAY;
const NOW = Date.now();
const T = Math.floor((NOW - 10 * DAY) / 900_000) * 900_000;
const at = { now: NOW };

const payload = (region: string, id: string, timestamp: number, pad = 0) =>
  JSON.stringify({ region_id: region, meta: { snapshot_id: id }, generated_at: timestamp, pad: 'x'.repeat(pad) });
const snap = (region: string, id: string, timestamp: number, pad = 0) => ({ region, id, timestamp, payload: payload(region, id, timestamp, pad), trigger: 'scheduled_6h' });

/** Repair once; then verify finds only what repair cannot fix and a second repair changes nothing. */
async function repairConverges(raw: Redis, store: SnapshotStore): Promise<void> {
  await repair(store, 'all', at);
  const left = (await verify(store, 'all', at)).findings.filter((f) => !UNREPAIRABLE.includes(f.class));
  assert.equal(left, [], 'after one repair, verify reports nothing repair could fix');
  const before = await dumpKeyspace(raw);
  assert.equal((await repair(store, 'all', at)).changes, [], 'a second repair changes nothing');
  assert.equal(await dumpKeyspace(raw), before);
}

/** What the application reads: latest, then the by-id key. */
async function appRead(raw: Redis, region: string): Promise<string | null> {
  const id = await raw.get(k.latest(region)).catch(() => null);
  return id === null ? null : raw.get(k.byId(id)).catch(() => null);
}

const test = suite<{ redis: RedisServer; raw: Redis; store: SnapshotStore }>('repair converges (issue 11)', 8);

test.before(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.raw = ctx.redis.client();
  ctx.store = createSnapshotStore({ client: ctx.raw });
});
test.before.each(async ({ raw }) => void (await raw.flushall()));
test.after(async ({ redis }) => redis?.stop());

test('item 5: an index that repair creates gets its expiry; a dangling latest in an empty region goes', async ({ raw, store }) => {
  // mena: the region's first snapshot, a legacy pipeline cut after its three SETs (no ZADD).
  await legacyCut(raw, snap('mena', 'm1', T), 3, NOW);
  // europe: latest names an id with no payload, and nothing else exists.
  await raw.set(k.latest('europe'), 'ghost', 'EX', 7_776_000);
  await repairConverges(raw, store);
  assert.is(await raw.zscore(k.index('mena'), 'm1'), String(T));
  assert.is(await raw.pexpiretime(k.index('mena')), T + RETENTION, 'the created index expires with its newest member');
  assert.is(await raw.exists(k.latest('europe')), 0, 'a latest leading nowhere is deleted');
});

test('item 6: with the index lost, every snapshot with both copies is indexed again, not only latest', async ({ raw, store }) => {
  for (let i = 0; i < 3; i++) await store.persist(snap('mena', `m${i}`, T + i * HOUR), at);
  await raw.del(k.index('mena'));
  await repairConverges(raw, store);
  assert.equal(await raw.zrange(k.index('mena'), 0, -1), ['m0', 'm1', 'm2']);
  for (let i = 0; i < 3; i++) assert.is(await raw.get(k.ts('mena', T + i * HOUR)), payload('mena', `m${i}`, T + i * HOUR), 'timestamp key kept');
  assert.is((await store.readLatest('mena', at))?.id, 'm2');
  assert.equal((await store.list('mena', at)).map((s) => s.id), ['m2', 'm1', 'm0']);
});

test('item 6: after real allkeys-lru eviction, nothing readable before repair is unreadable after', async () => {
  const redis = await startRedis(['--maxmemory', '3mb', '--maxmemory-policy', 'allkeys-lru', '--maxmemory-samples', '3']);
  try {
    const raw = redis.client();
    const store = createSnapshotStore({ client: raw });
    const regions = ['mena', 'europe', 'latam', 'global'];
    for (let i = 0; i < 60; i++) {
      for (const region of regions) {
        const s = snap(region, `${region}-${i}`, T + i * HOUR, 20_000);
        if (i % 3 === 0) await legacyPersist(raw, s, NOW);
        else await store.persist(s, at).catch(() => undefined); // OOM under eviction is fine
      }
    }
    assert.ok(Number(/evicted_keys:(\d+)/.exec(await raw.info('stats'))![1]) > 0, 'keys were evicted');
    await raw.config('SET', 'maxmemory', '0'); // repair itself must not evict what it checks
    const readable = new Map<string, string>();
    for (const key of await raw.keys('intelligence:snapshot-by-id:v1:*')) readable.set(key, (await raw.get(key))!);
    const appBefore = new Map(await Promise.all(regions.map(async (r) => [r, await appRead(raw, r)] as const)));
    await repairConverges(raw, store);
    for (const [key, value] of readable) assert.is(await raw.get(key), value, `${key} readable before, readable after`);
    for (const region of regions) {
      const before = appBefore.get(region);
      if (before === null || before === undefined) continue;
      const after = await appRead(raw, region);
      assert.ok(after !== null && JSON.parse(after).generated_at >= JSON.parse(before).generated_at, `${region}: the application still reads a snapshot, no older`);
      assert.ok((await store.readLatest(region, at)) !== null, `${region}: readLatest finds it too`);
    }
  } finally {
    await redis.stop();
  }
});

test('item 7: a key of a foreign type is a finding of its own region; the others verify and repair', async ({ raw, store }) => {
  for (const region of ['mena', 'europe', 'latam']) await store.persistMany([snap(region, `${region}-1`, T), snap(region, `${region}-2`, T + HOUR)], at);
  await raw.del(k.latest('europe'));
  await raw.hset(k.latest('europe'), 'x', '1'); // a hash where latest should be
  await raw.del(k.byId('latam-1'));
  await raw.rpush(k.byId('latam-1'), 'x'); // a list under a by-id name
  await raw.set(k.byId('mena-1'), payload('mena', 'mena-1', T), 'KEEPTTL');
  await raw.pexpire(k.byId('mena-2'), 99 * DAY); // drift mena must still have repaired
  const mena = await verify(store, 'mena', at);
  assert.equal(mena.findings.map((f) => f.class), ['ttl-misaligned']);
  const all = await verify(store, 'all', at);
  assert.equal(all.findings.filter((f) => f.class === 'foreign-type').map((f) => [f.region, f.keys[0]]), [
    ['europe', k.latest('europe')],
    ['latam', k.byId('latam-1')],
  ]);
  await repair(store, 'all', at);
  assert.equal((await verify(store, 'all', at)).findings.map((f) => [f.region, f.class]), [
    ['europe', 'foreign-type'],
    ['latam', 'foreign-type'],
  ]);
  assert.is(await raw.type(k.latest('europe')), 'hash', 'left to the operator');
  assert.is(await raw.type(k.byId('latam-1')), 'list');
  assert.is(await raw.pexpiretime(k.byId('mena-2')), T + HOUR + RETENTION);
  assert.is((await store.readLatest('latam', at))?.id, 'latam-2');
  assert.equal((await repair(store, 'all', at)).changes, []);
});

test("the 'cluster' key schema (by-id keys name their region): index lost, a foreign key, an unindexed by-id key", async ({ raw }) => {
  const store = createSnapshotStore({ client: raw, keys: { schema: 'cluster' } });
  const c = { byId: (r: string, id: string) => `intelligence:snapshot-by-id:v1:{${r}}:${id}`, index: (r: string) => `intelligence:snapshot-index:v1:{${r}}` };
  for (const region of ['mena', 'europe']) for (let i = 0; i < 3; i++) await store.persist(snap(region, `${region}-${i}`, T + i * HOUR), at);
  await raw.del(c.index('mena'));
  await raw.del(c.byId('europe', 'europe-0'));
  await raw.sadd(c.byId('europe', 'europe-0'), 'x');
  await raw.set(c.byId('europe', 'stray'), payload('europe', 'stray', T), 'EX', 7_776_000);
  await repair(store, 'all', at);
  const left = (await verify(store, 'all', at)).findings.map((f) => [f.region, f.class, f.keys[0]]);
  assert.equal(left, [
    ['europe', 'foreign-type', c.byId('europe', 'europe-0')],
    ['europe', 'unindexed-payload', c.byId('europe', 'stray')],
  ]);
  assert.equal(await raw.zrange(c.index('mena'), 0, -1), ['mena-0', 'mena-1', 'mena-2']);
  assert.is((await store.readLatest('mena', at))?.id, 'mena-2');
  assert.is(await raw.get(c.byId('europe', 'stray')), payload('europe', 'stray', T));
  assert.equal((await repair(store, 'all', at)).changes, []);
});

test('item 8: a region of 40,000 snapshots verifies and repairs', async ({ raw, store }) => {
  const pipeline = raw.pipeline();
  const N = 40_000;
  for (let i = 0; i < N; i++) {
    const t = T - 40 * DAY + i * 60_000;
    const p = payload('mena', `m${i}`, t);
    pipeline.set(k.ts('mena', t), p, 'PXAT', t + RETENTION).set(k.byId(`m${i}`), p, 'PXAT', t + RETENTION).zadd(k.index('mena'), t, `m${i}`);
  }
  const last = T - 40 * DAY + (N - 1) * 60_000;
  pipeline.set(k.latest('mena'), `m${N - 1}`, 'PXAT', last + RETENTION).pexpireat(k.index('mena'), last + RETENTION);
  await pipeline.exec();
  assert.equal((await verify(store, 'mena', at)).findings, []);
  await raw.del(k.index('mena'));
  await repairConverges(raw, store);
  assert.is(await raw.zcard(k.index('mena')), N, 'every snapshot indexed again');
});

test('item 8: SCAN patterns are narrowed to the schema and the region, never *', async ({ redis, raw, store }) => {
  await store.persist(snap('mena', 'm1', T), at);
  const unrelated = raw.pipeline();
  for (let i = 0; i < 2_000; i++) unrelated.set(`session:${i}`, 'x');
  await unrelated.exec();
  const monitor = await redis.client().monitor();
  const scans: string[] = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (String(args[0]).toLowerCase() === 'scan') scans.push(args[args.findIndex((a) => String(a).toLowerCase() === 'match') + 1]!);
  });
  await verify(store, 'mena', at);
  await verify(store, 'all', at);
  monitor.disconnect();
  const patterns = [...new Set(scans)].sort();
  assert.ok(patterns.length > 0);
  assert.equal(patterns, [
    'dedup:snapshot:v1:*:*:*',
    'dedup:snapshot:v1:mena:*:*',
    'intelligence:snapshot-by-id:v1:*',
    'intelligence:snapshot-index:v1:*',
    'intelligence:snapshot:v1:*:*',
    'intelligence:snapshot:v1:*:latest',
    'intelligence:snapshot:v1:mena:*',
  ]);
});

test('item 8: a chunked repair stays correct while library persists land between its calls', async ({ redis, raw, store }) => {
  // A damaged region of 3,000 snapshots: legacy TTLs, an index without expiry, half the timestamp keys gone.
  const pipeline = raw.pipeline();
  for (let i = 0; i < 3_000; i++) {
    const t = T - 30 * DAY + i * 60_000;
    const p = payload('mena', `m${i}`, t);
    pipeline.set(k.byId(`m${i}`), p, 'EX', 7_776_000).zadd(k.index('mena'), t, `m${i}`);
    if (i % 2 === 0) pipeline.set(k.ts('mena', t), p, 'EX', 7_776_000);
  }
  pipeline.set(k.latest('mena'), 'm10', 'EX', 7_776_000);
  await pipeline.exec();
  // Meanwhile another process persists 300 snapshots, newer and older, through its own client.
  const writer = createSnapshotStore({ client: redis.client() });
  const persisted: string[] = [];
  const persisting = (async () => {
    for (let i = 0; i < 300; i++) {
      const t = i % 2 === 0 ? T + i * 60_000 : T - 35 * DAY + i * 60_000;
      const { trigger: _, ...untriggered } = snap('mena', `c${i}`, t);
      assert.is((await writer.persist(untriggered, at)).status, 'persisted');
      persisted.push(`c${i}`);
    }
  })();
  await repair(store, 'mena', at);
  await persisting;
  assert.equal((await verify(store, 'mena', at)).findings, [], 'consistent once both are done');
  for (const id of persisted) assert.ok(await raw.exists(k.byId(id)), `${id} persisted during the repair is readable`);
  assert.is(await raw.get(k.latest('mena')), 'c298', 'latest is the newest, whatever the interleaving');
  assert.is(await raw.zcard(k.index('mena')), 3_300);
});

test.run();
