/**
 * The independent invariant checker (test/support/checker.ts) against the product's `verify`, on
 * the same keyspaces: clean ones, and ones damaged on purpose. Both must call a clean keyspace
 * clean and each damage within verify's reach not clean; the damages verify cannot see (the live
 * key, staging keys, a claim's bucket and trigger) must be caught by the checker alone.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Redis } from 'ioredis';
import { createSnapshotStore, type SnapshotInput } from '../../src/index.js';
import { verify } from '../../src/ops.js';
import { checkInvariants, layouts, type CheckOptions } from '../support/checker.js';
import { restoreKeyspace, snapshotOf, type Keyspace } from '../support/faults.js';
import { dumpKeyspace } from '../support/keyspace.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const test = suite('invariant checker against verify', 4);

const NOW = Date.now();
const RETENTION_MS = 90 * 86_400_000;
const T = Math.floor((NOW - 3_600_000) / 900_000) * 900_000;

let redis: RedisServer;
let admin: Redis;

test.before(async () => {
  redis = await startRedis();
  admin = redis.client();
});
test.after(async () => {
  await redis?.stop();
});

type Variant = { name: string; timestampKey: 'payload' | 'id'; latest: 'monotonic' | 'always' };
const VARIANTS: Variant[] = [
  { name: 'two copies, monotonic', timestampKey: 'payload', latest: 'monotonic' },
  { name: 'one copy, monotonic', timestampKey: 'id', latest: 'monotonic' },
  { name: 'two copies, always', timestampKey: 'payload', latest: 'always' },
];

/** Three mena snapshots (two sharing a timestamp), one europe snapshot, claims, a live key. */
function history(): SnapshotInput[] {
  return [
    snapshotOf('mena', 'mena-b', T, 512, 'scheduled_6h'),
    snapshotOf('mena', 'mena-a', T + 60_000, 512, 'manual'),
    snapshotOf('mena', 'mena-B', T + 60_000, 512),
    snapshotOf('europe', 'europe-1', T - 900_000, 512, 'scheduled_6h'),
    // Older: indexed, latest stays (monotonic) or moves back (always).
    snapshotOf('mena', 'mena-0', T - 1_800_000, 512, 'scheduled_6h'),
  ];
}

async function build(v: Variant): Promise<{ state: Keyspace; options: CheckOptions; latest: string }> {
  await admin.flushall();
  const store = createSnapshotStore({ client: admin, keys: { timestampKey: v.timestampKey }, latest: v.latest });
  const sent = history();
  for (const s of sent) assert.is((await store.persist(s, { now: NOW })).status, 'persisted');
  await admin.set('intelligence:snapshot:v1:europe:live', 'on');
  const latest = (await admin.get('intelligence:snapshot:v1:mena:latest'))!;
  return {
    state: await dumpKeyspace(admin),
    latest,
    options: { retentionMs: RETENTION_MS, now: NOW, timestampKey: v.timestampKey, latest: v.latest, sent, liveWrittenUnder: new Map([['europe', 'europe-1']]) },
  };
}

async function verdicts(v: Variant, options: CheckOptions) {
  const checker = await checkInvariants(admin, options);
  const store = createSnapshotStore({ client: admin, keys: { timestampKey: v.timestampKey }, latest: v.latest });
  const found = (await verify(store, 'all', { now: NOW })).findings.map((f) => `${f.region}: ${f.class} ${f.detail}`);
  return { checker, verify: found };
}

test('clean keyspaces: the checker and verify both find nothing', async () => {
  for (const v of VARIANTS) {
    const { options } = await build(v);
    assert.equal(await verdicts(v, options), { checker: [], verify: [] }, v.name);
    if (v.latest === 'always') {
      // Under 'always' latest may name an older snapshot; judged as monotonic, it is behind.
      const checker = await checkInvariants(admin, { ...options, latest: 'monotonic' });
      const found = (await verify(createSnapshotStore({ client: admin, keys: { timestampKey: v.timestampKey } }), 'all', { now: NOW })).findings;
      assert.ok(checker.length > 0 && found.length > 0, `${v.name}: judged as monotonic, both find latest behind`);
    }
    // The server's clock by default, and a staging key within its 1 s bound when allowed.
    assert.equal(await checkInvariants(admin, { ...options, now: undefined as never }), [], `${v.name}: server clock`);
    await admin.set('intelligence:snapshot-by-id:v1:mena-c:staging', 'x', 'PX', 1000);
    assert.equal(await checkInvariants(admin, { ...options, stagingAllowed: true }), [], `${v.name}: bounded staging key`);
  }
});

