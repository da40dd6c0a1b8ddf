import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Redis } from 'ioredis';
import { createSnapshotStore, type SnapshotInput } from '../../src/index.js';
import { checkInvariants } from '../support/checker.js';
import { REGIONS, RETENTION_MS, sleep, snapshotOf } from '../support/faults.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const test = suite('kill -9 under load', 1);

const CYCLES = 5;
const WORKERS = 4;
const between = (min: number, max: number) => min + Math.random() * (max - min);

let redis: RedisServer;
let admin: Redis;

test.before(async () => {
  // Every write is in the AOF, fsynced, before its reply is sent.
  redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
  admin = redis.client();
});

test.after(async () => {
  await redis?.stop();
});

interface Acked {
  region: string;
  id: string;
  timestamp: number;
}

/** The acknowledged persists whose by-id key or index entry is missing after the restart. */
async function lostOf(acked: readonly Acked[]): Promise<Acked[]> {
  const pipeline = admin.pipeline();
  for (const a of acked) pipeline.exists(`intelligence:snapshot-by-id:v1:${a.id}`).zscore(`intelligence:snapshot-index:v1:${a.region}`, a.id);
  const replies = (await pipeline.exec()) ?? [];
  return acked.filter((a, i) => replies[2 * i]?.[1] !== 1 || replies[2 * i + 1]?.[1] !== String(a.timestamp));
}

test('SIGKILL while 4 clients persist across 8 regions loses no acknowledged persist', async () => {
  const base = Date.now() - 3_600_000;
  const acked: Acked[] = [];
  const sent: SnapshotInput[] = [];
  const unexpected: string[] = [];
  /**
   * Persists sent and not yet settled, by id. Those pending when `docker kill` is called, sent while
   * it runs, or pending when it returns may have been in flight at the moment of death; those
   * still pending once it returned are waiting on a dead server: the kill hit them.
   */
  const pending = new Set<string>();
  let killing = false;
  const hitByKill = new Set<string>();
  const hitOutcomes: Record<string, number> = {};
  const inFlightAtKill: number[] = [];
  let next = 0;
  let rejected = 0;
  let replayed = 0;

  // Each worker persists snapshots with increasing timestamps, round-robin over the regions, until
  // told to stop. Workers 2 and 3 stage every payload (MULTI, SET staging key, EVALSHA, EXEC).
  const load = (stopped: () => boolean) =>
    Array.from({ length: WORKERS }, async (_, w) => {
      const client = redis.client();
      const store = createSnapshotStore({ client, retry: { attempts: 3, baseDelayMs: 20 }, ...(w >= 2 ? { stagePayloadsFrom: 0 } : {}) });
      while (!stopped()) {
        const n = next++;
        const region = REGIONS[n % REGIONS.length]!;
        const s = snapshotOf(region, `w${w}-${n}`, base + n, 1024, `load-${n}`);
        sent.push(s);
        pending.add(s.id);
        if (killing) hitByKill.add(s.id);
        let outcome: string;
        try {
          const { status } = await store.persist(s);
          outcome = status;
          if (status === 'persisted' || status === 'replayed') acked.push({ region, id: s.id, timestamp: s.timestamp });
          // Unique ids: only a persist that ran before a kill, its reply lost, can be a replay.
          if (status === 'replayed' && !hitByKill.has(s.id)) unexpected.push(`${s.id}: replayed but never in flight at a kill`);
          else if (status !== 'persisted' && status !== 'replayed') unexpected.push(`${s.id}: ${status}`);
          if (status === 'replayed') replayed++;
        } catch {
          outcome = 'rejected';
          rejected++; // in flight when the server died, and out of retries before it came back
          if (!hitByKill.has(s.id)) unexpected.push(`${s.id}: rejected but never in flight at a kill`);
          await sleep(10);
        }
        pending.delete(s.id);
        if (hitByKill.has(s.id)) hitOutcomes[outcome] = (hitOutcomes[outcome] ?? 0) + 1;
      }
      client.disconnect();
    });

  let lost: Acked[] = [];
  let found: string[] = [];
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    let stop = false;
    const workers = load(() => stop);
    await sleep(between(200, 800));
    for (const id of pending) hitByKill.add(id);
    killing = true;
    await redis.kill();
    killing = false;
    for (const id of pending) hitByKill.add(id);
    inFlightAtKill.push(pending.size);
    await sleep(between(50, 300));
    await redis.start();
    stop = true;
    await Promise.all(workers);
    lost = await lostOf(acked);
    // Staged persists cut by the kill after a restart's NOSCRIPT may leave a staging key: bounded to 1 s.
    found = await checkInvariants(admin, { retentionMs: RETENTION_MS, sent, stagingAllowed: true, regions: REGIONS });
    if (lost.length > 0 || found.length > 0) break;
  }

  console.log(
    `kill -9: ${CYCLES} cycles, waiting on the dead server after each kill ${inFlightAtKill.join(', ')}; outcomes of those around the kill ${JSON.stringify(hitOutcomes)}; ` +
      `${acked.length} persists acknowledged (${replayed} as replays), ${lost.length} lost, ${rejected} rejected (not acknowledged), ${found.length} violations`,
  );
  assert.ok(acked.length > 0, 'the load made progress');
  assert.ok(inFlightAtKill.every((n) => n > 0), 'every kill hit persists in flight');
  assert.equal(lost, []);
  assert.equal(found, []);
  assert.equal(unexpected, []);
});

test.run();
