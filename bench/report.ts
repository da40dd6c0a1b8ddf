import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chartSvg } from './chart.js';
import { SLICES, type HistoryCase, type Pathological } from './history.js';
import type { LatencyCase } from './latency.js';
import { median, type BatchResult } from './measure.js';
import type { Profile } from './profile.js';
import { floor, legacy, multiExec, oneCopy, twoSets } from './strategies.js';
import type { UpstashResult } from './upstash.js';

export interface Results {
  command: string;
  date: string;
  durationS: number;
  machine: { cpu: string; cores: number; memoryGiB: number; node: string };
  redisVersion: string;
  /** Main-thread CPU µs of the two INFO calls that bracket every batch, with nothing between them. */
  emptyBatchUs: number;
  config: {
    rounds: number;
    inflights: number[];
    sizes: Array<{ bytes: number; count: Record<number, number> }>;
    latencyReps: number;
    bytesSample: number;
    history: { sizes: number[]; count: number; rounds: number; payloadBytes: number };
  };
  strategies: Array<{ name: string; module: boolean }>;
  /** Per payload size: the strategy a store with default options is (its transfer mode). */
  defaults: Record<number, string>;
  /** Every batch, per strategy, payload size and persists in flight: one result per round, in round order. */
  batches: Array<{ strategy: string; size: number; inflight: number; rounds: BatchResult[] }>;
  /** Bytes per persist through the loopback proxy, client to Redis (up) and back (down). */
  wire: Array<{ strategy: string; size: number; up: number; down: number }>;
  history: HistoryCase[];
  pathological: Pathological;
  upstash: UpstashResult;
  /** Full run only. */
  latency: { rttMs: number; payloadBytes: number; cases: LatencyCase[] } | undefined;
  profile: Profile[];
}

export interface Target {
  target: string;
  strategy: string;
  measured: string;
  met: boolean;
  /** Why a target is not met, from this run's figures. */
  why?: string;
}

/** Index sizes within this ratio of each other cost "the same within noise". */
const FLAT_WITHIN = 1.1;

const kb = (bytes: number) => `${bytes / 1024} KB`;
const num = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const x = (v: number) => `${v.toFixed(2)}x`;
const int = (v: number) => Math.round(v).toLocaleString('en-US');

/** Figures of one run, looked up by strategy, payload size and persists in flight. */
function figures(r: Results) {
  const rounds = (strategy: string, size: number, inflight = 16) => r.batches.find((b) => b.strategy === strategy && b.size === size && b.inflight === inflight)!.rounds;
  const of = (strategy: string, size: number, metric: keyof BatchResult, inflight = 16) => median(rounds(strategy, size, inflight).map((b) => b[metric]));
  /** `metric` of a over b, round by round (both ran in the same round, moments apart). */
  const ratios = (a: string, b: string, size: number, metric: keyof BatchResult, inflight = 16) => {
    const [ra, rb] = [rounds(a, size, inflight), rounds(b, size, inflight)];
    return ra.map((result, i) => result[metric] / rb[i]![metric]);
  };
  const ratio = (a: string, b: string, size: number, metric: keyof BatchResult, inflight = 16) => median(ratios(a, b, size, metric, inflight));
  const wire = (strategy: string, size: number) => r.wire.find((w) => w.strategy === strategy && w.size === size)!;
  const sizes = r.config.sizes.map((s) => s.bytes);
  return { rounds, of, ratios, ratio, wire, sizes };
}

