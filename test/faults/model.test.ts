/**
 * Model-based property test: random sequences of persists, clock advances and reads run against
 * a real Redis and against test/support/model.ts; after every command each result equals the
 * model's, the keyspace equals the model's (keys, values, index members and scores, PEXPIRETIME)
 * and the invariant checker finds nothing.
 *
 * Clock. The store takes `{ now }` on every call and the test moves that clock forward by up to
 * a few retention periods per run. Redis expires keys by its own clock, which cannot be moved, so
 * no key may expire for real during a run: every snapshot that gets written has
 * timestamp > now - retention, and the clock starts at START, at least an hour after the real
 * time (runs take seconds), so every expiry (timestamp + retention, index: newest + retention) lies
 * after START, in the real future. Dedup claims expire after their PX ttl of real time (15 min),
 * also after the run. What the scripts derive from `now` (the window of every read) is what gets
 * exercised, and the model reproduces it. The `expired` status and pruning on write follow the
 * server's clock (persist.lua reads TIME), which this clock does not move: no run reaches them.
 *
 * Reproduce a failure: the test prints its seed; `FC_SEED=<seed>` replays the same runs. On
 * failure fast-check prints `path` and, in the counterexample, `replayPath`:
 * `FC_SEED=<seed> FC_PATH=<path> FC_REPLAY_PATH=<replayPath>` replays the shrunk counterexample
 * alone. `FC_RUNS=<n>` changes the number of runs (default 40).
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { isDeepStrictEqual as isEqual } from 'node:util';
import fc, { type AsyncCommand } from 'fast-check';
import type { Redis } from 'ioredis';
import { createSnapshotStore, keySchemas, ScriptRefusedError, type SnapshotInput, type SnapshotStore } from '../../src/index.js';
import { violations } from '../support/keyspace.js';
import { SnapshotModel, type KeyEntry, type Leftover, type PersistOutcome } from '../support/model.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const GRID_MS = 5 * 60_000; // timestamps fall on this grid around `now`, so they collide
const DEDUP = { windowMs: 3 * GRID_MS, ttlMs: 3 * GRID_MS }; // three grid steps share a bucket
const RETENTION_MS = 12 * GRID_MS;
const START = Math.ceil((Date.now() + 3_600_000) / DEDUP.windowMs) * DEDUP.windowMs;
const REGIONS = ['mena', 'europe', 'global'] as const;
/** Id suffixes whose byte order differs from a locale's: '-' < '.' < '9' < 'A' < 'B' < '_' < 'a'. */
const SUFFIXES = ['A', 'B', 'a', 'b', 'a.1', 'a-1', 'a_1', '9', 'aa'] as const;
const TRIGGERS = ['scheduled_6h', 'manual', undefined] as const;
const NUM_RUNS = Number(process.env.FC_RUNS ?? 40);

interface World {
  model: SnapshotModel;
  now: number;
  /** Every snapshot sent so far, for replays and reused timestamps. */
  sent: SnapshotInput[];
}
interface Real {
  store: SnapshotStore;
  client: Redis;
}

/**
 * A timestamp: on the grid around now (-13 steps: long expired, +3: ahead), or one sent before,
 * or a grid step in the dedup bucket of one sent before (a claim to collide with or take over).
 */
type TimestampSpec = { steps: number; plusOne: boolean } | { reuse: number } | { bucketOf: number; step: number };
interface SnapshotSpec {
  region: (typeof REGIONS)[number];
  suffix: (typeof SUFFIXES)[number];
  timestamp: TimestampSpec;
  payload: { v: number; asText: boolean };
  trigger: (typeof TRIGGERS)[number];
}

const tally = { executions: 0, commands: 0, persisted: 0, replayed: 0, duplicate: 0, expired: 0, conflict: 0, pruned: 0, takeovers: 0, advanced: 0 };

