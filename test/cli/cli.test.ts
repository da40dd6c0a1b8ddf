/**
 * The built CLI (dist/cli.js) as a subprocess against real Redis: backfill interrupted with
 * SIGINT and resumed ends identical to an uninterrupted one; a finished backfill re-run is all
 * replays; verify/repair exit codes; usage and configuration errors exit 2.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Redis } from 'ioredis';
import { dumpKeyspace } from '../support/keyspace.js';
import { snapshotLines, writeNdjson } from '../support/ndjson.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const root = new URL('../../', import.meta.url).pathname;
const COUNT = 3000;
const INVALID_AT = [101, 2002];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs dist/cli.js; `onStart` gets the child (to signal it). No inherited Redis configuration. */
function cli(args: string[], env: Record<string, string> = {}, onStart?: (child: ReturnType<typeof spawn>) => void, input?: string): Promise<Run> {
  const { REDIS_URL: _, UPSTASH_REDIS_REST_URL: __, UPSTASH_REDIS_REST_TOKEN: ___, ...base } = process.env;
  const child = spawn(process.execPath, [join(root, 'dist/cli.js'), ...args], { env: { ...base, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  child.stdin.end(input);
  onStart?.(child);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** A dump in which dedup claims compare by value only: their TTL runs from the write time. */
async function state(client: Redis): Promise<Map<string, string>> {
  const dump = await dumpKeyspace(client);
  for (const [key, value] of dump) if (key.startsWith('dedup:')) dump.set(key, value.replace(/ @\d+$/, ''));
  return dump;
}

const test = suite<{ a: RedisServer; b: RedisServer; dir: string; file: string; lines: string[] }>('snapshot-persist CLI', 5);

test.before(async (ctx) => {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  [ctx.a, ctx.b] = await Promise.all([startRedis(), startRedis()]);
  ctx.dir = mkdtempSync(join(tmpdir(), 'snapshot-persist-cli-'));
  ctx.file = join(ctx.dir, 'history.ndjson');
  ctx.lines = snapshotLines(COUNT, { now: Date.now() });
  // Two bad lines: not JSON, and a region name the store rejects. Numbers are 1-based.
  ctx.lines.splice(INVALID_AT[0]! - 1, 0, '{not json');
  ctx.lines.splice(INVALID_AT[1]! - 1, 0, JSON.stringify({ region_id: 'Bad Region', generated_at: Date.now() - 1000, meta: { snapshot_id: 'x1' } }));
  writeNdjson(ctx.file, ctx.lines);
});

test.after(async ({ a, b, dir }) => {
  await Promise.all([a?.stop(), b?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const url = (r: RedisServer) => ({ REDIS_URL: `redis://127.0.0.1:${r.port}` });

test('backfill interrupted by SIGINT and resumed ends identical to an uninterrupted one', async ({ a, b, dir, file }) => {
  const whole = await cli(['backfill', file, '--json', '--checkpoint', join(dir, 'b.json')], url(b));
  assert.is(whole.code, 0, whole.stderr);
  const summary = JSON.parse(whole.stdout);
  assert.equal(summary.counts, { persisted: COUNT, replayed: 0, duplicate: 0, expired: 0 });
  assert.equal(summary.invalid.map((e: { line: string }) => e.line), INVALID_AT.map((n) => `${file}:${n}`));
  assert.is(summary.lines, COUNT + 2);

  const checkpoint = join(dir, 'a.json');
  const args = ['backfill', file, '--json', '--checkpoint', checkpoint, '--batch', '10', '--concurrency', '2'];
  const cut = await cli(args, url(a), (child) => {
    const poll = setInterval(() => {
      const settled = existsSync(checkpoint) ? JSON.parse(readFileSync(checkpoint, 'utf8')).lines : 0;
      if (settled >= 500) {
        clearInterval(poll);
        child.kill('SIGINT');
      }
    }, 5);
    child.on('close', () => clearInterval(poll));
  });
  assert.is(cut.code, 130, cut.stderr);
  const partial = JSON.parse(cut.stdout);
  assert.ok(partial.interrupted);
  assert.ok(partial.lines >= 500 && partial.lines < COUNT, `settled ${partial.lines}`);
  assert.is(JSON.parse(readFileSync(checkpoint, 'utf8')).lines, partial.lines);

  const resumed = await cli([...args, '--resume'], url(a));
  assert.is(resumed.code, 0, resumed.stderr);
  const done = JSON.parse(resumed.stdout);
  assert.is(done.lines, COUNT + 2);
  assert.is(done.invalid.length, 2);
  // Lines settled after the checkpoint's prefix ran again and count as replays.
  assert.is(done.counts.persisted + done.counts.replayed, COUNT);
  assert.equal(await state(a.client()), await state(b.client()));
});

test('re-running a finished backfill replays everything and changes nothing', async ({ b, dir, file }) => {
  const raw = b.client();
  const before = await dumpKeyspace(raw);
  const again = await cli(['backfill', file, '--json', '--checkpoint', join(dir, 'again.json')], url(b));
  assert.is(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).counts, { persisted: 0, replayed: COUNT, duplicate: 0, expired: 0 });
  assert.equal(await dumpKeyspace(raw), before);
});

test('verify and repair: exit 1 on drift, dry-run writes nothing, repair heals it', async ({ b }) => {
  const raw = b.client();
  assert.is((await cli(['verify'], url(b))).code, 0);
  const [id] = await raw.zrange('intelligence:snapshot-index:v1:mena', 0, 0);
  await raw.del(`intelligence:snapshot-by-id:v1:${id}`);
  await raw.persist('intelligence:snapshot-index:v1:europe');
  const verify = await cli(['verify', '--json'], url(b));
  assert.is(verify.code, 1);
  assert.equal(JSON.parse(verify.stdout).findings.map((f: { class: string }) => f.class).sort(), ['member-missing-payload', 'no-ttl']);
  assert.is((await cli(['verify', 'latam'], url(b))).code, 0);

  const before = await dumpKeyspace(raw);
  const dry = await cli(['repair', '--dry-run'], url(b));
  assert.is(dry.code, 1);
  assert.match(dry.stdout, 'would run');
  assert.equal(await dumpKeyspace(raw), before);

  const repair = await cli(['repair'], url(b));
  assert.is(repair.code, 0, repair.stderr);
  assert.match(repair.stdout, `COPY intelligence:snapshot:v1:mena:`);
  assert.is((await cli(['verify'], url(b))).code, 0);
});

test('persist, latest and list', async ({ a }) => {
  const snapshot = { region_id: 'arctic', generated_at: Date.now() - 1000, meta: { snapshot_id: 'arc-1' } };
  const persisted = await cli(['persist', '-', '--json'], url(a), undefined, JSON.stringify(snapshot));
  assert.is(persisted.code, 0, persisted.stderr);
  assert.is(JSON.parse(persisted.stdout).status, 'persisted');
  const latest = await cli(['latest', 'arctic'], url(a));
  assert.equal(JSON.parse(latest.stdout), { id: 'arc-1', timestamp: snapshot.generated_at, payload: snapshot });
  const list = await cli(['list', 'arctic', '--json'], url(a));
  assert.equal(JSON.parse(list.stdout), [{ id: 'arc-1', timestamp: snapshot.generated_at }]);
  assert.is((await cli(['latest', 'nowhere'], url(a))).code, 1);
});

test('usage and configuration errors exit 2 with one line', async ({ a, file }) => {
  const cases: Array<[string[], Record<string, string>]> = [
    [['verify'], {}],
    [['verify'], { ...url(a), UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:1', UPSTASH_REDIS_REST_TOKEN: 't' }],
    [['verify'], { UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:1' }],
    [['verify'], { REDIS_URL: 'http://127.0.0.1:1' }],
    [['frobnicate'], url(a)],
    [['verify', '--bogus'], url(a)],
    [['backfill', file, '--concurrency', '0'], url(a)],
    [['latest'], url(a)],
    [['backfill', '/nonexistent.ndjson'], url(a)],
  ];
  for (const [args, env] of cases) {
    const run = await cli(args, env);
    assert.is(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.is(run.stderr.trim().split('\n').length, 1, run.stderr);
  }
  assert.is((await cli(['backfill', '--help'])).code, 0);
});

test.run();
