/**
 * The README's Guarantees against the real world (issue 10) and beside the legacy writer
 * (issue 11, items 1-3). Every test reads the keyspace itself.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { createSnapshotStore, ScriptRefusedError, ValidationError, type SnapshotInput, type SnapshotStoreOptions } from '../../src/index.js';
import { repair, verify } from '../../src/ops.js';
import { dumpKeyspace, violations } from '../support/keyspace.js';
import { legacyKeys as k, legacyPipeline } from '../support/legacy.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const test = suite('guarantees', 18);

const DAY = 86_400_000;
const RETENTION = 90 * DAY;
const NOW = Date.now();
const T = Math.floor((NOW - DAY) / 900_000) * 900_000;


/** With trigger 'scheduled_6h' unless told otherwise (null: no trigger, no dedup claim). */
const snap = (id: string, timestamp: number, region = 'mena', trigger: string | null = 'scheduled_6h'): SnapshotInput => ({
  region,
  id,
  timestamp,
  payload: { region_id: region, generated_at: timestamp, meta: { snapshot_id: id } },
  ...(trigger === null ? {} : { trigger }),
});
const text = (s: SnapshotInput) => JSON.stringify(s.payload);

let redis: RedisServer;
let raw: Redis;
const store = (options: Omit<SnapshotStoreOptions, 'client'> = {}, client: Redis = raw) => createSnapshotStore({ client, ...options });
const consistent = async (regions = ['mena']) => assert.equal(await violations(raw, { regions, now: Date.now(), retentionMs: RETENTION }), []);
const serverNow = async () => {
  const [s, us] = await raw.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
};

test.before(async () => {
  redis = await startRedis();
  raw = redis.client();
});
test.after(async () => {
  await redis?.stop();
});
test.before.each(async () => {
  await raw.flushall();
  await raw.acl('DELUSER', 'limited');
});

// Issue 10, item 1.
test('expiry is decided by the server clock: a snapshot expired by it writes nothing, not even the claim', async () => {
  // A backfill of a 100-day-old snapshot under 90-day retention, its caller's clock set to then.
  const old = snap('old', NOW - 100 * DAY);
  for (const latest of ['monotonic', 'always'] as const) {
    await raw.set(k.latest('mena'), 'current');
    const before = await dumpKeyspace(raw);
    assert.equal(await store({ latest }).persist(old, { now: old.timestamp + DAY }), { status: 'expired', latestAdvanced: false, pruned: 0 }, latest);
    assert.equal(await dumpKeyspace(raw), before, latest);
  }
  // 200 ms past the edge by the server's clock, inside it by a caller's clock a second behind.
  const edge = (await serverNow()) - RETENTION - 200;
  assert.is((await store().persist(snap('edge', edge, 'mena', 'manual'), { now: edge + RETENTION - 1_000 })).status, 'expired');
  assert.equal(await raw.keys('*'), ['intelligence:snapshot:v1:mena:latest']);
});

test('persisted means the keys exist after the call; `now` in the future prunes nothing valid', async () => {
  const s = store();
  assert.is((await s.persist(snap('a', T - DAY, 'mena', null))).status, 'persisted');
  // A caller's clock 200 days ahead: the server's clock decides what leaves the window.
  const result = await s.persist(snap('b', T, 'mena', null), { now: NOW + 200 * DAY });
  assert.equal(result, { status: 'persisted', latestAdvanced: true, pruned: 0 });
  for (const key of [k.ts('mena', T), k.byId('b'), k.latest('mena'), k.index('mena'), k.byId('a')]) assert.is(await raw.exists(key), 1, key);
  assert.equal(await raw.zrange(k.index('mena'), 0, -1), ['a', 'b']);
  await consistent();
});

