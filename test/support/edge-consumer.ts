/**
 * The edge consumer the edge-runtime and workerd suites both run: every call the edge path makes
 * (persist, persistMany, readLatest, list) through @upstash/redis, bundled with esbuild as a
 * deployment bundles it, and what its results and the keyspace must then be.
 */
import * as assert from 'uvu/assert';
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import type { Redis as IoRedis } from 'ioredis';
import type { UpstashServer } from './upstash-server.js';

const root = new URL('../../', import.meta.url).pathname;
const rootExports = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { exports: { '.': Record<string, string> } }).exports['.'];

/**
 * The source of the entry that package.json's exports map gives a bundler with these conditions
 * (the first key that applies; esbuild's platform 'browser' adds browser, import and default):
 * the suites bundle sources, through the same map that picks dist/ for users.
 */
export function entryFor(conditions: string[]): string {
  const applies = new Set([...conditions, 'browser', 'import', 'default']);
  const [, target] = Object.entries(rootExports).find(([condition]) => applies.has(condition))!;
  return target.replace(/^\.\/dist\/(.+)\.js$/, './src/$1.ts');
}

/**
 * `async (url, token, now, flushed) => JSON text`: the consumer's calls and their results.
 * `flushed()` empties the script cache mid-run, so the next persist falls back to EVAL there too.
 */
const consumer = `async (url, token, now, flushed) => {
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
}`;

/**
 * The consumer bundled for an edge runtime: `redisModule` is where it imports `Redis` from (what
 * a user of that runtime writes), `conditions` the runtime's export conditions (they also pick the
 * library's entry), `expose` the code that hands the consumer (a `consumer` constant) to the runtime.
 */
export async function bundleConsumer(options: { redisModule: string; conditions: string[]; format: 'iife' | 'esm'; expose: string }): Promise<string> {
  const contents = `import { Redis } from '${options.redisModule}';
import { createSnapshotStore } from '${entryFor(options.conditions)}';
const consumer = ${consumer};
${options.expose}`;
  const result = await build({
    stdin: { contents, resolveDir: root, sourcefile: 'edge-consumer.js' },
    bundle: true,
    format: options.format,
    platform: 'browser',
    conditions: options.conditions,
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

/** What the consumer returned and what the keyspace holds must agree with the invariants. */
export async function assertConsumerRun(text: string, now: number, raw: IoRedis, server: UpstashServer): Promise<void> {
  const out = JSON.parse(text);
  assert.is(out.hasProcess, false, 'the runtime has no process: the library must not need it');
  assert.equal(out.persisted, { status: 'persisted', latestAdvanced: true, pruned: 0 });
  assert.equal(out.many.map((r: { status: string; latestAdvanced: boolean }) => [r.status, r.latestAdvanced]), [['persisted', true], ['persisted', true], ['persisted', false]]);
  assert.is(out.replayed.status, 'replayed');
  assert.equal(out.latest, { id: 'edge-2', timestamp: now - 1000, payload: { region_id: 'mena', id: 'edge-2', text: 'مرحبا ✓' } });
  assert.is(out.latestEurope.id, 'edge-3');
  assert.equal(out.list, [{ id: 'edge-3', timestamp: now - 1000 }, { id: 'edge-4', timestamp: now - 3000 }]);
  // The keyspace, read from outside.
  assert.is(await raw.get('intelligence:snapshot:v1:mena:latest'), 'edge-2');
  assert.is(await raw.get('intelligence:snapshot:v1:europe:latest'), 'edge-3');
  assert.equal(await raw.zrange('intelligence:snapshot-index:v1:mena', 0, -1, 'WITHSCORES'), ['edge-1', String(now - 2000), 'edge-2', String(now - 1000)]);
  assert.equal(JSON.parse((await raw.get('intelligence:snapshot-by-id:v1:edge-4'))!), { region_id: 'europe', id: 'edge-4', text: 'مرحبا ✓' });
  assert.ok((server.requests['/pipeline'] ?? 0) > 0);
}
