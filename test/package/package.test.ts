/**
 * The package as its users get it: `npm pack`, then installed into empty projects that each have
 * one client library, type-checked strictly (skipLibCheck false), loaded with import and
 * require(), read for what it ships (licence, documents and their links, sourcemaps, types), and
 * bundled for an edge runtime as a persist-and-read consumer would (without verify and repair).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
// @ts-expect-error: a plain .mjs script, without type declarations.
import { bundle as bundleUntyped, consumerSource as consumerSourceUntyped } from '../../scripts/bundle-size.mjs';

const bundle = bundleUntyped as (contents: string, resolveDir: string, external?: string[], platform?: 'browser' | 'neutral') => Promise<Uint8Array>;
const consumerSource = consumerSourceUntyped as (from: string, ops?: string) => string;

const root = new URL('../../', import.meta.url).pathname;
const own = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
const tsc = join(root, 'node_modules/typescript/bin/tsc');

interface Packed {
  filename: string;
  files: Array<{ path: string }>;
}

/** Runs a command; fails the test with its output when it fails. */
function run(cmd: string, args: string[], cwd: string): { stdout: string; stderr: string } {
  const result = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  assert.is(result.status, 0, `${cmd} ${args.join(' ')}:\n${result.stdout}\n${result.stderr}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

/** An empty ESM project with the tarball and `deps` installed; returns its path and npm's stderr. */
function consumer(dir: string, name: string, tarball: string, deps: string[]): { path: string; npmStderr: string } {
  const path = join(dir, name);
  mkdirSync(path);
  writeFileSync(join(path, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  const { stderr } = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, ...deps], path);
  return { path, npmStderr: stderr };
}

/** Type-checks `source` in the project as a strict user would: no skipLibCheck. */
function typecheck(path: string, source: string): void {
  writeFileSync(join(path, 'index.ts'), source);
  writeFileSync(
    join(path, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, noEmit: true }, files: ['index.ts'] }),
  );
  run(process.execPath, [tsc, '-p', '.'], path);
}

const test = suite<{ dir: string; packed: Packed; tarball: string }>('the package as installed', 6);

test.before((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'snapshot-persist-package-'));
  // prepack builds dist/.
  ctx.packed = (JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', ctx.dir], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Packed[])[0]!;
  ctx.tarball = join(ctx.dir, ctx.packed.filename);
});
test.after(({ dir }) => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball: a licence, the documents its documents link to, self-contained sourcemaps, small types', ({ packed }) => {
  const files = new Set(packed.files.map((f) => f.path));
  for (const required of ['LICENSE', 'README.md', 'DESIGN.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/ops.js', 'dist/ops.d.ts', 'dist/cli.js']) assert.ok(files.has(required), `ships ${required}`);
  assert.not.ok([...files].some((f) => /^(src|test|scripts)\//.test(f)), 'no sources or tests');
  for (const doc of [...files].filter((f) => f.endsWith('.md'))) {
    for (const [, target] of readFileSync(join(root, doc), 'utf8').matchAll(/\]\((?!https?:|#)([^)#\s]+)/g)) {
      assert.ok(files.has(target!), `${doc} links to ${target}, which the package does not ship`);
    }
  }
  for (const map of [...files].filter((f) => f.endsWith('.map'))) {
    const { sources, sourcesContent } = JSON.parse(readFileSync(join(root, map), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
    assert.is(sourcesContent?.length, sources.length, `${map} carries its sources`);
  }
  for (const types of ['dist/lua.generated.d.ts', 'dist/lua-repair.generated.d.ts']) assert.ok(readFileSync(join(root, types), 'utf8').length < 1000, `the Lua is not copied into ${types}`);
});

test('a project with only ioredis type-checks strictly, and a wrong client is a type error', ({ dir, tarball }) => {
  const { path, npmStderr } = consumer(dir, 'only-ioredis', tarball, [`ioredis@${own.devDependencies.ioredis}`, `@types/node@${own.devDependencies['@types/node']}`]);
  assert.not.match(npmStderr, /prepare|ERESOLVE|peer/i);
  typecheck(
    path,
    `import { Cluster, Redis } from 'ioredis';
import { createSnapshotStore, type SnapshotStore } from 'snapshot-persist';
import { repair, type RepairReport } from 'snapshot-persist/ops';
const store: SnapshotStore = createSnapshotStore({ client: new Redis({ lazyConnect: true }) });
const repaired: Promise<RepairReport> = repair(store, 'all', { dryRun: true });
void repaired;
createSnapshotStore({ client: new Cluster([], { lazyConnect: true }), keys: { schema: 'cluster' } });
void store.persist({ region: 'mena', id: 'a', timestamp: 1, payload: {} });
// @ts-expect-error a number is not a client
createSnapshotStore({ client: 42 });
// @ts-expect-error nor is an object with one of a client's methods
createSnapshotStore({ client: { pipeline() {} } });
`,
  );
});

test('a project with only @upstash/redis type-checks strictly, and a wrong client is a type error', ({ dir, tarball }) => {
  const { path, npmStderr } = consumer(dir, 'only-upstash', tarball, [`@upstash/redis@${own.devDependencies['@upstash/redis']}`]);
  assert.not.match(npmStderr, /prepare|ERESOLVE|peer/i);
  typecheck(
    path,
    `import { Redis } from '@upstash/redis';
import { createSnapshotStore, type StoredSnapshot } from 'snapshot-persist';
import { UNREPAIRABLE, verify, type DriftClass, type DriftReport } from 'snapshot-persist/ops';
const client = new Redis({ url: 'https://example.invalid', token: 't' });
const store = createSnapshotStore({ client });
const latest: Promise<StoredSnapshot | null> = store.readLatest('mena');
void latest;
const report: Promise<DriftReport> = verify(store, 'all');
const unrepairable: readonly DriftClass[] = UNREPAIRABLE;
void report;
void unrepairable;
// @ts-expect-error verify takes the store, not the client
void verify(client, 'all');
// @ts-expect-error a string is not a client
createSnapshotStore({ client: 'redis://localhost' });
// @ts-expect-error an ioredis-looking object without its members is not one either
createSnapshotStore({ client: { isCluster: false } });
`,
  );
});

test('import and require() both load it, ./package.json is exported, the CLI runs', ({ dir }) => {
  const path = join(dir, 'only-upstash');
  const loaded = run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const esm = await import('snapshot-persist');
const cjs = require('snapshot-persist');
const ops = await import('snapshot-persist/ops');
console.log(typeof esm.createSnapshotStore, cjs.createSnapshotStore === esm.createSnapshotStore, require('snapshot-persist/package.json').name);
console.log(typeof ops.verify, require('snapshot-persist/ops').repair === ops.repair, ops.UNREPAIRABLE.join());`,
    ],
    path,
  );
  assert.is(loaded.stdout.trim(), 'function true snapshot-persist\nfunction true unindexed-payload,foreign-type');
  assert.match(run('npx', ['--no-install', 'snapshot-persist', '--help'], path).stdout, /Exit codes/);
});

