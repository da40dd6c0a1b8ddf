import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis, type RedisOptions } from 'ioredis';
import { createSnapshotStore, RedisError, type SnapshotInput } from '../../src/index.js';
import { persistLua } from '../../src/lua.generated.js';
import { RETENTION_MS, restoreKeyspace, sameKeyspace, snapshotOf, awaitClients, type Keyspace } from '../support/faults.js';
import { dumpKeyspace, violations } from '../support/keyspace.js';
import { legacyPersist, legacyPipeline } from '../support/legacy.js';
import { TcpProxy } from '../support/proxy.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const test = suite('cut at every byte', 6);

const NOW = Date.now();
const OLD = NOW - 7_200_000;
const NEW = NOW - 3_600_000;
const BATCH = ['mena', 'europe', 'latam'];
// The dedup claim and legacy keys expire relative to the moment they are written: the same
// state written a few seconds later differs by that much. Far below any expiry we compare.
const SLACK_MS = 600_000;

let redis: RedisServer;
let proxy: TcpProxy;
let admin: Redis;

test.before(async () => {
  redis = await startRedis();
  proxy = await TcpProxy.start(redis.port);
  admin = redis.client();
  // The sweep cuts EVALSHA requests; the NOSCRIPT → EVAL fallback has its own tests.
  await admin.script('LOAD', persistLua.text);
});

test.after(async () => {
  await proxy?.close();
  await redis?.stop();
});