function snapshotOf(spec: SnapshotSpec, w: World): SnapshotInput {
  const t = spec.timestamp;
  const earlier = (k: number) => w.sent[k % w.sent.length]?.timestamp ?? w.now;
  const timestamp =
    'reuse' in t ? earlier(t.reuse)
    : 'bucketOf' in t ? Math.floor(earlier(t.bucketOf) / DEDUP.windowMs) * DEDUP.windowMs + t.step * GRID_MS
    : w.now + t.steps * GRID_MS + (t.plusOne ? 1 : 0);
  const { v, asText } = spec.payload;
  // JSON text is stored verbatim, spaces included; an object is serialised once.
  // region_id: how the checker attributes a by-id key that no index holds (its key has no region).
  const payload = asText ? `{ "region_id": "${spec.region}", "v": ${v}, "s": "\u00e9" }` : { region_id: spec.region, v, s: '\u00e9\u{1f600}' };
  const s: SnapshotInput = { region: spec.region, id: `${spec.region}.${spec.suffix}`, timestamp, payload };
  if (spec.trigger !== undefined) s.trigger = spec.trigger;
  return s;
}

async function outcomeOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.catch((error: unknown) => {
    if (error instanceof ScriptRefusedError) return { error: error.code };
    throw error;
  });
}

function count(outcome: PersistOutcome, takeover: boolean): void {
  if ('error' in outcome) return void tally.conflict++;
  tally[outcome.status]++;
  if (outcome.pruned > 0) tally.pruned++;
  if (outcome.latestAdvanced) tally.advanced++;
  if (takeover && outcome.status === 'persisted') tally.takeovers++;
}

/** Whether persisting `s` would meet a claim left by a snapshot that is no longer indexed. */
function meetsStaleClaim(w: World, s: SnapshotInput): boolean {
  const bucket = Math.floor(s.timestamp / DEDUP.windowMs);
  const key = keySchemas['worldmonitor-v1'].dedup(s.region, s.trigger ?? '', bucket);
  return s.trigger !== undefined && w.model.leftovers().some((l) => l.role === 'claim' && l.key === key);
}

/** Every key in Redis as the model describes keys: type, value, members with scores, PEXPIRETIME. */
async function readKeyspace(client: Redis): Promise<Map<string, KeyEntry>> {
  const out = new Map<string, KeyEntry>();
  for (const key of (await client.keys('*')).sort()) {
    const [type, expireAt] = await Promise.all([client.type(key), client.pexpiretime(key)]);
    if (type === 'zset') {
      const flat = await client.zrange(key, 0, -1, 'WITHSCORES');
      const members: Array<[string, number]> = [];
      for (let i = 0; i < flat.length; i += 2) members.push([flat[i]!, Number(flat[i + 1])]);
      out.set(key, { type, members, expireAt });
    } else {
      out.set(key, { type: 'string', value: (await client.get(key))!, expireAt });
    }
  }
  return out;
}

function leftoverFinding(l: Leftover): string {
  if (l.role === 'by-id') return `${l.region}: by-id key of ${l.id} has no index member`;
  if (l.role === 'timestamp') return `${l.region}: timestamp key ${l.timestamp} has no index member`;
  return `${l.region}: ${l.key} claims ${l.id}, which was never persisted`;
}

async function checkKeyspace(w: World, r: Real): Promise<void> {
  const actual = await readKeyspace(r.client);
  const expected = w.model.keyspace();
  // A dedup claim expires `ttl` after the server ran the call: anywhere in the call's interval.
  for (const [key, entry] of expected) {
    const got = actual.get(key)?.expireAt;
    if (Array.isArray(entry.expireAt) && typeof got === 'number' && got >= entry.expireAt[0] && got <= entry.expireAt[1]) entry.expireAt = got;
  }
  const differing = [...new Set([...actual.keys(), ...expected.keys()])].filter((key) => !isEqual(actual.get(key), expected.get(key)));
  assert.equal(differing, [], `keyspace differs: ${differing.map((key) => `${key}: redis ${JSON.stringify(actual.get(key))}, model ${JSON.stringify(expected.get(key))}`).join('; ')}`);
  // The checker judges the keyspace by Redis's own clock, which has expired nothing: the keys of
  // pruned snapshots are still there, named by no member (a real clock would have expired the
  // payloads before pruning them). Exactly the findings about those keys are expected.
  const leftovers = new Set(w.model.leftovers().map(leftoverFinding));
  const found = await violations(r.client, { regions: REGIONS, now: Date.now(), retentionMs: RETENTION_MS });
  const unexpected = found.filter((line) => !leftovers.has(line));
  assert.equal(unexpected, [], `violations: ${unexpected.join('; ')}`);
}

