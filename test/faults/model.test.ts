/**
 * Model-based property test: random sequences of persists, clock advances and reads run against
 * a real Redis and against test/support/model.ts; after every command each result equals the
 * model's, the keyspace equals the model's (keys, values, index members and scores, PEXPIRETIME)
 * and the invariant checker finds nothing.
 *
 * Clock. persist.lua decides `expired` and pruning by the server's clock (TIME), the clock Redis
 * expires keys by; the store's `{ now }` sets the window of reads. Each run starts its test clock
 * 30 s before the real time and lays timestamps on a 5-minute grid around it, so the retention
 * edge of every grid timestamp lies at least 30 s from any instant of the run (runs take
 * seconds): the grid's oldest steps are expired by the server's clock, the rest are written and
 * none of their keys expires during the run. Advances of the test clock move the window of reads
 * (and where later timestamps fall), not the server's clock. Dedup claims expire after their PX
 * ttl of real time (15 min), after the run.
 *
 * Configurations (one test each): ioredis with small inline payloads, two copies, `monotonic`;
 * ioredis with realistic payloads (a 40 KB fixture, staged) mixed with small inline ones, one copy
 * (`timestampKey: 'id'`), `latest: 'always'`; @upstash/redis through the Upstash-protocol test
 * server with realistic payloads, one copy, `monotonic`. Each test fails if its runs never reach
 * an outcome class they should: persisted, replayed, duplicate, expired, and the takeover of a
 * claim whose snapshot was never indexed (a command plants a legacy writer's claim, old enough to
 * take over or young enough to belong to a write in flight, then persists in its bucket).
 *
 * The legacy writer beside the library (the first configuration): a command runs the legacy
 * seeder's persist (its claim, then its six-command pipeline, cut after any of its commands) for
 * a snapshot of its own or one the library was sent (a backfill both load). After every command
 * the application's readers (`latest`, then the by-id key) are checked: after a command of the
 * library they still get a complete snapshot, under `'monotonic'` no older than before (age: the index score, else the
 * payload's `generated_at`, as persist.lua reads it); the legacy writer sets `latest` unconditionally,
 * so its own commands are exempt. Whenever that snapshot is inside the window, the library's
 * `readLatest` returns exactly it. Once the legacy writer has written, its drift (EX expiries, an
 * index without expiry, a `latest` out of the index) is what the keyspace holds: the model still
 * predicts every key, but the invariant checker, which judges a library-only keyspace, is skipped.
 *
 * Reproduce a failure: each test prints its seed; `FC_SEED=<seed>` replays the same runs (of every
 * configuration). On failure fast-check prints `path` and, in the counterexample, `replayPath`:
 * `FC_SEED=<seed> FC_PATH=<path> FC_REPLAY_PATH=<replayPath>` replays the shrunk counterexample
 * alone. `FC_RUNS=<n>` changes the number of runs per configuration (default 30).
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { isDeepStrictEqual as isEqual } from 'node:util';
import fc, { type AsyncCommand } from 'fast-check';
import type { Redis } from 'ioredis';
import { createSnapshotStore, keySchemas, ScriptRefusedError, type SnapshotInput, type SnapshotStore } from '../../src/index.js';
import { checkInvariants } from '../support/checker.js';
import { clientKinds, ioredisKind, type ClientKind } from '../support/clients.js';
import { FIXTURE } from '../support/faults.js';
import { legacyCommands } from '../support/legacy.js';
import { generatedAt, SnapshotModel, type KeyEntry, type PersistOutcome } from '../support/model.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const GRID_MS = 5 * 60_000; // timestamps fall on this grid around `now`, so they collide
// One grid step per bucket: which grid timestamps share a bucket does not depend on where the
// run's grid falls against the clock, so a seed replays the same outcomes.
const DEDUP = { windowMs: GRID_MS, ttlMs: 3 * GRID_MS };
const RETENTION_MS = 12 * GRID_MS;
/** Where each run's test clock starts: this far before the real time (see Clock above). */
const EDGE_MARGIN_MS = 30_000;
/** The legacy writer's claim TTL (EX 900) and persist.lua's in-flight margin. */
const LEGACY_CLAIM_MS = 900_000;
const REGIONS = ['mena', 'europe', 'global'] as const;
/** Id suffixes whose byte order differs from a locale's: '-' < '.' < '9' < 'A' < 'B' < '_' < 'a'. */
const SUFFIXES = ['A', 'B', 'a', 'b', 'a.1', 'a-1', 'a_1', '9', 'aa'] as const;
const TRIGGERS = ['scheduled_6h', 'manual', undefined] as const;
const NUM_RUNS = Number(process.env.FC_RUNS ?? 30);