/** A client through the proxy whose handshake is over; by default it never reconnects. */
async function connectThroughProxy(options: RedisOptions = { retryStrategy: () => null, enableOfflineQueue: false }): Promise<Redis> {
  const client = new Redis(proxy.port, '127.0.0.1', { lazyConnect: true, ...options });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The before-state: an older snapshot in each region, and a `live` key the new one must delete. */
async function seed(regions: readonly string[], legacy = false): Promise<Keyspace> {
  await admin.flushall();
  const store = createSnapshotStore({ client: admin });
  for (const region of regions) {
    const old = snapshotOf(region, `${region}-old`, OLD, 1024, 'scheduled_6h');
    if (legacy) await legacyPersist(admin, { ...old, trigger: 'scheduled_6h', payload: JSON.stringify(old.payload) }, NOW);
    else await store.persist(old, { now: NOW });
    await admin.set(`intelligence:snapshot:v1:${region}:live`, 'on');
  }
  return dumpKeyspace(admin);
}

const fresh = (region: string): SnapshotInput => snapshotOf(region, `${region}-new`, NEW, 1024, 'scheduled_6h');

interface Offset {
  k: number;
  state: Keyspace;
  /** What `send` threw, if it did. */
  error: unknown;
}

/**
 * Sends once uncut (the request's length in bytes and the after-state), then once per offset
 * k = 0…length, cutting the connection after k bytes, each time from `before`. `check` sees each
 * offset's keyspace once Redis has closed the cut connection (and so run whatever reached it).
 */
async function sweep(before: Keyspace, send: (client: Redis) => Promise<unknown>, check: (offset: Offset, after: Keyspace) => Promise<void>): Promise<number> {
  const once = async (cut: number | undefined) => {
    proxy.cutAfter(undefined);
    await restoreKeyspace(admin, before);
    const client = await connectThroughProxy();
    proxy.resetCounters();
    proxy.cutAfter(cut);
    const error = await send(client).then(() => undefined, (e: unknown) => e ?? new Error('rejected'));
    client.disconnect();
    await awaitClients(admin, 1);
    return { bytes: proxy.bytesUp, state: await dumpKeyspace(admin), error };
  };
  const full = await once(undefined);
  assert.is(full.error, undefined, 'the uncut request succeeds');
  assert.not.ok(sameKeyspace(full.state, before, SLACK_MS), 'the request changes the keyspace');
  for (let k = 0; k <= full.bytes; k++) {
    const { state, error } = await once(k);
    await check({ k, state, error }, full.state);
  }
  return full.bytes + 1;
}

/** A staged payload not yet renamed into place: not part of the region's state, it expires on its own. */
const isStaging = (key: string) => key.endsWith(':staging');

/** Which of `before` and `after` the keys of `region` (staging keys aside) are in, or 'partial'. */
function stateOf(region: string | undefined, state: Keyspace, before: Keyspace, after: Keyspace): 'before' | 'after' | 'partial' {
  const within = (key: string) => !isStaging(key) && (region === undefined || key.includes(region));
  if (sameKeyspace(state, before, SLACK_MS, within)) return 'before';
  if (sameKeyspace(state, after, SLACK_MS, within)) return 'after';
  return 'partial';
}

function assertTransient(error: unknown, k: number): void {
  assert.instance(error, RedisError, `offset ${k}: ${String(error)}`);
  assert.ok((error as RedisError).transient, `offset ${k}: a cut is transient`);
}

/**
 * Sweeps one persist of `mena` and checks every offset: a RedisError, the before- or after-state,
 * no violation. Returns the counts it prints.
 */
async function sweepPersist(label: string, options: { stagePayloadsFrom?: number; flushScripts?: boolean } = {}) {
  const before = await seed(['mena']);
  let partial = 0;
  let after = 0;
  let staging = 0;
  const offsets = await sweep(
    before,
    async (client) => {
      if (options.flushScripts) await admin.script('FLUSH');
      const { stagePayloadsFrom } = options;
      return createSnapshotStore({ client, retry: false, ...(stagePayloadsFrom === undefined ? {} : { stagePayloadsFrom }) }).persist(fresh('mena'), { now: NOW });
    },
    async ({ k, state, error }, afterState) => {
      assertTransient(error, k);
      const found = stateOf(undefined, state, before, afterState);
      if (found === 'partial') partial++;
      if (found === 'after') after++;
      for (const [key, entry] of state) {
        if (!isStaging(key)) continue;
        staging++;
        const expiresIn = Number(entry.split(' @')[1]) - Date.now();
        assert.ok(expiresIn <= 1_000, `offset ${k}: ${key} expires in ${expiresIn} ms`);
      }
      assert.equal(await violations(admin, { regions: ['mena'], now: NOW, retentionMs: RETENTION_MS }), [], `offset ${k}`);
    },
  );
  console.log(`cut sweep, ${label}: ${offsets} offsets, ${partial} partial states, ${after} after-states (the reply was lost), ${staging} left a staging key`);
  assert.is(partial, 0);
  return { after, staging };
}

test('persist: every cut leaves the before-state or the after-state', async () => {
  const { after, staging } = await sweepPersist('persist');
  assert.is(after, 1, 'only a cut after the last byte lets the script run');
  assert.is(staging, 0);
});

test('staged persist (MULTI, SET staging key, EVALSHA, EXEC): every cut leaves before or after', async () => {
  const { after, staging } = await sweepPersist('staged persist', { stagePayloadsFrom: 0 });
  assert.is(after, 1, 'only a cut after EXEC lets the transaction run');
  assert.is(staging, 0);
});

test('staged persist with an empty script cache (NOSCRIPT inside EXEC, then EVAL): before or after', async () => {
  await sweepPersist('staged persist, NOSCRIPT fallback', { stagePayloadsFrom: 0, flushScripts: true });
  await admin.script('LOAD', persistLua.text);
});

test('persistMany of 3 regions: every cut leaves each region before or after', async () => {
  const before = await seed(BATCH);
  let partial = 0;
  let mixed = 0;
  const offsets = await sweep(
    before,
    async (client) => {
      const settled = await createSnapshotStore({ client, retry: false }).persistMany(BATCH.map(fresh), { now: NOW });
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
    },
    async ({ k, state, error }, afterState) => {
      assertTransient(error, k);
      const states = BATCH.map((region) => stateOf(region, state, before, afterState));
      partial += states.filter((s) => s === 'partial').length;
      if (new Set(states).size > 1) mixed++;
      assert.equal(await violations(admin, { regions: BATCH, now: NOW, retentionMs: RETENTION_MS }), [], `offset ${k}`);
    },
  );
  console.log(`cut sweep, persistMany x3: ${offsets} offsets, ${partial} partial region states, ${mixed} offsets with some regions written and others not`);
  assert.is(partial, 0);
});

test('legacy pipeline: cuts leave partial states', async () => {
  const before = await seed(['mena'], true);
  const s = { ...fresh('mena'), payload: JSON.stringify(fresh('mena').payload) };
  let partial = 0;
  const offsets = await sweep(
    before,
    async (client) => {
      for (const [error] of (await legacyPipeline(client, s, NOW).exec()) ?? []) if (error) throw error;
    },
    async ({ state }, afterState) => {
      if (stateOf(undefined, state, before, afterState) === 'partial') partial++;
    },
  );
  console.log(`cut sweep, legacy pipeline: ${offsets} offsets, ${partial} partial states`);
  assert.ok(partial > 0, 'the legacy pipeline is not atomic');
});

test('persist with retries: a cut anywhere ends persisted or replayed, in the after-state', async () => {
  const before = await seed(['mena']);
  const after = await (async () => {
    await createSnapshotStore({ client: admin }).persist(fresh('mena'), { now: NOW });
    return dumpKeyspace(admin);
  })();
  proxy.cutAfter(undefined);
  const probe = await connectThroughProxy();
  proxy.resetCounters();
  await createSnapshotStore({ client: probe }).persist(fresh('mena'), { now: NOW });
  const length = proxy.bytesUp;
  probe.disconnect();
  for (const k of [0, 1, Math.floor(length / 2), length - 1, length]) {
    proxy.cutAfter(undefined);
    await restoreKeyspace(admin, before);
    // An ordinary client: reconnects, re-sends what was unanswered. The cut happens once.
    const client = await connectThroughProxy({ retryStrategy: () => 10 });
    client.once('close', () => proxy.cutAfter(undefined));
    proxy.cutAfter(k);
    const result = await createSnapshotStore({ client, retry: { baseDelayMs: 10 } }).persist(fresh('mena'), { now: NOW });
    client.disconnect();
    assert.ok(result.status === 'persisted' || result.status === 'replayed', `offset ${k}: ${result.status}`);
    assert.ok(sameKeyspace(await dumpKeyspace(admin), after, SLACK_MS), `offset ${k}: after-state`);
    assert.equal(await violations(admin, { regions: ['mena'], now: NOW, retentionMs: RETENTION_MS }), [], `offset ${k}`);
  }
});

test.run();