// Issue 10, item 3.
test('ACL: a user denied any write the script needs gets NOPERM naming it, and nothing is written', async () => {
  await raw.acl('SETUSER', 'limited', 'on', '>pw', '~*', '+@all');
  const limited = new Redis(redis.port, '127.0.0.1', { username: 'limited', password: 'pw' });
  limited.on('error', () => {});
  try {
    const cases: Array<[denied: string, stagePayloadsFrom: number]> = [
      ['zadd', Infinity],
      ['pexpireat', Infinity],
      ['del', Infinity],
      ['zremrangebyscore', Infinity],
      ['rename', 0],
      ['copy', 0],
    ];
    for (const [denied, stagePayloadsFrom] of cases) {
      await raw.flushall();
      await store().persist(snap('a0', T - DAY));
      await raw.set(k.live('mena'), 'live');
      await raw.acl('SETUSER', 'limited', 'reset', 'on', '>pw', '~*', '+@all', `-${denied}`);
      const before = await dumpKeyspace(raw);
      const error = await store({ stagePayloadsFrom, retry: false }, limited)
        .persist(snap('a1', T))
        .then(() => undefined, (e: unknown) => e);
      assert.instance(error, ScriptRefusedError, `${denied}: ${String(error)}`);
      assert.is((error as ScriptRefusedError).code, 'SCRIPT_NOPERM', denied);
      assert.match((error as Error).message, denied.toUpperCase());
      assert.not.match((error as Error).message, 'generated_at');
      assert.equal(await dumpKeyspace(raw), before, `${denied}: nothing written`);
    }
    // Denied by key pattern, not by command: the dedup claim's key. The script's first read of
    // that key is refused by Redis itself (NOPERM), before any write.
    await raw.acl('SETUSER', 'limited', 'reset', 'on', '>pw', '~intelligence:*', '+@all');
    const before = await dumpKeyspace(raw);
    const error = await store({ retry: false }, limited).persist(snap('a2', T + 1000)).then(() => undefined, (e: unknown) => e);
    assert.match((error as { code?: string }).code ?? '', /NOPERM$/);
    assert.not.match((error as Error).message, 'generated_at');
    assert.equal(await dumpKeyspace(raw), before, 'key pattern: nothing written');
  } finally {
    limited.disconnect();
  }
});

