/**
 * Live resharding of a 3 + 3 Redis Cluster: the slots of several regions moved between primaries
 * the way redis-cli does it (SETSLOT IMPORTING on the target, SETSLOT MIGRATING on the source,
 * CLUSTER GETKEYSINSLOT + MIGRATE … KEYS in batches of 10 until the slot is empty, SETSLOT NODE on
 * the target, then the source, then the other primary), under continuous load: persistMany of the
 * 8 regions, single persists of the moved regions (every other one a ~40 KB staged payload) and
 * readLatest / readLatestMany. While a slot is half-moved the source answers ASK (keys gone) or
 * TRYAGAIN (some keys gone, or a multi-key call missing some), the target after ASKING TRYAGAIN
 * (a persist always declares a key that does not exist yet), and read.lua, which reads a key it
 * derives (the by-id key latest names), is refused on the source once that key has moved and on
 * the target until it has arrived. The first test sets up those states one by one; the second
 * meets them under load, 12 moves in a row, one slot at a time.
 *
 * Counted: persists acknowledged and rejected, reads failed or older than a persist acknowledged
 * before they were sent, acknowledged persists not readable with their payload afterwards (lost),
 * invariant violations (the store's verify and the independent checker on each owner), and the
 * ASK / TRYAGAIN / MOVED answers the primaries gave (INFO errorstats), so that the fault is seen
 * to bite.
 *
 *   npm test -- 'faults/cluster-reshard'
 */
import calculateSlot from 'cluster-key-slot';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Cluster } from 'ioredis';
import { createSnapshotStore, keySchemas, type PersistResult, type SnapshotInput, type SnapshotStore, type StoredSnapshot } from '../../src/index.js';
import { ownerViolations, startCluster, type ClusterNode, type RedisCluster } from '../support/cluster.js';
import { verify } from '../../src/ops.js';
import { FIXTURE, REGIONS, RETENTION_MS, sleep, until } from '../support/faults.js';
import { redisImage } from '../support/redis.js';

const DAY = 86_400_000;
const NOW = Date.now();
const T = Math.floor((NOW - DAY) / 900_000) * 900_000;
const schema = keySchemas.cluster;
// About 40 KB: above the staging threshold, so these persists go as MULTI, SET staging key, EVALSHA, EXEC.
/** The regions whose slots move, and how often each moves (owner → next primary, round after round). */
const MOVED = ['mena', 'europe', 'latam', 'global'];
const ROUNDS = 3;
/** Keys per MIGRATE (redis-cli's default --cluster-pipeline) and the pause between two. */
const BATCH = 10;
const PAUSE_MS = 20;
/**
 * Every persist of a region gets TRYAGAIN from IMPORTING to SETSLOT NODE: the retries must
 * outlast that (measured and printed below). 10 retries of 50 ms to 1 s backoff: up to 6.55 s.
 */
const RETRY = { attempts: 10, baseDelayMs: 50, maxDelayMs: 1_000 };

const slotOf = (region: string) => calculateSlot(schema.index(region));
const primaries = (cluster: RedisCluster) => cluster.nodes.slice(0, 3);

/** One error's count in an INFO errorstats text. */
const stat = (info: string, name: string) => Number(new RegExp(`errorstat_${name}:count=(\\d+)`).exec(info)?.[1] ?? 0);

/** The errorstat counts of interest, summed over the primaries. */
async function errorstats(cluster: RedisCluster): Promise<Record<'ASK' | 'TRYAGAIN' | 'MOVED' | 'NOSCRIPT' | 'ERR', number>> {
  const sum = { ASK: 0, TRYAGAIN: 0, MOVED: 0, NOSCRIPT: 0, ERR: 0 };
  for (const node of primaries(cluster)) {
    const info = await node.admin.info('errorstats');
    for (const name of Object.keys(sum) as Array<keyof typeof sum>) sum[name] += stat(info, name);
  }
  return sum;
}

