import { once } from 'node:events';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Redis } from 'ioredis';
import { createSnapshotStore, RedisError, type RetryPolicy, type SnapshotStore } from '../../src/index.js';
import { RETENTION_MS, sameKeyspace, sleep, snapshotOf } from '../support/faults.js';
import { checkInvariants } from '../support/checker.js';
import { dumpKeyspace } from '../support/keyspace.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const test = suite('server-side failures', 6);

const NOW = Date.now();
/** Retries spread over about a second: longer than the faults below last once they are lifted. */
const PATIENT: Partial<RetryPolicy> = { attempts: 20, baseDelayMs: 10, maxDelayMs: 100 };

let redis: RedisServer;
let admin: Redis;

test.before(async () => {
  // DEBUG POPULATE / RELOAD provoke LOADING; a script running past 100 ms makes Redis answer BUSY.
  redis = await startRedis(['--enable-debug-command', 'yes', '--busy-reply-threshold', '100']);
  admin = redis.client();
});

test.after(async () => {
  await redis?.stop();
});

// One dedup bucket per snapshot, so that none is a duplicate of another.
const fresh = (n: number) => snapshotOf('mena', `mena-${n}`, NOW - 3_600_000 + n, 1024, `trigger-${n}`);

/** A keyspace holding one persisted snapshot of `mena`. */
async function seed(store: SnapshotStore): Promise<Map<string, string>> {
  await admin.flushall();
  await store.persist(fresh(0), { now: NOW });
  return dumpKeyspace(admin);
}

async function assertConsistent(): Promise<void> {
  assert.equal(await checkInvariants(admin, { retentionMs: RETENTION_MS, now: NOW }), []);
}

/** The error a persist rejected with, checked to be a RedisError that carries no payload. */
async function failure(store: SnapshotStore, n: number): Promise<RedisError> {
  const error = await store.persist(fresh(n), { now: NOW }).then(
    () => assert.unreachable('persist succeeded'),
    (e: unknown) => e,
  );
  assert.instance(error, RedisError);
  assert.not.match((error as RedisError).message, 'region_id');
  return error as RedisError;
}

async function errorCount(reply: string): Promise<number> {
  return Number(new RegExp(`errorstat_${reply}:count=(\\d+)`).exec(await admin.info('errorstats'))?.[1] ?? 0);
}

test('maxmemory exhausted: OOM is a typed error and nothing is written', async () => {
  const store = createSnapshotStore({ client: admin });
  await seed(store);
  const filler = admin.pipeline();
  for (let i = 0; i < 100; i++) filler.set(`filler:${i}`, 'x'.repeat(10_000));
  await filler.exec();
  const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
  // Below what is used, with the default noeviction policy: every write command is refused.
  await admin.config('SET', 'maxmemory', String(used - 500_000));
  try {
    const before = await dumpKeyspace(admin);
    const error = await failure(store, 1);
    assert.is(error.code, 'OOM');
    assert.is(error.transient, false);
    assert.equal(await dumpKeyspace(admin), before);
  } finally {
    await admin.config('SET', 'maxmemory', '0');
  }
  assert.is((await store.persist(fresh(1), { now: NOW })).status, 'persisted');
  await assertConsistent();
});

/** Starts a foreign read-only script that spins until SCRIPT KILL; resolves once Redis answers BUSY. */
async function spinForeignScript(): Promise<() => Promise<void>> {
  const foreign = redis.client();
  await foreign.ping();
  const spinning = foreign.eval('while true do end', 0).catch(() => {});
  while (!(await admin.ping().then(() => false, (e: Error) => e.message.startsWith('BUSY')))) await sleep(10);
  return async () => {
    await admin.script('KILL');
    await spinning;
    foreign.disconnect();
  };
}

test('BUSY without retries: a transient typed error, nothing written', async () => {
  const store = createSnapshotStore({ client: admin, retry: false });
  const before = await seed(store);
  const stop = await spinForeignScript();
  let error: RedisError;
  try {
    error = await failure(store, 1);
  } finally {
    await stop();
  }
  assert.is(error.code, 'BUSY');
  assert.ok(error.transient);
  assert.equal(await dumpKeyspace(admin), before);
});

test('BUSY with retries: persisted once the foreign script is killed', async () => {
  const store = createSnapshotStore({ client: admin, retry: PATIENT });
  await seed(store);
  const busyBefore = await errorCount('BUSY');
  const stop = await spinForeignScript();
  const persisting = store.persist(fresh(1), { now: NOW });
  await sleep(50);
  await stop();
  assert.is((await persisting).status, 'persisted');
  assert.ok((await errorCount('BUSY')) > busyBefore + 1, 'the persist was answered BUSY first');
  await assertConsistent();
});

/**
 * Runs `during` while Redis reloads a dataset large enough to take a moment (in db 1, out of the
 * way of the checks), starting once Redis is answering LOADING.
 */
async function whileLoading<T>(during: () => Promise<T>): Promise<T> {
  const loader = redis.client({ db: 1 });
  await loader.call('DEBUG', 'POPULATE', '300000', 'filler', '100');
  const reloading = loader.call('DEBUG', 'RELOAD');
  // INFO is served while loading; it waits while the RDB is being saved.
  while (!/loading:1/.test(await admin.info('persistence'))) await sleep(1);
  try {
    return await during();
  } finally {
    await reloading;
    await loader.flushdb();
    loader.disconnect();
  }
}

test('LOADING without retries: a transient typed error, nothing written', async () => {
  const store = createSnapshotStore({ client: admin, retry: false });
  const before = await seed(store);
  const error = await whileLoading(() => failure(store, 1));
  assert.is(error.code, 'LOADING');
  assert.ok(error.transient);
  assert.equal(await dumpKeyspace(admin), before);
});

test('LOADING with retries: persisted once loading is over', async () => {
  const store = createSnapshotStore({ client: admin, retry: PATIENT });
  await seed(store);
  const loadingBefore = await errorCount('LOADING');
  const result = await whileLoading(() => store.persist(fresh(1), { now: NOW }));
  assert.is(result.status, 'persisted');
  assert.ok((await errorCount('LOADING')) > loadingBefore, 'the persist was answered LOADING first');
  await assertConsistent();
});

test('connection refused: a transient typed error after retries, persisted once the server is back', async () => {
  const durable = await startRedis(['--appendonly', 'yes']);
  try {
    // Fails fast while disconnected instead of queueing; reconnects every 50 ms.
    const client = durable.client({ enableOfflineQueue: false, retryStrategy: () => 50 });
    const direct = durable.client();
    const store = createSnapshotStore({ client, retry: { attempts: 3, baseDelayMs: 10 } });
    await store.persist(fresh(0), { now: NOW });
    const before = await dumpKeyspace(direct);
    const closed = once(client, 'close');
    await durable.kill();
    await closed;
    const error = await failure(store, 1);
    assert.ok(error.transient, error.code);
    await durable.start();
    assert.ok(sameKeyspace(await dumpKeyspace(direct), before, 0), 'nothing was written while the server was down');
    const retrying = createSnapshotStore({ client, retry: { attempts: 10, baseDelayMs: 100, maxDelayMs: 1_000 } });
    assert.is((await retrying.persist(fresh(1), { now: NOW })).status, 'persisted');
    assert.equal(await checkInvariants(direct, { retentionMs: RETENTION_MS, now: NOW }), []);
  } finally {
    await durable.stop();
  }
});

test.run();
