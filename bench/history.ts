import type { Redis } from 'ioredis';
import { createSnapshotStore } from '../src/index.js';
import { keySchemas } from '../src/keys.js';
import { concurrently, mainThreadCpuUs, median, type SnapshotSource } from './measure.js';
import { RETENTION_MS } from './strategies.js';

const keys = keySchemas['worldmonitor-v1'];
/** Slices per batch in the history scenario. */
export const SLICES = 4;

export interface HistoryCase {
  members: number;
  /** Per call, one value per round: Redis main-thread CPU µs. */
  persistCpuUs: number[];
  readLatestCpuUs: number[];
}

export interface Pathological {
  members: number;
  persists: number;
  /** Per persist, one in flight: main-thread CPU µs (over the batch), wall ms (median). */
  cpuUs: number;
  wallMs: number;
}

/** ZADDs `count` members `${prefix}${i}` with score `score(i)`, 1000 to a command. */
async function fillIndex(client: Redis, index: string, count: number, prefix: string, score: (i: number) => number): Promise<void> {
  for (let from = 0; from < count; from += 1000) {
    const args: Array<string | number> = [];
    for (let i = from; i < Math.min(count, from + 1000); i++) args.push(score(i), `${prefix}${String(i).padStart(7, '0')}`);
    await client.zadd(index, ...args);
  }
}

/**
 * Does a persist or a readLatest cost more when the region's index is large? One region per
 * size, its index filled with `members` older members (index entries only: neither persist nor
 * readLatest reads an older member's keys); per round and size, in rotated order, a batch of
 * `count` persists then `count` readLatests, 16 in flight, with the default store; then the
 * batch's members are removed again, so every round starts from `members`.
 */
export async function historyScenario(options: { client: Redis; control: Redis; source: SnapshotSource; payload: object; sizes: number[]; count: number; rounds: number }): Promise<HistoryCase[]> {
  const { client, control, source, payload, sizes, count, rounds } = options;
  const store = createSnapshotStore({ client, retentionMs: RETENTION_MS });
  await control.flushall();
  // Older than every snapshot the source makes (those start an hour ago), inside retention.
  const oldest = Date.now() - 3 * 3_600_000;
  for (const members of sizes) await fillIndex(control, keys.index(`history-${members}`), members, 'h', (i) => oldest + i);
  const samples = sizes.map(() => ({ persist: [] as number[], read: [] as number[] }));
  // Each round's batches go in slices, the sizes taking turns slice by slice, so a burst of
  // machine noise falls on every size alike.
  const slice = Math.ceil(count / SLICES);
  for (let round = 0; round <= rounds; round++) {
    const cpu = sizes.map(() => ({ persist: 0, read: 0 }));
    for (let part = 0; part < SLICES; part++) {
      for (let k = 0; k < sizes.length; k++) {
        const i = (k + round + part) % sizes.length;
        const region = `history-${sizes[i]}`;
        let cpu0 = await mainThreadCpuUs(control);
        await concurrently(slice, 16, () => store.persist(source.next(payload, region)));
        cpu[i]!.persist += (await mainThreadCpuUs(control)) - cpu0;
        cpu0 = await mainThreadCpuUs(control);
        await concurrently(slice, 16, async () => {
          if ((await store.readLatest(region)) === null) throw new Error('history: readLatest found nothing');
        });
        cpu[i]!.read += (await mainThreadCpuUs(control)) - cpu0;
      }
    }
    for (const members of sizes) await control.zremrangebyscore(keys.index(`history-${members}`), `(${oldest + members}`, '+inf');
    if (round === 0) continue; // warm-up
    cpu.forEach((c, i) => {
      samples[i]!.persist.push(c.persist / (slice * SLICES));
      samples[i]!.read.push(c.read / (slice * SLICES));
    });
  }
  await control.flushall();
  return sizes.map((members, i) => ({ members, persistCpuUs: samples[i]!.persist, readLatestCpuUs: samples[i]!.read }));
}

/**
 * The pathological region: `members` index members at one timestamp, and its timestamp key
 * present, so every new persist at that timestamp must find out whether it holds the greatest id
 * there. `persists` persists at that timestamp, one at a time, each a new id greater than all.
 */
export async function pathological(options: { client: Redis; control: Redis; payload: object; members: number; persists: number }): Promise<Pathological> {
  const { client, control, payload, members, persists } = options;
  const store = createSnapshotStore({ client, retentionMs: RETENTION_MS });
  await control.flushall();
  const region = 'pathological';
  const timestamp = Date.now() - 1_800_000;
  await store.persist({ region, id: 'p-first', timestamp, payload });
  await fillIndex(control, keys.index(region), members - 1, 'p-', () => timestamp);
  const wall: number[] = [];
  const cpu0 = await mainThreadCpuUs(control);
  for (let n = 0; n < persists; n++) {
    const t0 = performance.now();
    const result = await store.persist({ region, id: `q-${String(n).padStart(4, '0')}`, timestamp, trigger: `q${n}`, payload });
    wall.push(performance.now() - t0);
    if (result.status !== 'persisted') throw new Error(`pathological: persist ${n} was ${result.status}`);
  }
  const cpuUs = ((await mainThreadCpuUs(control)) - cpu0) / persists;
  await control.flushall();
  return { members, persists, cpuUs, wallMs: median(wall) };
}
