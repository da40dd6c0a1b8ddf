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
  /** Redis main-thread CPU per persist, µs: reading, parsing, executing, replying. */
  cpuUs: number;
  /** `INFO commandstats` usec per persist of the strategy's top-level commands: executing only. */
  serverUs: number;
  /**
   * CPU of this process (user + system, `process.cpuUsage`) per persist over the same span: the
   * client's side, the strategy's JavaScript, ioredis and the socket calls. It shares the cores with Redis.
   */
  clientCpuUs: number;
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

/** `INFO commandstats` as command name → calls, usec, failed calls (Redis 7 has failed_calls). */
export async function commandStats(control: Redis): Promise<Map<string, { calls: number; usec: number; failed: number }>> {
  const stats = new Map<string, { calls: number; usec: number; failed: number }>();
  for (const [line, name, calls, usec] of (await control.info('commandstats')).matchAll(/^cmdstat_([\w|]+):calls=(\d+),usec=(\d+),.*$/gm)) {
    stats.set(name!, { calls: Number(calls), usec: Number(usec), failed: Number(/failed_calls=(\d+)/.exec(line)?.[1] ?? 0) });
  }
  return stats;
}

/** Total usec of the named commands in `INFO commandstats`. */
async function commandUsec(control: Redis, commands: readonly string[]): Promise<number> {
  let usec = 0;
  for (const [name, { usec: value }] of await commandStats(control)) if (commands.includes(name)) usec += value;
  return usec;
}

/**
 * CPU time of Redis's main thread so far, µs: `INFO cpu` `used_cpu_sys_main_thread` +
 * `used_cpu_user_main_thread` (getrusage of that thread; Redis 7.0 has both). Unlike commandstats
 * it includes reading and parsing requests and writing replies, where a payload's bytes are paid.
 */
export async function mainThreadCpuUs(control: Redis): Promise<number> {
  const info = await control.info('cpu');
  const field = (name: string) => {
    const value = new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1];
    if (value === undefined) throw new Error(`INFO cpu has no ${name}: this Redis cannot report main-thread CPU`);
    return Number(value);
  };
  return (field('used_cpu_sys_main_thread') + field('used_cpu_user_main_thread')) * 1e6;
}

/** Main-thread CPU of an empty batch: the two bracketing INFO calls alone, µs (median of `times`). */
export async function emptyBatchCpuUs(control: Redis, times = 21): Promise<number> {
  const deltas: number[] = [];
  for (let i = 0; i < times; i++) {
    const cpu0 = await mainThreadCpuUs(control);
    deltas.push((await mainThreadCpuUs(control)) - cpu0);
  }
  return median(deltas);
}

/** `count` calls of `task`, `inflight` of them outstanding at any time: elapsed ms and sorted latencies. */
export async function concurrently(count: number, inflight: number, task: (n: number) => Promise<unknown>): Promise<{ elapsedMs: number; latencies: number[] }> {
  const latencies: number[] = [];
  let issued = 0;
  const worker = async () => {
    while (issued < count) {
      const n = issued++;
      const t0 = performance.now();
      await task(n);
      latencies.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(inflight, count) }, worker));
  return { elapsedMs: performance.now() - t0, latencies: latencies.sort((a, b) => a - b) };
}

/**
 * `count` persists with `inflight` of them outstanding at any time, on an empty keyspace.
 * `control` is a separate connection for FLUSHALL, stats and MEMORY USAGE, none of which is
 * among a strategy's server commands; its two INFO calls inside the measured span are measured
 * apart (emptyBatchCpuUs).
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
  let last: BenchSnapshot | undefined;
  const cpu0 = await mainThreadCpuUs(control);
  const client0 = process.cpuUsage();
  const { elapsedMs, latencies } = await concurrently(count, inflight, () => persist((last = source.next(payload))));
  const client = process.cpuUsage(client0);
  const cpuUs = ((await mainThreadCpuUs(control)) - cpu0) / count;
  const serverUs = (await commandUsec(control, strategy.serverCommands)) / count;
  let memoryBytes = 0;
  for (const key of strategy.snapshotKeys(last!)) memoryBytes += Number(await control.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
  return { persistsPerSec: (count / elapsedMs) * 1000, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), cpuUs, serverUs, clientCpuUs: (client.user + client.system) / count, memoryBytes };
}
