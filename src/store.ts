import type { SupportedClient } from './clients/index.js';
import { isUpstash } from './clients/upstash.js';
import type { Connection, Outcome, Wait } from './connection.js';
import { ValidationError, toSnapshotError } from './errors.js';
import { decodePersist, decodeRead } from './replies.js';
import { byIdTemplate, resolveKeySchema, type KeySchema, type KeySchemaName } from './keys.js';
import { persistKeyLockingLua, persistLua, readLua } from './lua.generated.js';
import { resolveRetry, retrying, type RetryPolicy } from './retry.js';
import { Script, type ScriptCall } from './script.js';
import type { DriftContext } from './verify.js';
import { checkId, checkInteger, checkNow, checkObject, checkRegion, clockOf, validateSnapshot, type SnapshotInput, type ValidSnapshot } from './validate.js';

export type LatestPolicy = 'monotonic' | 'always';

export interface SnapshotStoreOptions {
  /** An ioredis `Redis` or `Cluster`, or an `@upstash/redis` `Redis`. The caller owns it. */
  client: SupportedClient;
  /**
   * Key names: a built-in schema or your own, and a prefix for every key. `timestampKey`: what the
   * timestamp key holds, `'payload'` (default, byte-compatible: the payload stored twice) or `'id'`
   * (stored once; no known reader uses the timestamp key).
   */
  keys?: { schema?: KeySchemaName | KeySchema; prefix?: string; timestampKey?: 'payload' | 'id' };
  /** How long a snapshot stays readable and indexed after its timestamp. Default 90 days. */
  retentionMs?: number;
  /** One snapshot per trigger per window; `false` disables the claim. Default 15 min / 15 min. */
  dedup?: false | { windowMs?: number; ttlMs?: number };
  /** `monotonic` (default): latest only moves to a newer (timestamp, id). `always`: legacy. */
  latest?: LatestPolicy;
  /** Payloads larger than this (UTF-8 bytes) are rejected before sending. Default 8 MiB. */
  maxPayloadBytes?: number;
  /** Retries of transient failures; `false` for none. Default 5 retries, 50 ms to 2 s. */
  retry?: false | Partial<RetryPolicy>;
  /**
   * TCP clients: payloads whose JSON text is at least this long are staged, SET in the same
   * MULTI/EXEC as the script, which renames them into place, so Redis never copies them through
   * Lua. Default 16384; `Infinity` never stages. (@upstash/redis: always inline.)
   */
  stagePayloadsFrom?: number;
  /**
   * @upstash/redis only. `keyLocking: true` sends persist.lua with Upstash's `allow-key-locking`
   * shebang flag, so a persist locks only its own keys instead of the whole database. Off by
   * default: stock Redis (and so any Upstash-compatible proxy in front of it) rejects the flag.
   */
  upstash?: { keyLocking?: boolean };
  /**
   * TCP clients. After each batch's writes, wait on the same connection until `replicas` replicas
   * acknowledged them (`WAIT`), or with `aof: true` until the primary's AOF and `replicas`
   * replicas' AOFs are fsynced (`WAITAOF`, Redis >= 7.2), at most `timeoutMs`; every result then
   * carries `durable`. Every payload is staged (see README).
   */
  durability?: { replicas: number; timeoutMs: number; aof?: boolean };
}

export type PersistStatus = 'persisted' | 'replayed' | 'duplicate' | 'expired';

export interface PersistResult {
  /** `replayed`: already stored (a retry); `duplicate`: another snapshot holds the dedup bucket. */
  status: PersistStatus;
  /** Whether `latest` now names this snapshot because of this call. */
  latestAdvanced: boolean;
  /** Index members that fell out of the retention window and were removed. */
  pruned: number;
  /**
   * Only with the `durability` option: whether the replicas (and AOFs) it asks for confirmed the
   * snapshot's keys as they stand after this call within `timeoutMs`. `false`: stored on the
   * primary but not confirmed; re-sending it replays and waits again.
   */
  durable?: boolean;
}

export interface StoredSnapshot {
  id: string;
  timestamp: number;
  payload: unknown;
}

export interface ListOptions {
  /** Oldest timestamp to include (ms). */
  since?: number;
  /** Newest timestamp to include (ms). */
  until?: number;
  limit?: number;
  now?: number;
}

/** Clock override, for backfills and tests. Default `Date.now()`. */
export interface At {
  now?: number;
}