// Redis checks ACLs per command as it runs: a read the user may not run must come before the
// first write too, or the writes before it stay.
test('ACL: a user denied any read the script may run is refused before its first write', async () => {
  const limited = new Redis(redis.port, '127.0.0.1', { username: 'limited', password: 'pw' });
  limited.on('error', () => {});
  try {
    // A backfill (an older snapshot after a newer one) takes the branch that reads the index's
    // newest member. A read this persist does not run leaves it persisted, and consistent.
    for (const denied of ['type', 'mget', 'exists', 'get', 'zscore', 'zmscore', 'time', 'zcount', 'zrevrange', 'zrevrangebyscore', 'pttl']) {
      await raw.flushall();
      await store().persist(snap('new', T));
      await raw.acl('SETUSER', 'limited', 'reset', 'on', '>pw', '~*', '+@all', `-${denied}`);
      const before = await dumpKeyspace(raw);
      const outcome = await store({ retry: false }, limited)
        .persist(snap('old', T - DAY))
        .then((r) => r.status, (e: unknown) => e);
      if (outcome === 'persisted') {
        await consistent();
        continue;
      }
      assert.instance(outcome, Error, `${denied}: ${String(outcome)}`);
      assert.match((outcome as Error).message, /NOPERM|permission|can't run/i, denied);
      assert.equal(await dumpKeyspace(raw), before, `${denied}: nothing written`);
    }
  } finally {
    limited.disconnect();
  }
});

// Issue 10, item 5.
test("a region named 'all' is refused", async () => {
  const s = store();
  for (const call of [() => s.persist(snap('a', T, 'all')), () => s.readLatest('all'), () => s.list('all'), () => s.readById('all', 'a')]) {
    const error = await call().then(() => undefined, (e: unknown) => e);
    assert.instance(error, ValidationError);
    assert.match((error as Error).message, /'all' is reserved/);
  }
  assert.equal(await raw.keys('*'), []);
});

// Issue 10, item 6.
test('the same id in two regions (by-id key without region) is refused, nothing written', async () => {
  const s = store();
  await s.persist(snap('x', T, 'mena'));
  const before = await dumpKeyspace(raw);
  for (const other of [snap('x', T, 'europe'), snap('x', T + 1000, 'europe', 'manual')]) {
    const error = await s.persist(other).then(() => undefined, (e: unknown) => e);
    assert.instance(error, ScriptRefusedError, String(error));
    assert.is((error as ScriptRefusedError).code, 'SCRIPT_CONFLICT');
    assert.equal(await dumpKeyspace(raw), before);
  }
  assert.equal((await s.readLatest('mena'))?.payload, snap('x', T, 'mena').payload);
  // The same snapshot left by a legacy write cut after its by-id SET is completed, not refused.
  await raw.set(k.byId('y'), text(snap('y', T + 2000)), 'EX', 7_776_000);
  assert.is((await s.persist(snap('y', T + 2000, 'mena', null))).status, 'persisted');
  await consistent();
});

// Issue 10, item 7.
test('a dedup holder blocks its bucket only while it is a readable snapshot inside the window', async () => {
  const s = store();
  // Indexed, but outside the window by the server's clock: its payload keys are gone.
  await raw.zadd(k.index('mena'), NOW - RETENTION - 60_000, 'stale');
  await raw.set(k.dedup('mena', 'scheduled_6h', T), 'stale', 'PX', 600_000);
  assert.is((await s.persist(snap('a', T))).status, 'persisted');
  assert.is(await raw.get(k.dedup('mena', 'scheduled_6h', T)), 'a');
  // Indexed inside the window, its payload evicted.
  await raw.flushall();
  await s.persist(snap('gone', T));
  await raw.del(k.byId('gone'), k.ts('mena', T));
  assert.is((await s.persist(snap('b', T + 1000))).status, 'persisted');
  // A readable holder blocks.
  assert.is((await s.persist(snap('c', T + 2000))).status, 'duplicate');
});

// Issue 10, item 8.
test('key schemas that collide or throw are refused when the store is created', () => {
  const base = {
    timestamp: (r: string, t: number) => `s:${r}:${t}`,
    byId: (r: string, id: string) => `s:${r}:id:${id}`,
    latest: (r: string) => `s:${r}:latest`,
    index: (r: string) => `s:${r}:index`,
    live: (r: string) => `s:${r}:live`,
    dedup: (r: string, trigger: string, bucket: number) => `s:${r}:d:${trigger}:${bucket}`,
  };
  store({ keys: { schema: base } }); // accepted
  const bad: Array<[string, Partial<typeof base>]> = [
    ['latest equal to the index', { latest: (r) => `s:${r}:index` }],
    ['live equal to latest', { live: (r) => `s:${r}:latest` }],
    ['byId without the id', { byId: (r) => `s:${r}:id` }],
    ['byId with the id twice', { byId: (r, id) => `s:${r}:${id}:${id}` }],
    ['latest without the region', { latest: () => 's:latest' }],
    ['a schema that throws', { index: () => { throw new Error('boom'); } }],
  ];
  for (const [label, override] of bad) {
    assert.throws(() => store({ keys: { schema: { ...base, ...override } } }), (e: unknown) => e instanceof ValidationError, label);
  }
});

// Issue 10, item 9.
test("an ioredis client with keyPrefix is refused at construction, saying why", async () => {
  const prefixed = new Redis(redis.port, '127.0.0.1', { keyPrefix: 'app:', lazyConnect: true });
  try {
    assert.throws(() => createSnapshotStore({ client: prefixed }), (e: unknown) => e instanceof ValidationError && /keyPrefix.*keys\.prefix/.test(e.message));
  } finally {
    prefixed.disconnect();
  }
});

// Issue 10, "also seen".
test('dedup.ttlMs shorter than windowMs and unknown option names are refused', () => {
  assert.throws(() => store({ dedup: { windowMs: 900_000, ttlMs: 60_000 } }), (e: unknown) => e instanceof ValidationError && e.field === 'options.dedup.ttlMs');
  const typo = { retentionMS: 1000 } as unknown as SnapshotStoreOptions;
  assert.throws(() => store(typo), (e: unknown) => e instanceof ValidationError && /retentionMS/.test(e.message));
  assert.throws(() => store({ dedup: { windowMS: 1 } as never }), (e: unknown) => e instanceof ValidationError && /windowMS/.test(e.message));
  assert.throws(() => store({ retry: { attempt: 1 } as never }), (e: unknown) => e instanceof ValidationError && /attempt/.test(e.message));
});

test('unknown names in per-call options are refused', async () => {
  const s = store();
  for (const call of [() => s.persist(snap('a', T), { nOw: 1 } as never), () => s.list('mena', { limt: 1 } as never), () => repair(s, 'mena', { dryrun: true } as never)]) {
    const error = await call().then(() => undefined, (e: unknown) => e);
    assert.instance(error, ValidationError);
  }
  assert.equal(await raw.keys('*'), []);
});

// verify and repair (snapshot-persist/ops) find the store's options through the store itself.
test('verify and repair take only a store made by createSnapshotStore', async () => {
  for (const fake of [{ ...store() }, {}, null, 'store']) {
    for (const call of [() => verify(fake as never, 'all'), () => repair(fake as never, 'all')]) {
      const error = await call().then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof ValidationError && error.field === 'store', String(error));
    }
  }
});

