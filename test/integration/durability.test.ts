/**
 * The `durability` option against a real primary with a real replica (two containers): WAIT on
 * the persist's own connection, `durable` true while the replica acknowledges, false (and still
 * stored) while it is stopped, replays that wait again, one WAIT per batch, WAITAOF where the
 * server has it and a typed error before any write where it does not, Upstash refused.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis as IoRedis, type Redis } from 'ioredis';
import { Redis as Upstash } from '@upstash/redis';
import { createSnapshotStore, keySchemas, RedisError, ValidationError, type SnapshotInput, type SnapshotStoreOptions } from '../../src/index.js';
import { FIXTURE, REGIONS, RETENTION_MS, sleep } from '../support/faults.js';
import { violations } from '../support/keyspace.js';
import { redisImage, startRedis, type RedisServer } from '../support/redis.js';

const DAY = 86_400_000;
const NOW = Date.now();
const T = Math.floor((NOW - DAY) / 900_000) * 900_000;
const schema = keySchemas['worldmonitor-v1'];
const docker = (...args: string[]) => promisify(execFile)('docker', args);

/** Small payloads unless `large`: the case where a replay would otherwise write nothing. */
function snap(region: string, id: string, timestamp: number, large = false): SnapshotInput {
  return { region, id, timestamp, payload: large ? { ...FIXTURE, region_id: region, id } : { region_id: region, id, generated_at: timestamp } };
}

/** The keys a persisted snapshot must have, read on `admin` (primary or replica). */
async function stored(admin: Redis, region: string, id: string, timestamp: number): Promise<boolean> {
  const [byId, ts, score] = await Promise.all([admin.exists(schema.byId(region, id)), admin.exists(schema.timestamp(region, timestamp)), admin.zscore(schema.index(region), id)]);
  return byId === 1 && ts === 1 && score === String(timestamp);
}

/** Counts the commands the store puts in each pipeline it opens on `client`, by name. */
function spyPipelines(client: Redis) {
  const pipelines: string[][] = [];
  const pipeline = client.pipeline.bind(client);
  client.pipeline = (commands) => {
    const names: string[] = [];
    pipelines.push(names);
    const p = pipeline(commands);
    const call = p.call.bind(p);
    p.call = (op: string, ...args: unknown[]) => {
      names.push(op.toUpperCase());
      return call(op, ...(args as string[]));
    };
    return p;
  };
  return pipelines;
}

const options = suite('durability options', 5);

options('@upstash/redis with durability is refused at construction, before any request', () => {
  let requests = 0;
  const client = new Upstash({ url: 'http://127.0.0.1:9', token: 't', fetch: (async () => { requests += 1; throw new Error('no request expected'); }) as never } as never);
  try {
    createSnapshotStore({ client, durability: { replicas: 1, timeoutMs: 100 } });
    assert.unreachable('accepted durability on Upstash');
  } catch (error) {
    assert.instance(error, ValidationError);
    assert.is((error as ValidationError).field, 'options.durability');
    assert.match((error as Error).message, /no WAIT over REST/);
  }
  assert.is(requests, 0);
});

/** A client whose server is never there: construction needs none, and a batch fails at once. */
const offline = () => new IoRedis(1, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 }).on('error', () => {});

function refusedField(extra: Partial<SnapshotStoreOptions>): string | undefined {
  try {
    createSnapshotStore({ client: offline(), ...extra });
  } catch (error) {
    if (error instanceof ValidationError) return error.field;
    throw error;
  }
  return undefined;
}