const byId = (id: string) => layouts.legacy.byId('mena', id);
const tsKey = (t: number) => layouts.legacy.timestamp('mena', t);
const menaIndex = layouts.legacy.index('mena');
const menaLatest = layouts.legacy.latest('mena');

/** Damages within verify's reach: each must make both say "not clean". */
const damages: Array<[string, (latest: string) => Promise<unknown>]> = [
  ['by-id key of latest deleted', (l) => admin.del(byId(l))],
  ['timestamp key of a member deleted', () => admin.del(tsKey(T))],
  ['latest removed from the index', (l) => admin.zrem(menaIndex, l)],
  ['latest names an unknown id', () => admin.set(menaLatest, 'mena-zz', 'KEEPTTL')],
  ['latest deleted', () => admin.del(menaLatest)],
  ['by-id key without TTL', () => admin.persist(byId('mena-b'))],
  ['by-id key expiring 1 ms late', async () => admin.pexpireat(byId('mena-b'), T + RETENTION_MS + 1)],
  ['timestamp key expiring 1 ms early', async () => admin.pexpireat(tsKey(T), T + RETENTION_MS - 1)],
  ['index without TTL', () => admin.persist(menaIndex)],
  ['index expiring 1 s late', async () => admin.pexpireat(menaIndex, (Number(await admin.pexpiretime(menaIndex)) + 1000))],
  ['latest expiring 1 ms late', async () => admin.pexpireat(menaLatest, Number(await admin.pexpiretime(menaLatest)) + 1)],
  ['orphan by-id key', () => admin.set(byId('mena-orphan'), JSON.stringify({ region_id: 'mena' }), 'PXAT', T + RETENTION_MS)],
  ['orphan timestamp key', () => admin.set(tsKey(T + 5), JSON.stringify({ region_id: 'mena' }), 'PXAT', T + 5 + RETENTION_MS)],
  ['claim naming a snapshot never persisted', () => admin.set(layouts.legacy.dedup('mena', 'manual', Math.floor(T / 900_000) + 1), 'mena-ghost', 'PX', 900_000)],
  ['member without a by-id key, not latest', () => admin.del(byId('mena-0'))],
];

test('damaged keyspaces within verify\'s reach: both say not clean', async () => {
  const disagreements: string[] = [];
  let cases = 0;
  for (const v of VARIANTS) {
    const { state, options, latest } = await build(v);
    if (v.latest === 'always') continue; // verify judges latest as monotonic (see above)
    const extra: Array<[string, (latest: string) => Promise<unknown>]> =
      v.timestampKey === 'payload'
        ? [['timestamp key holding another payload', () => admin.set(tsKey(T), '{"region_id":"mena","other":1}', 'KEEPTTL')]]
        : [];
    for (const [name, damage] of [...damages, ...extra]) {
      await restoreKeyspace(admin, state);
      await damage(latest);
      const { checker, verify } = await verdicts(v, options);
      cases++;
      if (checker.length === 0) disagreements.push(`${v.name}, ${name}: the checker found nothing (verify: ${verify.join('; ') || 'nothing'})`);
      if (verify.length === 0) disagreements.push(`${v.name}, ${name}: verify found nothing (checker: ${checker.join('; ')})`);
    }
  }
  console.log(`checker vs verify: ${cases} damaged keyspaces, ${disagreements.length} disagreements`);
  assert.equal(disagreements, []);
});