interface Config {
  name: string;
  kind: ClientKind;
  latest: 'monotonic' | 'always';
  timestampKey: 'payload' | 'id';
  /** Whether payloads may be realistic (tens of KB); else all are tiny. */
  large: boolean;
  /** Whether the legacy writer writes beside the library (its layout: two copies). */
  legacyWriter: boolean;
}

interface World {
  config: Config;
  model: SnapshotModel;
  now: number;
  /** Every snapshot sent so far, for replays and reused timestamps. */
  sent: SnapshotInput[];
  /** Claim key → id of the claims planted as the legacy writer's. */
  legacyClaims: Map<string, string>;
  /** Legacy writes attempted (numbers their ids), and whether one wrote. */
  legacyIds: number;
  legacyWritten: boolean;
  /** Per region, what the application's readers got after the last command. */
  app: Map<string, AppRead | null>;
}
/** A snapshot as the application's readers get it; `age` as persist.lua takes it. */
interface AppRead {
  id: string;
  text: string;
  age: number | undefined;
}
interface Real {
  store: SnapshotStore;
  client: Redis;
}

/**
 * A timestamp: on the grid around now (-13 steps: long expired, +3: ahead), or one sent before,
 * or a few ms after one sent before, in its dedup bucket (a claim to collide with or take over).
 */
type TimestampSpec = { steps: number; plusOne: boolean } | { reuse: number } | { bucketOf: number; step: number };
interface SnapshotSpec {
  region: (typeof REGIONS)[number];
  suffix: (typeof SUFFIXES)[number];
  /** An id every region may use (`any.<suffix>`): under 'worldmonitor-v1' its by-id key is shared. */
  shared: boolean;
  timestamp: TimestampSpec;
  payload: { v: number; asText: boolean; large: boolean };
  trigger: (typeof TRIGGERS)[number];
}

const newTally = () => ({ executions: 0, commands: 0, persisted: 0, replayed: 0, duplicate: 0, expired: 0, conflict: 0, pruned: 0, takeovers: 0, advanced: 0, large: 0, legacyWrites: 0, legacyCuts: 0, heldOverUnindexed: 0 });
let tally = newTally();

function snapshotOf(spec: SnapshotSpec, w: World): SnapshotInput {
  const t = spec.timestamp;
  const earlier = (k: number) => w.sent[k % w.sent.length]?.timestamp ?? w.now;
  const timestamp =
    'reuse' in t ? earlier(t.reuse)
    // Another timestamp in the same bucket: a few ms after one sent before.
    : 'bucketOf' in t ? earlier(t.bucketOf) + t.step
    : w.now + t.steps * GRID_MS + (t.plusOne ? 1 : 0);
  const { v, asText } = spec.payload;
  const large = spec.payload.large && w.config.large;
  // JSON text is stored verbatim, spaces included; an object is serialised once.
  // region_id: how a by-id key that no index holds is attributed (its key has no region).
  // generated_at: the seeder's payloads carry their timestamp, the age of an unindexed `latest`.
  const fields = { region_id: spec.region, generated_at: timestamp, v, s: '\u00e9\u{1f600}' };
  const object = large ? { ...FIXTURE, ...fields } : fields;
  const payload = asText ? (large ? JSON.stringify(object, null, 1) : `{ "region_id": "${spec.region}", "generated_at": ${timestamp}, "v": ${v}, "s": "\u00e9" }`) : object;
  if (large) tally.large++;
  const s: SnapshotInput = { region: spec.region, id: `${spec.shared ? 'any' : spec.region}.${spec.suffix}`, timestamp, payload };
  if (spec.trigger !== undefined) s.trigger = spec.trigger;
  return s;
}

async function outcomeOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.catch((error: unknown) => {
    if (error instanceof ScriptRefusedError) return { error: error.code };
    throw error;
  });
}

function count(outcome: PersistOutcome, takeover: boolean, latestUnindexed = false): void {
  if ('error' in outcome) return void tally.conflict++;
  if (latestUnindexed && outcome.status === 'persisted' && !outcome.latestAdvanced) tally.heldOverUnindexed++;
  tally[outcome.status]++;
  if (outcome.pruned > 0) tally.pruned++;
  if (outcome.latestAdvanced) tally.advanced++;
  if (takeover && outcome.status === 'persisted') tally.takeovers++;
}

