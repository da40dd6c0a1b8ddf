/**
 * What only the @upstash/redis path has: HTTP faults, the client's own fetch retry, request
 * counts, error hygiene and Upstash's allow-key-locking flag. Run through the Upstash-protocol
 * test server on a real Redis; every test reads the keyspace itself.
 */
import { createHash } from 'node:crypto';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis as UpstashRedis, type RedisConfigNodejs } from '@upstash/redis';
import type { Redis as IoRedis } from 'ioredis';
import { createSnapshotStore, RedisError, SnapshotError, ValidationError, type SnapshotInput, type SnapshotStoreOptions } from '../../src/index.js';
import { persistKeyLockingLua, persistLua, readLua } from '../../src/lua.generated.js';
import { violations } from '../support/keyspace.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startUpstashServer, type UpstashServer } from '../support/upstash-server.js';
import { legacyKeys as k } from '../support/legacy.js';

const DAY = 86_400_000;
const RETENTION = 90 * DAY;
const NOW = Date.now();
const T = Math.floor((NOW - DAY) / 900_000) * 900_000;
const REGIONS = ['mena', 'east-asia', 'europe', 'north-america', 'south-asia', 'latam', 'sub-saharan-africa', 'global'];
const TOKEN = 'upstash-test-token-3f9a';
/** In every payload, so a leak of the payload into an error is found by searching for it. */
const MARKER = 'payload-marker-7c1e';
const fastRetry = { attempts: 5, baseDelayMs: 1, maxDelayMs: 20 };


function snap(id: string, region = 'mena', timestamp = T): SnapshotInput {
  return { region, id, timestamp, trigger: 'scheduled_6h', payload: { region_id: region, id, note: MARKER, filler: 'x'.repeat(4096) } };
}

/** A snapshot is fully in place: payload under both keys, indexed at its timestamp, named by latest. */
async function assertStored(raw: IoRedis, s: SnapshotInput): Promise<void> {
  const text = JSON.stringify(s.payload);
  assert.is(await raw.get(k.ts(s.region, s.timestamp)), text);
  assert.is(await raw.get(k.byId(s.id)), text);
  assert.is(await raw.zscore(k.index(s.region), s.id), String(s.timestamp));
  assert.is(await raw.get(k.latest(s.region)), s.id);
  assert.is(await raw.pexpiretime(k.byId(s.id)), s.timestamp + RETENTION);
}

const test = suite<{ redis: RedisServer; server: UpstashServer; raw: IoRedis }>('@upstash/redis adapter', 13);

/** A client of the test server; `options` as a caller might set them. */
function client(server: UpstashServer, options: Partial<RedisConfigNodejs> = {}) {
  return new UpstashRedis({ url: server.url, token: TOKEN, ...options });
}

function store(upstash: UpstashRedis, options: Omit<SnapshotStoreOptions, 'client'> = {}) {
  return createSnapshotStore({ client: upstash, retry: fastRetry, ...options });
}

test.before(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.server = await startUpstashServer(ctx.redis, { token: TOKEN });
  ctx.raw = ctx.redis.client();
});
test.after(async ({ server, redis }) => {
  await server.close();
  await redis.stop();
});
test.before.each(async ({ redis, server, raw }) => {
  await redis.fresh();
  await raw.script('LOAD', persistLua.text);
  server.reset();
});

test('a reply lost after the script ran: the client re-sends it and the persist reports replayed', async ({ server, raw }) => {
  server.inject({ type: 'drop' });
  const s = snap('lost-1');
  assert.equal(await store(client(server)).persist(s, { now: NOW }), { status: 'replayed', latestAdvanced: false, pruned: 0 });
  assert.equal(server.requests, { '/pipeline': 2 });
  await assertStored(raw, s);
  assert.equal(await violations(raw, { regions: ['mena'], now: NOW, retentionMs: RETENTION }), []);
});

test('a lost reply with the client retry off: the store retries and reports replayed', async ({ server, raw }) => {
  server.inject({ type: 'drop' });
  const s = snap('lost-2');
  assert.is((await store(client(server, { retry: false })).persist(s, { now: NOW })).status, 'replayed');
  assert.equal(server.requests, { '/pipeline': 2 });
  await assertStored(raw, s);
});

test('a reply cut mid-body is retried and reports replayed', async ({ server, raw }) => {
  server.inject({ type: 'cut' });
  const s = snap('cut-1');
  assert.is((await store(client(server)).persist(s, { now: NOW })).status, 'replayed');
  assert.equal(server.requests, { '/pipeline': 2 });
  await assertStored(raw, s);
});

