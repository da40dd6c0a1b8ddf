/**
 * The library in Cloudflare's workerd, run by Miniflare: the edge consumer
 * (test/support/edge-consumer.ts), bundled with esbuild as a Worker that imports
 * @upstash/redis/cloudflare, runs persist, persistMany, readLatest and list against the
 * Upstash-protocol test server on a real Redis (the Worker fetches 127.0.0.1 directly); the
 * keyspace is read back from outside workerd. No nodejs_compat flag: no Node built-ins, no process.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Miniflare, Response } from 'miniflare';
import type { Redis as IoRedis } from 'ioredis';
import { assertConsumerRun, bundleConsumer, entryFor } from '../support/edge-consumer.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startUpstashServer, type UpstashServer } from '../support/upstash-server.js';

const TOKEN = 'workerd-token';
const NOW = Date.now();

const test = suite<{ redis: RedisServer; server: UpstashServer; raw: IoRedis; mf: Miniflare }>('workerd (Miniflare, @upstash/redis/cloudflare)', 1);

test.before(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.server = await startUpstashServer(ctx.redis, { token: TOKEN });
  ctx.raw = ctx.redis.client();
  // The Worker asks the test, through a service binding, to empty the script cache mid-run.
  const worker = `export default {
  async fetch(request, env) {
    const { url, token, now } = await request.json();
    return new Response(await consumer(url, token, now, () => env.FLUSH.fetch('http://flush/')));
  },
};`;
  const script = await bundleConsumer({ redisModule: '@upstash/redis/cloudflare', conditions: ['workerd', 'worker', 'browser'], format: 'esm', expose: worker });
  ctx.mf = new Miniflare({
    modules: true,
    script,
    compatibilityDate: '2026-04-01',
    serviceBindings: {
      FLUSH: async () => {
        await ctx.raw.script('FLUSH');
        return new Response();
      },
    },
  });
});
test.after(async ({ mf, server, redis }) => {
  await mf?.dispose();
  await server?.close();
  await redis?.stop();
});

test('persist, persistMany, readLatest and list run inside workerd, from the entry with both clients, and store what they report', async ({ mf, raw, server }) => {
  // workerd with nodejs_compat runs ioredis, so its condition loads the Node entry.
  assert.is(entryFor(['workerd', 'worker', 'browser']), './src/index.ts');
  const response = await mf.dispatchFetch('http://worker/', { method: 'POST', body: JSON.stringify({ url: server.url, token: TOKEN, now: NOW }) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`the Worker answered ${response.status}: ${text.slice(0, 2000)}`);
  await assertConsumerRun(text, NOW, raw, server);
});

test.run();
