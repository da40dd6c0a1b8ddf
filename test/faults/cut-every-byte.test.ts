/**
 * A TCP proxy cuts the connection at every byte of a request (the request never arrives whole) and
 * at every byte of its reply (the request ran, its answer is lost), for an inline persist, a
 * staged one (MULTI, SET staging key, EVALSHA, EXEC) and a 3-region persistMany. At every offset:
 * the cut happened; the keyspace is exactly the state before or after (which one is known from the
 * offset); the independent checker (test/support/checker.ts) finds nothing, including no staging
 * key left or, where one may be, one bounded to 1 s; without retries the error is a transient
 * RedisError; with retries the outcome is exactly the one that offset allows (`persisted` where
 * the request never ran, `replayed` where it ran) and which layer recovered is counted.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis, type RedisOptions } from 'ioredis';
import { createSnapshotStore, RedisError, type PersistResult, type SnapshotInput } from '../../src/index.js';
import { persistLua } from '../../src/lua.generated.js';
import { checkInvariants } from '../support/checker.js';
import { RETENTION_MS, restoreKeyspace, sameKeyspace, snapshotOf, awaitClients, type Keyspace } from '../support/faults.js';
import { dumpKeyspace } from '../support/keyspace.js';
import { legacyPersist, legacyPipeline } from '../support/legacy.js';
import { TcpProxy, respEnds } from '../support/proxy.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const test = suite('cut at every byte', 8);

const NOW = Date.now();
const OLD = NOW - 7_200_000;
const NEW = NOW - 3_600_000;
const BATCH = ['mena', 'europe', 'latam'];
// The dedup claim and legacy keys expire relative to the moment they are written: the same
// state written a few seconds later differs by that much. Far below any expiry we compare.
const SLACK_MS = 600_000;

let redis: RedisServer;
let proxy: TcpProxy;
let admin: Redis;

test.before(async () => {
  redis = await startRedis();
  proxy = await TcpProxy.start(redis.port);
  admin = redis.client();
  // The sweep cuts EVALSHA requests; the NOSCRIPT → EVAL fallback has its own sweep.
  await admin.script('LOAD', persistLua.text);
});

test.after(async () => {
  await proxy?.close();
  await redis?.stop();
});

/** A client through the proxy whose handshake is over; by default it never reconnects. */
async function connectThroughProxy(options: RedisOptions = { retryStrategy: () => null, enableOfflineQueue: false }): Promise<Redis> {
  const client = new Redis(proxy.port, '127.0.0.1', { lazyConnect: true, ...options });
  client.on('error', () => {});
  await client.connect();
  return client;
}

const old = (region: string) => snapshotOf(region, `${region}-old`, OLD, 1024, 'scheduled_6h');
const fresh = (region: string): SnapshotInput => snapshotOf(region, `${region}-new`, NEW, 1024, 'scheduled_6h');

/** The before-state: an older snapshot in each region, and a `live` key the new one must delete. */
async function seed(regions: readonly string[], legacy = false): Promise<Keyspace> {
  await admin.flushall();
  const store = createSnapshotStore({ client: admin });
  for (const region of regions) {
    if (legacy) await legacyPersist(admin, { ...old(region), trigger: 'scheduled_6h', payload: JSON.stringify(old(region).payload) }, NOW);
    else await store.persist(old(region), { now: NOW });
    await admin.set(`intelligence:snapshot:v1:${region}:live`, 'on');
  }
  return dumpKeyspace(admin);
}

/** The independent checker: live was written under the old snapshot, claims match what was sent. */
function check(regions: readonly string[], stagingAllowed = false): Promise<string[]> {
  return checkInvariants(admin, {
    retentionMs: RETENTION_MS,
    now: NOW,
    stagingAllowed,
    regions,
    liveWrittenUnder: new Map(regions.map((r) => [r, `${r}-old`])),
    sent: regions.flatMap((r) => [old(r), fresh(r)]),
  });
}

/** Counts, on one client, the script commands the store created and how often each was written. */
function spyScripts(client: Redis): () => { created: number; resent: boolean } {
  const sends = new Map<object, number>();
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((command, ...rest) => {
    if (/^eval(sha)?$/i.test(command.name)) sends.set(command, (sends.get(command) ?? 0) + 1);
    return send(command, ...rest);
  }) as typeof client.sendCommand;
  return () => ({ created: sends.size, resent: [...sends.values()].some((n) => n > 1) });
}

type Side = 'request' | 'reply';
type Send = (client: Redis) => Promise<Array<PersistResult | unknown>>;