options('replicas, timeoutMs and aof are checked; 0 ms (wait forever) is refused', () => {
  assert.is(refusedField({ durability: { replicas: 1, timeoutMs: 0 } }), 'options.durability.timeoutMs');
  assert.is(refusedField({ durability: { replicas: 0, timeoutMs: 10 } }), 'options.durability.replicas');
  assert.is(refusedField({ durability: { replicas: 1.5, timeoutMs: 10 } }), 'options.durability.replicas');
  assert.is(refusedField({ durability: { replicas: 1, timeoutMs: 10, aof: 'yes' as never } }), 'options.durability.aof');
  assert.is(refusedField({ durability: { replicas: 1 } as never }), 'options.durability.timeoutMs');
  assert.is(refusedField({ durability: { replicas: 1, timeoutMs: 10, fsync: true } as never }), 'options.durability');
  assert.is(refusedField({ durability: null as never }), 'options.durability');
  assert.is(refusedField({ durability: { replicas: 0, timeoutMs: 10, aof: true } }), undefined);
  assert.is(refusedField({ durability: { replicas: 2, timeoutMs: 10 } }), undefined);
});

options('stagePayloadsFrom with durability is refused: durability stages every payload', () => {
  assert.is(refusedField({ durability: { replicas: 1, timeoutMs: 10 }, stagePayloadsFrom: Infinity }), 'options.stagePayloadsFrom');
  assert.is(refusedField({ durability: { replicas: 1, timeoutMs: 10 }, stagePayloadsFrom: 4096 }), 'options.stagePayloadsFrom');
});

options('one WAIT at the end of each pipeline, after every script call of the batch', async () => {
  const client = offline();
  const pipelines = spyPipelines(client);
  // No server: the batch fails, but the pipeline it built is the one that would go out.
  const store = createSnapshotStore({ client, retry: false, durability: { replicas: 1, timeoutMs: 10 } });
  await client.connect().catch(() => {});
  await store.persistMany(REGIONS.map((r) => snap(r, `${r}-1`, T)), { now: NOW });
  assert.is(pipelines.length, 1);
  const names = pipelines[0]!;
  assert.is(names.filter((n) => n === 'WAIT').length, 1);
  assert.is(names.at(-1), 'WAIT');
  // Every payload staged, small ones too: MULTI, SET, EVALSHA, EXEC per snapshot.
  assert.equal(names.slice(0, -1), REGIONS.flatMap(() => ['MULTI', 'SET', 'EVALSHA', 'EXEC']));
  client.disconnect();
});

options('without durability, no WAIT and no durable field', async () => {
  const client = offline();
  const pipelines = spyPipelines(client);
  const store = createSnapshotStore({ client, retry: false });
  await client.connect().catch(() => {});
  await store.persistMany(REGIONS.map((r) => snap(r, `${r}-1`, T)), { now: NOW });
  assert.is(pipelines.length, 1);
  assert.not.ok(pipelines[0]!.includes('WAIT'));
  client.disconnect();
});

options.run();

const test = suite<{ primary: RedisServer; replica: RedisServer; admin: Redis; replicaAdmin: Redis }>(`durability, primary + replica [${redisImage}]`, 7);

test.before(async (ctx) => {
  ctx.primary = await startRedis();
  ctx.replica = await startRedis(['--replicaof', '127.0.0.1', String(ctx.primary.port)]);
  ctx.admin = ctx.primary.client();
  ctx.replicaAdmin = ctx.replica.client();
  await untilSynced(ctx.replicaAdmin);
});

test.after(async ({ primary, replica }) => {
  if (replica) await docker('kill', '-s', 'CONT', replica.container.getId()).catch(() => {}); // if a test left it stopped
  await replica?.stop();
  await primary?.stop();
});

test.before.each(async ({ primary, replicaAdmin }) => {
  await primary.fresh();
  await untilSynced(replicaAdmin);
});

async function untilSynced(replicaAdmin: Redis): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await replicaAdmin.info('replication')).includes('master_link_status:up')) return;
    await sleep(100);
  }
  throw new Error('the replica never synced');
}

/** SIGSTOP the replica's server: it neither reads the replication stream nor acknowledges. */
const stop = (server: RedisServer) => docker('kill', '-s', 'STOP', server.container.getId());
const resume = (server: RedisServer) => docker('kill', '-s', 'CONT', server.container.getId());

