import { createHash } from 'node:crypto';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis as UpstashRedis } from '@upstash/redis';
import type { Redis as IoRedis } from 'ioredis';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startUpstashServer, type UpstashServer } from '../support/upstash-server.js';

/** Pins the test server to the Upstash REST protocol as DESIGN.md states it. */
const test = suite<{ redis: RedisServer; server: UpstashServer; raw: IoRedis }>('upstash test server', 16);
const token = 'server-test-token';

test.before(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.server = await startUpstashServer(ctx.redis, { token, maxRequestBytes: 64 * 1024 });
  ctx.raw = ctx.redis.client();
});
test.after(async ({ server, redis }) => {
  await server.close();
  await redis.stop();
});
test.before.each(async ({ redis, server, raw }) => {
  server.reset();
  await redis.fresh();
  await raw.script('FLUSH');
});

/** A raw request: status, parsed body, headers. */
async function post(server: UpstashServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(server.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as unknown, headers: res.headers };
}

/** The error a promise rejects with (uvu/assert has no async throws). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new assert.Assertion({ message: 'expected a rejection', operator: 'rejects', actual: 'resolved', expects: 'rejected' });
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const keyLockingScript = "#!lua flags=allow-key-locking\nreturn redis.call('INCR', KEYS[1])";

test('a missing or wrong bearer token is 401 and runs nothing', async ({ server, raw }) => {
  for (const authorization of [undefined, 'Bearer wrong', token]) {
    const res = await fetch(server.url, { method: 'POST', headers: authorization ? { authorization } : {}, body: '["SET","k","v"]' });
    assert.is(res.status, 401);
    assert.equal(await res.json(), { error: 'WRONGPASS invalid or missing auth token' });
  }
  assert.is(await raw.exists('k'), 0);
});

test('POST / answers {result}, or 400 {error} for a command error', async ({ server }) => {
  const set = await post(server, '/', ['SET', 'k', 'v']);
  assert.is(set.status, 200);
  assert.equal(set.body, { result: 'OK' });
  assert.equal((await post(server, '/', ['GET', 'k'])).body, { result: 'v' });
  assert.equal((await post(server, '/', ['GET', 'missing'])).body, { result: null });
  const failed = await post(server, '/', ['INCR', 'k']);
  assert.is(failed.status, 400);
  assert.equal(failed.body, { error: 'ERR value is not an integer or out of range' });
});

test('POST /pipeline answers 200 with one entry per command and does not stop at a failing one', async ({ server, raw }) => {
  const res = await post(server, '/pipeline', [['SET', 'a', 'x'], ['INCR', 'a'], ['INCR', 'n'], ['GET', 'a']]);
  assert.is(res.status, 200);
  assert.equal(res.body, [{ result: 'OK' }, { error: 'ERR value is not an integer or out of range' }, { result: 1 }, { result: 'x' }]);
  assert.is(await raw.get('n'), '1');
});

test('POST /multi-exec runs atomically; a command refused while queuing discards all with one non-2xx {error}', async ({ server, raw }) => {
  const ok = await post(server, '/multi-exec', [['SET', 'a', 'x'], ['INCR', 'a'], ['INCR', 'n']]);
  assert.is(ok.status, 200);
  assert.equal(ok.body, [{ result: 'OK' }, { error: 'ERR value is not an integer or out of range' }, { result: 1 }]);
  const discarded = await post(server, '/multi-exec', [['SET', 'b', 'y'], ['NOSUCHCOMMAND'], ['INCR', 'n']]);
  assert.is(discarded.status, 400);
  assert.ok(/^EXECABORT/.test((discarded.body as { error: string }).error));
  assert.is(await raw.exists('b'), 0);
  assert.is(await raw.get('n'), '1');
});

test('each transaction has a connection of its own: concurrent pipelines never see QUEUED', async ({ server }) => {
  const requests = Array.from({ length: 20 }, (_, i) =>
    i % 2 === 0 ? post(server, '/multi-exec', [['INCR', 'tx'], ['INCR', 'tx']]) : post(server, '/pipeline', [['INCR', 'plain']]),
  );
  const results = (await Promise.all(requests)).map((r) => r.body as Array<{ result: unknown }>);
  for (const [i, body] of results.entries()) {
    for (const entry of body) assert.type(entry.result, 'number', `request ${i}: ${JSON.stringify(body)}`);
  }
});

test('Upstash-Encoding: base64 encodes every string, nested arrays too, and leaves integers and null', async ({ server }) => {
  const script = "return { 'a', 7, { 'b', { 'c' } }, false }";
  const encoded = await post(server, '/pipeline', [['SET', 'k', 'v'], ['EVAL', script, '0'], ['GET', 'missing']], { 'upstash-encoding': 'base64' });
  assert.equal(encoded.body, [{ result: b64('OK') }, { result: [b64('a'), 7, [b64('b'), [b64('c')]], null] }, { result: null }]);
  const plain = await post(server, '/', ['EVAL', script, '0']);
  assert.equal(plain.body, { result: ['a', 7, ['b', ['c']], null] });
});

test('values are binary safe under base64', async ({ server, raw }) => {
  const bytes = Buffer.from([0, 255, 128, 10, 0xc3, 0x28]);
  await raw.set('bin', bytes);
  const res = await post(server, '/', ['GET', 'bin'], { 'upstash-encoding': 'base64' });
  assert.equal(Buffer.from((res.body as { result: string }).result, 'base64'), bytes);
});

test('replies carry upstash-sync-token and @upstash/redis echoes it', async ({ server }) => {
  const client = new UpstashRedis({ url: server.url, token });
  await client.set('k', 1);
  const first = server.lastSyncToken;
  await client.get('k');
  assert.ok(server.lastSyncToken, 'the client sent a sync token');
  assert.is.not(server.lastSyncToken, first);
  const res = await post(server, '/', ['PING']);
  assert.ok(/^\d+$/.test(res.headers.get('upstash-sync-token') ?? ''));
});

test('a request over the size limit is refused with 413 {error} and runs nothing', async ({ server, raw }) => {
  const res = await post(server, '/', ['SET', 'big', 'x'.repeat(64 * 1024)]);
  assert.is(res.status, 413);
  assert.ok(/max request size/.test((res.body as { error: string }).error));
  assert.is(await raw.exists('big'), 0);
});

test('the allow-key-locking flag: stripped before Redis, and EVALSHA of the flagged SHA hits', async ({ server, raw }) => {
  try {
    await raw.eval(keyLockingScript, 1, 'n');
    assert.unreachable('stock Redis accepts the flag');
  } catch (error) {
    assert.ok(/flag/i.test((error as Error).message), (error as Error).message);
  }
  const flaggedSha = sha1(keyLockingScript);
  assert.ok(/^NOSCRIPT/.test(((await post(server, '/', ['EVALSHA', flaggedSha, '1', 'n'])).body as { error: string }).error));
  assert.equal((await post(server, '/', ['EVAL', keyLockingScript, '1', 'n'])).body, { result: 1 });
  assert.equal((await post(server, '/', ['EVALSHA', flaggedSha, '1', 'n'])).body, { result: 2 });
  assert.equal((await post(server, '/', ['SCRIPT', 'LOAD', keyLockingScript])).body, { result: flaggedSha });
  assert.is(await raw.get('n'), '2');
});

test('@upstash/redis works against it, with and without automaticDeserialization', async ({ server }) => {
  const parsing = new UpstashRedis({ url: server.url, token });
  const verbatim = new UpstashRedis({ url: server.url, token, automaticDeserialization: false, enableAutoPipelining: false });
  await parsing.set('doc', { a: [1, 'é'] });
  assert.equal(await parsing.get('doc'), { a: [1, 'é'] });
  assert.is(await verbatim.get('doc'), '{"a":[1,"é"]}');
  assert.equal(await parsing.eval('return {KEYS[1], ARGV[1], 3}', ['k'], ['12']), ['k', 12, 3]);
  assert.equal(await verbatim.eval('return {KEYS[1], ARGV[1], 3}', ['k'], ['12']), ['k', '12', 3]);
  assert.match((await rejection(verbatim.incr('doc'))).message, /value is not an integer/);
});

test('requests are counted by path', async ({ server }) => {
  const client = new UpstashRedis({ url: server.url, token, enableAutoPipelining: false });
  await client.set('k', 'v');
  await client.pipeline().get('k').get('k').exec();
  await client.multi().get('k').exec();
  assert.equal(server.requests, { '/': 1, '/pipeline': 1, '/multi-exec': 1 });
});

test('fault drop: the command runs, the reply is lost, and the client re-sends it', async ({ server, raw }) => {
  server.inject({ type: 'drop' });
  const client = new UpstashRedis({ url: server.url, token, enableAutoPipelining: false });
  assert.is(await client.incr('n'), 2);
  assert.is(await raw.get('n'), '2');
  assert.equal(server.requests, { '/': 2 });
});

test('fault status: answered without running, with Retry-After when asked', async ({ server, raw }) => {
  server.inject({ type: 'status', status: 429, retryAfterSeconds: 1 });
  server.inject({ type: 'status', status: 503 });
  const limited = await post(server, '/', ['INCR', 'n']);
  assert.is(limited.status, 429);
  assert.is(limited.headers.get('retry-after'), '1');
  assert.equal(limited.body, { error: 'ERR Too Many Requests' });
  assert.is((await post(server, '/', ['INCR', 'n'])).status, 503);
  assert.is(await raw.exists('n'), 0);
  assert.equal((await post(server, '/', ['INCR', 'n'])).body, { result: 1 });
});

test('fault delay: the command runs at once, the answer is held back', async ({ server, raw }) => {
  server.inject({ type: 'delay', ms: 2_000 });
  let answered = false;
  const pending = post(server, '/', ['INCR', 'n']).finally(() => (answered = true));
  while ((await raw.get('n')) === null) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.is(answered, false);
  assert.equal((await pending).body, { result: 1 });
});

test('fault cut: the command runs, the body stops half way and the connection closes', async ({ server, raw }) => {
  server.inject({ type: 'cut' });
  const res = await fetch(server.url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '["SET","k","value"]' });
  assert.is(res.status, 200);
  await rejection(res.text());
  assert.is(await raw.get('k'), 'value');
});

test.run();
