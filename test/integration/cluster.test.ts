/**
 * The store on a real Redis Cluster (3 primaries + 3 replicas, test/support/cluster.ts) with the
 * 'cluster' key schema, including a primary killed under load. Keys are read back from the node
 * that owns them, with plain commands.
 */
import calculateSlot from 'cluster-key-slot';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Cluster } from 'ioredis';
import { createSnapshotStore, keySchemas, RedisError, ValidationError, type PersistResult, type SnapshotInput, type SnapshotStore } from '../../src/index.js';
import { persistLua } from '../../src/lua.generated.js';
import { ownerViolations, startCluster, type RedisCluster } from '../support/cluster.js';
import { FIXTURE, REGIONS, RETENTION_MS } from '../support/faults.js';
import { redisImage } from '../support/redis.js';

const DAY = 86_400_000;
const NOW = Date.now();
const T = Math.floor((NOW - DAY) / 900_000) * 900_000;
const schema = keySchemas.cluster;

function snap(region: string, id: string, timestamp: number, trigger?: string): SnapshotInput {
  const input: SnapshotInput = { region, id, timestamp, payload: { region_id: region, id, generated_at: timestamp } };
  if (trigger !== undefined) input.trigger = trigger;
  return input;
}

/** Counts the pipelines the store opens on `client`, and the script commands it puts in them. */
function spyPipelines(client: Cluster) {
  const counts = { pipelines: 0, evalsha: 0, eval: 0 };
  const pipeline = client.pipeline.bind(client);
  client.pipeline = (commands) => {
    counts.pipelines += 1;
    const p = pipeline(commands);
    const call = p.call.bind(p);
    p.call = (op: string, ...args: unknown[]) => {
      if (op === 'evalsha' || op === 'eval') counts[op] += 1;
      return call(op, ...(args as string[]));
    };
    return p;
  };
  return counts;
}

/** A staged persist cut by a failover may leave a staging key, bounded to 1 s. */
const clusterViolations = (cluster: RedisCluster) => ownerViolations(cluster, REGIONS, { retentionMs: RETENTION_MS, now: NOW, stagingAllowed: true });

/** Resolves once a client on `node` is held by CLIENT PAUSE WRITE (its write command arrived). */
async function waitForPausedWrite(node: { admin: { call(...args: string[]): Promise<unknown> } }): Promise<void> {
  let list = '';
  for (let i = 0; i < 500; i++) {
    list = (await node.admin.call('CLIENT', 'LIST')) as string;
    // A client held by the pause is blocked (flag b) on a write: its script command, or inside
    // MULTI (flag x) on the staging SET.
    if (list.split('\n').some((line) => / flags=x?b /.test(line) && / cmd=(evalsha|eval|exec|set) /.test(line))) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`the batch never reached the paused primary: ${list}`);
}

const test = suite<{ cluster: RedisCluster; client: Cluster; store: SnapshotStore }>(`cluster [${redisImage}]`, 6);

test.before(async (ctx) => {
  ctx.cluster = await startCluster();
  ctx.client = ctx.cluster.client();
  ctx.store = createSnapshotStore({ client: ctx.client, keys: { schema: 'cluster' } });
});

test.after(async ({ cluster }) => {
  await cluster?.stop();
});

test("'worldmonitor-v1' keys with a Cluster client are refused at construction", ({ client }) => {
  for (const keys of [undefined, { schema: 'worldmonitor-v1' as const }]) {
    try {
      createSnapshotStore({ client, ...(keys && { keys }) });
      assert.unreachable('accepted worldmonitor-v1 keys on a Cluster');
    } catch (error) {
      assert.instance(error, ValidationError);
      assert.match((error as ValidationError).message, /by-id key has no region/);
    }
  }
});

test('the 8 regions hash to slots owned by several primaries', async ({ cluster }) => {
  const owners = new Set<number>();
  for (const region of REGIONS) {
    const key = schema.index(region);
    assert.is(await cluster.nodes[0]!.admin.call('CLUSTER', 'KEYSLOT', key), calculateSlot(key), key);
    owners.add((await cluster.primaryFor(key)).port);
  }
  assert.is(owners.size, 3);
});

test('persistMany of 8 regions: one pipeline per primary, each region stored on its own node', async ({ cluster, client, store }) => {
  const counts = spyPipelines(client);
  const results = await store.persistMany(REGIONS.map((r) => snap(r, `${r}-1`, T, 'scheduled_6h')), { now: NOW });
  assert.equal(results, REGIONS.map(() => ({ status: 'fulfilled', value: { status: 'persisted', latestAdvanced: true, pruned: 0 } })));
  // A fresh cluster has no script cached: one EVALSHA pipeline per primary, then one EVAL pipeline.
  assert.equal(counts, { pipelines: 6, evalsha: 8, eval: 8 });
  for (const region of REGIONS) {
    const { admin } = await cluster.primaryFor(schema.index(region));
    assert.is(await admin.get(schema.latest(region)), `${region}-1`);
    assert.equal(await admin.zrange(schema.index(region), 0, -1, 'WITHSCORES'), [`${region}-1`, String(T)]);
    assert.is(await admin.pexpiretime(schema.byId(region, `${region}-1`)), T + RETENTION_MS);
    assert.is(await admin.get(schema.dedup(region, 'scheduled_6h', Math.floor(T / 900_000))), `${region}-1`);
  }
  assert.equal(await clusterViolations(cluster), []);
});

