/**
 * verify and repair against drift produced for real: a legacy pipeline cut part-way through a TCP
 * proxy, keys deleted, old-style TTLs, a dedup claim whose write never came, members past the
 * window whose payloads outlived them. verify must name exactly those; repair must fix them in
 * one go, leave consistent regions alone, and do nothing the second time.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { createSnapshotStore, type SnapshotStore, type SnapshotStoreOptions } from '../../src/index.js';
import { repair, verify, type Finding } from '../../src/ops.js';
import { clientKinds, type ClientKind } from '../support/clients.js';
import { dumpKeyspace, violations } from '../support/keyspace.js';
import { legacyKeys as k, legacyPersist, legacyPipeline } from '../support/legacy.js';
import { TcpProxy } from '../support/proxy.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const DAY = 86_400_000;
const RETENTION = 90 * DAY;
const NOW = Date.now();
const T = Math.floor((NOW - 10 * DAY) / 900_000) * 900_000;
const HOUR = 3_600_000;


const payload = (region: string, id: string, timestamp: number) => JSON.stringify({ region_id: region, meta: { snapshot_id: id }, generated_at: timestamp });
const snap = (region: string, id: string, timestamp: number) => ({ region, id, timestamp, payload: payload(region, id, timestamp) });

/** RESP length of one command as ioredis writes it. */
function respLength(args: readonly string[]): number {
  return args.reduce((n, a) => n + `$${Buffer.byteLength(a)}\r\n${a}\r\n`.length, `*${args.length}\r\n`.length);
}

/** The legacy pipeline for `s`, cut after its first `commands` commands reached Redis. */
async function legacyCut(ctx: { raw: Redis; proxy: TcpProxy }, s: ReturnType<typeof snap>, commands: number): Promise<void> {
  const client = new Redis(ctx.proxy.port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, enableOfflineQueue: false });
  client.on('error', () => {});
  await client.connect();
  const id = String(await client.client('ID'));
  // The pipeline's first three commands, as legacy.ts queues them.
  const sets = [
    ['SET', k.ts(s.region, s.timestamp), s.payload, 'EX', '7776000'],
    ['SET', k.byId(s.id), s.payload, 'EX', '7776000'],
    ['SET', k.latest(s.region), s.id, 'EX', '7776000'],
  ];
  ctx.proxy.cutAfter(sets.slice(0, commands).reduce((n, c) => n + respLength(c), 0));
  await legacyPipeline(client, s, NOW).exec().catch(() => undefined);
  ctx.proxy.cutAfter(undefined);
  // Redis runs what it received before it notices the close: wait until the cut client is gone.
  while (String(await ctx.raw.client('LIST')).includes(`id=${id} `)) await new Promise((r) => setTimeout(r, 5));
}

const classes = (findings: Finding[], region: string) => findings.filter((f) => f.region === region).map((f) => f.class).sort();