/** Whether persisting `s` would meet a claim whose snapshot is not indexed (a legacy claim). */
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
  // The independent checker judges the keyspace as the test's clock sees it: the keys of pruned
  // snapshots have expired by then; a claim may outlive its snapshot once that left the window.
  const { latest, timestampKey } = w.config;
  if (w.legacyWritten) return;
  const found = await checkInvariants(r.client, { retentionMs: RETENTION_MS, now: w.now, dedup: DEDUP, latest, timestampKey, sent: w.sent, legacyClaims: w.legacyClaims });
  assert.equal(found, [], `violations: ${found.join('; ')}`);
}

/** What the application's readers get in `region`: `latest`, then its by-id key. */
async function appRead(r: Real, region: string): Promise<AppRead | null> {
  const schema = keySchemas['worldmonitor-v1'];
  const id = await r.client.get(schema.latest(region));
  const text = id === null ? null : await r.client.get(schema.byId(region, id));
  if (id === null || text === null) return null;
  const score = await r.client.zscore(schema.index(region), id);
  return { id, text, age: score === null ? generatedAt(text) : Number(score) };
}

/**
 * After a command of the library, the readers still get a complete snapshot, under `'monotonic'`
 * no older than before;
 * after any command, when theirs is inside the window, the library's readLatest returns it.
 */
async function checkReaders(w: World, r: Real, byLibrary: boolean): Promise<void> {
  for (const region of REGIONS) {
    const got = await appRead(r, region);
    const before = w.app.get(region);
    if (byLibrary && before && w.config.latest === 'monotonic') {
      assert.ok(got, `${region}: the application's readers got ${before.id}, now nothing`);
      if (before.age !== undefined) assert.ok(got.age !== undefined && got.age >= before.age, `${region}: the application's readers got ${before.id} (${before.age}), now the older ${got.id} (${got.age})`);
    }
    if (got && got.age !== undefined && got.age > w.now - RETENTION_MS) {
      const expected = { id: got.id, timestamp: got.age, payload: JSON.parse(got.text) as unknown };
      assert.equal(await r.store.readLatest(region, { now: w.now }), expected, `${region}: readLatest disagrees with the application's readers`);
    }
    w.app.set(region, got);
  }
}

/** Runs one command's real and model halves; checks the keyspace and the readers after it. */
function command(
  describe: () => string,
  step: (w: World, r: Real) => Promise<void>,
  check: (w: Readonly<World>) => boolean = () => true,
  byLibrary = true,
): AsyncCommand<World, Real> {
  return {
    check,
    async run(w, r) {
      tally.commands++;
      await step(w, r);
      await checkKeyspace(w, r);
      await checkReaders(w, r, byLibrary);
    },
    toString: describe,
  };
}

/** Persists `s` on both sides and compares the outcomes; the model's is returned. */
async function persistBoth(w: World, r: Real, s: SnapshotInput): Promise<PersistOutcome> {
  const takeover = meetsStaleClaim(w, s);
  const latestUnindexed = w.model.latestUnindexed(s.region);
  const from = Date.now();
  const actual = await outcomeOf(r.store.persist(s, { now: w.now }));
  const expected = w.model.persist(s, w.now, [from, Date.now()]);
  w.sent.push(s);
  count(expected, takeover, latestUnindexed);
  assert.equal(actual, expected, `persist ${JSON.stringify({ ...s, payload: '…' })} at ${w.now}`);
  return expected;
}

function persistCommand(spec: SnapshotSpec) {
  return command(
    () => `persist(${JSON.stringify(spec)})`,
    async (w, r) => void (await persistBoth(w, r, snapshotOf(spec, w))),
  );
}

/**
 * A claim the legacy writer made (SET NX EX 900) for a snapshot it never wrote — `stale`: 5 min
 * old, a write that failed part-way, taken over; else 1 s old, maybe a write still in flight,
 * which blocks the bucket — then `challenger` in that bucket with that trigger.
 */
function legacyClaimCommand(challenger: SnapshotSpec, trigger: string, stale: boolean) {
  return command(
    () => `legacyClaim(${JSON.stringify(challenger)}, ${trigger}, ${stale})`,
    async (w, r) => {
      const s = { ...snapshotOf(challenger, w), trigger };
      const bucket = Math.floor(s.timestamp / DEDUP.windowMs);
      const key = keySchemas['worldmonitor-v1'].dedup(s.region, trigger, bucket);
      const id = `legacy.${w.legacyClaims.size}`; // never an id the test persists
      const ttl = stale ? LEGACY_CLAIM_MS - 300_000 : LEGACY_CLAIM_MS - 1_000;
      const from = Date.now();
      if ((await r.client.set(key, id, 'PX', ttl, 'NX')) === null) return; // the bucket is claimed already
      w.model.plantLegacyClaim(s.region, trigger, bucket, id, ttl, [from, Date.now()]);
      w.legacyClaims.set(key, id);
      await persistBoth(w, r, s);
    },
  );
}