test('persist, readLatest, readById and list on the cluster', async ({ cluster, store }) => {
  assert.is((await store.persist(snap('europe', 'europe-2', T + 60_000), { now: NOW })).status, 'persisted');
  assert.equal(await store.persist(snap('europe', 'europe-0', T - 60_000), { now: NOW }), { status: 'persisted', latestAdvanced: false, pruned: 0 });
  const latest = await store.readLatest('europe', { now: NOW });
  assert.equal(latest, { id: 'europe-2', timestamp: T + 60_000, payload: { region_id: 'europe', id: 'europe-2', generated_at: T + 60_000 } });
  assert.is((await store.readById('europe', 'europe-0', { now: NOW }))?.timestamp, T - 60_000);
  assert.equal(await store.list('europe', { now: NOW }), [
    { id: 'europe-2', timestamp: T + 60_000 },
    { id: 'europe-1', timestamp: T },
    { id: 'europe-0', timestamp: T - 60_000 },
  ]);
  assert.equal(await clusterViolations(cluster), []);
});

test('a custom schema whose keys span slots fails before sending, naming the keys', async ({ cluster, client }) => {
  const crossSlot = { ...schema, byId: (_r: string, id: string) => `by-id:${id}` };
  const store = createSnapshotStore({ client, keys: { schema: crossSlot } });
  const [rejected] = await store.persistMany([snap('latam', 'latam-x', T + 7_000)], { now: NOW });
  assert.is(rejected!.status, 'rejected');
  const error = (rejected as PromiseRejectedResult).reason as ValidationError;
  assert.instance(error, ValidationError);
  assert.is(error.field, 'options.keys.schema');
  assert.match(error.message, `by-id:latam-x, ${schema.latest('latam')}`);
  assert.match(error.message, 'CROSSSLOT');
  try {
    await store.readLatest('latam', { now: NOW });
    assert.unreachable('read across slots');
  } catch (error) {
    assert.instance(error, ValidationError);
  }
  const owner = await cluster.primaryFor(schema.index('latam'));
  assert.is(await owner.admin.get(schema.latest('latam')), 'latam-1');
  assert.is(await owner.admin.exists(schema.timestamp('latam', T + 7_000)), 0);
});