test('without the option results are exactly as before: no durable field', async ({ primary }) => {
  const store = createSnapshotStore({ client: primary.client() });
  assert.equal(await store.persist(snap('mena', 'm-1', T), { now: NOW }), { status: 'persisted', latestAdvanced: true, pruned: 0 });
});

test('replica up: persist resolves durable: true and the replica holds every key when it does', async ({ primary, replicaAdmin }) => {
  const store = createSnapshotStore({ client: primary.client(), durability: { replicas: 1, timeoutMs: 5_000 } });
  for (const [id, large] of [['m-1', false], ['m-2', true]] as const) {
    const t = T + (id === 'm-2' ? 1000 : 0);
    assert.equal(await store.persist(snap('mena', id, t, large), { now: NOW }), { status: 'persisted', latestAdvanced: true, pruned: 0, durable: true });
    // Read on the replica at once: WAIT said it acknowledged the write.
    assert.ok(await stored(replicaAdmin, 'mena', id, t), `${id} not on the replica`);
    assert.is(await replicaAdmin.get(schema.latest('mena')), id);
  }
  assert.equal(await violations(replicaAdmin, { regions: ['mena'], now: NOW, retentionMs: RETENTION_MS }), []);
});

test('persistMany: one WAIT for the whole batch, every result durable, every region on the replica', async ({ primary, admin, replicaAdmin }) => {
  const client = primary.client();
  const store = createSnapshotStore({ client, durability: { replicas: 1, timeoutMs: 5_000 } });
  await store.persist(snap('global', 'warm', T - 1), { now: NOW }); // loads the script: one try below
  const before = Number(/cmdstat_wait:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
  const results = await store.persistMany(REGIONS.map((r, i) => snap(r, `${r}-1`, T, i % 2 === 0)), { now: NOW });
  assert.equal(results, REGIONS.map(() => ({ status: 'fulfilled', value: { status: 'persisted', latestAdvanced: true, pruned: 0, durable: true } })));
  const after = Number(/cmdstat_wait:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1]);
  assert.is(after - before, 1);
  for (const r of REGIONS) assert.ok(await stored(replicaAdmin, r, `${r}-1`, T), r);
  assert.equal(await violations(replicaAdmin, { regions: REGIONS, now: NOW, retentionMs: RETENTION_MS }), []);
});

test('replica stopped: durable: false within timeoutMs, never a rejection, the data on the primary; a retry replays', async ({ primary, replica, admin, replicaAdmin }) => {
  const store = createSnapshotStore({ client: primary.client(), durability: { replicas: 1, timeoutMs: 200 } });
  await stop(replica);
  try {
    const first = await store.persist(snap('mena', 'm-1', T, true), { now: NOW });
    assert.equal(first, { status: 'persisted', latestAdvanced: true, pruned: 0, durable: false });
    assert.ok(await stored(admin, 'mena', 'm-1', T));
    assert.is(await admin.get(schema.latest('mena')), 'm-1');
    const many = await store.persistMany([snap('europe', 'e-1', T), snap('latam', 'l-1', T, true)], { now: NOW });
    assert.equal(many.map((r) => r.status === 'fulfilled' && r.value), [
      { status: 'persisted', latestAdvanced: true, pruned: 0, durable: false },
      { status: 'persisted', latestAdvanced: true, pruned: 0, durable: false },
    ]);
    assert.equal(await store.persist(snap('mena', 'm-1', T, true), { now: NOW }), { status: 'replayed', latestAdvanced: false, pruned: 0, durable: false });
  } finally {
    await resume(replica);
  }
  // Once the replica is back, the same retry replays and is confirmed; the replica has it all.
  assert.equal(await store.persist(snap('mena', 'm-1', T, true), { now: NOW }), { status: 'replayed', latestAdvanced: false, pruned: 0, durable: true });
  assert.ok(await stored(replicaAdmin, 'mena', 'm-1', T));
  assert.equal(await violations(admin, { regions: ['mena', 'europe', 'latam'], now: NOW, retentionMs: RETENTION_MS }), []);
});