/** Issue 14's targets and DESIGN.md's round-trip and bytes targets, each met or not with its figure. */
export function evaluateTargets(r: Results): Target[] {
  const { rounds, of, ratios, ratio, wire, sizes } = figures(r);
  const targets: Target[] = [];
  // The floor for the layout's copies shows what any persist of that layout costs at least.
  const cpu = (strategy: string, size: number, limit: number, bound: string) => {
    const v = ratio(strategy, legacy.name, size, 'cpuUs');
    const boundRatio = ratio(bound, legacy.name, size, 'cpuUs');
    targets.push({
      target: `main-thread CPU per persist <= ${x(limit)} legacy (${kb(size)})`,
      strategy: r.defaults[size] === strategy ? `default (${strategy})` : strategy,
      measured: `${x(v)} (${num(of(strategy, size, 'cpuUs'))} µs vs ${num(of(legacy.name, size, 'cpuUs'))}; ${bound}: ${x(boundRatio)})`,
      met: v <= limit,
      why:
        boundRatio > limit - 0.05
          ? `the floor is at the target: ${bound} alone, with no script, measured ${x(boundRatio)} legacy`
          : `the reads and checks before the writes (the per-step profile below): ${num(of(strategy, size, 'cpuUs') - of(bound, size, 'cpuUs'))} µs over ${bound}`,
    });
  };
  for (const size of sizes) cpu(r.defaults[size]!, size, size <= 2048 ? 1.0 : 0.9, twoSets.name);
  for (const size of sizes.filter((s) => s > 2048)) cpu(oneCopy.name, size, 0.7, floor.name);
  for (const size of sizes) {
    const each = ratios(r.defaults[size]!, legacy.name, size, 'persistsPerSec');
    const worst = Math.min(...each);
    // Client and server share the machine's cores: together their CPU per persist sets the rate.
    const both = (name: string) => of(name, size, 'clientCpuUs') + of(name, size, 'cpuUs');
    const swing = (name: string) => rounds(name, size, 16).map((b) => b.persistsPerSec);
    targets.push({
      target: `persists/s at 16 in flight >= 1.30x legacy in every round (${kb(size)})`,
      strategy: `default (${r.defaults[size]})`,
      measured: `worst round ${x(worst)} (median ${x(median(each))}, ${each.length} rounds)`,
      met: worst >= 1.3,
      why: `client and server share ${r.machine.cores} cores, so their CPU per persist together sets the rate: ${num(both(r.defaults[size]!))} µs against legacy's ${num(both(legacy.name))} (${x(both(legacy.name) / both(r.defaults[size]!))}); single rounds swing more than the margin (legacy's own rate varies ${x(Math.max(...swing(legacy.name)) / Math.min(...swing(legacy.name)))} between rounds)`,
    });
  }
  const small = r.config.history.payloadBytes;
  const smallDefault = `default (${r.defaults[small] ?? 'store'}, ${kb(small)})`;
  for (const [what, metric] of [['persist', 'persistCpuUs'], ['readLatest', 'readLatestCpuUs']] as const) {
    const growth = historyGrowth(r, metric);
    const worst = Math.max(...growth);
    targets.push({
      target: `${what} CPU the same at ${r.history.map((h) => int(h.members)).join(' / ')} index members (within ${x(FLAT_WITHIN)})`,
      strategy: smallDefault,
      measured: `${r.history.map((h) => num(median(h[metric]))).join(' / ')} µs; to ${int(r.history[0]!.members)}: ${growth.map(x).join(' / ')}`,
      met: worst <= FLAT_WITHIN,
    });
  }
  const p = r.pathological;
  targets.push({
    target: `persist < 1 ms with ${int(p.members)} members at one timestamp`,
    strategy: smallDefault,
    measured: `${num(p.cpuUs / 1000)} ms main-thread CPU (${num(p.wallMs)} ms wall)`,
    met: p.cpuUs < 1000,
  });
  const u = r.upstash.encodings.find((e) => e.encoding === 'base64')!;
  const upstashRatio = (u.persistUp + u.persistDown) / r.upstash.payloadBytes;
  targets.push({
    target: `Upstash: bytes per persist request <= 1.05x payload JSON (${kb(r.upstash.payloadBytes)})`,
    strategy: 'persist (@upstash/redis, inline)',
    measured: `${x(upstashRatio)} (${int(u.persistUp)} up + ${int(u.persistDown)} down; the payload escaped as a JSON string alone: ${x(r.upstash.payloadInRequestBytes / r.upstash.payloadBytes)})`,
    met: upstashRatio <= 1.05,
    why: `the REST request is a JSON array of strings: the payload escaped as one JSON string alone is ${x(r.upstash.payloadInRequestBytes / r.upstash.payloadBytes)}; the rest is the script's SHA, keys and arguments`,
  });
  for (const size of sizes) {
    const bytes = (s: string) => (wire(s, size).up + wire(s, size).down) / size;
    targets.push({
      target: `TCP bytes on the wire per persist <= 1.05x payload (${kb(size)})`,
      strategy: `default (${r.defaults[size]})`,
      measured: `${x(bytes(r.defaults[size]!))} (one SET: ${x(bytes(floor.name))})`,
      met: bytes(r.defaults[size]!) <= 1.05,
      why: `the key names, the SHA and the arguments are a fixed ${int(wire(r.defaults[size]!, size).up + wire(r.defaults[size]!, size).down - size)} bytes (one SET alone: ${x(bytes(floor.name))})`,
    });
  }
  for (const transport of ['TCP', 'HTTP'] as const) {
    const cases = r.latency?.cases.filter((c) => c.transport === transport) ?? [];
    const seeder = cases.find((c) => c.name.startsWith('seeder'));
    const readOne = cases.find((c) => c.name.endsWith('1 region'));
    if (!seeder || !readOne) continue;
    const requests = readOne.moduleRequests === undefined ? '' : `, ${readOne.moduleRequests} HTTP request`;
    targets.push(
      { target: `8-region persist at ${r.latency!.rttMs} ms RTT >= 10x faster than legacy`, strategy: `persistMany (${transport})`, measured: x(seeder.speedup), met: seeder.speedup >= 10 },
      { target: 'readLatest in one round trip', strategy: `readLatest (${transport})`, measured: `${readOne.moduleRoundTrips.toFixed(2)} RTT${requests}`, met: readOne.moduleRoundTrips < 1.5 && (readOne.moduleRequests ?? 1) === 1 },
    );
  }
  return targets;
}

