import type { Redis } from 'ioredis';
import type { BenchSnapshot, Strategy } from './strategies.js';

export const REGIONS = ['mena', 'east-asia', 'europe', 'north-america', 'south-asia', 'latam', 'sub-saharan-africa', 'global'];

/** Snapshots unique in id, timestamp (1 ms apart, starting an hour ago) and dedup bucket. */
export class SnapshotSource {
  private seq = 0;
  private readonly start = Date.now() - 3_600_000;

  next(payload: object, region = REGIONS[this.seq % REGIONS.length]!): BenchSnapshot {
    const n = this.seq++;
    return { region, id: `bench-${this.start}-${n}`, timestamp: this.start + n, trigger: `t${n}`, payload };
  }

  /** One snapshot of each of the seeder's 8 regions. */
  regions(payload: object): BenchSnapshot[] {
    return REGIONS.map((region) => this.next(payload, region));
  }
}

export interface BatchResult {
  persistsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  serverUs: number;
  memoryBytes: number;
}

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Total usec of the named commands in `INFO commandstats`. */
async function commandUsec(control: Redis, commands: readonly string[]): Promise<number> {
  const info = await control.info('commandstats');
  let usec = 0;
  for (const [, name, value] of info.matchAll(/^cmdstat_(\w+):calls=\d+,usec=(\d+),/gm)) {
    if (commands.includes(name!)) usec += Number(value);
  }
  return usec;
}

/**
 * `count` persists with `inflight` of them outstanding at any time, on an empty keyspace.
 * `control` is a separate connection for FLUSHALL, stats and MEMORY USAGE, none of which is
 * among a strategy's server commands.
 */
export async function runBatch(batch: {
  strategy: Strategy;
  persist: (s: BenchSnapshot) => Promise<unknown>;
  control: Redis;
  source: SnapshotSource;
  payload: object;
  count: number;
  inflight: number;
}): Promise<BatchResult> {
  const { strategy, persist, control, source, payload, count, inflight } = batch;
  await control.flushall();
  await control.config('RESETSTAT');
  const latencies: number[] = [];
  let issued = 0;
  let last: BenchSnapshot | undefined;
  const worker = async () => {
    while (issued < count) {
      issued++;
      last = source.next(payload);
      const t0 = performance.now();
      await persist(last);
      latencies.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  const elapsedMs = performance.now() - t0;
  const serverUs = (await commandUsec(control, strategy.serverCommands)) / count;
  let memoryBytes = 0;
  for (const key of strategy.snapshotKeys(last!)) memoryBytes += Number(await control.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
  latencies.sort((a, b) => a - b);
  return { persistsPerSec: (count / elapsedMs) * 1000, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), serverUs, memoryBytes };
}
