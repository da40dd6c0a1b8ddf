/**
 * The built CLI (dist/cli.js) as a subprocess against real Redis: backfill interrupted with
 * SIGINT and resumed ends identical to an uninterrupted one; a finished backfill re-run is all
 * replays; verify/repair exit codes; the exit-code rule (2: it did not run, wrong command line,
 * configuration or input; 1: it ran, and the data or Redis is wrong), one line per error.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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
function cli(args: string[], env: Record<string, string> = {}, onStart?: (child: ReturnType<typeof spawn>) => void, input?: string, bin = join(root, 'dist/cli.js')): Promise<Run> {
  const { REDIS_URL: _, UPSTASH_REDIS_REST_URL: __, UPSTASH_REDIS_REST_TOKEN: ___, ...base } = process.env;
  const child = spawn(process.execPath, [bin, ...args], { env: { ...base, ...env } });
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

const test = suite<{ a: RedisServer; b: RedisServer; dir: string; file: string; lines: string[] }>('snapshot-persist CLI', 9);

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

/** One line on stderr: no stack trace, no client library's "Unhandled error event". */
function assertOneLine(run: Run, label: string): void {
  assert.is(run.stderr.trim().split('\n').length, 1, `${label}: ${run.stderr}`);
  assert.not.match(run.stderr, /Unhandled error event|    at /, label);
}

test('wrong command line, configuration or input: exit 2, one line, nothing written', async ({ a, file }) => {
  const before = await dumpKeyspace(a.client());
  const cases: Array<[string[], Record<string, string>, RegExp, string?]> = [
    [['verify'], {}, /no connection configured/],
    [['verify'], { ...url(a), UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:1', UPSTASH_REDIS_REST_TOKEN: 't' }, /both/],
    [['verify'], { UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:1' }, /together/],
    [['verify'], { UPSTASH_REDIS_REST_URL: 'not a url', UPSTASH_REDIS_REST_TOKEN: 't' }, /not a URL/],
    [['verify'], { REDIS_URL: 'http://127.0.0.1:1' }, /unsupported scheme/],
    [['frobnicate'], url(a), /unknown command/],
    [['verify', '--bogus'], url(a), /bogus/],
    [['backfill', file, '--concurrency', '0'], url(a), /--concurrency/],
    [['list', 'mena', '--limit', '0'], url(a), /--limit/],
    [['latest'], url(a), /wrong number of arguments/],
    [['latest', 'BAD!'], url(a), /^snapshot-persist: region: /],
    [['backfill', '/nonexistent.ndjson'], url(a), /no such file/],
    [['persist', '/nonexistent.json'], url(a), /nonexistent\.json: cannot read \(ENOENT\)/],
    [['persist', '-'], url(a), /^snapshot-persist: stdin: not valid JSON, expected one JSON object/, '{"region_id": "mena", secret-payload'],
    [['persist', '-'], url(a), /^snapshot-persist: stdin: empty/, ''],
    [['persist', '-'], url(a), /^snapshot-persist: stdin: expected one JSON object/, '[1, 2]'],
    [['persist', '-'], url(a), /^snapshot-persist: timestamp: /, JSON.stringify({ region: 'mena', id: 'x', timestamp: -5, payload: {} })],
  ];
  for (const [args, env, message, input] of cases) {
    const run = await cli(args, env, undefined, input);
    const label = args.join(' ');
    assert.is(run.code, 2, `${label}: ${run.stderr}`);
    assertOneLine(run, label);
    assert.match(run.stderr, message, label);
    assert.not.match(run.stderr, /secret-payload/, label);
  }
  assert.equal(await dumpKeyspace(a.client()), before);
  assert.is((await cli(['backfill', '--help'])).code, 0);
});

test('a refused connection: exit 1, one line naming the server and the cause, no stack traces', async () => {
  const run = await cli(['verify'], { REDIS_URL: 'redis://user:secret-password@127.0.0.1:1' });
  assert.is(run.code, 1, run.stderr);
  assertOneLine(run, 'verify');
  assert.match(run.stderr, /^snapshot-persist: Redis at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  assert.not.match(run.stderr, /secret-password/);
});

test('no client library installed: exit 2, one line saying what to install', async ({ dir }) => {
  // The package as installed without its optional peers: dist/ and its one dependency.
  const app = join(dir, 'bare');
  cpSync(join(root, 'dist'), join(app, 'node_modules/snapshot-persist/dist'), { recursive: true });
  cpSync(join(root, 'package.json'), join(app, 'node_modules/snapshot-persist/package.json'));
  symlinkSync(join(root, 'node_modules/cluster-key-slot'), join(app, 'node_modules/cluster-key-slot'));
  const bin = join(app, 'node_modules/snapshot-persist/dist/cli.js');
  const tcp = await cli(['verify'], { REDIS_URL: 'redis://127.0.0.1:1' }, undefined, undefined, bin);
  assert.is(tcp.code, 2, tcp.stderr);
  assertOneLine(tcp, 'ioredis');
  assert.match(tcp.stderr, /REDIS_URL needs the ioredis package, which is not installed: npm install ioredis$/m);
  const rest = await cli(['verify'], { UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:1', UPSTASH_REDIS_REST_TOKEN: 't' }, undefined, undefined, bin);
  assert.is(rest.code, 2, rest.stderr);
  assertOneLine(rest, '@upstash/redis');
  assert.match(rest.stderr, /npm install @upstash\/redis$/m);
});

test('a REST proxy that refuses EVAL/EVALSHA: exit 2, one line naming the cause and the way out', async () => {
  // A self-hosted REST proxy with a command allow-list that lacks the script commands.
  const proxy = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk));
    req.on('end', () => {
      const commands = JSON.parse(body) as string[][];
      const replies = commands.map((c) => (/^eval/i.test(c[0]!) ? { error: 'ERR Command not allowed' } : { result: null }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(replies));
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  try {
    const env = { UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, UPSTASH_REDIS_REST_TOKEN: 't' };
    const snapshot = JSON.stringify({ region_id: 'arctic', generated_at: Date.now() - 1000, meta: { snapshot_id: 'p-1' }, note: 'secret-payload' });
    for (const args of [['persist', '-'], ['latest', 'arctic']]) {
      const run = await cli(args, env, undefined, snapshot);
      assert.is(run.code, 2, run.stderr);
      assertOneLine(run, args[0]!);
      assert.match(run.stderr, /refused a command the library sends \(.*Command not allowed\): .*EVALSHA and EVAL.*must allow them.*REDIS_URL/);
      assert.not.match(run.stderr, /secret-payload/);
    }
  } finally {
    proxy.close();
  }
});

test('a Redis user whose ACL lacks EVALSHA: exit 2, one line naming the cause, no password', async ({ a }) => {
  await a.client().call('ACL', 'SETUSER', 'limited', 'on', '>secret-password', '~*', '+@all', '-evalsha', '-eval');
  const run = await cli(['latest', 'mena'], { REDIS_URL: `redis://limited:secret-password@127.0.0.1:${a.port}` });
  assert.is(run.code, 2, run.stderr);
  assertOneLine(run, 'latest');
  assert.match(run.stderr, /^snapshot-persist: Redis at 127\.0\.0\.1:\d+: the server refused a command the library sends \(NOPERM.*\): the Redis user needs every command DESIGN\.md lists under "Commands sent"$/m);
  assert.not.match(run.stderr, /secret-password/);
});

test.run();
