// Bundles what an edge consumer of @upstash/redis ships (persist, persistMany, readLatest, list)
// with esbuild, minified, and prints the minified and gzipped sizes: the whole bundle, the
// library's part (@upstash/redis left out), and that part for a consumer that also imports
// verify and repair (snapshot-persist/ops). Run after `npm run build`:
//   node scripts/bundle-size.mjs
// test/package/package.test.ts bundles the same consumer from the packed tarball.
import { build } from 'esbuild';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

/** The consumer's source; `from` is where the package resolves, `ops` where its ops entry does. */
export function consumerSource(from, ops) {
  return `
import { Redis } from '@upstash/redis';
import { createSnapshotStore } from '${from}';
${ops ? `import { repair, verify } from '${ops}';` : ''}
export default async function handler(url, token) {
  const store = createSnapshotStore({ client: new Redis({ url, token }) });
  const s = { region: 'mena', id: 'a1', timestamp: Date.now(), payload: {} };
  await store.persist(s);
  await store.persistMany([s]);
  ${ops ? `await verify(store, 'all'); await repair(store, 'all');` : ''}
  return [await store.readLatest('mena'), await store.list('mena')];
}`;
}

/**
 * The consumer bundled for an edge runtime, minified; `resolveDir` is where imports resolve.
 * `platform` 'neutral': no browser condition, no main fields, only the package's exports.
 */
export async function bundle(contents, resolveDir, external = [], platform = 'browser') {
  const result = await build({
    stdin: { contents, resolveDir, sourcefile: 'consumer.js' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform,
    conditions: ['edge-light', 'worker'],
    external,
    write: false,
    logLevel: 'error',
  });
  return result.outputFiles[0].contents;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = new URL('..', import.meta.url).pathname;
  const measure = async (ops, external) => {
    // The package by its own name, so esbuild resolves it through package.json's exports map
    // with the edge conditions, as a consumer's bundler does.
    const bytes = await bundle(consumerSource('snapshot-persist', ops && 'snapshot-persist/ops'), root, external);
    return `${(bytes.length / 1024).toFixed(1)} kB min, ${(gzipSync(bytes).length / 1024).toFixed(1)} kB min+gzip`;
  };
  console.log(`whole bundle:        ${await measure(false, [])}`);
  console.log(`library's part only: ${await measure(false, ['@upstash/redis'])}`);
  console.log(`with verify, repair: ${await measure(true, ['@upstash/redis'])} (library's part)`);
}