/** Script commands the primaries received (EVALSHA and EVAL, run or refused). */
async function scriptCalls(cluster: RedisCluster): Promise<number> {
  let calls = 0;
  for (const node of primaries(cluster)) {
    const info = await node.admin.info('commandstats');
    for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+),.*?rejected_calls=(\d+)/g)) calls += Number(m[1]) + Number(m[2]);
  }
  return calls;
}

const cmdstat = async (node: ClusterNode, command: string) => Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await node.admin.info('commandstats'))?.[1] ?? 0);

/**
 * Moves `slot` from `source` to `target` as redis-cli does, with a pause between MIGRATE batches
 * (so the load meets the slot half-moved) and between the target's SETSLOT NODE and the source's
 * (so it meets a target that owns the slot while the source still answers ASK). Returns how long
 * the slot was unstable (IMPORTING to the source's SETSLOT NODE) and the keys moved.
 */
async function moveSlot(cluster: RedisCluster, slot: number, source: ClusterNode, target: ClusterNode): Promise<{ ms: number; keys: number }> {
  const started = Date.now();
  await target.admin.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id);
  await source.admin.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id);
  let keys = 0;
  for (;;) {
    const batch = (await source.admin.call('CLUSTER', 'GETKEYSINSLOT', String(slot), String(BATCH))) as string[];
    if (batch.length === 0) break;
    await source.admin.call('MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'KEYS', ...batch);
    keys += batch.length;
    await sleep(PAUSE_MS);
  }
  await target.admin.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
  await sleep(PAUSE_MS);
  await source.admin.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
  const ms = Date.now() - started;
  for (const other of primaries(cluster)) if (other !== source && other !== target) await other.admin.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
  return { ms, keys };
}

/**
 * MIGRATE sends a key's expiry as a relative TTL, so each move sets it later by that MIGRATE's
 * latency: findings that a key expires later than timestamp + retention by at most `withinMs`
 * (the time the moves took) are counted apart, as Redis's doing; every other finding stays.
 */
function shiftedByMigrate(findings: readonly string[], withinMs: number): { others: string[]; shifted: number; maxMs: number } {
  const out = { others: [] as string[], shifted: 0, maxMs: 0 };
  for (const line of findings) {
    const m = /expires at (\d+), expected (\d+)$/.exec(line);
    const later = m ? Number(m[1]) - Number(m[2]) : 0;
    if (later > 0 && later <= withinMs) {
      out.shifted += 1;
      out.maxMs = Math.max(out.maxMs, later);
    } else out.others.push(line);
  }
  return out;
}

const test = suite<{ cluster: RedisCluster }>(`cluster resharding [${redisImage}]`, 2);

test.before(async (ctx) => {
  ctx.cluster = await startCluster();
});

test.after(async ({ cluster }) => {
  await cluster?.stop();
});

