/**
 * `npm run bench`: measures every strategy of strategies.ts, the history and pathological
 * regions, the Upstash path, the 20 ms RTT scenario and persist.lua's per-step profile against
 * one Redis it starts itself, prints the targets, then writes bench/results.json,
 * bench/chart.svg, BENCHMARKS.md and README.md's Benchmarks section, all from this one run.
 * `npm run bench -- --quick` (under 30 s): the target rows only, printed; nothing is written.
 */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { Redis } from 'ioredis';
import { persistLua } from '../src/lua.generated.js';
// @ts-expect-error: a plain .mjs build script, without type declarations.
import { stripLua } from '../scripts/lua-strip.mjs';
import { TcpProxy } from '../test/support/proxy.js';
import { startRedis } from '../test/support/redis.js';
import { historyScenario, pathological } from './history.js';
import { DELAY_MS, latencyScenario } from './latency.js';
import { emptyBatchCpuUs, runBatch, SnapshotSource, type BatchResult } from './measure.js';
import { snapshotPayload } from './payloads.js';
import { profileScript } from './profile.js';
import { evaluateTargets, printTargets, writeReport, type Results } from './report.js';
import { defaultStrategy, strategies } from './strategies.js';
import { upstashScenario } from './upstash.js';

const quick = process.argv.includes('--quick');
const KB = 1024;
/** Persists per batch, per payload size and persists in flight (1 in flight: full run only). */
const sizes = [
  { bytes: 2 * KB, count: { 16: quick ? 200 : 1000, 1: 200 } },
  { bytes: 32 * KB, count: { 16: quick ? 100 : 400, 1: 100 } },
  { bytes: 256 * KB, count: { 16: quick ? 24 : 100, 1: 25 } },
];
const inflights = quick ? [16] : [16, 1];
const rounds = quick ? 5 : 11;
const historySizes = [1_000, 10_000, 100_000];
/** Payload of the history and pathological regions' persists. */
const historyPayload = 2 * KB;
const history = { count: quick ? 200 : 400, rounds: quick ? 3 : 11 };
const pathologicalPersists = quick ? 5 : 20;
const latencyReps = 7;
/** Persists whose bytes the proxy counts, per strategy and size (the count is deterministic). */
const bytesSample = 8;

// The store sends src/lua.generated.ts; the bench measures lua/ as it is now.
if (persistLua.text !== (stripLua as (text: string) => string)(readFileSync(new URL('../lua/persist.lua', import.meta.url), 'utf8'))) {
  throw new Error('src/lua.generated.ts is older than lua/persist.lua: run `npm run build` first');
}

const began = performance.now();
const elapsed = () => `${((performance.now() - began) / 1000).toFixed(0)} s`;
const redis = await startRedis();
const control = redis.client();
const direct = redis.client();
const proxy = await TcpProxy.start(redis.port);
const proxied = new Redis(proxy.port, '127.0.0.1');
const source = new SnapshotSource();

try {
  const payloads = new Map(sizes.map(({ bytes }) => [bytes, JSON.parse(snapshotPayload(bytes)) as object]));
  const bound = strategies.map((s) => ({ direct: s.bind(direct), proxied: s.bind(proxied) }));
  const defaults: Record<number, string> = {};
  for (const { bytes: size } of sizes) defaults[size] = (await defaultStrategy(direct, source.next(payloads.get(size)!))).name;

  // Bytes on the wire, both directions; the first persist of each strategy also warms its path.
  const wire: Results['wire'] = [];
  for (const { bytes: size } of sizes) {
    for (const [i, strategy] of strategies.entries()) {
      await bound[i]!.proxied(source.next(payloads.get(size)!));
      proxy.resetCounters();
      for (let n = 0; n < bytesSample; n++) await bound[i]!.proxied(source.next(payloads.get(size)!));
      wire.push({ strategy: strategy.name, size, up: proxy.bytesUp / bytesSample, down: proxy.bytesDown / bytesSample });
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
          const result = await runBatch({ strategy, persist: bound[i]!.direct, control, source, payload: payloads.get(size)!, count: count[inflight as 1 | 16], inflight });
          if (round === 0) continue;
          const key = `${strategy.name}|${size}|${inflight}`;
          samples.set(key, [...(samples.get(key) ?? []), result]);
        }
      }
    }
    console.error(`bench: round ${round}/${rounds} done (${elapsed()})`);
  }
  await control.flushall();

  const historyCases = await historyScenario({ client: direct, control, source, payload: payloads.get(historyPayload)!, sizes: historySizes, ...history });
  const worst = await pathological({ client: direct, control, payload: payloads.get(historyPayload)!, members: 100_000, persists: pathologicalPersists });
  console.error(`bench: history and pathological region done (${elapsed()})`);
  const upstash = await upstashScenario({ redis, source, payload: payloads.get(32 * KB)!, persists: bytesSample, reads: quick ? 30 : 200 });
  console.error(`bench: Upstash path done (${elapsed()})`);
  const latency = quick ? undefined : await latencyScenario(redis, source, payloads.get(32 * KB)!, latencyReps);
  const profile = quick
    ? []
    : await profileScript({
        client: direct,
        control,
        source,
        payloads: [
          { label: `default layout, ${defaults[2 * KB]}`, payload: payloads.get(2 * KB)!, bytes: 2 * KB },
          { label: `default layout, ${defaults[32 * KB]}`, payload: payloads.get(32 * KB)!, bytes: 32 * KB },
        ],
        calls: 300,
        rounds: 7,
      });
  const emptyBatchUs = await emptyBatchCpuUs(control);
  const version = /^redis_version:(.+)$/m.exec(await control.info('server'))?.[1]?.trim() ?? 'unknown';

  const results: Results = {
    command: `npm run bench${quick ? ' -- --quick' : ''}`,
    date: new Date().toISOString(),
    durationS: 0,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    redisVersion: version,
    emptyBatchUs,
    config: { rounds, inflights, sizes, latencyReps, bytesSample, history: { ...history, sizes: historySizes, payloadBytes: historyPayload } },
    strategies: strategies.map((s) => ({ name: s.name, module: s.module })),
    defaults,
    batches: [...samples].map(([key, rounds]) => {
      const [strategy, size, inflight] = key.split('|');
      return { strategy: strategy!, size: Number(size), inflight: Number(inflight), rounds };
    }),
    wire,
    history: historyCases,
    pathological: worst,
    upstash,
    latency: latency && { rttMs: 2 * DELAY_MS, payloadBytes: 32 * KB, cases: latency },
    profile,
  };
  results.durationS = Math.round((performance.now() - began) / 1000);
  printTargets(results, evaluateTargets(results));
  if (!quick) {
    writeReport(results);
    console.error(`bench: wrote bench/results.json, bench/chart.svg, BENCHMARKS.md and README.md's Benchmarks section in ${results.durationS} s`);
  } else {
    console.error(`bench: quick run in ${results.durationS} s (nothing written)`);
  }
} finally {
  proxied.disconnect();
  await proxy.close();
  await redis.stop();
}