/** The suite, once per client kind: verify and repair must hold whichever client carries them. */
function defineSuite(kind: ClientKind): void {
  const test = suite<{ redis: RedisServer; raw: Redis; proxy: TcpProxy; store: SnapshotStore; client: SnapshotStoreOptions['client']; close: () => Promise<void> }>(`verify and repair [${kind.name}]`, 5);

  test.before(async (ctx) => {
    ctx.redis = await startRedis();
    ctx.raw = ctx.redis.client();
    ctx.proxy = await TcpProxy.start(ctx.redis.port);
    const { client, close } = await kind.connect(ctx.redis);
    ctx.client = client;
    ctx.close = close;
    ctx.store = createSnapshotStore({ client, ...kind.storeOptions });
  });

  test.after(async ({ redis, proxy, close }) => {
    await close?.();
    await proxy?.close();
    await redis?.stop();
  });

  test('each drift class is found, repaired, and a second repair changes nothing', async (ctx) => {
    const { raw, store } = ctx;
    const at = { now: NOW };
    // global: consistent, must stay untouched.
    await store.persistMany([snap('global', 'g1', T), snap('global', 'g2', T + HOUR)], at);
    // mena: a legacy write cut after its three SETs: latest names a snapshot the index lacks.
    await store.persist(snap('mena', 'm1', T), at);
    await legacyCut(ctx, snap('mena', 'm2', T + HOUR), 3);
    // east-asia: a legacy write cut after its first SET: a timestamp key nothing indexes.
    await store.persist(snap('east-asia', 'ea1', T), at);
    await legacyCut(ctx, snap('east-asia', 'ea2', T + HOUR), 1);
    // europe: one member lost its by-id key, the newest its timestamp key.
    await store.persistMany([snap('europe', 'e1', T), snap('europe', 'e2', T + HOUR)], at);
    await raw.del(k.byId('e1'), k.ts('europe', T + HOUR));
    // north-america: a member past the window whose legacy payloads (EX from the write) live on.
    await store.persist(snap('north-america', 'n1', T), at);
    const old = NOW - 91 * DAY;
    await raw.zadd(k.index('north-america'), old, 'n0');
    await raw.set(k.byId('n0'), payload('north-america', 'n0', old), 'EX', 7_776_000);
    await raw.set(k.ts('north-america', old), payload('north-america', 'n0', old), 'EX', 7_776_000);
    // south-asia: a complete legacy write: TTLs from the write time, an index without TTL.
    await legacyPersist(raw, { ...snap('south-asia', 's1', T), trigger: 'scheduled_6h' }, NOW);
    // latam: a dedup claim whose write never came, and a by-id key nothing indexes.
    await store.persist(snap('latam', 'l1', T), at);
    await raw.set(`dedup:snapshot:v1:latam:scheduled_6h:${Math.floor((T + HOUR) / 900_000)}`, 'l2', 'EX', 900, 'NX');
    await raw.set(k.byId('l9'), payload('latam', 'l9', T), 'EX', 7_776_000);
    // sub-saharan-africa: the two copies differ.
    await store.persist(snap('sub-saharan-africa', 'ss1', T), at);
    await raw.set(k.ts('sub-saharan-africa', T), payload('sub-saharan-africa', 'other', T), 'KEEPTTL');
    // arctic: latest moved backwards (the legacy 'always' policy).
    await store.persistMany([snap('arctic', 'a1', T), snap('arctic', 'a2', T + HOUR)], at);
    await raw.set(k.latest('arctic'), 'a1', 'KEEPTTL');
    // antarctica: the latest lost both copies.
    await store.persistMany([snap('antarctica', 'b1', T), snap('antarctica', 'b2', T + HOUR)], at);
    await raw.del(k.byId('b2'), k.ts('antarctica', T + HOUR));

    const { findings, regions } = await verify(store, 'all', at);
    assert.equal(regions, ['antarctica', 'arctic', 'east-asia', 'europe', 'global', 'latam', 'mena', 'north-america', 'south-asia', 'sub-saharan-africa']);
    const expected: Record<string, string[]> = {
      global: [],
      // The index expiry follows the adopted m2 silently: a consequence of the orphan findings.
      mena: ['latest-not-indexed', 'orphan-payload', 'orphan-payload', 'ttl-misaligned'],
      'east-asia': ['orphan-payload'],
      europe: ['member-missing-payload', 'member-missing-payload'],
      'north-america': ['expired-member'],
      'south-asia': ['no-ttl', 'ttl-misaligned', 'ttl-misaligned', 'ttl-misaligned'],
      // l9's timestamp is unknown: kept (readable by id), reported, never deleted.
      latam: ['orphan-dedup', 'unindexed-payload'],
      'sub-saharan-africa': ['payload-mismatch'],
      arctic: ['latest-not-newest'],
      // b2 lost both copies: it leaves the index (its missing timestamp key is no finding of its own).
      antarctica: ['latest-missing-payload', 'member-missing-payload'],
    };
    for (const [region, want] of Object.entries(expected)) assert.equal(classes(findings, region), want, region);
    assert.ok(findings.every((f) => f.keys.length > 0 && f.region !== null));
    assert.equal((await verify(store, 'latam', at)).findings.map((f) => f.class).sort(), expected.latam);

    const before = await dumpKeyspace(raw);
    const planned = await repair(store, 'all', { ...at, dryRun: true });
    assert.equal(await dumpKeyspace(raw), before, 'dryRun writes nothing');
    assert.equal(planned.findings, findings);

    const repaired = await repair(store, 'all', at);
    assert.equal(repaired.changes, planned.changes, 'dryRun reports exactly the writes repair makes');
    assert.not.ok(repaired.changes.some((c) => c.region === 'global'));
    const unrepairable = [`latam: by-id key of l9 has no index member and no timestamp key pairs with it: its timestamp is unknown`];
    assert.equal(await violations(raw, { regions: Object.keys(expected), now: NOW, retentionMs: RETENTION }), unrepairable);
    const after = await dumpKeyspace(raw);
    for (const [key, dump] of before) if (key.includes(':global')) assert.is(after.get(key), dump, key);

    // What each fix left behind, read off the keyspace.
    assert.is(await raw.zscore(k.index('mena'), 'm2'), String(T + HOUR), 'the cut write is indexed');
    assert.is(await raw.pexpiretime(k.latest('mena')), T + HOUR + RETENTION);
    assert.is(await raw.exists(k.ts('east-asia', T + HOUR)), 0);
    assert.is(await raw.get(k.byId('e1')), payload('europe', 'e1', T), 'restored from the timestamp key');
    assert.is(await raw.pexpiretime(k.byId('e1')), T + RETENTION);
    assert.is(await raw.get(k.ts('europe', T + HOUR)), payload('europe', 'e2', T + HOUR));
    assert.is(await raw.zscore(k.index('north-america'), 'n0'), null);
    assert.is(await raw.exists(k.byId('n0'), k.ts('north-america', old)), 0);
    assert.is(await raw.pexpiretime(k.index('south-asia')), T + RETENTION);
    assert.is(await raw.pexpiretime(k.byId('s1')), T + RETENTION);
    assert.is(await raw.get(k.byId('l9')), payload('latam', 'l9', T), 'readable before, readable after');
    assert.is(await raw.get(k.ts('sub-saharan-africa', T)), payload('sub-saharan-africa', 'ss1', T), 'the by-id copy wins');
    assert.is(await raw.get(k.latest('arctic')), 'a2');
    assert.is(await raw.get(k.latest('antarctica')), 'b1');
    assert.is(await raw.zscore(k.index('antarctica'), 'b2'), null);
    assert.is((await store.readLatest('antarctica', at))?.id, 'b1');

    const again = await repair(store, 'all', at);
    assert.equal(again.findings.map((f) => `${f.region}: ${f.detail}`), unrepairable);
    assert.equal(again.changes, []);
    assert.equal(await dumpKeyspace(raw), after, 'a second repair is a no-op');
  });

  test("one-copy layout (timestampKey 'id'): the timestamp key is checked and rebuilt as its owner's id", async ({ raw, client }) => {
    await raw.flushall();
    const store = createSnapshotStore({ client, ...kind.storeOptions, keys: { timestampKey: 'id' } });
    const at = { now: NOW };
    await store.persistMany([snap('mena', 'i1', T), snap('mena', 'i2', T + HOUR)], at);
    await raw.set(k.ts('mena', T), 'i9', 'KEEPTTL');
    await raw.del(k.ts('mena', T + HOUR));
    // A legacy-shaped write of i3 cut before its ZADD, in this layout.
    await raw.set(k.ts('mena', T + 2 * HOUR), 'i3', 'EX', 7_776_000);
    await raw.set(k.byId('i3'), payload('mena', 'i3', T + 2 * HOUR), 'EX', 7_776_000);
    await raw.set(k.latest('mena'), 'i3', 'EX', 7_776_000);
    const { findings } = await verify(store, 'mena', at);
    assert.equal(findings.map((f) => f.class).sort(), [
      'latest-not-indexed',
      'member-missing-payload',
      'orphan-payload',
      'orphan-payload',
      'payload-mismatch',
      'ttl-misaligned',
    ]);
    await repair(store, 'mena', at);
    assert.equal((await verify(store, 'mena', at)).findings, []);
    assert.is(await raw.get(k.ts('mena', T)), 'i1');
    assert.is(await raw.get(k.ts('mena', T + HOUR)), 'i2');
    assert.is(await raw.pexpiretime(k.ts('mena', T + HOUR)), T + HOUR + RETENTION);
    assert.is(await raw.zscore(k.index('mena'), 'i3'), String(T + 2 * HOUR));
    assert.is((await store.readLatest('mena', at))?.id, 'i3');
    const after = await dumpKeyspace(raw);
    assert.equal((await repair(store, 'mena', at)).changes, []);
    assert.equal(await dumpKeyspace(raw), after);
  });

  test('repair never deletes the payload latest names when nothing can replace it', async ({ raw, store }) => {
    await raw.flushall();
    // A legacy write cut after its by-id SET and latest SET: no index, no timestamp key.
    await raw.set(k.byId('x1'), payload('mena', 'x1', T), 'EX', 7_776_000);
    await raw.set(k.latest('mena'), 'x1', 'EX', 7_776_000);
    const report = await repair(store, 'mena', { now: NOW });
    // Its timestamp is unknown (no timestamp key pairs with it): it can be neither indexed nor
    // known to be outside the window, so it stays, reported as unrepairable.
    assert.equal(report.findings.map((f) => f.class).sort(), ['unindexed-payload']);
    assert.equal(report.changes, []);
    assert.is(await raw.get(k.byId('x1')), payload('mena', 'x1', T));
  });

  test("latest: 'always': latest on an older snapshot than the newest is no finding, and repair leaves it", async ({ raw, client }) => {
    await raw.flushall();
    const always = createSnapshotStore({ client, ...kind.storeOptions, latest: 'always' });
    const mena = (id: string, timestamp: number) => ({ region: 'mena', id, timestamp, payload: { region_id: 'mena', id } });
    await always.persist(mena('new1', T), { now: NOW });
    await always.persist(mena('old1', T - 3_600_000), { now: NOW });
    assert.is(await raw.get(k.latest('mena')), 'old1');
    const before = await dumpKeyspace(raw);
    assert.equal((await verify(always, 'mena', { now: NOW })).findings, []);
    assert.equal((await repair(always, 'mena', { now: NOW })).changes, []);
    assert.equal(await dumpKeyspace(raw), before);
    // The same keyspace under the default policy: latest should be the newest.
    assert.equal((await verify(createSnapshotStore({ client, ...kind.storeOptions }), 'mena', { now: NOW })).findings.map((f) => f.class), ['latest-not-newest']);
  });

  test('a by-id key whose payload names no region is reported and left alone', async ({ raw, store }) => {
    await raw.flushall();
    await raw.set(k.byId('q1'), '{"x":1}');
    const { findings } = await verify(store, 'all', { now: NOW });
    assert.equal(findings, [{ region: null, class: 'unindexed-payload', detail: 'by-id key has no index member and its payload names no region', keys: [k.byId('q1')] }]);
    assert.equal((await repair(store, 'all', { now: NOW })).changes, []);
    assert.is(await raw.exists(k.byId('q1')), 1);
  });

  test.run();
}

for (const kind of clientKinds) defineSuite(kind);