/**
 * The legacy seeder's persist of `s`, cut after its first `k` commands (6: whole). Its claim, when
 * it has a trigger, is made in the library's bucket with the legacy `EX 900`; a claimed bucket
 * stops it. It prunes by the application's clock, the test's.
 */
async function legacyWrite(w: World, r: Real, s: SnapshotInput, k: number): Promise<void> {
  const text = typeof s.payload === 'string' ? s.payload : JSON.stringify(s.payload);
  const from = Date.now();
  if (s.trigger !== undefined) {
    const key = keySchemas['worldmonitor-v1'].dedup(s.region, s.trigger, Math.floor(s.timestamp / DEDUP.windowMs));
    if ((await r.client.set(key, s.id, 'EX', LEGACY_CLAIM_MS / 1000, 'NX')) === null) {
      assert.not.ok(w.model.legacyWrite({ ...s, text }, k, w.now, [from, Date.now()]), 'the model let a claimed bucket be claimed again');
      return;
    }
    w.legacyClaims.set(key, s.id);
  }
  const pipeline = r.client.pipeline();
  for (const [name, ...args] of legacyCommands({ ...s, payload: text }, w.now, RETENTION_MS / 1000).slice(0, k)) pipeline.call(name!, ...args);
  await pipeline.exec();
  assert.ok(w.model.legacyWrite({ ...s, text }, k, w.now, [from, Date.now()]), 'the model refused a claim Redis granted');
  w.legacyWritten = true;
  tally.legacyWrites++;
  if (k < 6) tally.legacyCuts++;
}

/** A legacy write of a snapshot of its own (an id the library never sends), or of the library's `reuse`-th (a backfill both load). */
function legacyWriteCommand(spec: SnapshotSpec, reuse: number | undefined, k: number) {
  return command(
    () => `legacyWrite(${JSON.stringify(spec)}, ${reuse}, ${k})`,
    async (w, r) => {
      const own = { ...snapshotOf(spec, w), id: `old.${w.legacyIds++}` };
      await legacyWrite(w, r, reuse === undefined || w.sent.length === 0 ? own : w.sent[reuse % w.sent.length]!, k);
    },
    undefined,
    false,
  );
}

/**
 * A legacy write cut after its third command: `latest` names a snapshot newer than any sent, which
 * the index does not hold; then the library persists `challenger` in that region. `latest` must
 * not move back to it (a command of the library's: the readers' check applies).
 */
function legacyAheadCommand(challenger: SnapshotSpec) {
  return command(
    () => `legacyAhead(${JSON.stringify(challenger)})`,
    async (w, r) => {
      const s = snapshotOf(challenger, w);
      const newest = Math.max(w.now, w.app.get(s.region)?.age ?? 0, ...w.sent.map((sent) => sent.timestamp));
      const { trigger: _, ...ahead } = { ...snapshotOf({ ...challenger, timestamp: { steps: 0, plusOne: false } }, w), id: `old.${w.legacyIds++}`, timestamp: newest + GRID_MS };
      await legacyWrite(w, r, { ...ahead, payload: { region_id: s.region, generated_at: ahead.timestamp } }, 3);
      await persistBoth(w, r, s);
    },
  );
}

/** Re-sends an earlier snapshot, as a retry after a lost reply does (or with another payload). */
function replayCommand(k: number, samePayload: boolean) {
  return command(
    () => `replay(${k}, ${samePayload})`,
    async (w, r) => {
      const earlier = w.sent[k % w.sent.length]!;
      const s = samePayload ? earlier : { ...earlier, payload: { other: k, generated_at: earlier.timestamp } };
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
  shared: fc.boolean(),
  timestamp: fc.oneof(
    { arbitrary: fc.record({ steps: fc.integer({ min: -13, max: 3 }), plusOne: fc.boolean() }), weight: 3 },
    { arbitrary: fc.record({ reuse: fc.nat(40) }), weight: 1 },
    { arbitrary: fc.record({ bucketOf: fc.nat(40), step: fc.integer({ min: 0, max: 2 }) }), weight: 1 },
  ),
  payload: fc.record({ v: fc.nat(3), asText: fc.boolean(), large: fc.boolean() }),
  trigger: fc.constantFrom(...TRIGGERS),
});
const optionalSteps = fc.option(fc.integer({ min: -13, max: 3 }), { nil: undefined });

const legacyWriteArb = fc.tuple(snapshotSpec, fc.option(fc.nat(40), { nil: undefined }), fc.integer({ min: 0, max: 6 })).map(([spec, reuse, k]) => legacyWriteCommand(spec, reuse, k));

/** The commands of a run; beside the legacy writer, about one in five is its write. */
const commandsFor = (config: Config) =>
  fc.commands(
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
      fc.tuple(snapshotSpec, fc.constantFrom('scheduled_6h', 'manual'), fc.boolean()).map(([challenger, trigger, stale]) => legacyClaimCommand(challenger, trigger, stale)),
      ...(config.legacyWriter ? [legacyWriteArb, legacyWriteArb, snapshotSpec.map(legacyAheadCommand)] : []),
    ],
    { maxCommands: 40, size: 'max', ...(process.env.FC_REPLAY_PATH ? { replayPath: process.env.FC_REPLAY_PATH } : {}) },
  );

