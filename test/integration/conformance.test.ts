/**
 * The behaviour of the store, run once per supported client (test/support/clients.ts) against a
 * real Redis. Every test reads the keyspace itself: values, absolute expiry times, scores.
 */
import { readFileSync } from 'node:fs';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Redis } from 'ioredis';
import {
  createSnapshotStore,
  persistSnapshot,
  ScriptRefusedError,
  ValidationError,
  type RegionalSnapshot,
  type SnapshotInput,
  type SnapshotStore,
  type SnapshotStoreOptions,
} from '../../src/index.js';
import { clientKinds } from '../support/clients.js';
import { dumpKeyspace, violations } from '../support/keyspace.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { legacyKeys as k } from '../support/legacy.js';

const DAY = 86_400_000;
const RETENTION = 90 * DAY;
const NOW = Date.now();
// Timestamps on a 15-minute bucket boundary so dedup buckets are predictable.
const T = Math.floor((NOW - DAY) / 900_000) * 900_000;
const REGIONS = ['mena', 'east-asia', 'europe', 'north-america', 'south-asia', 'latam', 'sub-saharan-africa', 'global'];
const fixture = JSON.parse(readFileSync(new URL('../fixtures/regional-snapshot-mena.json', import.meta.url), 'utf8')) as RegionalSnapshot;


/** A snapshot with trigger 'scheduled_6h' unless `extra.trigger` says otherwise (undefined: none). */
function snap(id: string, timestamp: number, region = 'mena', extra: { trigger?: string | undefined } = {}): SnapshotInput {
  const input: SnapshotInput = { region, id, timestamp, payload: { region_id: region, id, generated_at: timestamp } };
  const trigger = 'trigger' in extra ? extra.trigger : 'scheduled_6h';
  if (trigger !== undefined) input.trigger = trigger;
  return input;
}

