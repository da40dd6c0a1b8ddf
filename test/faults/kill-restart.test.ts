import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import type { Redis } from 'ioredis';
import { createSnapshotStore } from '../../src/index.js';
import { REGIONS, RETENTION_MS, sleep, snapshotOf } from '../support/faults.js';
import { violations } from '../support/keyspace.js';
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
  const unexpected: string[] = [];
  let next = 0;
  let rejected = 0;
  let replayed = 0;

  // Each worker persists snapshots with increasing timestamps, round-robin over the regions, until told to stop.
  const load = (stopped: () => boolean) =>
    Array.from({ length: WORKERS }, async (_, w) => {
      const client = redis.client();
      const store = createSnapshotStore({ client, retry: { attempts: 3, baseDelayMs: 20 } });
      while (!stopped()) {
        const n = next++;
        const region = REGIONS[n % REGIONS.length]!;
        const s = snapshotOf(region, `w${w}-${n}`, base + n, 1024, `load-${n}`);
        try {
          const { status } = await store.persist(s);
          if (status === 'persisted' || status === 'replayed') acked.push({ region, id: s.id, timestamp: s.timestamp });
          else unexpected.push(`${s.id}: ${status}`);
          if (status === 'replayed') replayed++; // ran before the kill, its reply lost, sent again
        } catch {
          rejected++; // in flight when the server died, and out of retries before it came back
          await sleep(10);
        }
      }
      client.disconnect();
    });

  let lost: Acked[] = [];
  let found: string[] = [];
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    let stop = false;
    const workers = load(() => stop);
    await sleep(between(200, 800));
    await redis.kill();
    await sleep(between(50, 300));
    await redis.start();
    stop = true;
    await Promise.all(workers);
    lost = await lostOf(acked);
    found = await violations(admin, { regions: REGIONS, now: Date.now(), retentionMs: RETENTION_MS });
    if (lost.length > 0 || found.length > 0) break;
  }

  console.log(`kill -9: ${CYCLES} cycles, ${acked.length} persists acknowledged (${replayed} as replays), ${lost.length} lost, ${rejected} rejected (not acknowledged), ${found.length} violations`);
  assert.ok(acked.length > 0, 'the load made progress');
  assert.equal(lost, []);
  assert.equal(found, []);
  assert.equal(unexpected, []);
});

test.run();
