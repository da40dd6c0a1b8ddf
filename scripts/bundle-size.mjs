// Bundles what an edge consumer of @upstash/redis ships (persist, persistMany, readLatest, list)
// with esbuild, minified, and prints the minified and gzipped sizes: the whole bundle and the
// library's part (@upstash/redis left out). Run after `npm run build`:
//   node scripts/bundle-size.mjs
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';

const root = new URL('..', import.meta.url).pathname;
const entry = `
import { Redis } from '@upstash/redis';
import { createSnapshotStore } from './dist/index.js';
export default async function handler(url, token) {
  const store = createSnapshotStore({ client: new Redis({ url, token }) });
  const s = { region: 'mena', id: 'a1', timestamp: Date.now(), payload: {} };
  await store.persist(s);
  await store.persistMany([s]);
  return [await store.readLatest('mena'), await store.list('mena')];
}`;

async function measure(external) {
  const result = await build({
    stdin: { contents: entry, resolveDir: root, sourcefile: 'consumer.js' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['edge-light', 'worker'],
    external,
    write: false,
    logLevel: 'error',
  });
  const bytes = result.outputFiles[0].contents;
  return `${(bytes.length / 1024).toFixed(1)} kB min, ${(gzipSync(bytes).length / 1024).toFixed(1)} kB min+gzip`;
}

console.log(`whole bundle:        ${await measure([])}`);
console.log(`library's part only: ${await measure(['@upstash/redis'])}`);
