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
 * Reproduce a failure: each test prints its seed; `FC_SEED=<seed>` replays the same runs (of every
 * configuration). On failure fast-check prints `path` and, in the counterexample, `replayPath`:
 * `FC_SEED=<seed> FC_PATH=<path> FC_REPLAY_PATH=<replayPath>` replays the shrunk counterexample
 * alone. `FC_RUNS=<n>` changes the number of runs per configuration (default 30).
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual as isEqual } from 'node:util';
import fc, { type AsyncCommand } from 'fast-check';
import type { Redis } from 'ioredis';
import { createSnapshotStore, keySchemas, ScriptRefusedError, type SnapshotInput, type SnapshotStore } from '../../src/index.js';
import { checkInvariants } from '../support/checker.js';
import { clientKinds, ioredisKind, type ClientKind } from '../support/clients.js';
import { SnapshotModel, type KeyEntry, type PersistOutcome } from '../support/model.js';
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
/** A realistic payload: the seeder's mena snapshot, about 40 KB of JSON. */
const FIXTURE = JSON.parse(readFileSync(new URL('../fixtures/regional-snapshot-mena.json', import.meta.url), 'utf8')) as Record<string, unknown>;

interface Config {
  name: string;
  kind: ClientKind;
  latest: 'monotonic' | 'always';
  timestampKey: 'payload' | 'id';
  /** Whether payloads may be realistic (tens of KB); else all are tiny. */
  large: boolean;
}

interface World {
  config: Config;
  model: SnapshotModel;
  now: number;
  /** Every snapshot sent so far, for replays and reused timestamps. */
  sent: SnapshotInput[];
  /** Claim key → id of the claims planted as the legacy writer's. */
  legacyClaims: Map<string, string>;
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

const newTally = () => ({ executions: 0, commands: 0, persisted: 0, replayed: 0, duplicate: 0, expired: 0, conflict: 0, pruned: 0, takeovers: 0, advanced: 0, large: 0 });
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
  const object = large ? { ...FIXTURE, region_id: spec.region, v, s: '\u00e9\u{1f600}' } : { region_id: spec.region, v, s: '\u00e9\u{1f600}' };
  const payload = asText ? (large ? JSON.stringify(object, null, 1) : `{ "region_id": "${spec.region}", "v": ${v}, "s": "\u00e9" }`) : object;
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

function count(outcome: PersistOutcome, takeover: boolean): void {
  if ('error' in outcome) return void tally.conflict++;
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
  const found = await checkInvariants(r.client, { retentionMs: RETENTION_MS, now: w.now, dedup: DEDUP, latest, timestampKey, sent: w.sent, legacyClaims: w.legacyClaims });
  assert.equal(found, [], `violations: ${found.join('; ')}`);
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

/** Persists `s` on both sides and compares the outcomes; the model's is returned. */
async function persistBoth(w: World, r: Real, s: SnapshotInput): Promise<PersistOutcome> {
  const takeover = meetsStaleClaim(w, s);
  const from = Date.now();
  const actual = await outcomeOf(r.store.persist(s, { now: w.now }));
  const expected = w.model.persist(s, w.now, [from, Date.now()]);
  w.sent.push(s);
  count(expected, takeover);
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
    fc.tuple(snapshotSpec, fc.constantFrom('scheduled_6h', 'manual'), fc.boolean()).map(([challenger, trigger, stale]) => legacyClaimCommand(challenger, trigger, stale)),
  ],
  { maxCommands: 40, size: 'max', ...(process.env.FC_REPLAY_PATH ? { replayPath: process.env.FC_REPLAY_PATH } : {}) },
);

const CONFIGS: Config[] = [
  { name: 'ioredis, small inline payloads, two copies, monotonic', kind: ioredisKind, latest: 'monotonic', timestampKey: 'payload', large: false },
  { name: 'ioredis, 40 KB payloads staged, one copy, always', kind: ioredisKind, latest: 'always', timestampKey: 'id', large: true },
  { name: '@upstash/redis, 40 KB payloads, one copy, monotonic', kind: clientKinds.find((k) => k.name === '@upstash/redis')!, latest: 'monotonic', timestampKey: 'id', large: true },
];
/** Outcome classes every configuration's runs must reach. */
const REQUIRED = ['persisted', 'replayed', 'duplicate', 'expired', 'takeovers'] as const;

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
      const property = fc.asyncProperty(commands, async (cmds) => {
        tally.executions++;
        await client.flushall();
        const model = new SnapshotModel({ retentionMs: RETENTION_MS, dedup: DEDUP, latest: config.latest, timestampKey: config.timestampKey });
        const world: World = { config, model, now: Date.now() - EDGE_MARGIN_MS, sent: [], legacyClaims: new Map() };
        await fc.asyncModelRun(() => ({ model: world, real: { store, client } }), cmds);
      });
      await fc.assert(property, { numRuns: NUM_RUNS, seed, includeErrorInReport: true, ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}) });
    } finally {
      await connected.close();
    }
    const { executions, commands: executed, ...outcomes } = tally;
    console.log(`model-based test [${config.name}]: ${NUM_RUNS} runs (${executions} executions), ${executed} commands executed; persist outcomes ${JSON.stringify(outcomes)}`);
    assert.equal(REQUIRED.filter((c) => outcomes[c] === 0), [], `outcome classes never reached (seed ${seed})`);
    if (config.large) assert.ok(outcomes.large > 0, 'no realistic payload was sent');
    const staged = (await renames()) - renamesBefore;
    console.log(`model-based test [${config.name}]: ${staged} staged persists (RENAME of a staging key)`);
    if (config.large && config.kind === ioredisKind) assert.ok(staged > 0, 'the staged path never ran');
  });
}

test.run();
