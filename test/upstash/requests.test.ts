/**
 * Upstash requests: batches split on the exact UTF-8 size of the JSON request body, a snapshot
 * whose request cannot fit refused before sending; and every call the store makes (script calls,
 * list's range, verify's scans and reads) retries transient failures alike. Through the
 * Upstash-protocol test server (its size limit set to the adapter's) on a real Redis.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { Redis as UpstashRedis } from '@upstash/redis';
import type { Redis as IoRedis } from 'ioredis';
import { createSnapshotStore, RedisError, ValidationError, type SnapshotInput } from '../../src/index.js';
import { verify } from '../../src/ops.js';
import { commandBytes, REQUEST_LIMIT_BYTES } from '../../src/clients/upstash.js';
import { persistLua } from '../../src/lua.generated.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startUpstashServer, type UpstashServer } from '../support/upstash-server.js';

const TOKEN = 'request-size-token';
const NOW = Date.now();
const byId = (id: string) => `intelligence:snapshot-by-id:v1:${id}`;
const fastRetry = { attempts: 5, baseDelayMs: 1, maxDelayMs: 20 };

const test = suite<{ redis: RedisServer; server: UpstashServer; raw: IoRedis; client: UpstashRedis }>('Upstash requests: size and retries', 7);

test.before(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.server = await startUpstashServer(ctx.redis, { token: TOKEN, maxRequestBytes: REQUEST_LIMIT_BYTES });
  ctx.raw = ctx.redis.client();
  ctx.client = new UpstashRedis({ url: ctx.server.url, token: TOKEN });
});
test.after(async ({ server, redis }) => {
  await server?.close();
  await redis?.stop();
});
test.before.each(async ({ server, raw }) => {
  await raw.flushall();
  // Loaded, so that each batch is exactly one request (no NOSCRIPT round).
  await raw.script('LOAD', persistLua.text);
  server.reset();
});

const snap = (id: string, payload: unknown, i = 0): SnapshotInput => ({ region: `r${i}`, id, timestamp: NOW - 1000 - i, payload });

test('the counted size is the UTF-8 length of the body @upstash/redis sends, for any text', () => {
  const text = fc
    .array(fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('"', '\\', '\u0000', '\u001f', '\u2028', '\ud800', '\udfff', '\ud83d\ude00', 'é', 'م')))
    .map((parts) => parts.join(''));
  fc.assert(
    fc.property(fc.constantFrom('eval' as const, 'evalsha' as const), text, fc.array(text, { maxLength: 4 }), fc.array(text, { maxLength: 4 }), (op, script, keys, args) => {
      const pipeline = new UpstashRedis({ url: 'http://127.0.0.1:1', token: TOKEN }).pipeline();
      if (op === 'eval') pipeline.eval(script, keys, args);
      else pipeline.evalsha(script, keys, args);
      // What Pipeline.exec posts: the commands' argument arrays, as one JSON array.
      const body = JSON.stringify((pipeline as unknown as { commands: Array<{ command: unknown[] }> }).commands.map((c) => c.command));
      assert.is(2 + commandBytes({ op, script, keys, args }), Buffer.byteLength(body));
    }),
    { numRuns: 300 },
  );
});

test('two 6 MB payloads of Arabic text (3 M UTF-16 units each) go as two requests, and both are stored', async ({ server, raw, client }) => {
  const payloads = [0, 1].map((i) => ({ text: 'م'.repeat(3_000_000), i }));
  const settled = await createSnapshotStore({ client, retry: fastRetry }).persistMany(payloads.map((p, i) => snap(`ar-${i}`, p, i)), { now: NOW });
  assert.equal(settled.map((s) => s.status === 'fulfilled' && s.value.status), ['persisted', 'persisted']);
  assert.equal(server.requests, { '/pipeline': 2 });
  for (const [i, p] of payloads.entries()) assert.is(await raw.strlen(byId(`ar-${i}`)), Buffer.byteLength(JSON.stringify(p)));
});

test('a 7.8 MB payload of quotes (a 15.6 MB request) is refused before sending: ValidationError, no request, nothing written', async ({ server, raw, client }) => {
  const payload = { q: '"'.repeat(3_900_000) };
  const store = createSnapshotStore({ client, retry: fastRetry });
  const [alone] = await store.persistMany([snap('quotes', payload), snap('small', { ok: 1 }, 1)], { now: NOW });
  assert.is(alone!.status, 'rejected');
  const error = (alone as PromiseRejectedResult).reason as ValidationError;
  assert.instance(error, ValidationError);
  assert.is(error.field, 'payload');
  assert.match(error.message, /over Upstash's 10000000-byte limit/);
  assert.ok(error.message.length < 300, 'the message carries no payload');
  // The small snapshot of the same batch went alone, in one request.
  assert.equal(server.requests, { '/pipeline': 1 });
  assert.is(await raw.exists(byId('quotes')), 0);
  assert.is(await raw.exists(byId('small')), 1);
  try {
    await store.persist(snap('quotes', payload), { now: NOW });
    assert.unreachable('persist accepted a request that cannot fit');
  } catch (thrown) {
    assert.instance(thrown, ValidationError);
  }
  assert.equal(server.requests, { '/pipeline': 1 });
});

test('three 4.9 MB snapshots: the two that fit one request share it, the third goes in a second', async ({ server, raw, client }) => {
  const payloads = [0, 1, 2].map((i) => ({ i, x: 'x'.repeat(4_900_000) }));
  const settled = await createSnapshotStore({ client, retry: fastRetry }).persistMany(payloads.map((p, i) => snap(`big-${i}`, p, i)), { now: NOW });
  assert.equal(settled.map((s) => s.status), ['fulfilled', 'fulfilled', 'fulfilled']);
  assert.equal(server.requests, { '/pipeline': 2 });
  assert.is(await raw.exists(byId('big-0'), byId('big-1'), byId('big-2')), 3);
});

test('list() retries a 503 and a 429 like a persist does', async ({ server, client }) => {
  const store = createSnapshotStore({ client, retry: fastRetry });
  await store.persist(snap('l1', { a: 1 }), { now: NOW });
  server.reset();
  server.inject({ type: 'status', status: 503 });
  server.inject({ type: 'status', status: 429 });
  assert.equal(await store.list('r0', { now: NOW }), [{ id: 'l1', timestamp: NOW - 1000 }]);
  // list sends two requests at once (the index range, and latest, which the application's readers
  // follow): one met the 503, the other the 429, and each was sent again.
  assert.equal(server.requests, { '/pipeline': 4 });
});

test("verify's scans and reads retry a 503 like a persist does", async ({ server, client }) => {
  const store = createSnapshotStore({ client, retry: fastRetry });
  await store.persist(snap('v1', { a: 1 }), { now: NOW });
  for (let i = 0; i < 3; i++) {
    server.reset();
    // The first, second and third request of verify each fail once.
    for (let skip = 0; skip < i; skip++) server.inject({ type: 'delay', ms: 0 });
    server.inject({ type: 'status', status: 503 });
    assert.equal((await verify(store, 'all', { now: NOW })).findings, [], `503 on request ${i + 1}`);
  }
});

test('with retries off, the same 503 reaches the caller as a transient RedisError', async ({ server, client }) => {
  const store = createSnapshotStore({ client, retry: false });
  server.inject({ type: 'status', status: 503 });
  try {
    await store.list('r0', { now: NOW });
    assert.unreachable('list() succeeded through a 503 without retries');
  } catch (error) {
    assert.instance(error, RedisError);
    assert.ok((error as RedisError).transient);
  }
});

test.run();