test('damages verify cannot see: the checker catches each', async () => {
  const v = VARIANTS[0]!;
  const { state, options } = await build(v);
  const blind: Array<[string, () => Promise<unknown>, Partial<CheckOptions>]> = [
    ['live kept although latest moved', () => admin.set('intelligence:snapshot:v1:mena:live', 'on'), { liveWrittenUnder: new Map([['mena', 'mena-b']]) }],
    ['live deleted although latest stayed', () => admin.del('intelligence:snapshot:v1:europe:live'), {}],
    ['staging key left (none allowed)', () => admin.set('intelligence:snapshot-by-id:v1:mena-c:staging', 'x', 'PX', 1000), {}],
    ['staging key without TTL', () => admin.set('intelligence:snapshot-by-id:v1:mena-c:staging', 'x'), { stagingAllowed: true }],
    ['staging key with a 5 s TTL', () => admin.set('intelligence:snapshot-by-id:v1:mena-c:staging', 'x', 'PX', 5000), { stagingAllowed: true }],
    ['claim in the wrong bucket', () => admin.set(layouts.legacy.dedup('mena', 'manual', Math.floor(T / 900_000) + 7), 'mena-a', 'PX', 900_000), {}],
    ['claim under the wrong trigger', () => admin.set(layouts.legacy.dedup('mena', 'hourly', Math.floor((T + 60_000) / 900_000)), 'mena-a', 'PX', 900_000), {}],
    ['claim in another region', () => admin.set(layouts.legacy.dedup('europe', 'manual', Math.floor((T + 60_000) / 900_000)), 'mena-a', 'PX', 900_000), {}],
    ['claim without TTL', () => admin.persist(layouts.legacy.dedup('mena', 'manual', Math.floor((T + 60_000) / 900_000))), {}],
    ['timestamp key held by the smaller id', () => admin.set(tsKey(T + 60_000), JSON.stringify(history()[2]!.payload), 'KEEPTTL'), {}],
  ];
  const missed: string[] = [];
  for (const [name, damage, extra] of blind) {
    await restoreKeyspace(admin, state);
    await damage();
    const { checker, verify } = await verdicts(v, { ...options, ...extra });
    console.log(`checker only: ${name}: checker ${checker.length} finding(s), verify ${verify.length}`);
    if (checker.length === 0) missed.push(name);
  }
  assert.equal(missed, []);
});

test("the cluster layout ({region} in every key): clean, damaged, and a layout that matches nothing", async () => {
  await admin.flushall();
  const store = createSnapshotStore({ client: admin, keys: { schema: 'cluster' } });
  const sent = history().filter((s) => s.region === 'mena');
  for (const s of sent) assert.is((await store.persist(s, { now: NOW })).status, 'persisted');
  const state = await dumpKeyspace(admin);
  const options: CheckOptions = { retentionMs: RETENTION_MS, now: NOW, layout: layouts.cluster, sent, regions: ['mena'] };
  assert.equal(await checkInvariants(admin, options), []);
  assert.equal((await verify(store, 'all', { now: NOW })).findings, []);
  // The legacy layout finds no region here: the regions option turns that into a finding.
  assert.ok((await checkInvariants(admin, { ...options, layout: layouts.legacy })).some((line) => line.startsWith('mena: no key')));
  const c = layouts.cluster;
  const damages: Array<[string, () => Promise<unknown>, boolean]> = [
    ['by-id key of latest deleted', () => admin.del(c.byId('mena', 'mena-a')), true],
    ['timestamp key expiring 1 ms late', () => admin.pexpireat(c.timestamp('mena', T), T + RETENTION_MS + 1), true],
    ['latest names an older snapshot', () => admin.set(c.latest('mena'), 'mena-b', 'KEEPTTL'), true],
    ['staging key without TTL', () => admin.set(`${c.byId('mena', 'mena-c')}:staging`, 'x'), false],
    ['claim in the wrong bucket', () => admin.set(c.dedup('mena', 'manual', Math.floor(T / 900_000) + 7), 'mena-a', 'PX', 900_000), false],
  ];
  for (const [name, damage, verifySees] of damages) {
    await restoreKeyspace(admin, state);
    await damage();
    assert.ok((await checkInvariants(admin, { ...options, stagingAllowed: true })).length > 0, `checker: ${name}`);
    if (verifySees) assert.ok((await verify(store, 'all', { now: NOW })).findings.length > 0, `verify: ${name}`);
  }
});

test.run();