interface Cut {
  k: number;
  state: Keyspace;
  /** Per snapshot sent: its result, or what it was rejected with. */
  outcomes: Array<PersistResult | unknown>;
  /** Which layer re-sent the script: none, ioredis (the same command again), the store (a new one). */
  layer: 'none' | 'ioredis' | 'store';
}

/**
 * Runs `send` from `before` through the proxy with a cut after `k` bytes of `side` (undefined:
 * uncut), and returns once Redis has closed the cut connection (so has run whatever reached it).
 */
async function once(before: Keyspace, send: Send, side: Side, k: number | undefined, clientOptions?: RedisOptions, perSnapshot = 1) {
  proxy.cutAfter(undefined);
  proxy.cutReplyAfter(undefined);
  await restoreKeyspace(admin, before);
  const client = await connectThroughProxy(clientOptions);
  const spy = spyScripts(client);
  proxy.resetCounters();
  const cutsBefore = proxy.cuts;
  proxy.capture = { up: [], down: [] };
  if (side === 'request') proxy.cutAfter(k);
  else proxy.cutReplyAfter(k);
  const outcomes = await send(client).catch((error: unknown) => [error]);
  const captured = proxy.capture;
  proxy.capture = undefined;
  client.disconnect();
  await awaitClients(admin, 1);
  if (k !== undefined) assert.is(proxy.cuts - cutsBefore, 1, `${side} offset ${k}: the cut happened`);
  const { created, resent } = spy();
  const layer = created > perSnapshot * outcomes.length ? 'store' : resent ? 'ioredis' : 'none';
  return { state: await dumpKeyspace(admin), outcomes, layer, up: Buffer.concat(captured.up), down: Buffer.concat(captured.down) } as Cut & { up: Buffer; down: Buffer };
}

/** Which of `before` and `after` the keys of `region` (staging keys aside) are in, or 'partial'. */
function stateOf(region: string | undefined, state: Keyspace, before: Keyspace, after: Keyspace): 'before' | 'after' | 'partial' {
  const within = (key: string) => !key.endsWith(':staging') && (region === undefined || key.includes(region));
  if (sameKeyspace(state, before, SLACK_MS, within)) return 'before';
  if (sameKeyspace(state, after, SLACK_MS, within)) return 'after';
  return 'partial';
}

const stagingKeys = (state: Keyspace) => [...state.keys()].filter((key) => key.endsWith(':staging'));

function assertTransient(error: unknown, where: string): void {
  assert.instance(error, RedisError, `${where}: ${String(error)}`);
  assert.ok((error as RedisError).transient, `${where}: a cut is transient (${(error as RedisError).code}: ${(error as Error).message})`);
}

interface Mode {
  label: string;
  regions: readonly string[];
  stagePayloadsFrom?: number;
}
const INLINE: Mode = { label: 'persist', regions: ['mena'] };
const STAGED: Mode = { label: 'staged persist', regions: ['mena'], stagePayloadsFrom: 0 };
const MANY: Mode = { label: 'persistMany x3', regions: BATCH };

function sender(mode: Mode, retry: boolean, flushScripts = false): Send {
  return async (client) => {
    if (flushScripts) await admin.script('FLUSH');
    const store = createSnapshotStore({ client, retry: retry ? { baseDelayMs: 10 } : false, ...(mode.stagePayloadsFrom === undefined ? {} : { stagePayloadsFrom: mode.stagePayloadsFrom }) });
    const settled = await store.persistMany(mode.regions.map(fresh), { now: NOW });
    return settled.map((s) => (s.status === 'fulfilled' ? s.value : s.reason));
  };
}

/** Where, in the request, each snapshot's script command ends (after k >= that, it has run). */
function scriptEnds(request: Buffer, staged: boolean): number[] {
  const ends = respEnds(request);
  let from = 0;
  // Staged: MULTI, SET, EVALSHA, EXEC per snapshot: the transaction runs once EXEC arrived.
  return ends.filter((end) => {
    const name = request.toString('latin1', from, Math.min(end, from + 40)).split('\r\n')[2]?.toUpperCase();
    from = end;
    return staged ? name === 'EXEC' : name === 'EVALSHA';
  });
}

/** Where, in the reply, each snapshot's reply ends. */
function replyEnds(reply: Buffer, staged: boolean): number[] {
  const ends = respEnds(reply);
  return staged ? ends.filter((_, i) => i % 4 === 3) : ends;
}

/**
 * The request-side sweep without retries: k = 0…length. Snapshot i is in the after-state exactly
 * when k reached the end of its script command (of its EXEC when staged), else in the
 * before-state; every offset ends in a transient RedisError; the checker finds nothing.
 */