// Issue 11, item 1.
test('latest never moves back to an older snapshot over a legacy write cut before its ZADD', async () => {
  const newer = snap('S', T + 60_000, 'mena', null);
  // The legacy pipeline's first three commands only: timestamp key, by-id key, latest.
  await raw
    .multi()
    .set(k.ts('mena', newer.timestamp), text(newer), 'EX', 7_776_000)
    .set(k.byId('S'), text(newer), 'EX', 7_776_000)
    .set(k.latest('mena'), 'S', 'EX', 7_776_000)
    .exec();
  const result = await store().persist(snap('O', T, 'mena', null));
  assert.equal(result, { status: 'persisted', latestAdvanced: false, pruned: 0 });
  assert.is(await raw.get(k.latest('mena')), 'S');
  // A newer one than S still moves it.
  assert.is((await store().persist(snap('N', T + 120_000, 'mena', null))).latestAdvanced, true);
});

// Issue 11, item 2.
test("readLatest agrees with the application's read (latest, then by-id) when the index is gone", async () => {
  await store().persist(snap('A', T, 'mena', null));
  // The index expired (the library sets it to newest + retention); legacy writes went on, the
  // last one cut before its ZADD.
  await raw.del(k.index('mena'));
  const b = snap('B', T + 60_000, 'mena', null);
  await raw.set(k.byId('B'), text(b), 'EX', 7_776_000);
  await raw.set(k.latest('mena'), 'B', 'EX', 7_776_000);
  const application = JSON.parse((await raw.get(k.byId((await raw.get(k.latest('mena')))!)))!);
  const found = await store().readLatest('mena');
  assert.equal(found, { id: 'B', timestamp: b.timestamp, payload: application });
  assert.equal(await store().list('mena'), [{ id: 'B', timestamp: b.timestamp }]);
  // With the index back (a library persist of an older snapshot), B is still listed, in order.
  await store().persist(snap('C', T + 30_000, 'mena', null));
  assert.is(await raw.get(k.latest('mena')), 'B');
  assert.equal(await store().list('mena'), [{ id: 'B', timestamp: b.timestamp }, { id: 'C', timestamp: T + 30_000 }]);
  assert.equal(await store().list('mena', { limit: 1 }), [{ id: 'B', timestamp: b.timestamp }]);
});

// Issue 11, item 3.
test('a fresh unindexed claim (a legacy write in flight) is not taken over; the legacy pipeline then lands alone', async () => {
  const legacy = { ...snap('L', T), payload: text(snap('L', T)) };
  assert.is(await raw.set(k.dedup('mena', 'scheduled_6h', T), 'L', 'EX', 900, 'NX'), 'OK'); // its claim request
  assert.equal(await store().persist(snap('M', T + 1000)), { status: 'duplicate', latestAdvanced: false, pruned: 0 });
  for (const [error] of (await legacyPipeline(raw, legacy, NOW).exec())!) assert.is(error, null);
  assert.equal(await raw.zrange(k.index('mena'), 0, -1), ['L']);
  assert.is(await raw.get(k.latest('mena')), 'L');
  assert.is(await raw.exists(k.byId('M')), 0);
});

test('the in-flight margin is 30 s of claim age: younger blocks, older is taken over', async () => {
  // Claimed EX 900: 870 s left is 30 s of age.
  await raw.set(k.dedup('mena', 'scheduled_6h', T), 'L', 'PX', 871_000);
  assert.is((await store().persist(snap('M', T + 1000))).status, 'duplicate');
  await raw.set(k.dedup('mena', 'scheduled_6h', T), 'L', 'PX', 869_000);
  assert.is((await store().persist(snap('M', T + 1000))).status, 'persisted');
  assert.is(await raw.get(k.dedup('mena', 'scheduled_6h', T)), 'M');
  // A claim with more than 900 s left is no legacy claim (the library's own, its holder evicted).
  await raw.set(k.dedup('mena', 'scheduled_6h', T + 900_000), 'gone', 'PX', 3_600_000);
  assert.is((await store().persist(snap('P', T + 900_000))).status, 'persisted');
  await consistent();
});

test('a claim with a readable holder blocks whatever its age', async () => {
  await store().persist(snap('H', T));
  await raw.pexpire(k.dedup('mena', 'scheduled_6h', T), 10_000);
  assert.is((await store().persist(snap('M', T + 1000))).status, 'duplicate');
});

test('persistMany with several of the guarantees at once: each settles on its own', async () => {
  await store().persist(snap('x', T, 'mena'));
  const settled = await store().persistMany([snap('x', T, 'europe'), snap('old', NOW - 100 * DAY, 'latam'), snap('ok', T, 'global')]);
  assert.is(settled[0]!.status, 'rejected');
  assert.equal(settled.slice(1).map((s) => (s.status === 'fulfilled' ? s.value.status : 'rejected')), ['expired', 'persisted']);
  await consistent(['mena', 'europe', 'latam', 'global']);
});

test.run();