test('a half-moved slot: reads follow ASK to the target and never read a payload key not moved yet as missing; persists (staged, inline, persistMany) follow it there, get TRYAGAIN, and are persisted once the move ends', async ({ cluster }) => {
  // Its slot map as loaded now, never refreshed on a timer: every call below meets the source first.
  const client: Cluster = cluster.client({ slotsRefreshInterval: 0 });
  const store = createSnapshotStore({ client, keys: { schema: 'cluster' }, retry: RETRY });
  const region = 'north-america';
  const first: SnapshotInput = { region, id: 'na-1', timestamp: T, payload: { ...FIXTURE, region_id: region } };
  const sent: SnapshotInput[] = [first];
  assert.is((await store.persist(first, { now: NOW })).status, 'persisted');
  const slot = slotOf(region);
  const source = await cluster.primaryFor(schema.index(region));
  const target = primaries(cluster).find((n) => n !== source)!;
  // The slot MIGRATING on the source and IMPORTING on the target.
  await target.admin.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id);
  await source.admin.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id);
  const [asks, asking, targetStats] = [(await errorstats(cluster)).ASK, await cmdstat(target, 'asking'), await target.admin.info('errorstats')];

  const staged: SnapshotInput = { region, id: 'na-2', timestamp: T + 1, payload: { ...FIXTURE, region_id: region, n: 2 } };
  const inline: SnapshotInput = { region, id: 'na-3', timestamp: T + 2, payload: { region_id: region, n: 3 } };
  const other: SnapshotInput = { region: 'south-asia', id: 'sa-1', timestamp: T + 2, payload: { region_id: 'south-asia' } };
  sent.push(staged, inline, other);
  let persists: Promise<[PersistResult, Array<PromiseSettledResult<PersistResult>>]> | undefined;
  let migrateMs = 0;
  const migrate = async (keys: string[]) => {
    const started = Date.now();
    await source.admin.call('MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'KEYS', ...keys);
    migrateMs += Date.now() - started + 1;
  };
  try {
    // latest and the index moved first (an order GETKEYSINSLOT gives on Redis 8.0), na-1's by-id
    // key not yet. The source has neither (ASK); on the target read.lua finds latest naming na-1
    // and must not read its by-id key as missing (answering null): Redis refuses it, it is retried.
    await migrate([schema.latest(region), schema.index(region)]);
    let answered = false;
    const reading = store.readLatest(region, { now: NOW }).finally(() => (answered = true));
    await until('the read refused on the target, or answered', async () => answered || stat(await target.admin.info('errorstats'), 'ERR') > stat(targetStats, 'ERR'));
    await migrate((await source.admin.call('CLUSTER', 'GETKEYSINSLOT', String(slot), '100')) as string[]);
    assert.equal(await reading, { id: 'na-1', timestamp: T, payload: first.payload });

    // Every key moved: read.lua gets ASK from the source and runs on the target after ASKING.
    assert.equal(await store.readLatest(region, { now: NOW }), { id: 'na-1', timestamp: T, payload: first.payload });
    assert.equal((await store.readLatestMany([region, 'south-asia'], { now: NOW })).map((s) => s?.id), ['na-1', undefined]);
    assert.equal((await store.readById(region, 'na-1', { now: NOW }))?.timestamp, T);
    assert.ok((await errorstats(cluster)).ASK - asks >= 3, 'the source answered ASK');
    assert.ok((await cmdstat(target, 'asking')) - asking >= 3, 'the target was sent ASKING');

    // Persists: a new snapshot's keys are not all on the target yet, so it answers TRYAGAIN, also to
    // the staged MULTI sent after ASKING (without ASKING it would answer MOVED): retried until the end.
    persists = Promise.all([store.persist(staged, { now: NOW }), store.persistMany([inline, other], { now: NOW })]);
    await until('persists refused TRYAGAIN by the target', async () => stat(await target.admin.info('errorstats'), 'TRYAGAIN') - stat(targetStats, 'TRYAGAIN') >= 4);
    assert.is(stat(await target.admin.info('errorstats'), 'MOVED'), stat(targetStats, 'MOVED'));
  } finally {
    // The move ends (target, source, the other primary), also when an assertion above failed.
    for (const node of [target, source, ...primaries(cluster).filter((n) => n !== source && n !== target)]) await node.admin.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
  }
  const [one, many] = await persists;
  assert.is(one.status, 'persisted'); // latestAdvanced: depends on whether na-3 (newer) landed first
  assert.equal(many.map((r) => (r.status === 'fulfilled' ? r.value.status : String(r.reason))), ['persisted', 'persisted']);

  assert.equal(await store.readLatest(region, { now: NOW }), { id: 'na-3', timestamp: T + 2, payload: inline.payload });
  assert.equal((await store.readById(region, 'na-2', { now: NOW }))?.payload, staged.payload);
  for (const id of ['na-1', 'na-2', 'na-3']) assert.is(await target.admin.exists(schema.byId(region, id)), 1, id);
  assert.is(await source.admin.call('CLUSTER', 'COUNTKEYSINSLOT', String(slot)), 0);
  const findings = [...(await ownerViolations(cluster, [region, 'south-asia'], { retentionMs: RETENTION_MS, now: NOW, sent })), ...(await verify(store, region, { now: NOW })).findings.map((f) => f.detail)];
  assert.equal(shiftedByMigrate(findings, migrateMs).others, []);
});