async function requestSweep(mode: Mode) {
  const before = await seed(mode.regions);
  const staged = mode.stagePayloadsFrom === 0;
  const full = await once(before, sender(mode, false), 'request', undefined);
  assert.equal(full.outcomes.map((o) => (o as PersistResult).status), mode.regions.map(() => 'persisted'), 'uncut');
  const ends = scriptEnds(full.up, staged);
  assert.is(ends.length, mode.regions.length);
  assert.is(ends.at(-1), full.up.length);
  const tally = { offsets: 0, partial: 0, after: 0, mixed: 0 };
  for (let k = 0; k <= full.up.length; k++) {
    const cut = await once(before, sender(mode, false), 'request', k);
    const states = mode.regions.map((region) => stateOf(region, cut.state, before, full.state));
    const expected = ends.map((end) => (k >= end ? 'after' : 'before'));
    tally.offsets++;
    tally.partial += states.filter((s) => s === 'partial').length;
    if (states.includes('after')) tally.after++;
    if (new Set(states).size > 1) tally.mixed++;
    assert.equal(states, expected, `request offset ${k} of ${full.up.length}`);
    // A snapshot whose script ran answered before the cut only if its reply got out first: the
    // last one never does (the cut closes the connection right after its last byte).
    const failed = cut.outcomes.filter((o) => !(o && typeof o === 'object' && 'status' in o));
    assert.ok(failed.length > 0, `request offset ${k}: something was lost`);
    failed.forEach((error) => assertTransient(error, `request offset ${k}`));
    assert.equal(stagingKeys(cut.state), [], `request offset ${k}: no staging key`);
    assert.equal(await check(mode.regions), [], `request offset ${k}`);
  }
  console.log(`cut sweep, request side, ${mode.label}: ${tally.offsets} offsets, ${tally.partial} partial states, ${tally.after} with some snapshot written (script ends at ${ends.join(', ')}), ${tally.mixed} with some regions written and others not`);
  return { ends, length: full.up.length };
}

test('request side, persist: before-state up to the last byte, after-state at it', async () => {
  const { length } = await requestSweep(INLINE);
  assert.ok(length > 1000);
});

test('request side, staged persist: nothing runs before EXEC has arrived whole', async () => {
  await requestSweep(STAGED);
});

test('request side, persistMany of 3 regions: each region switches to its after-state where its script ends', async () => {
  const { ends } = await requestSweep(MANY);
  assert.ok(ends[0]! < ends[1]! && ends[1]! < ends[2]!);
});

test('request side, staged persist with an empty script cache (NOSCRIPT inside EXEC, then EVAL): a staging key, bounded, only between the two', async () => {
  const before = await seed(['mena']);
  const send = sender(STAGED, false, true);
  const full = await once(before, send, 'request', undefined);
  assert.equal(full.outcomes.map((o) => (o as PersistResult).status), ['persisted']);
  const [first, second] = scriptEnds(full.up, true) as [number, number];
  assert.is(second, full.up.length, 'two transactions: EVALSHA (NOSCRIPT), then EVAL');
  let staging = 0;
  for (let k = 0; k <= full.up.length; k++) {
    const cut = await once(before, send, 'request', k);
    // The first EXEC ran its SET and answered NOSCRIPT: from then until the EVAL's EXEC arrives,
    // the staged payload waits under its staging key, which expires within 1 s.
    const leftover = k >= first && k < second;
    assert.equal(stagingKeys(cut.state), leftover ? ['intelligence:snapshot-by-id:v1:mena-new:staging'] : [], `offset ${k}`);
    if (leftover) staging++;
    assert.is(stateOf(undefined, cut.state, before, full.state), k === second ? 'after' : 'before', `offset ${k}`);
    assertTransient(cut.outcomes[0], `offset ${k}`);
    assert.equal(await check(['mena'], true), [], `offset ${k}`);
  }
  console.log(`cut sweep, request side, staged persist after SCRIPT FLUSH: ${full.up.length + 1} offsets, 0 partial states, ${staging} left a staging key (each with a TTL in (0, 1000] ms), 1 after-state`);
  await admin.script('LOAD', persistLua.text);
});

test('legacy pipeline: cuts leave partial states', async () => {
  const before = await seed(['mena'], true);
  const s = { ...fresh('mena'), payload: JSON.stringify(fresh('mena').payload) };
  const send: Send = async (client) => {
    for (const [error] of (await legacyPipeline(client, s, NOW).exec()) ?? []) if (error) throw error;
    return [];
  };
  const full = await once(before, send, 'request', undefined);
  let partial = 0;
  for (let k = 0; k <= full.up.length; k++) {
    if (stateOf(undefined, (await once(before, send, 'request', k)).state, before, full.state) === 'partial') partial++;
  }
  console.log(`cut sweep, legacy pipeline: ${full.up.length + 1} offsets, ${partial} partial states`);
  assert.ok(partial > 0, 'the legacy pipeline is not atomic');
});