test("edge runtimes' export conditions load the @upstash/redis-only entry, which refuses ioredis by name; Node's and workerd's take it", ({ dir }) => {
  const path = join(dir, 'only-ioredis');
  const source = `import { Redis } from 'ioredis';
import { createSnapshotStore } from 'snapshot-persist';
try {
  createSnapshotStore({ client: new Redis({ lazyConnect: true }) });
  console.log('accepted');
} catch (error) {
  console.log(error.name + ': ' + error.message);
}`;
  const load = (conditions: string[]) => run(process.execPath, [...conditions.map((c) => `--conditions=${c}`), '--input-type=module', '-e', source], path).stdout.trim();
  // workerd (Cloudflare, whose bundler also sets worker and browser) runs ioredis with nodejs_compat.
  for (const conditions of [[], ['workerd', 'worker', 'browser']]) assert.is(load(conditions), 'accepted', conditions.join());
  for (const condition of ['edge-light', 'worker', 'browser']) assert.match(load([condition]), /^ValidationError: options\.client: .*cannot run ioredis/, condition);
});

test('a persist-and-read edge bundle carries neither verify nor repair.lua, nor the ioredis adapter nor cluster-key-slot, and builds with --platform=neutral; importing snapshot-persist/ops adds verify and repair.lua', async ({ dir }) => {
  const path = join(dir, 'only-upstash');
  // Strings only repair.lua and verify have: the script's SHA1 (shipped next to its text) and a
  // finding's wording.
  const repairSha = /sha: '([0-9a-f]{40})'/.exec(readFileSync(join(path, 'node_modules/snapshot-persist/dist/lua-repair.generated.js'), 'utf8'))![1]!;
  const onlyOps = [repairSha, 'has no index member'];
  // Strings only the ioredis adapter (its keyPrefix refusal) and cluster-key-slot (an export name
  // minifying keeps) have.
  const onlyNode = ['keyPrefix is not supported', 'generateMulti'];
  const text = async (ops?: string) => new TextDecoder().decode(await bundle(consumerSource('snapshot-persist', ops), path, ['@upstash/redis']));
  const persistAndRead = await text();
  assert.match(persistAndRead, /SNAPSHOT_/, 'the bundle holds the runtime scripts');
  for (const marker of [...onlyOps, ...onlyNode]) assert.not.ok(persistAndRead.includes(marker), `the persist-and-read bundle carries ${marker}`);
  const withOps = await text('snapshot-persist/ops');
  for (const marker of onlyOps) assert.ok(withOps.includes(marker), `the bundle with verify and repair carries ${marker}`);
  for (const marker of onlyNode) assert.not.ok(withOps.includes(marker), `the bundle with verify and repair carries ${marker}`);
  // cluster-key-slot has only a `main` field, which a plain --platform=neutral build cannot resolve.
  assert.ok((await bundle(consumerSource('snapshot-persist'), path, ['@upstash/redis'], 'neutral')).length > 0);
});

test.run();