for (const kind of clientKinds) {
  const test = suite<{ redis: RedisServer; raw: Redis; client: SnapshotStoreOptions['client']; close: () => Promise<void>; store: SnapshotStore }>(
    `conformance [${kind.name}]`,
    28,
  );
  const store = (ctx: { client: SnapshotStoreOptions['client'] }, options: Omit<SnapshotStoreOptions, 'client'> = {}) =>
    createSnapshotStore({ ...kind.storeOptions, client: ctx.client, ...options });
  const consistent = async (raw: Redis, regions = REGIONS) =>
    assert.equal(await violations(raw, { regions, now: NOW, retentionMs: RETENTION }), []);

  test.before(async (ctx) => {
    ctx.redis = await startRedis();
    ctx.raw = ctx.redis.client();
    Object.assign(ctx, await kind.connect(ctx.redis));
    ctx.store = store(ctx);
  });
  test.after(async (ctx) => {
    await ctx.close();
    await ctx.redis.stop();
  });
  test.before.each(async ({ redis }) => {
    await redis.fresh();
  });

  test('persisted: all six keys written with aligned expiry, nothing else', async ({ raw, store }) => {
    await raw.set(k.live('mena'), 'live-data');
    const result = await store.persist(snap('a1', T), { now: NOW });
    assert.equal(result, { status: 'persisted', latestAdvanced: true, pruned: 0 });
    const payload = JSON.stringify({ region_id: 'mena', id: 'a1', generated_at: T });
    assert.equal(await raw.get(k.ts('mena', T)), payload);
    assert.equal(await raw.get(k.byId('a1')), payload);
    assert.equal(await raw.get(k.latest('mena')), 'a1');
    assert.equal(await raw.zrange(k.index('mena'), 0, -1, 'WITHSCORES'), ['a1', String(T)]);
    assert.equal(await raw.exists(k.live('mena')), 0);
    assert.equal(await raw.get(k.dedup('mena', 'scheduled_6h', T)), 'a1');
    for (const key of [k.ts('mena', T), k.byId('a1'), k.latest('mena'), k.index('mena')]) {
      assert.is(await raw.pexpiretime(key), T + RETENTION, key);
    }
    const dedupTtl = await raw.pttl(k.dedup('mena', 'scheduled_6h', T));
    assert.ok(dedupTtl > 890_000 && dedupTtl <= 900_000, `dedup PTTL ${dedupTtl}`);
    assert.equal((await raw.keys('*')).length, 5);
    await consistent(raw);
  });

  test('replayed: re-sending a persisted snapshot changes nothing', async ({ raw, store }) => {
    await store.persist(snap('a1', T), { now: NOW });
    const before = await dumpKeyspace(raw);
    assert.equal(await store.persist(snap('a1', T), { now: NOW + 1000 }), { status: 'replayed', latestAdvanced: false, pruned: 0 });
    // Also when the dedup claim has expired since (a late retry) and without a trigger.
    await raw.del(k.dedup('mena', 'scheduled_6h', T));
    const withoutClaim = await dumpKeyspace(raw);
    assert.is((await store.persist(snap('a1', T, 'mena', { trigger: undefined }), { now: NOW })).status, 'replayed');
    assert.equal(await dumpKeyspace(raw), withoutClaim);
    assert.ok(before.size === withoutClaim.size + 1);
  });

  test('duplicate: another snapshot in a claimed bucket writes nothing', async ({ raw, store }) => {
    await store.persist(snap('a1', T), { now: NOW });
    const before = await dumpKeyspace(raw);
    const result = await store.persist(snap('a2', T + 60_000), { now: NOW });
    assert.equal(result, { status: 'duplicate', latestAdvanced: false, pruned: 0 });
    assert.equal(await dumpKeyspace(raw), before);
    // Another trigger is another bucket.
    assert.is((await store.persist(snap('a2', T + 60_000, 'mena', { trigger: 'manual' }), { now: NOW })).status, 'persisted');
  });

  test('a claim left by a failed legacy write does not block its bucket', async ({ raw, store }) => {
    // Claimed (EX 900) more than 30 s ago: no legacy write can still be in flight behind it.
    await raw.set(k.dedup('mena', 'scheduled_6h', T), 'ghost', 'PX', 869_000);
    assert.is((await store.persist(snap('a1', T), { now: NOW })).status, 'persisted');
    assert.is(await raw.get(k.dedup('mena', 'scheduled_6h', T)), 'a1');
    await consistent(raw);
  });

  test('expired: a snapshot older than the retention window writes nothing', async ({ raw, store }) => {
    await store.persist(snap('a1', T), { now: NOW });
    const before = await dumpKeyspace(raw);
    const edge = NOW - RETENTION; // timestamp + retention <= the server's now
    assert.equal(await store.persist(snap('old', edge, 'mena', { trigger: 'backfill' }), { now: NOW }), { status: 'expired', latestAdvanced: false, pruned: 0 });
    assert.equal(await dumpKeyspace(raw), before);
    // The server's clock decides (test/integration/guarantees.test.ts has the edge itself).
    assert.is((await store.persist(snap('old1', edge + 600_000, 'mena', { trigger: 'backfill' }), { now: NOW })).status, 'persisted');
  });

  test('a retry of a stored snapshot (its reply lost) reports replayed, after-state unchanged', async ({ raw, store }) => {
    // The first call ran on the server; its reply never arrived, so the caller sends it again.
    // (Replies lost for real: the cut sweep in test/faults and the Upstash suite's dropped responses.)
    await store.persist(snap('a1', T), { now: NOW });
    const after = await dumpKeyspace(raw);
    const retry = await store.persistMany([snap('a1', T)], { now: NOW });
    assert.equal(retry, [{ status: 'fulfilled', value: { status: 'replayed', latestAdvanced: false, pruned: 0 } }]);
    assert.equal(await dumpKeyspace(raw), after);
  });

  test('concurrent persists of different ids into one bucket: exactly one persisted', async ({ raw, store }) => {
    const ids = Array.from({ length: 12 }, (_, i) => `c${i}`);
    const results = await Promise.all(ids.map((id, i) => store.persist(snap(id, T + i * 1000), { now: NOW })));
    const statuses = results.map((r) => r.status).sort();
    assert.equal(statuses, ['persisted', ...Array(11).fill('duplicate')].sort());
    const winner = ids[results.findIndex((r) => r.status === 'persisted')]!;
    assert.equal(await raw.zrange(k.index('mena'), 0, -1), [winner]);
    assert.is(await raw.get(k.dedup('mena', 'scheduled_6h', T)), winner);
    assert.equal((await raw.keys('intelligence:snapshot-by-id:*')).length, 1);
    await consistent(raw);
  });

  test('out of order: latest stays on the newest, live is kept on an older persist', async ({ raw, store }) => {
    const s = (id: string, t: number) => snap(id, t, 'mena', { trigger: undefined });
    assert.is((await store.persist(s('b', T + 2000), { now: NOW })).latestAdvanced, true);
    await raw.set(k.live('mena'), 'live-data');
    assert.equal(await store.persist(s('a', T + 1000), { now: NOW }), { status: 'persisted', latestAdvanced: false, pruned: 0 });
    assert.is(await raw.get(k.latest('mena')), 'b');
    assert.is(await raw.get(k.live('mena')), 'live-data');
    // Same timestamp: the greater id wins, by bytes.
    assert.is((await store.persist(s('B', T + 2000), { now: NOW })).latestAdvanced, false);
    assert.is((await store.persist(s('c', T + 2000), { now: NOW })).latestAdvanced, true);
    assert.is(await raw.exists(k.live('mena')), 0);
    assert.equal(await raw.zrange(k.index('mena'), 0, -1), ['a', 'B', 'b', 'c']);
    // The timestamp key holds the greatest id at that timestamp, whatever the order of arrival.
    assert.is(JSON.parse((await raw.get(k.ts('mena', T + 2000)))!).id, 'c');
    await consistent(raw);
  });

  test("latest: 'always' restores the legacy behaviour", async ({ raw, client }) => {
    const always = store({ client }, { latest: 'always', dedup: false });
    await always.persist(snap('new', T + 1000), { now: NOW });
    await raw.set(k.live('mena'), 'x');
    assert.is((await always.persist(snap('old', T), { now: NOW })).latestAdvanced, true);
    assert.is(await raw.get(k.latest('mena')), 'old');
    assert.is(await raw.exists(k.live('mena')), 0);
  });

  test('pruning: members out of the window leave the index; index expiry follows its newest', async ({ raw, store }) => {
    const s = (id: string, t: number) => snap(id, t, 'mena', { trigger: undefined });
    await store.persist(s('mid', T - DAY), { now: NOW });
    assert.is(await raw.pexpiretime(k.index('mena')), T - DAY + RETENTION);
    // A member the server's clock puts outside the window (its payload keys are gone).
    await raw.zadd(k.index('mena'), NOW - RETENTION - DAY, 'old');
    assert.equal(await store.persist(s('new', T), { now: NOW }), { status: 'persisted', latestAdvanced: true, pruned: 1 });
    assert.equal(await raw.zrange(k.index('mena'), 0, -1), ['mid', 'new']);
    assert.is(await raw.pexpiretime(k.index('mena')), T + RETENTION);
    assert.equal(await store.list('mena', { now: NOW }), [
      { id: 'new', timestamp: T },
      { id: 'mid', timestamp: T - DAY },
    ]);
  });

  test('a legacy index without TTL gets one', async ({ raw, store }) => {
    await raw.zadd(k.index('mena'), T - DAY, 'legacy');
    assert.is(await raw.pexpiretime(k.index('mena')), -1);
    await store.persist(snap('a1', T), { now: NOW });
    assert.is(await raw.pexpiretime(k.index('mena')), T + RETENTION);
  });

  test('conflict: an id re-sent with another timestamp is refused, nothing written', async ({ raw, store }) => {
    await store.persist(snap('a1', T), { now: NOW });
    const before = await dumpKeyspace(raw);
    try {
      await store.persist(snap('a1', T + 1), { now: NOW });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, ScriptRefusedError);
      assert.is((error as ScriptRefusedError).code, 'SCRIPT_CONFLICT');
    }
    assert.equal(await dumpKeyspace(raw), before);
  });

  const wrongType: Array<[string, (raw: Redis) => Promise<unknown>]> = [
    ['timestamp', (raw) => raw.lpush(k.ts('mena', T), 'x')],
    ['by-id', (raw) => raw.sadd(k.byId('a1'), 'x')],
    ['latest', (raw) => raw.del(k.latest('mena')).then(() => raw.hset(k.latest('mena'), 'f', 'v'))],
    ['index', (raw) => raw.set(k.index('mena'), 'not-a-zset')],
    ['live', (raw) => raw.rpush(k.live('mena'), 'x')],
    ['dedup', (raw) => raw.zadd(k.dedup('mena', 'scheduled_6h', T), 1, 'x')],
  ];
  for (const [role, plant] of wrongType) {
    test(`wrong type under the ${role} key: typed error, keyspace byte-identical`, async ({ raw, store }) => {
      await store.persist(snap('z0', T - DAY, 'mena', { trigger: 'other' }), { now: NOW });
      await plant(raw);
      const before = await dumpKeyspace(raw);
      try {
        await store.persist(snap('a1', T), { now: NOW });
        assert.unreachable();
      } catch (error) {
        assert.instance(error, ScriptRefusedError);
        assert.is((error as ScriptRefusedError).code, 'SCRIPT_WRONGTYPE');
        assert.ok((error as Error).message.includes(`the ${role} key`), (error as Error).message);
        assert.not.ok((error as Error).message.includes('region_id'));
      }
      assert.equal(await dumpKeyspace(raw), before);
    });
  }

  test('NOSCRIPT after SCRIPT FLUSH: falls back to EVAL, then EVALSHA works again', async ({ raw, store }) => {
    await raw.script('FLUSH');
    assert.is((await store.persist(snap('a1', T), { now: NOW })).status, 'persisted');
    assert.is((await store.readLatest('mena', { now: NOW }))?.id, 'a1');
    const shas = (await import('../../src/lua.generated.js'));
    assert.equal(await raw.script('EXISTS', shas.persistLua.sha, shas.readLua.sha), [1, 1]);
    await raw.script('FLUSH');
    const results = await store.persistMany(REGIONS.map((r) => snap(`x-${r}`, T + 900_000, r)), { now: NOW });
    assert.ok(results.every((r) => r.status === 'fulfilled' && r.value.status === 'persisted'));
    assert.equal(await raw.keys('*:staging'), []);
    await consistent(raw);
  });

  test('persistMany: one result per snapshot; a bad one does not sink the others', async ({ raw, store }) => {
    const batch = REGIONS.map((r, i) => snap(`id-${i}`, T + i, r));
    batch.splice(3, 0, snap('bad id!', T), { ...snap('p', T, 'latam'), payload: 'not json' });
    const results = await store.persistMany(batch, { now: NOW });
    assert.is(results.length, 10);
    results.forEach((r, i) => {
      if (i === 3 || i === 4) {
        assert.is(r.status, 'rejected');
        assert.instance((r as PromiseRejectedResult).reason, ValidationError);
      } else {
        assert.equal(r, { status: 'fulfilled', value: { status: 'persisted', latestAdvanced: true, pruned: 0 } });
      }
    });
    for (const [i, r] of REGIONS.entries()) assert.is(await raw.get(k.latest(r)), `id-${i}`);
    assert.is(await raw.exists(k.byId('p')), 0);
    await consistent(raw);
  });

  test('bad input writes nothing and sends nothing', async ({ raw, store }) => {
    await store.persist(snap('a1', T), { now: NOW });
    const before = await dumpKeyspace(raw);
    const calls = Number(/calls=(\d+)/.exec((await raw.info('commandstats')).match(/cmdstat_evalsha:.*/)?.[0] ?? 'calls=0')?.[1]);
    const bad: Array<[string, SnapshotInput]> = [
      ['region', snap('a2', T, 'me:na')],
      ['id', snap('a{2}', T)],
      ['trigger', snap('a2', T, 'mena', { trigger: 'x y' })],
      ['timestamp', snap('a2', NOW + 2 * DAY)],
      ['timestamp', snap('a2', 1.5)],
      ['payload', { ...snap('a2', T), payload: 'oops' }],
      ['payload', { ...snap('a2', T), payload: 42 }],
    ];
    for (const [field, input] of bad) {
      const error = await store.persist(input, { now: NOW }).catch((e: unknown) => e);
      assert.instance(error, ValidationError);
      assert.is((error as ValidationError).field, field);
    }
    const after = Number(/calls=(\d+)/.exec((await raw.info('commandstats')).match(/cmdstat_evalsha:.*/)?.[0] ?? 'calls=0')?.[1]);
    assert.is(after, calls);
    assert.equal(await dumpKeyspace(raw), before);
  });

  test('readLatest, readById and list read what was persisted, in one round trip each', async ({ store }) => {
    assert.is(await store.readLatest('mena', { now: NOW }), null);
    await store.persist(snap('a', T - 2000, 'mena', { trigger: undefined }), { now: NOW });
    await store.persist(snap('b', T, 'mena', { trigger: undefined }), { now: NOW });
    await store.persist(snap('c', T - 1000, 'mena', { trigger: undefined }), { now: NOW });
    assert.equal(await store.readLatest('mena', { now: NOW }), { id: 'b', timestamp: T, payload: { region_id: 'mena', id: 'b', generated_at: T } });
    assert.equal((await store.readById('mena', 'c', { now: NOW }))?.timestamp, T - 1000);
    assert.is(await store.readById('mena', 'nope', { now: NOW }), null);
    assert.equal(await store.list('mena', { now: NOW }), [
      { id: 'b', timestamp: T },
      { id: 'c', timestamp: T - 1000 },
      { id: 'a', timestamp: T - 2000 },
    ]);
    assert.equal(await store.list('mena', { now: NOW, since: T - 1500, limit: 1 }), [{ id: 'b', timestamp: T }]);
    assert.equal(await store.list('mena', { now: NOW, until: T - 1 }), [
      { id: 'c', timestamp: T - 1000 },
      { id: 'a', timestamp: T - 2000 },
    ]);
    // Outside the window from a later clock's point of view.
    assert.equal(await store.list('mena', { now: T - 1000 + RETENTION }), [{ id: 'b', timestamp: T }]);
    assert.equal(await store.readLatestMany(['mena', 'europe'], { now: NOW }).then((r) => r.map((s) => s?.id ?? null)), ['b', null]);
  });

  test('readLatest falls back to the newest intact snapshot when latest dangles', async ({ raw, store }) => {
    await store.persist(snap('a', T - 1000, 'mena', { trigger: undefined }), { now: NOW });
    await store.persist(snap('b', T, 'mena', { trigger: undefined }), { now: NOW });
    await raw.del(k.byId('b'));
    assert.is((await store.readLatest('mena', { now: NOW }))?.id, 'a');
  });

  test('ids that read like JSON come back as the same strings', async ({ store }) => {
    const ids = ['123', '007', '1e5', 'true', 'null', '12345678901234567890'];
    for (const [i, id] of ids.entries()) await store.persist(snap(id, T + i, `r${i}`), { now: NOW });
    const latest = await store.readLatestMany(ids.map((_, i) => `r${i}`), { now: NOW });
    assert.equal(latest.map((s) => s?.id), ids);
    assert.equal((await store.list('r0', { now: NOW }))[0], { id: '123', timestamp: T });
  });

  test("'cluster' schema and a prefix: every key hash-tagged and prefixed", async ({ raw, client }) => {
    const clustered = store({ client }, { keys: { schema: 'cluster', prefix: 'app:' } });
    await clustered.persist(snap('a1', T), { now: NOW });
    assert.equal((await raw.keys('*')).sort(), [
      'app:dedup:snapshot:v1:{mena}:scheduled_6h:' + Math.floor(T / 900_000),
      'app:intelligence:snapshot-by-id:v1:{mena}:a1',
      'app:intelligence:snapshot-index:v1:{mena}',
      `app:intelligence:snapshot:v1:{mena}:${T}`,
      'app:intelligence:snapshot:v1:{mena}:latest',
    ]);
    assert.is((await clustered.readLatest('mena', { now: NOW }))?.id, 'a1');
  });

  test("timestampKey 'id': the payload is stored once, the timestamp key holds the id", async ({ raw, client }) => {
    const oneCopy = store({ client }, { keys: { timestampKey: 'id' } });
    const payload = { ...fixture, generated_at: T };
    assert.is((await oneCopy.persist({ region: 'mena', id: 'a1', timestamp: T, payload }, { now: NOW })).status, 'persisted');
    assert.is(await raw.get(k.ts('mena', T)), 'a1');
    assert.is(await raw.pexpiretime(k.ts('mena', T)), T + RETENTION);
    assert.equal(JSON.parse((await raw.get(k.byId('a1')))!), payload);
    assert.equal((await oneCopy.readLatest('mena', { now: NOW }))?.payload, payload);
    assert.equal(await violations(raw, { regions: ['mena'], now: NOW, retentionMs: RETENTION, timestampKey: 'id' }), []);
  });

  test('the seeder drop-in stores a RegionalSnapshot byte-compatibly', async ({ raw, store }) => {
    const s = { ...fixture, generated_at: T, meta: { ...fixture.meta, snapshot_id: 'seed-1' } };
    assert.equal(await persistSnapshot(s, { store, now: NOW }), { persisted: true, reason: 'ok' });
    assert.equal(await persistSnapshot(s, { store, now: NOW }), { persisted: true, reason: 'replayed' });
    const other = { ...s, generated_at: T + 1000, meta: { ...s.meta, snapshot_id: 'seed-2' } };
    assert.equal(await persistSnapshot(other, { store, now: NOW }), { persisted: false, reason: 'duplicate-bucket' });
    const old = { ...s, generated_at: NOW - RETENTION - 1, meta: { ...s.meta, snapshot_id: 'seed-0' } };
    assert.equal(await persistSnapshot(old, { store, now: NOW }), { persisted: false, reason: 'expired' });
    // What the existing readers do: latest as a bare id, then the by-id key as JSON.
    const id = await raw.get(k.latest(fixture.region_id));
    assert.is(id, 'seed-1');
    assert.equal(JSON.parse((await raw.get(k.byId(id!)))!), s);
    await consistent(raw);
  });

  test('NOSCRIPT after a server restart: the next persist succeeds', async ({ redis, raw, store }) => {
    await store.persist(snap('a1', T), { now: NOW });
    await redis.restart();
    await raw.ping(); // reconnected
    assert.is((await raw.dbsize()), 0);
    assert.is((await store.persist(snap('a2', T + 900_000), { now: NOW })).status, 'persisted');
    assert.is(await raw.get(k.latest('mena')), 'a2');
    await consistent(raw);
  });

  test.run();
}

const sha = suite('shipped SHA1s', 1);
sha('SCRIPT LOAD on a real server returns the shipped SHA1 of each script', async () => {
  const { persistLua, readLua } = await import('../../src/lua.generated.js');
  const redis = await startRedis();
  try {
    const raw = redis.client();
    for (const script of [persistLua, readLua]) assert.is(await raw.script('LOAD', script.text), script.sha);
  } finally {
    await redis.stop();
  }
});

sha.run();