test(`${MOVED.length} regions' slots moved ${ROUNDS} times each under load: 0 rejected, 0 failed or stale reads, 0 lost, 0 violations`, async ({ cluster }) => {
  const client = cluster.client();
  const store: SnapshotStore = createSnapshotStore({ client, keys: { schema: 'cluster' }, retry: RETRY });
  const before = { stats: await errorstats(cluster), calls: await scriptCalls(cluster) };
  const sent: SnapshotInput[] = [];
  const acked: SnapshotInput[] = [];
  /** Region → the newest acknowledged timestamp: a read sent after it must return it or newer. */
  const newest = new Map<string, number>();
  const tally = { persists: 0, acknowledged: 0, rejected: [] as string[], reads: 0, readFailures: [] as string[], stale: [] as string[], longestMs: 0 };
  let seq = 0;
  let running = true;
  /** The region whose slot is being moved right now, if any. */
  let moving: string | undefined;
  const next = (region: string, big: boolean): SnapshotInput => {
    seq += 1;
    const input = { region, id: `${region}-${seq}`, timestamp: T + seq, payload: big ? { ...FIXTURE, region_id: region, seq } : { region_id: region, seq } };
    sent.push(input);
    return input;
  };
  const settle = (input: SnapshotInput, result: PromiseSettledResult<{ status: string }>) => {
    tally.persists += 1;
    if (result.status === 'rejected') return void tally.rejected.push(`${input.region} ${input.id}: ${(result.reason as Error).message}`);
    if (result.value.status !== 'persisted') return void tally.rejected.push(`${input.region} ${input.id}: ${result.value.status}`);
    tally.acknowledged += 1;
    acked.push(input);
    newest.set(input.region, Math.max(newest.get(input.region) ?? 0, input.timestamp));
  };
  const batches = async () => {
    while (running) {
      const batch = REGIONS.map((r) => next(r, false));
      (await store.persistMany(batch, { now: NOW })).forEach((result, i) => settle(batch[i]!, result));
      await sleep(300);
    }
  };
  const singles = async () => {
    for (let i = 0; running; i++) {
      const input = next(MOVED[i % MOVED.length]!, i % 2 === 0);
      settle(input, await store.persist(input, { now: NOW }).then((value) => ({ status: 'fulfilled' as const, value }), (reason: unknown) => ({ status: 'rejected' as const, reason })));
      await sleep(100);
    }
  };
  /** Persists aimed at the slot being moved, so that the load meets it half-moved many times. */
  const hot = async (w: number) => {
    for (let i = 0; running; i++) {
      const region = moving;
      if (region === undefined) {
        await sleep(5);
        continue;
      }
      const input = next(region, (i + w) % 2 === 0);
      const started = Date.now();
      settle(input, await store.persist(input, { now: NOW }).then((value) => ({ status: 'fulfilled' as const, value }), (reason: unknown) => ({ status: 'rejected' as const, reason })));
      tally.longestMs = Math.max(tally.longestMs, Date.now() - started);
    }
  };
  const check = (region: string, floor: number | undefined, found: StoredSnapshot | null) => {
    tally.reads += 1;
    if (floor !== undefined && (found === null || found.timestamp < floor)) tally.stale.push(`${region}: ${found?.id ?? 'null'} read after ${floor - T} was acknowledged`);
  };
  const reads = async () => {
    for (let i = 0; running; i++) {
      const floors = REGIONS.map((r) => newest.get(r));
      const region = MOVED[i % MOVED.length]!;
      const floor = newest.get(region);
      try {
        (await store.readLatestMany([...REGIONS], { now: NOW })).forEach((found, j) => check(REGIONS[j]!, floors[j], found));
        check(region, floor, await store.readLatest(region, { now: NOW }));
      } catch (error) {
        tally.readFailures.push((error as Error).message);
      }
      await sleep(20);
    }
  };

  const load = Promise.all([batches(), singles(), hot(0), hot(1), reads()]);
  const moves: Array<{ region: string; to: ClusterNode; ms: number; keys: number }> = [];
  try {
    await sleep(1_000);
    for (let round = 0; round < ROUNDS; round++) {
      // One slot at a time, as redis-cli does: two at once can lose a slot (a target's SETSLOT NODE
      // bumps its config epoch, and a node that bumped later still claims the other slot).
      for (const region of MOVED) {
        const source = await cluster.primaryFor(schema.index(region));
        const all = primaries(cluster);
        const target = all[(all.indexOf(source) + 1) % all.length]!;
        moving = region;
        const { ms, keys } = await moveSlot(cluster, slotOf(region), source, target);
        moving = undefined;
        moves.push({ region, to: target, ms, keys });
      }
      await sleep(1_000);
    }
  } finally {
    running = false;
    await load;
  }
  const after = { stats: await errorstats(cluster), calls: await scriptCalls(cluster) };
  const seen = Object.fromEntries(Object.entries(after.stats).map(([k, v]) => [k, v - before.stats[k as keyof typeof before.stats]])) as typeof before.stats;
  const calls = tally.persists + tally.reads; // readLatestMany counts one call per region, as sent
  const resent = after.calls - before.calls - calls - seen.NOSCRIPT;

  // Every acknowledged persist readable with the payload it was sent with, from its region's new owner.
  let lost = 0;
  for (const input of acked) {
    const found = await store.readById(input.region, input.id, { now: NOW });
    if (!found || found.timestamp !== input.timestamp || JSON.stringify(found.payload) !== JSON.stringify(input.payload)) lost += 1;
  }
  const findings = await ownerViolations(cluster, REGIONS, { retentionMs: RETENTION_MS, now: NOW, sent });
  for (const region of REGIONS) findings.push(...(await verify(store, region, { now: NOW })).findings.map((f) => `${region}: ${f.detail}`));
  const { others: violations, shifted, maxMs } = shiftedByMigrate(findings, moves.reduce((sum, m) => sum + m.ms, 0));
  // The slots settled where the last round put them: no node holds one half-moved.
  for (const node of primaries(cluster)) assert.not.match((await node.admin.call('CLUSTER', 'NODES')) as string, /\[\d+-[<>]-/);
  for (const region of MOVED) assert.is(await cluster.primaryFor(schema.index(region)), moves.filter((m) => m.region === region).at(-1)!.to, region);

  const ms = moves.map((m) => m.ms);
  console.log(
    `cluster resharding [${redisImage}]: ${moves.length} slot moves (${MOVED.length} regions x ${ROUNDS}, ${moves.map((m) => m.keys).reduce((a, b) => a + b, 0)} keys migrated, ` +
      `batches of ${BATCH} keys ${PAUSE_MS} ms apart), each slot unstable ${Math.min(...ms)}-${Math.max(...ms)} ms; ` +
      `persists ${tally.persists}, acknowledged ${tally.acknowledged}, rejected ${tally.rejected.length}, the longest to a slot being moved ${tally.longestMs} ms; reads ${tally.reads}, failed ${tally.readFailures.length}, stale ${tally.stale.length}; ` +
      `answers seen ASK ${seen.ASK}, TRYAGAIN ${seen.TRYAGAIN}, MOVED ${seen.MOVED}, scripts refused mid-migration (ERR) ${seen.ERR}; script commands re-sent ${resent}; lost ${lost}; violations ${violations.length} ` +
      `(besides ${shifted} findings of an expiry set later by MIGRATE's relative TTL, by at most ${maxMs} ms)`,
  );
  assert.equal(tally.rejected, []);
  assert.equal(tally.readFailures, []);
  assert.equal(tally.stale, []);
  assert.is(lost, 0);
  assert.equal(violations, []);
  // The fault bit: slots were met half-moved (ASK, TRYAGAIN) and after the move (MOVED).
  assert.ok(seen.ASK > 0 && seen.TRYAGAIN > 0 && seen.MOVED > 0, JSON.stringify(seen));
  assert.is(moves.length, MOVED.length * ROUNDS);
});

test.run();