export interface SnapshotStore {
  persist(snapshot: SnapshotInput, at?: At): Promise<PersistResult>;
  /** All in one round trip; each snapshot atomic on its own; settled one by one. */
  persistMany(snapshots: readonly SnapshotInput[], at?: At): Promise<PromiseSettledResult<PersistResult>[]>;
  readLatest(region: string, at?: At): Promise<StoredSnapshot | null>;
  /** The latest of several regions in one round trip. */
  readLatestMany(regions: readonly string[], at?: At): Promise<Array<StoredSnapshot | null>>;
  readById(region: string, id: string, at?: At): Promise<StoredSnapshot | null>;
  /** Ids and timestamps inside the retention window, newest first. */
  list(region: string, options?: ListOptions): Promise<Array<{ id: string; timestamp: number }>>;
}

const DAY_MS = 86_400_000;
const OPTIONS_SHAPE = '{ client, keys?, retentionMs?, dedup?, latest?, maxPayloadBytes?, retry?, stagePayloadsFrom?, upstash?, durability? }';
/**
 * Staged transfer pays for itself from this payload length on. Measured interleaved, 16 in
 * flight: at 8 KB staged costs Redis the same main-thread CPU as inline and the client 1.6x; at
 * 16 KB Redis 10% less (the client 1.4x); at 24 KB 20% less.
 */
const STAGE_FROM = 16_384;
const persistScript = new Script(persistLua.text, persistLua.sha);
const keyLockingPersistScript = new Script(persistKeyLockingLua.text, persistKeyLockingLua.sha);
const readScript = new Script(readLua.text, readLua.sha);

/**
 * What verify and repair (snapshot-persist/ops) need of each store. Kept here rather than on the
 * store object, so that a bundle which only persists and reads carries neither them nor repair.lua.
 */
const driftContexts = new WeakMap<SnapshotStore, DriftContext>();

/** The store's keys, retention, retry and policies, for verify and repair. */
export function driftContextOf(store: SnapshotStore): DriftContext {
  const ctx = typeof store === 'object' && store !== null ? driftContexts.get(store) : undefined;
  if (!ctx) throw new ValidationError('store', 'expected a store made by createSnapshotStore');
  return ctx;
}

/** Redis Cluster runs a script only if all its keys share a hash slot; a custom schema may not. */
function checkOneSlot(slotOf: (key: string) => number, keys: readonly string[]): void {
  const slot = slotOf(keys[0]!);
  if (keys.some((key) => slotOf(key) !== slot)) {
    throw new ValidationError('options.keys.schema', `keys ${keys.join(', ')} hash to different slots (Redis Cluster would answer CROSSSLOT): put the region in a hash tag {region} in every key`);
  }
}

