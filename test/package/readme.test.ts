/**
 * The README's TypeScript examples run as written: each block is saved as a file inside the
 * package (so `import … from 'snapshot-persist'` resolves to the build, as for a user), type-checked
 * strictly, and, where it needs no Redis Cluster, run against a real Redis or the Upstash test
 * server. A run must exit on its own: an example that leaves its client open never does.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startUpstashServer, type UpstashServer } from '../support/upstash-server.js';

const root = new URL('../../', import.meta.url).pathname;
const blocks = [...readFileSync(join(root, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const files = blocks.map((_, i) => join(root, `readme-example-${i + 1}.tmp.ts`));
const REGIONS = ['mena', 'east-asia', 'europe', 'north-america', 'south-asia', 'latam', 'sub-saharan-africa', 'global'];
const EXIT_WITHIN_MS = 60_000;

/** Runs an example; resolves with its exit code and output, or fails when it does not exit. */
function runExample(file: string, cwd: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  // tsx from this package: the example's working directory is elsewhere.
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), file], { cwd, env: { ...process.env, ...env } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_WITHIN_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const test = suite<{ redis: RedisServer; server: UpstashServer; dir: string }>("the README's examples", 5);

test.before(async (ctx) => {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  blocks.forEach((block, i) => writeFileSync(files[i]!, block));
  ctx.redis = await startRedis();
  ctx.server = await startUpstashServer(ctx.redis, { token: 'readme-token' });
  ctx.dir = mkdtempSync(join(tmpdir(), 'snapshot-persist-readme-'));
  // The seeder's shape, from the fixture, once per region; and a short history.
  const fixture = JSON.parse(readFileSync(join(root, 'test/fixtures/regional-snapshot-mena.json'), 'utf8'));
  const now = Date.now();
  const snapshot = (region: string, id: string, at: number) => ({ ...fixture, region_id: region, generated_at: at, meta: { ...fixture.meta, snapshot_id: id } });
  writeFileSync(join(ctx.dir, 'snapshots.json'), JSON.stringify(REGIONS.map((r) => snapshot(r, `now-${r}`, now - 1000))));
  writeFileSync(join(ctx.dir, 'history.ndjson'), Array.from({ length: 150 }, (_, i) => JSON.stringify(snapshot('mena', `old-${i}`, now - (i + 2) * 3_600_000))).join('\n'));
});
test.after(async ({ server, redis, dir }) => {
  for (const file of files) rmSync(file, { force: true });
  await server?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('every example type-checks strictly', () => {
  assert.ok(blocks.length >= 4, `found ${blocks.length} examples`);
  const flags = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node'];
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), ...flags, ...files], { cwd: root, encoding: 'utf8' });
  } catch (error) {
    assert.unreachable(`tsc: ${(error as { stdout?: string }).stdout}`);
  }
});

test('the ioredis seeder example persists every region and exits', async ({ redis, dir }) => {
  const index = blocks.findIndex((b) => b.includes("from 'ioredis'") && b.includes('persistSnapshot'));
  const { code, out } = await runExample(files[index]!, dir, { REDIS_URL: `redis://127.0.0.1:${redis.port}` });
  assert.is(code, 0, out);
  const raw = redis.client();
  for (const region of REGIONS) assert.is(await raw.get(`intelligence:snapshot:v1:${region}:latest`), `now-${region}`);
});

test('the Upstash example persists and reads back over REST and exits', async ({ server, redis, dir }) => {
  const index = blocks.findIndex((b) => b.includes("from '@upstash/redis'"));
  await redis.client().flushall();
  const { code, out } = await runExample(files[index]!, dir, { UPSTASH_REDIS_REST_URL: server.url, UPSTASH_REDIS_REST_TOKEN: server.token });
  assert.is(code, 0, out);
  assert.match(out, /now-mena/);
  assert.is(await redis.client().get('intelligence:snapshot:v1:europe:latest'), 'now-europe');
});

test('the backfill example indexes the history without moving latest, and exits', async ({ redis, dir }) => {
  const index = blocks.findIndex((b) => b.includes('history'));
  const { code, out } = await runExample(files[index]!, dir, { REDIS_URL: `redis://127.0.0.1:${redis.port}` });
  assert.is(code, 0, out);
  const raw = redis.client();
  assert.is(await raw.zcard('intelligence:snapshot-index:v1:mena'), 151);
  assert.is(await raw.get('intelligence:snapshot:v1:mena:latest'), 'now-mena');
});

test('the verify example finds a region whose latest is gone, lists the fix without making it, and exits', async ({ redis, dir }) => {
  const index = blocks.findIndex((b) => b.includes("from 'snapshot-persist/ops'"));
  const raw = redis.client();
  await raw.del('intelligence:snapshot:v1:europe:latest');
  const { code, out } = await runExample(files[index]!, dir, { REDIS_URL: `redis://127.0.0.1:${redis.port}` });
  assert.is(code, 0, out);
  assert.match(out, /^europe latest-not-newest /m);
  assert.match(out, /region: 'europe',\s+command: 'SET intelligence:snapshot:v1:europe:latest now-europe /, `the dry run lists its writes:\n${out}`);
  assert.is(await raw.get('intelligence:snapshot:v1:europe:latest'), null, 'dryRun writes nothing');
});

test.run();