/** Runs one command's real and model halves; checks the keyspace after it. */
function command(describe: () => string, step: (w: World, r: Real) => Promise<void>, check: (w: Readonly<World>) => boolean = () => true): AsyncCommand<World, Real> {
  return {
    check,
    async run(w, r) {
      tally.commands++;
      await step(w, r);
      await checkKeyspace(w, r);
    },
    toString: describe,
  };
}

function persistCommand(spec: SnapshotSpec) {
  return command(
    () => `persist(${JSON.stringify(spec)})`,
    async (w, r) => {
      const s = snapshotOf(spec, w);
      const takeover = meetsStaleClaim(w, s);
      const from = Date.now();
      const actual = await outcomeOf(r.store.persist(s, { now: w.now }));
      const expected = w.model.persist(s, w.now, [from, Date.now()]);
      w.sent.push(s);
      count(expected, takeover);
      assert.equal(actual, expected, `persist ${JSON.stringify(s)} at ${w.now}`);
    },
  );
}

/** Re-sends an earlier snapshot, as a retry after a lost reply does (or with another payload). */
function replayCommand(k: number, samePayload: boolean) {
  return command(
    () => `replay(${k}, ${samePayload})`,
    async (w, r) => {
      const earlier = w.sent[k % w.sent.length]!;
      const s = samePayload ? earlier : { ...earlier, payload: { other: k } };
      const takeover = meetsStaleClaim(w, s);
      const from = Date.now();
      const actual = await outcomeOf(r.store.persist(s, { now: w.now }));
      const expected = w.model.persist(s, w.now, [from, Date.now()]);
      count(expected, takeover);
      assert.equal(actual, expected, `replay ${JSON.stringify(s)} at ${w.now}`);
    },
    (w) => w.sent.length > 0,
  );
}

function persistManyCommand(specs: SnapshotSpec[]) {
  return command(
    () => `persistMany(${JSON.stringify(specs)})`,
    async (w, r) => {
      const batch = specs.map((spec) => snapshotOf(spec, w));
      const from = Date.now();
      const settled = await r.store.persistMany(batch, { now: w.now });
      const to = Date.now();
      const actual = await Promise.all(settled.map((o) => outcomeOf(o.status === 'fulfilled' ? Promise.resolve(o.value) : Promise.reject(o.reason))));
      // The batch runs in order on the server: the model applies it in the same order.
      const expected = batch.map((s) => {
        const takeover = meetsStaleClaim(w, s);
        const outcome = w.model.persist(s, w.now, [from, to]);
        count(outcome, takeover);
        return outcome;
      });
      w.sent.push(...batch);
      assert.equal(actual, expected, `persistMany at ${w.now}`);
    },
  );
}

function advanceCommand(ms: number) {
  return command(
    () => `advance(${ms})`,
    async (w) => {
      w.now += ms;
    },
  );
}

function setLiveCommand(region: string) {
  return command(
    () => `setLive(${region})`,
    async (w, r) => {
      const value = `live-${w.now}`;
      await r.client.set(keySchemas['worldmonitor-v1'].live(region), value);
      w.model.setLive(region, value);
    },
  );
}

function readLatestCommand(region: string) {
  return command(
    () => `readLatest(${region})`,
    async (w, r) => assert.equal(await r.store.readLatest(region, { now: w.now }), w.model.readLatest(region, w.now), `readLatest ${region} at ${w.now}`),
  );
}

function readByIdCommand(region: string, suffix: string) {
  const id = `${region}.${suffix}`;
  return command(
    () => `readById(${region}, ${id})`,
    async (w, r) => assert.equal(await r.store.readById(region, id, { now: w.now }), w.model.readById(region, id, w.now), `readById ${id} at ${w.now}`),
  );
}