/** Each larger index's cost over the smallest's: medians over rounds of the ratio within a round. */
function historyGrowth(r: Results, metric: 'persistCpuUs' | 'readLatestCpuUs'): number[] {
  const base = r.history[0]![metric];
  return r.history.slice(1).map((h) => median(h[metric].map((v, i) => v / base[i]!)));
}

function targetTable(targets: Target[]): string[] {
  return ['| target | strategy | measured | met |', '|---|---|---|---|', ...targets.map((t) => `| ${t.target} | ${t.strategy} | ${t.measured} | ${t.met ? 'met' : `**not met**: ${t.why}`} |`)];
}

/** Main-thread CPU per persist: payload sizes down, strategies across. */
function cpuTable(r: Results, metric: 'cpuUs' | 'clientCpuUs' = 'cpuUs'): string[] {
  const { of } = figures(r);
  return [
    `| payload | ${r.strategies.map((s) => s.name).join(' | ')} |`,
    `|---|${r.strategies.map(() => '---|').join('')}`,
    ...r.config.sizes.map(({ bytes }) => `| ${kb(bytes)} | ${r.strategies.map((s) => `${num(of(s.name, bytes, metric))}${r.defaults[bytes] === s.name ? ' (default)' : ''}`).join(' | ')} |`),
  ];
}

const CLIENT_CPU = [
  'CPU µs per persist of the bench process itself (`process.cpuUsage`, user + system, over the same batches): the client side of',
  'each strategy, its JavaScript, ioredis and the socket calls, on the same 2 cores as Redis. At 16 in flight a batch takes about',
  'the larger of this and the main-thread CPU above per persist, so whichever is larger bounds persists/s.',
];

/** The range of legacy's per-round CPU and throughput at one size, 16 in flight. */
function noise(r: Results, size: number): string {
  const { rounds } = figures(r);
  const b = rounds(legacy.name, size);
  const range = (metric: keyof BatchResult, f: (v: number) => string) => `${f(Math.min(...b.map((v) => v[metric])))}–${f(Math.max(...b.map((v) => v[metric])))}`;
  return `${kb(size)}: ${range('cpuUs', num)} µs and ${range('persistsPerSec', int)} persists/s`;
}

