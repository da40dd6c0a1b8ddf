/**
 * `npm run bench [-- --quick]`: measures every strategy of strategies.ts against one Redis it
 * starts itself, then writes bench/results.json, bench/chart.svg and BENCHMARKS.md.
 */
import { cpus, totalmem } from 'node:os';
import { Redis } from 'ioredis';
import { TcpProxy } from '../test/support/proxy.js';
import { startRedis } from '../test/support/redis.js';
import { DELAY_MS, latencyScenario } from './latency.js';
import { median, runBatch, SnapshotSource, type BatchResult } from './measure.js';
import { snapshotPayload } from './payloads.js';
import { profileScript } from './profile.js';
import { writeReport, type Results } from './report.js';
import { strategies } from './strategies.js';

const quick = process.argv.includes('--quick');
const KB = 1024;
/** Persists per batch, per payload size: a batch takes well under a second. */
const sizes = [
  { bytes: 2 * KB, count: quick ? 100 : 1000 },
  { bytes: 32 * KB, count: quick ? 50 : 400 },
  { bytes: 256 * KB, count: quick ? 12 : 100 },
];
const inflights = [1, 16];
const rounds = quick ? 2 : 9;
const latencyReps = quick ? 3 : 7;
/** Persists whose bytes the proxy counts, per strategy and size (the count is deterministic). */
const bytesSample = 8;

const began = performance.now();
const redis = await startRedis();
const control = redis.client();
const direct = redis.client();
const proxy = await TcpProxy.start(redis.port);
const proxied = new Redis(proxy.port, '127.0.0.1');
const source = new SnapshotSource();

try {
  const payloads = new Map(sizes.map(({ bytes }) => [bytes, JSON.parse(snapshotPayload(bytes)) as object]));
  const bound = strategies.map((s) => ({ direct: s.bind(direct), proxied: s.bind(proxied) }));

  // Bytes on the wire, both directions; the first persist of each strategy also warms its path.
  const bytes = new Map<string, { up: number; down: number }>();
  for (const { bytes: size } of sizes) {
    for (const [i, strategy] of strategies.entries()) {
      await bound[i]!.proxied(source.next(payloads.get(size)!));
      proxy.resetCounters();
      for (let n = 0; n < bytesSample; n++) await bound[i]!.proxied(source.next(payloads.get(size)!));
      bytes.set(`${strategy.name}|${size}`, { up: proxy.bytesUp / bytesSample, down: proxy.bytesDown / bytesSample });
    }
  }

  // Round 0 is the warm-up. Within a round, strategies take turns on every configuration, the
  // first one rotating each round, so machine noise and ordering hit all alike.
  const samples = new Map<string, BatchResult[]>();
  for (let round = 0; round <= rounds; round++) {
    for (const { bytes: size, count } of sizes) {
      for (const inflight of inflights) {
        for (let k = 0; k < strategies.length; k++) {
          const i = (k + round) % strategies.length;
          const strategy = strategies[i]!;
          const result = await runBatch({ strategy, persist: bound[i]!.direct, control, source, payload: payloads.get(size)!, count, inflight });
          if (round === 0) continue;
          const key = `${strategy.name}|${size}|${inflight}`;
          samples.set(key, [...(samples.get(key) ?? []), result]);
        }
      }
    }
    console.error(`bench: round ${round}/${rounds} done (${((performance.now() - began) / 1000).toFixed(0)} s)`);
  }
  await control.flushall();

  const latency = await latencyScenario(redis, source, payloads.get(32 * KB)!, latencyReps);
  const profile = await profileScript(control, quick ? 300 : 3000);
  const version = /^redis_version:(.+)$/m.exec(await control.info('server'))?.[1]?.trim() ?? 'unknown';
  const of = (key: string, metric: keyof BatchResult) => median(samples.get(key)!.map((r) => r[metric]));

  const results: Results = {
    command: `npm run bench${quick ? ' -- --quick' : ''}`,
    date: new Date().toISOString(),
    durationS: 0,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    redisVersion: version,
    config: { rounds, inflights, sizes, latencyReps, bytesSample },
    strategies: strategies.map((s) => ({ name: s.name, module: s.module })),
    runs: sizes.flatMap(({ bytes: size }) =>
      strategies.flatMap((s) =>
        inflights.map((inflight) => {
          const key = `${s.name}|${size}|${inflight}`;
          return { strategy: s.name, size, inflight, persistsPerSec: of(key, 'persistsPerSec'), p50Ms: of(key, 'p50Ms'), p99Ms: of(key, 'p99Ms') };
        }),
      ),
    ),
    // Server time and memory do not depend on concurrency: medians over both in-flight settings.
    costs: sizes.flatMap(({ bytes: size }) =>
      strategies.map((s) => {
        const all = inflights.flatMap((inflight) => samples.get(`${s.name}|${size}|${inflight}`)!);
        const wire = bytes.get(`${s.name}|${size}`)!;
        return {
          strategy: s.name,
          size,
          bytesUp: wire.up,
          bytesDown: wire.down,
          serverUs: median(all.map((r) => r.serverUs)),
          memoryBytes: median(all.map((r) => r.memoryBytes)),
        };
      }),
    ),
    latency: { rttMs: 2 * DELAY_MS, payloadBytes: 32 * KB, cases: latency },
    profile,
  };
  results.durationS = Math.round((performance.now() - began) / 1000);
  writeReport(results);
  console.error(`bench: wrote bench/results.json, bench/chart.svg and BENCHMARKS.md in ${results.durationS} s`);
} finally {
  proxied.disconnect();
  await proxy.close();
  await redis.stop();
}