test('500, 503 and 429 (with Retry-After) are retried, then the persist succeeds', async ({ server, raw }) => {
  server.inject({ type: 'status', status: 500 });
  server.inject({ type: 'status', status: 503 });
  server.inject({ type: 'status', status: 429, retryAfterSeconds: 1 });
  const s = snap('retried-1');
  assert.equal(await store(client(server)).persist(s, { now: NOW }), { status: 'persisted', latestAdvanced: true, pruned: 0 });
  assert.equal(server.requests, { '/pipeline': 4 });
  await assertStored(raw, s);
});

test('retries are bounded: a server that keeps failing gives a transient RedisError and nothing written', async ({ server, raw }) => {
  server.inject({ type: 'status', status: 503 }, 10);
  const error = await store(client(server)).persist(snap('never'), { now: NOW }).catch((e: unknown) => e);
  assert.instance(error, RedisError);
  assert.is((error as RedisError).code, 'HTTP');
  assert.is((error as RedisError).transient, true);
  assert.equal(server.requests, { '/pipeline': fastRetry.attempts + 1 });
  assert.equal(await raw.keys('intelligence:*'), []);
});

test('NOSCRIPT inside an auto-pipelined batch: after SCRIPT FLUSH, concurrent persists all land', async ({ server, raw }) => {
  await raw.script('FLUSH');
  const upstash = store(client(server));
  const snapshots = REGIONS.map((region) => snap(`flushed-${region}`, region));
  const results = await Promise.all(snapshots.map((s) => upstash.persist(s, { now: NOW })));
  for (const result of results) assert.is(result.status, 'persisted');
  for (const s of snapshots) await assertStored(raw, s);
  assert.equal(await raw.script('EXISTS', persistLua.sha), [1]);
  assert.equal(await violations(raw, { regions: REGIONS, now: NOW, retentionMs: RETENTION }), []);
});

for (const [name, options] of [
  ['defaults', {}],
  ['automaticDeserialization and auto-pipelining off', { automaticDeserialization: false, enableAutoPipelining: false }],
] as const) {
  test(`one HTTP request each for persistMany(8), readLatest and readLatestMany(8) [${name}]`, async ({ server, raw }) => {
    await raw.script('LOAD', readLua.text);
    const upstash = store(client(server, options));
    const snapshots = REGIONS.map((region) => snap(`counted-${region}`, region));
    const settled = await upstash.persistMany(snapshots, { now: NOW });
    assert.equal(server.requests, { '/pipeline': 1 });
    assert.equal(settled.map((r) => r.status === 'fulfilled' && r.value.status), REGIONS.map(() => 'persisted'));
    for (const s of snapshots) await assertStored(raw, s);

    server.reset();
    const latest = await upstash.readLatest('mena', { now: NOW });
    assert.equal(server.requests, { '/pipeline': 1 });
    assert.equal(latest, { id: 'counted-mena', timestamp: T, payload: snapshots[0]!.payload });

    server.reset();
    const all = await upstash.readLatestMany(REGIONS, { now: NOW });
    assert.equal(server.requests, { '/pipeline': 1 });
    assert.equal(all.map((found) => found?.id), snapshots.map((s) => s.id));
  });
}

test('a batch over the 10 MB request limit goes as several requests, each under it', async ({ server, raw }) => {
  const upstash = store(client(server));
  // Three regions with 3.5 MB each: 10.5 MB in all, over the server's (Upstash's) 10 MB limit.
  const big = ['mena', 'europe', 'latam'].map((region) => ({ ...snap(`big-${region}`, region), payload: { region_id: region, filler: 'y'.repeat(3_500_000) } }));
  const settled = await upstash.persistMany(big, { now: NOW });
  assert.equal(settled.map((r) => r.status === 'fulfilled' && r.value.status), ['persisted', 'persisted', 'persisted']);
  assert.equal(server.requests, { '/pipeline': 2 });
  for (const s of big) await assertStored(raw, s);
});

/** Fails unless neither the message nor anything the error carries holds a secret. */
function assertClean(error: unknown, secrets: readonly string[]): void {
  assert.instance(error, SnapshotError);
  const own = Object.fromEntries(Object.getOwnPropertyNames(error).map((name) => [name, (error as unknown as Record<string, unknown>)[name]]));
  const texts = [(error as Error).message, JSON.stringify(error), JSON.stringify(own), String((error as Error).cause ?? '')];
  for (const text of texts) {
    for (const secret of secrets) assert.not.ok(text.includes(secret), `error carries "${secret.slice(0, 40)}": ${text.slice(0, 200)}`);
  }
}