/** Prints the run's target rows (and the CPU table they come from) on stdout. */
export function printTargets(r: Results, targets: Target[]): void {
  const met = targets.filter((t) => t.met).length;
  console.log(`\n${r.command}: ${r.date}, Redis ${r.redisVersion}, ${r.machine.cpu} (${r.machine.cores} cores), ${r.durationS} s`);
  console.log('\nMain-thread CPU µs per persist, 16 in flight, medians over rounds:\n');
  console.log(cpuTable(r).join('\n'));
  console.log(`\n${CLIENT_CPU.join('\n')}\n`);
  console.log(cpuTable(r, 'clientCpuUs').join('\n'));
  console.log(`\nLegacy's own batches over the rounds (noise): ${figures(r).sizes.map((s) => noise(r, s)).join('; ')}`);
  console.log(`\nTargets: ${met} of ${targets.length} met\n`);
  console.log(targetTable(targets).join('\n'));
}

function sizeTable(r: Results, size: number): string {
  const { of, ratio, ratios, wire } = figures(r);
  const one = r.config.inflights.includes(1);
  const rows = r.strategies.map(({ name }) => {
    const w = wire(name, size);
    const speed = ratios(name, legacy.name, size, 'persistsPerSec');
    return [
      name + (r.defaults[size] === name ? ' (default)' : ''),
      num(of(name, size, 'cpuUs')),
      [legacy, multiExec, floor, twoSets].map((b) => x(ratio(name, b.name, size, 'cpuUs'))).join(' / '),
      `${num(of(name, size, 'serverUs'))} (${x(ratio(name, legacy.name, size, 'serverUs'))})`,
      `${int(of(name, size, 'persistsPerSec'))} (${x(median(speed))}, worst ${x(Math.min(...speed))})`,
      `${num(of(name, size, 'p50Ms'))} / ${num(of(name, size, 'p99Ms'))}`,
      ...(one ? [`${int(of(name, size, 'persistsPerSec', 1))} (${x(ratio(name, legacy.name, size, 'persistsPerSec', 1))})`] : []),
      `${int(w.up)} + ${int(w.down)} (${x((w.up + w.down) / size)})`,
      `${int(of(name, size, 'memoryBytes'))} (${x(ratio(name, legacy.name, size, 'memoryBytes'))})`,
    ];
  });
  const head = [
    'strategy',
    'main-thread CPU µs per persist',
    'CPU ratio to legacy / MULTI/EXEC / one SET / two SETs',
    'commandstats µs (to legacy)',
    'persists/s, 16 in flight (to legacy: median, worst round)',
    'p50 / p99 ms, 16',
    ...(one ? ['persists/s, 1 in flight (to legacy)'] : []),
    'bytes up + down per persist (to payload)',
    'memory per snapshot, bytes (to legacy)',
  ];
  return [`### ${kb(size)} payload`, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---|').join('')}`, ...rows.map((cells) => `| ${cells.join(' | ')} |`), ''].join('\n');
}

function upstashSection(r: Results): string[] {
  const u = r.upstash;
  const [b64, off] = (['base64', 'off'] as const).map((e) => u.encodings.find((c) => c.encoding === e)!);
  const extraBytes = b64!.readDown - off!.readDown;
  const extraUs = b64!.readUs - off!.readUs;
  const costs = extraBytes > 0 && extraUs > 0;
  return [
    `@upstash/redis ${u.clientVersion} to the Upstash-protocol test server (test/support/upstash-server.ts) on the same Redis, through`,
    `the byte-counting proxy, no added delay; payload ${kb(u.payloadBytes)} (${int(u.payloadBytes)} bytes of JSON). Bytes are per HTTP exchange, headers included.`,
    `The request body is JSON, so the payload travels as a JSON string: ${int(u.payloadInRequestBytes)} bytes with its quotes and backslashes escaped.`,
    `A client with default options sent \`Upstash-Encoding: ${u.defaultEncodingHeader ?? '(none)'}\`; \`responseEncoding: false\` turns it off. It applies to`,
    'responses only. Client time per `readLatest` is measured against a server that answers the protocol\'s reply for this payload',
    'straight away, so that the difference is the client\'s: receiving and parsing a larger body and decoding base64 (medians, the',
    'encodings alternating).',
    '',
    '| response encoding | persist: bytes up + down (to payload) | readLatest: bytes up + down | readLatest µs (client) |',
    '|---|---|---|---|',
    ...u.encodings.map(
      (e) => `| ${e.encoding === 'base64' ? 'base64 (default)' : 'off'} | ${int(e.persistUp)} + ${int(e.persistDown)} (${x((e.persistUp + e.persistDown) / u.payloadBytes)}) | ${int(e.readUp)} + ${int(e.readDown)} | ${num(e.readUs)} |`,
    ),
    '',
    `Base64 costs ${int(extraBytes)} bytes (${x(b64!.readDown / off!.readDown)} the response) and ${num(extraUs)} µs of client time per ${kb(u.payloadBytes)} readLatest. ` +
      (costs
        ? 'It buys nothing for this store: base64 is there for values that are not valid UTF-8, and every value this store reads back is JSON text, an id or an integer, which a JSON response carries as it is (the bench checks that both encodings return the payload unchanged). Not worth keeping on: create the @upstash/redis client with `responseEncoding: false`.'
        : 'In this run that is no measurable cost: keep the client\'s default.'),
  ];
}

function profileSection(r: Results): string[] {
  return r.profile.flatMap((p) => [
    `#### ${p.label}, ${kb(p.payloadBytes)}`,
    '',
    '| persist.lua lines added | commands they run per persist | main-thread CPU µs per persist | step | script µs (commandstats) | step |',
    '|---|---|---|---|---|---|',
    ...p.steps.map((s) => {
      const step = (v: number | undefined) => (v === undefined ? '' : `${v >= 0 ? '+' : ''}${num(v)}`);
      return `| ${s.lines} | ${s.commands} | ${num(s.cpuUs)} | ${step(s.cpuStepUs)} | ${num(s.scriptUs)} | ${step(s.scriptStepUs)} |`;
    }),
    '',
  ]);
}

function markdown(r: Results, targets: Target[]): string {
  const { sizes } = figures(r);
  const met = targets.filter((t) => t.met).length;
  const counts = (inflight: number) => r.config.sizes.map((s) => `${s.count[inflight]} at ${kb(s.bytes)}`).join(', ');
  const h = r.config.history;
  return [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (bench/run.ts) in one run: every figure, verdict and the chart below come from the run described',
    'here. Raw figures: [bench/results.json](bench/results.json). `npm run bench -- --quick` prints the target rows only',
    '(fewer rounds, smaller batches, no latency scenario or profile) and writes nothing. `node --import tsx bench/report.ts` writes',
    'this file, the chart and README.md\'s Benchmarks section again from bench/results.json, without measuring.',
    '',
    `- Command: \`${r.command}\` (${r.durationS} s, ${r.date})`,
    `- Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}; how noisy it was: see the range of legacy's own batches below`,
    `- Redis ${r.redisVersion}, in a container on the host network, reached over loopback`,
    `- ${r.config.rounds} rounds after a warm-up round; per round, payload size and persists in flight every strategy runs one batch:`,
    `  16 in flight: ${counts(16)} persists${r.config.inflights.includes(1) ? `; 1 in flight: ${counts(1)}` : ''}`,
    `- Targets met: ${met} of ${targets.length}`,
    '',
    '## Targets',
    '',
    'Main-thread CPU per persist, throughput at 16 in flight, cost against history and the Upstash path (these replace the earlier',
    'targets on commandstats server time, which leaves out reading and parsing requests), then bytes on the wire and round trips.',
    '"Default" is a store with default options: at each size, the transfer mode it picks (asked of the store: does its persist send',
    `MULTI?): ${sizes.map((s) => `${kb(s)} ${r.defaults[s]}`).join(', ')}. Ratios are medians over rounds of the ratio within each round.`,
    '',
    ...targetTable(targets),
    '',
    '## Main-thread CPU per persist',
    '',
    'Redis main-thread CPU µs per persist, 16 in flight, medians over rounds. How noisy the machine was: over the rounds, legacy\'s own',
    `batches ranged ${sizes.map((s) => noise(r, s)).join('; ')}.`,
    '',
    ...cpuTable(r),
    '',
    ...CLIENT_CPU,
    '',
    ...cpuTable(r, 'clientCpuUs'),
    '',
    '![Main-thread CPU per persist and throughput at 16 in flight, log scale](bench/chart.svg)',
    '',
    '## Method',
    '',
    '- Strategies take turns within each round (the first one rotating), so machine noise hits all alike. Every persist has its',
    '  own id, timestamp and dedup trigger: nothing is a replay or a duplicate. The keyspace is flushed before every batch.',
    '- Payloads have the seeder\'s RegionalSnapshot shape (test/fixtures/regional-snapshot-mena.json, evidence list trimmed or padded).',
    '  Every strategy starts from the document object and serialises it once, as the seeder does (the module: the store\'s own JSON.stringify).',
    '- **legacy pipeline**: the dedup `SET NX` request, then the six writes as one pipeline (payload twice).',
    '  **MULTI/EXEC**: the dedup `SET NX` and the same six writes in one transaction.',
    '  **persist inline / staged**: this module\'s `store.persist`, payload in ARGV / staged (`stagePayloadsFrom: Infinity / 0`).',
    '  **staged one-copy**: staged, `keys: { timestampKey: \'id\' }`. **floor: one SET**: `SET key payload PXAT …`;',
    '  **floor: two SETs**: that SET under the timestamp key and the by-id key, one pipeline (the floor for two copies).',
    '- **Main-thread CPU** is the delta of `INFO cpu` `used_cpu_sys_main_thread` + `used_cpu_user_main_thread` over a batch, divided',
    '  by its persists: everything Redis\'s one thread spends on them, reading and parsing requests and writing replies included.',
    `  The two \`INFO\` calls that bracket a batch are inside it: ${num(r.emptyBatchUs)} µs per batch with nothing between them. With 16 in flight it also depends on how`,
    '  requests arrive: requests that arrive together are read with one system call, so a slower client (more work per persist',
    '  on the client, or a loaded machine) costs Redis more CPU per persist. Every strategy pays its own client\'s work here.',
    '- **commandstats µs** is the `INFO commandstats` usec of the commands a strategy sends at top level, reset before each batch:',
    '  executing only. Redis 7 adds the commands a transaction or a script runs to the usec of `EXEC` or `EVALSHA` and also counts',
    '  them under their own names, so a transaction counts as `MULTI` + `EXEC` and a script as `EVALSHA` + `EVAL`. It is wall-clock',
    '  time around each command, so on a loaded machine it also counts the moments the thread waited for a core.',
    `- **Bytes on the wire**: both directions through a loopback proxy (test/support/proxy.ts), ${r.config.bytesSample} persists per strategy and size;`,
    '  throughput, latency and CPU are measured without the proxy.',
    '- **Memory per snapshot**: `MEMORY USAGE` of the keys one persist creates (timestamp key, by-id key, dedup claim; the floors\'',
    '  keys); the region\'s shared `latest`, index and `live` keys are left out.',
    '',
    '## Results by payload size',
    '',
    ...sizes.map((s) => sizeTable(r, s)),
    '## Cost against history',
    '',
    `One region per index size, its index filled with older members; per round (${h.rounds} after a warm-up) and size, ${h.count} persists and`,
    `${h.count} readLatests, ${kb(h.payloadBytes)}, 16 in flight, default store, in ${SLICES} slices in which the sizes take turns; the round's members are then`,
    `removed, so each round starts from the same index. Main-thread CPU µs per call, medians over rounds; ratios to the smallest index are medians of the ratios within`,
    `each round; "the same within noise" is read as within ${x(FLAT_WITHIN)}.`,
    '',
    `| index members | persist CPU µs | to ${int(r.history[0]!.members)} | readLatest CPU µs | to ${int(r.history[0]!.members)} |`,
    '|---|---|---|---|---|',
    ...r.history.map((c, i) => {
      const growth = (metric: 'persistCpuUs' | 'readLatestCpuUs') => (i === 0 ? '1.00x' : x(historyGrowth(r, metric)[i - 1]!));
      return `| ${int(c.members)} | ${num(median(c.persistCpuUs))} | ${growth('persistCpuUs')} | ${num(median(c.readLatestCpuUs))} | ${growth('readLatestCpuUs')} |`;
    }),
    '',
    `Pathological region: ${int(r.pathological.members)} index members at one timestamp and its timestamp key present; ${r.pathological.persists} persists at`,
    `that timestamp, one at a time, each a new id greater than all: ${num(r.pathological.cpuUs)} µs main-thread CPU per persist, ${num(r.pathological.wallMs)} ms wall (median).`,
    '',
    '## Upstash path',
    '',
    ...upstashSection(r),
    '',
    ...(r.latency
      ? [
          `## Latency-bound: ${r.latency.rttMs} ms round-trip time`,
          '',
          `The loopback proxy delays every chunk ${r.latency.rttMs / 2} ms each way. TCP: ioredis to Redis. HTTP: @upstash/redis to`,
          'the Upstash-protocol test server on the same Redis, which counts the HTTP requests.',
          `Legacy: the seeder's dedup request and pipeline per region, and the readers' GET latest then GET by-id, in sequence.`,
          `Payload ${kb(r.latency.payloadBytes)}; medians of ${r.config.latencyReps} alternating runs. Round trips = elapsed time / RTT.`,
          '',
          '| transport | case | legacy ms | legacy round trips (HTTP requests) | module ms | module round trips (HTTP requests) | speed-up |',
          '|---|---|---|---|---|---|---|',
          ...r.latency.cases.map((c) => {
            const trips = (rtt: number, requests: number | undefined) => `${rtt.toFixed(2)}${requests === undefined ? '' : ` (${requests})`}`;
            return `| ${c.transport} | ${c.name} | ${num(c.legacyMs)} | ${trips(c.legacyRoundTrips, c.legacyRequests)} | ${num(c.moduleMs)} | ${trips(c.moduleRoundTrips, c.moduleRequests)} | ${x(c.speedup)} |`;
          }),
          '',
        ]
      : []),
    '## Per-step profile of persist.lua',
    '',
    'What each group of persist.lua\'s commands costs. bench/profile.ts cuts lua/persist.lua as it is at run time: before its first',
    'statement, then before every top-level statement that runs a `redis.call` (each step adds one group of commands and the plain',
    'Lua after it), by inserting `do return { 1, 0, 0 } end`. Each cut runs through the unchanged store with default options (a',
    'spying client swaps persist.lua\'s SHA for the cut\'s), after the whole script has persisted one snapshot of each region (a',
    `steady state: latest and index present); ${r.profile[0]?.calls} persists per batch, 16 in flight, the cuts taking turns over ${r.profile[0]?.rounds} rounds`,
    'after a warm-up; medians. "Commands they run" is the difference in commandstats calls per persist from the step before, so a',
    'branch not taken shows nothing. CPU is cumulative main-thread CPU per persist; script µs is `EVALSHA`\'s commandstats usec;',
    '"step" is what the step adds: the median over rounds of its difference from the step before within the same round.',
    'Produced by `npm run bench` (full run; --quick skips it). On a shared machine a step can come out negative: read small steps as noise.',
    '',
    ...profileSection(r),
  ].join('\n');
}

/** README.md's Benchmarks section, from the same run: every figure in it is printed here. */
function readmeSection(r: Results, targets: Target[]): string {
  const { of, ratios, sizes } = figures(r);
  const met = targets.filter((t) => t.met).length;
  const seeder = r.latency?.cases.filter((c) => c.name.startsWith('seeder')) ?? [];
  return [
    '## Benchmarks',
    '',
    `\`npm run bench\` (${r.durationS} s in the last run; \`-- --quick\` prints only the target rows, from a shorter run) starts its own Redis and`,
    'measures, interleaved, the legacy seeder (a dedup request, then six commands as one pipeline carrying the payload twice),',
    'MULTI/EXEC of the same writes, this module\'s `persist` inline, staged and staged one-copy, and the floors (one `SET … PXAT`;',
    `two SETs), at ${sizes.map(kb).join(', ')}: Redis main-thread CPU per persist (\`INFO cpu\`) beside commandstats, throughput,`,
    `bytes, memory, cost against index size, the Upstash path, ${r.latency ? `${r.latency.rttMs} ms RTT round trips ` : ''}and a per-step profile of persist.lua.`,
    `[BENCHMARKS.md](BENCHMARKS.md) has the tables, the chart and every target; ${met} of ${targets.length} met in the last run`,
    `(${r.date.slice(0, 10)}, Redis ${r.redisVersion}, ${r.machine.cores}-core ${r.machine.cpu}; BENCHMARKS.md shows how noisy the machine was).`,
    '',
    'Main-thread CPU µs per persist, 16 in flight:',
    '',
    '| payload | legacy | MULTI/EXEC | this module, default | one-copy | one SET | two SETs | persists/s, default to legacy (worst round) |',
    '|---|---|---|---|---|---|---|---|',
    ...sizes.map((s) => {
      const d = r.defaults[s]!;
      const speed = ratios(d, legacy.name, s, 'persistsPerSec');
      const cells = [legacy.name, multiExec.name, d, oneCopy.name, floor.name, twoSets.name].map((n) => num(of(n, s, 'cpuUs')));
      cells[2] = `${cells[2]} (${d.replace('persist ', '')})`;
      return `| ${kb(s)} | ${cells.join(' | ')} | ${x(median(speed))} (${x(Math.min(...speed))}) |`;
    }),
    '',
    ...(seeder.length > 0
      ? [`8-region persist at ${r.latency!.rttMs} ms RTT: ${seeder.map((c) => `${x(c.speedup)} faster than legacy over ${c.transport}`).join(', ')}.`, '']
      : []),
  ].join('\n');
}

/** Writes bench/results.json, bench/chart.svg, BENCHMARKS.md and README.md's Benchmarks section. */
export function writeReport(r: Results): void {
  const targets = evaluateTargets(r);
  const { of } = figures(r);
  const root = new URL('../', import.meta.url);
  writeFileSync(new URL('bench/results.json', root), `${JSON.stringify({ ...r, targets }, null, 2)}\n`);
  const groups = r.config.sizes.map((s) => kb(s.bytes));
  const series = (metric: keyof BatchResult) => r.strategies.map(({ name }) => ({ name, values: r.config.sizes.map((s) => of(name, s.bytes, metric)) }));
  writeFileSync(
    new URL('bench/chart.svg', root),
    chartSvg([
      { title: 'main-thread CPU µs per persist', groups, series: series('cpuUs') },
      { title: 'persists/s, 16 in flight', groups, series: series('persistsPerSec') },
    ]),
  );
  writeFileSync(new URL('BENCHMARKS.md', root), `${markdown(r, targets)}\n`);
  const readme = new URL('README.md', root);
  const text = readFileSync(readme, 'utf8');
  const start = text.indexOf('\n## Benchmarks\n');
  const end = text.indexOf('\n## ', start + 1);
  if (start < 0 || end < 0) throw new Error('README.md has no "## Benchmarks" section followed by another section');
  writeFileSync(readme, `${text.slice(0, start + 1)}${readmeSection(r, targets)}${text.slice(end)}`);
}

// `node --import tsx bench/report.ts`: the documents again from bench/results.json, without measuring.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { targets: _, ...results } = JSON.parse(readFileSync(new URL('results.json', import.meta.url), 'utf8')) as Results & { targets: unknown };
  writeReport(results);
}
