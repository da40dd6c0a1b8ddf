/**
 * The library in Vercel's edge runtime (the `edge-runtime` VM: web APIs only, no `process`, no
 * Node built-ins): a consumer bundled with esbuild for the edge, as a deployment bundles it, runs
 * persist, persistMany, readLatest and list through @upstash/redis against the Upstash-protocol
 * test server on a real Redis; the keyspace is read back from outside the VM.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { build } from 'esbuild';
import { EdgeRuntime } from 'edge-runtime';
import type { Redis as IoRedis } from 'ioredis';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startUpstashServer, type UpstashServer } from '../support/upstash-server.js';

const TOKEN = 'edge-token';
const NOW = Date.now();
const root = new URL('../../', import.meta.url).pathname;

/** The consumer: every call the edge path makes, its results returned as JSON text. */
const consumer = `
import { Redis } from '@upstash/redis';
import { createSnapshotStore } from './src/index.ts';
globalThis.consumer = async (url, token, now, flushed) => {
  const store = createSnapshotStore({ client: new Redis({ url, token }) });
  const at = { now };
  const snap = (region, id, timestamp) => ({ region, id, timestamp, trigger: id, payload: { region_id: region, id, text: 'مرحبا ✓' } });
  const persisted = await store.persist(snap('mena', 'edge-1', now - 2000), at);
  const many = (await store.persistMany([snap('mena', 'edge-2', now - 1000), snap('europe', 'edge-3', now - 1000), snap('europe', 'edge-4', now - 3000)], at))
    .map((s) => (s.status === 'fulfilled' ? s.value : { error: s.reason.name }));
  await flushed();
  const replayed = await store.persist(snap('europe', 'edge-3', now - 1000), at);
  return JSON.stringify({
    persisted,
    many,
    replayed,
    latest: await store.readLatest('mena', at),
    latestEurope: await store.readLatest('europe', at),
    list: await store.list('europe', at),
    hasProcess: typeof process !== 'undefined',
  });
};`;

const test = suite<{ redis: RedisServer; server: UpstashServer; raw: IoRedis; bundle: string }>('edge runtime (edge-runtime VM, @upstash/redis)', 2);

test.before(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.server = await startUpstashServer(ctx.redis, { token: TOKEN });
  ctx.raw = ctx.redis.client();
  const result = await build({
    stdin: { contents: consumer, resolveDir: root, sourcefile: 'edge-consumer.js' },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    conditions: ['edge-light', 'worker'],
    write: false,
    logLevel: 'silent',
  });
  ctx.bundle = result.outputFiles[0]!.text;
});
test.after(async ({ server, redis }) => {
  await server?.close();
  await redis?.stop();
});

test('the consumer bundles for the edge without Node built-ins', ({ bundle }) => {
  // platform 'browser' fails the build on any node: import; this also guards bare ones.
  assert.not.match(bundle, /require\(["'](?:node:)?(?:fs|crypto|net|tls|buffer|stream)["']\)/);
});

test('persist, persistMany, readLatest and list run inside the edge runtime and store what they report', async ({ raw, server, bundle }) => {
  const runtime = new EdgeRuntime();
  runtime.evaluate(bundle);
  // The script cache emptied mid-run: the next persist falls back to EVAL inside the VM too.
  runtime.context.flushed = async () => void (await raw.script('FLUSH'));
  const text = (await runtime.evaluate(`consumer(${JSON.stringify(server.url)}, ${JSON.stringify(TOKEN)}, ${NOW}, flushed)`)) as string;
  const out = JSON.parse(text);
  assert.is(out.hasProcess, false, 'the VM has no process: the library must not need it');
  assert.equal(out.persisted, { status: 'persisted', latestAdvanced: true, pruned: 0 });
  assert.equal(out.many.map((r: { status: string; latestAdvanced: boolean }) => [r.status, r.latestAdvanced]), [['persisted', true], ['persisted', true], ['persisted', false]]);
  assert.is(out.replayed.status, 'replayed');
  assert.equal(out.latest, { id: 'edge-2', timestamp: NOW - 1000, payload: { region_id: 'mena', id: 'edge-2', text: 'مرحبا ✓' } });
  assert.is(out.latestEurope.id, 'edge-3');
  assert.equal(out.list, [{ id: 'edge-3', timestamp: NOW - 1000 }, { id: 'edge-4', timestamp: NOW - 3000 }]);
  // The keyspace, read from outside.
  assert.is(await raw.get('intelligence:snapshot:v1:mena:latest'), 'edge-2');
  assert.is(await raw.get('intelligence:snapshot:v1:europe:latest'), 'edge-3');
  assert.equal(await raw.zrange('intelligence:snapshot-index:v1:mena', 0, -1, 'WITHSCORES'), ['edge-1', String(NOW - 2000), 'edge-2', String(NOW - 1000)]);
  assert.equal(JSON.parse((await raw.get('intelligence:snapshot-by-id:v1:edge-4'))!), { region_id: 'europe', id: 'edge-4', text: 'مرحبا ✓' });
  assert.ok((server.requests['/pipeline'] ?? 0) > 0);
});

test.run();
