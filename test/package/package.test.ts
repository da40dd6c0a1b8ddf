/**
 * The package as its users get it: `npm pack`, then installed into empty projects that each have
 * one client library, type-checked strictly (skipLibCheck false), loaded with import and
 * require(), and read for what it ships (licence, documents and their links, sourcemaps, types).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';

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

const test = suite<{ dir: string; packed: Packed; tarball: string }>('the package as installed', 4);

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
  for (const required of ['LICENSE', 'README.md', 'DESIGN.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js']) assert.ok(files.has(required), `ships ${required}`);
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
  assert.ok(readFileSync(join(root, 'dist/lua.generated.d.ts'), 'utf8').length < 1000, 'the Lua is not copied into the types');
});

test('a project with only ioredis type-checks strictly, and a wrong client is a type error', ({ dir, tarball }) => {
  const { path, npmStderr } = consumer(dir, 'only-ioredis', tarball, [`ioredis@${own.devDependencies.ioredis}`, `@types/node@${own.devDependencies['@types/node']}`]);
  assert.not.match(npmStderr, /prepare|ERESOLVE|peer/i);
  typecheck(
    path,
    `import { Cluster, Redis } from 'ioredis';
import { createSnapshotStore, type SnapshotStore } from 'snapshot-persist';
const store: SnapshotStore = createSnapshotStore({ client: new Redis({ lazyConnect: true }) });
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
const store = createSnapshotStore({ client: new Redis({ url: 'https://example.invalid', token: 't' }) });
const latest: Promise<StoredSnapshot | null> = store.readLatest('mena');
void latest;
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
console.log(typeof esm.createSnapshotStore, cjs.createSnapshotStore === esm.createSnapshotStore, require('snapshot-persist/package.json').name);`,
    ],
    path,
  );
  assert.is(loaded.stdout.trim(), 'function true snapshot-persist');
  assert.match(run('npx', ['--no-install', 'snapshot-persist', '--help'], path).stdout, /Exit codes/);
});

test.run();