const CONFIGS: Config[] = [
  { name: 'ioredis, small inline payloads, two copies, monotonic', kind: ioredisKind, latest: 'monotonic', timestampKey: 'payload', large: false, legacyWriter: true },
  { name: 'ioredis, 40 KB payloads staged, one copy, always', kind: ioredisKind, latest: 'always', timestampKey: 'id', large: true, legacyWriter: false },
  { name: '@upstash/redis, 40 KB payloads, one copy, monotonic', kind: clientKinds.find((k) => k.name === '@upstash/redis')!, latest: 'monotonic', timestampKey: 'id', large: true, legacyWriter: false },
];
/** Outcome classes every configuration's runs must reach. */
const REQUIRED = ['persisted', 'replayed', 'duplicate', 'expired', 'takeovers'] as const;
/** And beside the legacy writer: its writes, whole and cut, and a persist that kept an unindexed `latest`. */
const LEGACY_REQUIRED = ['legacyWrites', 'legacyCuts', 'heldOverUnindexed'] as const;

const test = suite('model-based: persist, clock and reads against the model', CONFIGS.length);
let redis: RedisServer;
let client: Redis;

test.before(async () => {
  redis = await startRedis();
  client = redis.client();
});
test.after(async () => {
  await redis?.stop();
});

const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : Date.now() ^ Math.floor(Math.random() * 0x7fffffff);

for (const config of CONFIGS) {
  test(`${config.name}: every result and the whole keyspace match the model after every command`, async () => {
    console.log(`model-based test [${config.name}]: seed ${seed} (rerun with FC_SEED=${seed})`);
    tally = newTally();
    // A staged persist that is persisted RENAMEs its staging key into place (nothing else renames).
    const renames = async () => Number(/cmdstat_rename:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0);
    const renamesBefore = await renames();
    const connected = await config.kind.connect(redis);
    try {
      const store = createSnapshotStore({ client: connected.client, retentionMs: RETENTION_MS, dedup: DEDUP, retry: false, latest: config.latest, keys: { timestampKey: config.timestampKey } });
      const property = fc.asyncProperty(commandsFor(config), async (cmds) => {
        tally.executions++;
        await client.flushall();
        const model = new SnapshotModel({ retentionMs: RETENTION_MS, dedup: DEDUP, latest: config.latest, timestampKey: config.timestampKey });
        const world: World = { config, model, now: Date.now() - EDGE_MARGIN_MS, sent: [], legacyClaims: new Map(), legacyIds: 0, legacyWritten: false, app: new Map() };
        await fc.asyncModelRun(() => ({ model: world, real: { store, client } }), cmds);
      });
      await fc.assert(property, { numRuns: NUM_RUNS, seed, includeErrorInReport: true, ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}) });
    } finally {
      await connected.close();
    }
    const { executions, commands: executed, ...outcomes } = tally;
    console.log(`model-based test [${config.name}]: ${NUM_RUNS} runs (${executions} executions), ${executed} commands executed; persist outcomes ${JSON.stringify(outcomes)}`);
    const required = config.legacyWriter ? [...REQUIRED, ...LEGACY_REQUIRED] : REQUIRED;
    assert.equal(required.filter((c) => outcomes[c] === 0), [], `outcome classes never reached (seed ${seed})`);
    if (config.large) assert.ok(outcomes.large > 0, 'no realistic payload was sent');
    const staged = (await renames()) - renamesBefore;
    console.log(`model-based test [${config.name}]: ${staged} staged persists (RENAME of a staging key)`);
    if (config.large && config.kind === ioredisKind) assert.ok(staged > 0, 'the staged path never ran');
  });
}

test.run();