test('errors carry no payload, script text or token', async ({ server, raw }) => {
  const secrets = [MARKER, TOKEN, persistLua.text.slice(0, 60), 'redis.call', 'command was'];
  const noRetry = { retry: false } as const;
  // A non-2xx reply: @upstash/redis quotes the whole request body in its message.
  server.inject({ type: 'status', status: 500 });
  assertClean(await store(client(server), noRetry).persist(snap('e1'), { now: NOW }).catch((e: unknown) => e), secrets);
  // A reply cut short while a payload was being read.
  await store(client(server)).persist(snap('e2'), { now: NOW });
  server.inject({ type: 'cut' });
  assertClean(await store(client(server, { retry: false }), noRetry).readLatest('mena', { now: NOW }).catch((e: unknown) => e), secrets);
  // A refused token.
  const auth = await store(new UpstashRedis({ url: server.url, token: `${TOKEN}-wrong` }), noRetry).persist(snap('e3'), { now: NOW }).catch((e: unknown) => e);
  assertClean(auth, [...secrets, `${TOKEN}-wrong`]);
  assert.is((auth as RedisError).code, 'AUTH');
  assert.is((auth as RedisError).transient, false);
  // A refusal by the script (a key of the wrong type) and a Redis error reply in the pipeline.
  await raw.set(k.index('latam'), 'not a sorted set');
  assertClean(await store(client(server)).persist(snap('e4', 'latam'), { now: NOW }).catch((e: unknown) => e), secrets);
  assertClean(await store(client(server)).list('latam', { now: NOW }).catch((e: unknown) => e), secrets);
  assert.is(await raw.exists(k.byId('e3'), k.byId('e4')), 0);
});

test('a request over the server size limit is a permanent error, not retried', async ({ redis, raw }) => {
  const small = await startUpstashServer(redis, { token: TOKEN, maxRequestBytes: 2048 });
  try {
    const error = await store(client(small)).persist(snap('big'), { now: NOW }).catch((e: unknown) => e);
    assert.instance(error, RedisError);
    assert.equal([(error as RedisError).code, (error as RedisError).transient], ['REQUEST_TOO_LARGE', false]);
    assert.equal(small.requests, { '/pipeline': 1 });
    assert.is(await raw.exists(k.byId('big')), 0);
  } finally {
    await small.close();
  }
});

test('upstash.keyLocking sends persist.lua with allow-key-locking, and EVALSHA of its SHA hits', async ({ server, raw }) => {
  assert.is(persistKeyLockingLua.text, `#!lua flags=allow-key-locking\n${persistLua.text}`);
  assert.is(persistKeyLockingLua.sha, createHash('sha1').update(persistKeyLockingLua.text).digest('hex'));
  const locking = store(client(server), { upstash: { keyLocking: true } });
  const first = snap('locking-1');
  assert.is((await locking.persist(first, { now: NOW })).status, 'persisted');
  // Cold: EVALSHA of the flagged SHA answered NOSCRIPT, then EVAL of the flagged text.
  assert.equal(server.requests, { '/pipeline': 2 });
  // What Redis cached is the text with the flag removed by the server, as Upstash accepts it.
  const stripped = `#!lua\n${persistLua.text}`;
  assert.equal(await raw.script('EXISTS', createHash('sha1').update(stripped).digest('hex')), [1]);
  server.reset();
  const second = snap('locking-2', 'mena', T + 60_000);
  assert.equal(await locking.persist({ ...second, trigger: 'manual' }, { now: NOW }), { status: 'persisted', latestAdvanced: true, pruned: 0 });
  assert.equal(server.requests, { '/pipeline': 1 });
  await assertStored(raw, second);
  assert.is(await raw.get(k.byId(first.id)), JSON.stringify(first.payload));
  assert.equal(await violations(raw, { regions: ['mena'], now: NOW, retentionMs: RETENTION }), []);
});

test('upstash.keyLocking is refused with a client that is not @upstash/redis', ({ raw }) => {
  assert.throws(() => createSnapshotStore({ client: raw, upstash: { keyLocking: true } }), (e: unknown) => e instanceof ValidationError && /keyLocking/.test(e.message));
});

test.run();