test('failover: a primary killed under load, its replica promoted, persists go on, invariants hold', async ({ cluster, client, store }) => {
  const victim = await cluster.primaryFor(schema.index('mena'));
  const replica = cluster.nodes[cluster.nodes.indexOf(victim) + 3]!;
  // The replica has never loaded the script: after promotion EVALSHA gets NOSCRIPT there.
  assert.equal(await replica.admin.call('SCRIPT', 'EXISTS', persistLua.sha), [0]);
  const counts = spyPipelines(client);
  const acknowledged = new Map<string, string>(); // region -> newest acknowledged id
  const acked: Array<[string, string]> = [];
  const tally = { rounds: 0, attempted: 0, acknowledged: 0, rejected: 0 };
  const window = { attempted: 0, acknowledged: 0 }; // rounds started between the kill and recovery
  let killedAt = 0;
  let promotedAt = 0;
  let recoveredAt = 0;
  const killedRound: string[] = [];
  const promoted = async () => ((await replica.admin.call('ROLE')) as [string])[0] === 'master';

  // Bounded: at most 400 rounds and 60 s; stops 10 clean rounds after the promotion.
  const deadline = Date.now() + 60_000;
  for (let round = 1, clean = 0; round <= 400 && clean < 10 && Date.now() < deadline; round++) {
    const startedAt = Date.now();
    // Newer than anything the earlier tests wrote, so each round moves latest.
    const batch = REGIONS.map((r, i) => {
      const input = snap(r, `${r}-f${round}`, T + 3_600_000 + round * 1000);
      // Half the regions carry a realistic payload (staged), half a small one (inline).
      return i % 2 === 0 ? { ...input, payload: { ...FIXTURE, region_id: r } } : input;
    });
    let results: PromiseSettledResult<PersistResult>[];
    if (round === 5) {
      // The kill hits this round in flight: the victim is paused for writes (CLIENT PAUSE), so its
      // share of the batch waits there unanswered, and dies with it without having run.
      await victim.admin.call('CLIENT', 'PAUSE', '10000', 'WRITE');
      let settled = false;
      const inFlight = store.persistMany(batch, { now: NOW }).finally(() => (settled = true));
      await waitForPausedWrite(victim);
      // Held by the pause (10 s) until the kill: the victim can answer none of it before it dies.
      assert.not.ok(settled, 'persistMany was in flight when the primary was killed');
      killedAt = Date.now();
      await cluster.kill(victim);
      results = await inFlight;
      // Its regions on the victim never ran there: after the failover they are persisted afresh
      // (never replayed), or rejected once the retries ran out; the other regions are persisted.
      results.forEach((result, i) => {
        if (result.status === 'fulfilled') killedRound.push(`${REGIONS[i]}: ${result.value.status}`);
        else killedRound.push(`${REGIONS[i]}: rejected`);
      });
    } else {
      results = await store.persistMany(batch, { now: NOW });
    }
    const inWindow = killedAt > 0 && recoveredAt === 0;
    tally.rounds += 1;
    tally.attempted += batch.length;
    if (inWindow) window.attempted += batch.length;
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') {
        assert.is((result.value as PersistResult).status, 'persisted');
        tally.acknowledged += 1;
        if (inWindow) window.acknowledged += 1;
        acknowledged.set(REGIONS[i]!, batch[i]!.id);
        acked.push([REGIONS[i]!, batch[i]!.id]);
      } else {
        tally.rejected += 1;
        // Only transient failures, typed, after the retries ran out.
        assert.instance(result.reason, RedisError);
        assert.ok((result.reason as RedisError).transient, (result.reason as Error).message);
      }
    });
    if (killedAt && !promotedAt && (await promoted())) promotedAt = Date.now();
    if (promotedAt && results.every((r) => r.status === 'fulfilled')) {
      recoveredAt ||= startedAt >= promotedAt ? Date.now() : 0;
      clean += 1;
    }
  }
  assert.ok(promotedAt > 0, 'the replica was never promoted');
  const victimRegions = new Set<string>();
  for (const region of REGIONS) if ((await cluster.primaryFor(schema.index(region))) === replica) victimRegions.add(region);
  assert.ok(victimRegions.size > 0, 'the victim owned some regions');
  // Exact: the other primaries' regions persisted; the victim's ran nowhere before the kill, so they
  // are persisted after the failover or rejected (transient, retries exhausted), never replayed.
  killedRound.forEach((line, i) => {
    const allowed = victimRegions.has(REGIONS[i]!) ? [`${REGIONS[i]}: persisted`, `${REGIONS[i]}: rejected`] : [`${REGIONS[i]}: persisted`];
    assert.ok(allowed.includes(line), `the round in flight at the kill: ${line}`);
  });
  assert.ok(recoveredAt > 0, 'persists never all succeeded after the promotion');
  assert.is(await cluster.primaryFor(schema.index('mena')), replica);

  // NOSCRIPT on the promoted node was answered by an EVAL fallback.
  const stats = (await replica.admin.info('all')) as string;
  const noscript = Number(/errorstat_NOSCRIPT:count=(\d+)/.exec(stats)?.[1] ?? 0);
  assert.ok(noscript > 0, 'no NOSCRIPT on the promoted node');
  assert.match(stats, /cmdstat_eval:calls=\d+/);
  assert.equal(await replica.admin.call('SCRIPT', 'EXISTS', persistLua.sha), [1]);

  // Every region reads back its newest acknowledged snapshot, and the invariants hold everywhere.
  for (const region of REGIONS) assert.is((await store.readLatest(region, { now: NOW }))?.id, acknowledged.get(region));
  const found = await clusterViolations(cluster);
  assert.equal(found, []);

  // Acknowledged by the old primary but never replicated: what asynchronous replication can lose.
  let lost = 0;
  for (const [region, id] of acked) {
    const owner = await cluster.primaryFor(schema.index(region));
    if ((await owner.admin.zscore(schema.index(region), id)) === null) lost += 1;
  }
  console.log(
    `failover [${redisImage}]: kill -> promoted ${promotedAt - killedAt} ms, kill -> all persists succeeding ${recoveredAt - killedAt} ms; ` +
      `in that window persists attempted ${window.attempted}, acknowledged ${window.acknowledged}; ` +
      `the round in flight at the kill: ${killedRound.join(', ')}; overall ${tally.rounds} rounds, persists attempted ${tally.attempted}, acknowledged ${tally.acknowledged}, rejected ${tally.rejected}; ` +
      `script commands sent ${counts.evalsha} EVALSHA + ${counts.eval} EVAL, of which NOSCRIPT fallbacks ${noscript}, ` +
      `retries ${counts.evalsha + counts.eval - tally.attempted - noscript}; acknowledged then lost ${lost}; violations ${found.length}`,
  );
});

test.run();