/**
 * Reply-side cuts: the request ran whole, so every offset is in the after-state. Without retries,
 * a transient RedisError for every snapshot whose reply did not arrive whole.
 */
test('reply side without retries: every cut leaves the after-state and a transient error', async () => {
  for (const mode of [INLINE, STAGED, MANY]) {
    const staged = mode.stagePayloadsFrom === 0;
    const before = await seed(mode.regions);
    const full = await once(before, sender(mode, false), 'reply', undefined);
    const ends = replyEnds(full.down, staged);
    assert.is(ends.length, mode.regions.length);
    for (let k = 0; k < full.down.length; k++) {
      const cut = await once(before, sender(mode, false), 'reply', k);
      assert.is(stateOf(undefined, cut.state, before, full.state), 'after', `${mode.label}, reply offset ${k}`);
      cut.outcomes.forEach((outcome, i) => {
        if (k >= ends[i]!) assert.equal(outcome, full.outcomes[i], `${mode.label}, reply offset ${k}: reply ${i} arrived whole`);
        else assertTransient(outcome, `${mode.label}, reply offset ${k}, snapshot ${i}`);
      });
      assert.equal(await check(mode.regions), [], `${mode.label}, reply offset ${k}`);
    }
    console.log(`cut sweep, reply side, ${mode.label}, no retries: ${full.down.length} offsets, all after-states, 0 partial`);
  }
});

/** The outcome table of one retrying sweep. */
type Tally = Record<string, number>;
const bump = (tally: Tally, key: string) => void (tally[key] = (tally[key] ?? 0) + 1);

/**
 * With an ordinary client (reconnects, re-sends what was unanswered) and the store's retries on:
 * each snapshot ends `persisted` if its script had not run when the cut came, `replayed` if it had
 * and its reply was lost, and `persisted` if its reply arrived whole before the cut; the keyspace is
 * the after-state.
 */
async function retrySweep(mode: Mode, side: Side, offsets: (length: number) => number[]): Promise<Tally> {
  const staged = mode.stagePayloadsFrom === 0;
  const before = await seed(mode.regions);
  const reconnecting: RedisOptions = { retryStrategy: () => 10 };
  const full = await once(before, sender(mode, true), side, undefined, reconnecting);
  const length = side === 'request' ? full.up.length : full.down.length;
  const ends = side === 'request' ? scriptEnds(full.up, staged) : replyEnds(full.down, staged);
  // ioredis re-sends a pipeline none of whose replies had arrived; once one has (MULTI's +OK
  // when staged), it aborts the rest (AbortError) and the store's retry sends them again.
  const firstReply = respEnds(full.down)[0]!;
  const tally: Tally = {};
  for (const k of offsets(length)) {
    const cut = await once(before, sender(mode, true), side, k, reconnecting);
    const expected = ends.map((end) => (side === 'request' ? (k >= end ? 'replayed' : 'persisted') : k >= end ? 'persisted' : 'replayed'));
    const statuses = cut.outcomes.map((o) => (o as PersistResult).status ?? String(o));
    assert.equal(statuses, expected, `${mode.label}, ${side} offset ${k}`);
    assert.is(cut.layer, side === 'request' || k < firstReply ? 'ioredis' : 'store', `${mode.label}, ${side} offset ${k}: the layer that recovered`);
    assert.is(stateOf(undefined, cut.state, before, full.state), 'after', `${mode.label}, ${side} offset ${k}`);
    assert.equal(await check(mode.regions), [], `${mode.label}, ${side} offset ${k}`);
    statuses.forEach((s) => bump(tally, s));
    bump(tally, `recovered by ${cut.layer}`);
  }
  console.log(`cut sweep with retries, ${side} side, ${mode.label}: ${JSON.stringify(tally)}`);
  return tally;
}

test('reply side with retries, every byte: each lost reply ends replayed, in the after-state', async () => {
  for (const mode of [INLINE, STAGED, MANY]) {
    const tally = await retrySweep(mode, 'reply', (length) => Array.from({ length }, (_, k) => k));
    assert.ok((tally.replayed ?? 0) > 0);
  }
});

test('request side with retries: persisted where nothing ran, replayed where the script ran', async () => {
  for (const mode of [INLINE, STAGED, MANY]) {
    // Both sides of every command boundary, the first and last bytes, and the middle.
    await retrySweep(mode, 'request', (length) => [0, 1, Math.floor(length / 2), length - 1, length]);
  }
});

test.run();