function unwrap(outcome: Outcome): unknown {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

/** The result of a persist call, with `durable` when the batch waited. */
function persistResult(outcome: Outcome): PersistResult {
  const result = decodePersist(unwrap(outcome));
  return outcome.ok && outcome.durable !== undefined ? { ...result, durable: outcome.durable } : result;
}

/** The `durability` option, checked; undefined without it. */
function resolveDurability(option: SnapshotStoreOptions['durability'], canWait: boolean, staging: number | undefined): Wait | undefined {
  if (option === undefined) return undefined;
  const d = checkObject('options.durability', option, '{ replicas, timeoutMs, aof? }');
  if (!canWait) throw new ValidationError('options.durability', 'needs an ioredis client: @upstash/redis has no WAIT over REST, so nothing could confirm replication');
  // Since Redis 7.2 WAIT covers the writes of its own connection only: a replay that writes
  // nothing would be confirmed at once. Staged, every persist writes (SET, then RENAME or DEL), so
  // WAIT covers whatever the primary held when it ran, the copy a replay found included.
  if (staging !== undefined) throw new ValidationError('options.stagePayloadsFrom', 'cannot be set with durability, which stages every payload');
  const aof = d.aof ?? false;
  if (typeof aof !== 'boolean') throw new ValidationError('options.durability.aof', 'expected a boolean');
  return {
    replicas: checkInteger('options.durability.replicas', d.replicas, aof ? 0 : 1, 1_000),
    // WAIT with timeout 0 blocks until confirmed, however long that takes.
    timeoutMs: checkInteger('options.durability.timeoutMs', d.timeoutMs, 1, 600_000),
    aof,
  };
}

/**
 * createSnapshotStore, given its entry's `connect`: src/index.ts binds both clients' adapters,
 * src/edge.ts only @upstash/redis's, so an edge bundle carries neither ioredis's nor its slot hash.
 */
export function createStore(options: SnapshotStoreOptions, connect: (client: unknown) => Connection): SnapshotStore {
  if (typeof options !== 'object' || options === null) throw new ValidationError('options', 'expected an object');
  checkObject('options', options, OPTIONS_SHAPE);
  const bare = connect(options.client);
  const slotOf = bare.slotOf;
  const keyOptions = checkObject('options.keys', options.keys, '{ schema?, prefix?, timestampKey? }');
  if (slotOf && (keyOptions.schema ?? 'worldmonitor-v1') === 'worldmonitor-v1') {
    throw new ValidationError('options.keys.schema', "'worldmonitor-v1' keys span hash slots (the by-id key has no region): use 'cluster' with a Cluster client");
  }
  const schema = resolveKeySchema(keyOptions.schema, keyOptions.prefix);
  const tsHolds = keyOptions.timestampKey ?? 'payload';
  if (tsHolds !== 'payload' && tsHolds !== 'id') throw new ValidationError('options.keys.timestampKey', "expected 'payload' or 'id'");
  const wait = resolveDurability(options.durability, bare.waits !== undefined, options.stagePayloadsFrom);
  const stageFrom = wait ? 0 : options.stagePayloadsFrom === Infinity ? Infinity : checkInteger('options.stagePayloadsFrom', options.stagePayloadsFrom ?? STAGE_FROM, 0);
  const retentionMs = checkInteger('options.retentionMs', options.retentionMs ?? 90 * DAY_MS, 1);
  const dedupOptions = options.dedup === false ? false : checkObject('options.dedup', options.dedup, 'false or { windowMs?, ttlMs? }');
  const dedup = dedupOptions === false ? false : {
    windowMs: checkInteger('options.dedup.windowMs', dedupOptions.windowMs ?? 900_000, 1),
    ttlMs: checkInteger('options.dedup.ttlMs', dedupOptions.ttlMs ?? 900_000, 1),
  };
  // A claim that expires before its window ends lets a second snapshot into the same window.
  if (dedup && dedup.ttlMs < dedup.windowMs) throw new ValidationError('options.dedup.ttlMs', `shorter than windowMs (${dedup.windowMs}): a second snapshot could take the same window`);
  const latest = options.latest ?? 'monotonic';
  if (latest !== 'monotonic' && latest !== 'always') throw new ValidationError('options.latest', "expected 'monotonic' or 'always'");
  const maxPayloadBytes = checkInteger('options.maxPayloadBytes', options.maxPayloadBytes ?? 8 * 1024 * 1024, 2);
  const retry: RetryPolicy = resolveRetry(options.retry);
  const connection = retrying(bare, retry);
  const keyLocking = checkObject('options.upstash', options.upstash, '{ keyLocking? }').keyLocking ?? false;
  if (typeof keyLocking !== 'boolean') throw new ValidationError('options.upstash.keyLocking', 'expected a boolean');
  if (keyLocking && !isUpstash(options.client)) throw new ValidationError('options.upstash.keyLocking', 'needs an @upstash/redis client (stock Redis rejects the flag)');
  const persister = keyLocking ? keyLockingPersistScript : persistScript;
  let aofChecked: Promise<void> | undefined;
  /** With durability.aof, the first persist asks whether the server can run WAITAOF at all. */
  function checkAof(): Promise<void> | undefined {
    if (!wait?.aof) return undefined;
    aofChecked ??= connection.waits!.checkAof().catch((error: unknown) => {
      aofChecked = undefined; // asked again next time: the server may be upgraded, or was unreachable
      throw error;
    });
    return aofChecked;
  }
  async function runPersists(calls: ScriptCall[]): Promise<Outcome[]> {
    try {
      await checkAof();
    } catch (error) {
      return calls.map(() => ({ ok: false, error }));
    }
    return persister.runMany(connection, calls, retry, wait);
  }

  function persistCall(s: ValidSnapshot): ScriptCall {
    const keys = [
      schema.timestamp(s.region, s.timestamp),
      schema.byId(s.region, s.id),
      schema.latest(s.region),
      schema.index(s.region),
      schema.live(s.region),
    ];
    const claim = dedup && s.trigger !== undefined;
    if (claim) keys.push(schema.dedup(s.region, s.trigger!, Math.floor(s.timestamp / dedup.windowMs)));
    const staged = connection.staging && s.payloadText.length >= stageFrom;
    // Unique to the snapshot and in its region's slot; ':' never occurs in an id.
    if (staged) keys.push(`${keys[1]}:staging`);
    const args = [
      staged ? '' : s.payloadText,
      s.id,
      String(s.timestamp),
      String(s.timestamp + retentionMs),
      String(retentionMs),
      String(claim ? dedup.ttlMs : 0),
      latest,
      staged ? 'staged' : 'inline',
      tsHolds,
      ...byIdTemplate(schema, s.region),
    ];
    if (slotOf) checkOneSlot(slotOf, keys);
    return staged ? { keys, args, stage: { key: keys.at(-1)!, value: s.payloadText } } : { keys, args };
  }

  function readCall(region: string, id: string, now: number): ScriptCall {
    const [before, after] = byIdTemplate(schema, region);
    const keys = [schema.latest(region), schema.index(region)];
    // read.lua also reads the by-id key it derives: it must share the slot too.
    if (slotOf) checkOneSlot(slotOf, [...keys, before + id + after]);
    return { keys, args: [before, after, String(now - retentionMs), id] };
  }

  async function persistMany(snapshots: readonly SnapshotInput[], at?: At): Promise<PromiseSettledResult<PersistResult>[]> {
    if (!Array.isArray(snapshots)) throw new ValidationError('snapshots', 'expected an array');
    const now = clockOf(at);
    const settled: PromiseSettledResult<PersistResult>[] = new Array(snapshots.length);
    const calls: ScriptCall[] = [];
    const slots: number[] = [];
    snapshots.forEach((snapshot, i) => {
      try {
        calls.push(persistCall(validateSnapshot(snapshot, { now, maxPayloadBytes })));
        slots.push(i);
      } catch (reason) {
        settled[i] = { status: 'rejected', reason };
      }
    });
    const outcomes = calls.length > 0 ? await runPersists(calls) : [];
    outcomes.forEach((outcome, j) => {
      try {
        settled[slots[j]!] = { status: 'fulfilled', value: persistResult(outcome) };
      } catch (reason) {
        settled[slots[j]!] = { status: 'rejected', reason };
      }
    });
    return settled;
  }

  async function readMany(calls: ScriptCall[]): Promise<Array<StoredSnapshot | null>> {
    const outcomes = await readScript.runMany(connection, calls, retry);
    return outcomes.map((outcome) => decodeRead(unwrap(outcome)));
  }

  const store: SnapshotStore = {
    async persist(snapshot, at) {
      const now = clockOf(at);
      const call = persistCall(validateSnapshot(snapshot, { now, maxPayloadBytes }));
      const [outcome] = await runPersists([call]);
      return persistResult(outcome!);
    },
    persistMany,
    async readLatest(region, at) {
      const [found] = await readMany([readCall(checkRegion('region', region), '', clockOf(at))]);
      return found!;
    },
    async readLatestMany(regions, at) {
      if (!Array.isArray(regions)) throw new ValidationError('regions', 'expected an array');
      const now = clockOf(at);
      const calls = regions.map((region, i) => readCall(checkRegion(`regions[${i}]`, region), '', now));
      return calls.length > 0 ? readMany(calls) : [];
    },
    async readById(region, id, at) {
      const [found] = await readMany([readCall(checkRegion('region', region), checkId('id', id), clockOf(at))]);
      return found!;
    },
    async list(region, listOptions) {
      checkRegion('region', region);
      const options = checkObject('options', listOptions, '{ since?, until?, limit?, now? }');
      const now = checkNow(options.now);
      const cutoff = now - retentionMs;
      const since = checkInteger('options.since', options.since ?? 0, 0);
      const until = checkInteger('options.until', options.until ?? Number.MAX_SAFE_INTEGER, 0);
      const limit = options.limit === undefined ? -1 : checkInteger('options.limit', options.limit, 1);
      const [members, current] = await Promise.all([
        connection.rangeByScoreDesc(schema.index(region), Math.max(since, cutoff + 1), until, limit),
        connection.get(schema.latest(region)),
      ]).catch((error: unknown) => {
        throw toSnapshotError(error);
      });
      const listed = members.map(({ member, score }) => ({ id: member, timestamp: score }));
      if (current === null || listed.some(({ id }) => id === String(current))) return listed;
      // The snapshot the application's readers get (latest, then by-id) is listed even when the
      // index does not hold it (legacy drift, an index that expired under legacy writes).
      const [found] = await readMany([readCall(region, '', now)]);
      if (!found || found.id !== String(current) || found.timestamp < since || found.timestamp > until) return listed;
      listed.push({ id: found.id, timestamp: found.timestamp });
      // Newest first by (timestamp, id); ids are ASCII, so code units order them as bytes.
      listed.sort((a, b) => b.timestamp - a.timestamp || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
      return limit > 0 ? listed.slice(0, limit) : listed;
    },
  };
  driftContexts.set(store, { connection, schema, retentionMs, retry, timestampKey: tsHolds, latest });
  return store;
}