test('a replay on a new connection is not confirmed by writes that connection never made', async ({ primary, replica, admin }) => {
  // WAIT covers the writes of its own connection. A replay that wrote nothing on a fresh
  // connection would be "confirmed" at once while the copy it found has not reached the replica.
  await stop(replica);
  try {
    const first = createSnapshotStore({ client: primary.client(), durability: { replicas: 1, timeoutMs: 200 } });
    assert.equal((await first.persist(snap('mena', 'm-1', T), { now: NOW })).durable, false);
    const other = createSnapshotStore({ client: primary.client(), durability: { replicas: 1, timeoutMs: 200 } });
    assert.equal(await other.persist(snap('mena', 'm-1', T), { now: NOW }), { status: 'replayed', latestAdvanced: false, pruned: 0, durable: false });
    assert.ok(await stored(admin, 'mena', 'm-1', T));
  } finally {
    await resume(replica);
  }
});

test('replicas: 2 with one replica: durable: false after timeoutMs, stored', async ({ primary, admin }) => {
  const store = createSnapshotStore({ client: primary.client(), durability: { replicas: 2, timeoutMs: 100 } });
  assert.equal(await store.persist(snap('south-asia', 's-1', T), { now: NOW }), { status: 'persisted', latestAdvanced: true, pruned: 0, durable: false });
  assert.ok(await stored(admin, 'south-asia', 's-1', T));
});

test('aof: WAITAOF where the server has it (and an AOF); a typed error before any write where not', async ({ primary, admin, replicaAdmin }) => {
  const store = createSnapshotStore({ client: primary.client(), durability: { replicas: 1, timeoutMs: 5_000, aof: true } });
  const hasWaitAof = ((await admin.call('COMMAND', 'INFO', 'WAITAOF')) as unknown[])[0] !== null;
  const refused = async (reason: RegExp) => {
    try {
      await store.persist(snap('mena', 'm-1', T), { now: NOW });
      assert.unreachable('persisted without a way to confirm the AOF');
    } catch (error) {
      assert.instance(error, RedisError);
      assert.is((error as RedisError).code, 'DURABILITY_UNSUPPORTED');
      assert.not.ok((error as RedisError).transient);
      assert.match((error as Error).message, reason);
    }
    assert.equal(await admin.keys('*'), []);
    const [settled] = await store.persistMany([snap('mena', 'm-1', T)], { now: NOW });
    assert.is(settled!.status, 'rejected');
    assert.is(((settled as PromiseRejectedResult).reason as RedisError).code, 'DURABILITY_UNSUPPORTED');
    assert.equal(await admin.keys('*'), []);
  };
  if (!hasWaitAof) {
    await refused(/no WAITAOF \(Redis >= 7\.2 has it\); nothing was written/);
    return;
  }
  await refused(/without an AOF \(appendonly no\); nothing was written/);
  await Promise.all([admin.config('SET', 'appendonly', 'yes'), replicaAdmin.config('SET', 'appendonly', 'yes')]);
  try {
    for (let i = 0; i < 100 && /aof_rewrite_in_progress:1|aof_rewrite_scheduled:1/.test((await admin.info('persistence')) + (await replicaAdmin.info('persistence'))); i++) await sleep(100);
    assert.equal(await store.persist(snap('mena', 'm-1', T), { now: NOW }), { status: 'persisted', latestAdvanced: true, pruned: 0, durable: true });
  } finally {
    await Promise.all([admin.config('SET', 'appendonly', 'no'), replicaAdmin.config('SET', 'appendonly', 'no')]);
  }
});

test.run();
