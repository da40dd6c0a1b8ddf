/**
 * The library in Vercel's edge runtime (the `edge-runtime` VM: web APIs only, no `process`, no
 * Node built-ins): the edge consumer (test/support/edge-consumer.ts), bundled with esbuild for the
 * edge, runs persist, persistMany, readLatest and list through @upstash/redis against the
 * Upstash-protocol test server on a real Redis; the keyspace is read back from outside the VM.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { EdgeRuntime } from 'edge-runtime';
import type { Redis as IoRedis } from 'ioredis';
import { assertConsumerRun, bundleConsumer, entryFor } from '../support/edge-consumer.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startUpstashServer, type UpstashServer } from '../support/upstash-server.js';

const TOKEN = 'edge-token';
const NOW = Date.now();

const test = suite<{ redis: RedisServer; server: UpstashServer; raw: IoRedis; bundle: string }>('edge runtime (edge-runtime VM, @upstash/redis)', 2);

test.before(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.server = await startUpstashServer(ctx.redis, { token: TOKEN });
  ctx.raw = ctx.redis.client();
  ctx.bundle = await bundleConsumer({ redisModule: '@upstash/redis', conditions: ['edge-light', 'worker'], format: 'iife', expose: 'globalThis.consumer = consumer;' });
});
test.after(async ({ server, redis }) => {
  await server?.close();
  await redis?.stop();
});

test('the consumer bundles for the edge from the edge entry, without Node built-ins or the ioredis adapter', ({ bundle }) => {
  // platform 'browser' fails the build on any node: import; this also guards bare ones.
  assert.not.match(bundle, /require\(["'](?:node:)?(?:fs|crypto|net|tls|buffer|stream)["']\)/);
  assert.is(entryFor(['edge-light', 'worker']), './src/edge.ts');
  assert.not.ok(bundle.includes('keyPrefix is not supported'), 'the ioredis adapter is not bundled');
});

test('persist, persistMany, readLatest and list run inside the edge runtime and store what they report', async ({ raw, server, bundle }) => {
  const runtime = new EdgeRuntime();
  runtime.evaluate(bundle);
  runtime.context.flushed = async () => void (await raw.script('FLUSH'));
  const text = (await runtime.evaluate(`consumer(${JSON.stringify(server.url)}, ${JSON.stringify(TOKEN)}, ${NOW}, flushed)`)) as string;
  await assertConsumerRun(text, NOW, raw, server);
});

test.run();