/** since/until in grid steps from now (undefined: open). */
function listCommand(region: string, since: number | undefined, until: number | undefined, limit: number | undefined) {
  return command(
    () => `list(${region}, ${JSON.stringify({ since, until, limit })})`,
    async (w, r) => {
      const options = {
        now: w.now,
        ...(since === undefined ? {} : { since: w.now + since * GRID_MS }),
        ...(until === undefined ? {} : { until: w.now + until * GRID_MS }),
        ...(limit === undefined ? {} : { limit }),
      };
      assert.equal(await r.store.list(region, options), w.model.list(region, options), `list ${region} ${JSON.stringify(options)}`);
    },
  );
}

const region = fc.constantFrom(...REGIONS);
const snapshotSpec: fc.Arbitrary<SnapshotSpec> = fc.record({
  region,
  suffix: fc.constantFrom(...SUFFIXES),
  timestamp: fc.oneof(
    { arbitrary: fc.record({ steps: fc.integer({ min: -13, max: 3 }), plusOne: fc.boolean() }), weight: 3 },
    { arbitrary: fc.record({ reuse: fc.nat(40) }), weight: 1 },
    { arbitrary: fc.record({ bucketOf: fc.nat(40), step: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  ),
  payload: fc.record({ v: fc.nat(3), asText: fc.boolean() }),
  trigger: fc.constantFrom(...TRIGGERS),
});
const optionalSteps = fc.option(fc.integer({ min: -13, max: 3 }), { nil: undefined });

const commands = fc.commands(
  [
    // Listed twice: writes are what the model is about.
    snapshotSpec.map(persistCommand),
    snapshotSpec.map(persistCommand),
    fc.tuple(fc.nat(40), fc.boolean()).map(([k, same]) => replayCommand(k, same)),
    fc.array(snapshotSpec, { minLength: 1, maxLength: 3 }).map(persistManyCommand),
    // Mostly whole grid steps, so old timestamps land exactly on the cutoff; 1 ms to cross it.
    fc.constantFrom(1, GRID_MS, 2 * GRID_MS, RETENTION_MS / 2, RETENTION_MS, RETENTION_MS + 1).map(advanceCommand),
    region.map(setLiveCommand),
    region.map(readLatestCommand),
    fc.tuple(region, fc.constantFrom(...SUFFIXES)).map(([r, s]) => readByIdCommand(r, s)),
    fc.tuple(region, optionalSteps, optionalSteps, fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined })).map((a) => listCommand(...a)),
  ],
  { maxCommands: 40, size: 'max', ...(process.env.FC_REPLAY_PATH ? { replayPath: process.env.FC_REPLAY_PATH } : {}) },
);

const test = suite('model-based: persist, clock and reads against the model', 1);
let redis: RedisServer;
let client: Redis;

test.before(async () => {
  redis = await startRedis();
  client = redis.client();
});
test.after(async () => {
  await redis?.stop();
});

test('every result and the whole keyspace match the model after every command', async () => {
  const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : Date.now() ^ Math.floor(Math.random() * 0x7fffffff);
  console.log(`model-based test: seed ${seed} (rerun with FC_SEED=${seed})`);
  const store = createSnapshotStore({ client, retentionMs: RETENTION_MS, dedup: DEDUP, retry: false });
  const property = fc.asyncProperty(commands, async (cmds) => {
    tally.executions++;
    await client.flushall();
    const world: World = { model: new SnapshotModel({ retentionMs: RETENTION_MS, dedup: DEDUP }), now: START, sent: [] };
    await fc.asyncModelRun(() => ({ model: world, real: { store, client } }), cmds);
  });
  await fc.assert(property, { numRuns: NUM_RUNS, seed, includeErrorInReport: true, ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}) });
  const { executions, commands: executed, ...outcomes } = tally;
  console.log(`model-based test: ${NUM_RUNS} runs (${executions} executions), ${executed} commands executed; persist outcomes ${JSON.stringify(outcomes)}`);
});

test.run();
