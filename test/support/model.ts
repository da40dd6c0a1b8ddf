import { keySchemas, type KeySchema } from '../../src/keys.js';
import type { ListOptions, PersistResult, SnapshotInput, StoredSnapshot } from '../../src/index.js';

/**
 * The intended semantics of a snapshot store, in memory: what lua/persist.lua and lua/read.lua
 * promise in their header blocks, for either latest policy and either timestamp-key layout. The model-based test
 * runs the same commands here and against Redis and compares every result and the whole keyspace.
 *
 * Time: every call takes the caller's clock `now`, as the store does; it sets the retention
 * window of reads. What a persist writes (the `expired` status, pruning on write) persist.lua
 * decides by the server's clock, which lies in the call's wall-clock interval `realTime`: the
 * model takes its start. Redis expires keys by its own clock, which a test cannot move, so the
 * model never expires a key either: it keeps what Redis keeps. Dedup claims are the one expiry
 * relative to the server's clock (`PX ttl`), so the model records the wall-clock interval of the
 * call that made each claim and expects the key's expiry inside it.
 */

export interface ModelOptions {
  retentionMs: number;
  dedup: { windowMs: number; ttlMs: number };
  schema?: KeySchema;
  /** Default 'monotonic'. */
  latest?: 'monotonic' | 'always';
  /** What the timestamp key holds: the payload (default, two copies) or the id (one copy). */
  timestampKey?: 'payload' | 'id';
}

/** One key as stored: its value and its absolute expiry (ms; -1: none), or a range for a PX ttl. */
export type KeyEntry =
  | { type: 'string'; value: string; expireAt: number | [number, number] }
  | { type: 'zset'; members: Array<[string, number]>; expireAt: number };

export type Leftover =
  | { role: 'by-id' | 'claim'; region: string; key: string; id: string }
  | { role: 'timestamp'; region: string; key: string; timestamp: number };

/** A persist outcome: the result, or the code of the error the store throws. */
export type PersistOutcome = PersistResult | { error: string };

interface Region {
  /** The index: id -> timestamp. */
  index: Map<string, number>;
  indexExpireAt: number;
  latest: { id: string; timestamp: number } | undefined;
  /** Timestamp -> what the timestamp key holds: payload text (or id) of the greatest id there. */
  byTimestamp: Map<number, string>;
  /**
   * `trigger:bucket` -> the claiming id, the wall-clock interval of its claim and its PX ttl;
   * `legacy`: made by the legacy writer (SET NX EX 900, its pipeline a second request).
   */
  claims: Map<string, { trigger: string; bucket: number; id: string; at: [number, number]; ttlMs: number; legacy?: true }>;
  /** Set by someone else (the seeder's live view); deleted whenever latest moves. */
  live: string | undefined;
}

/** Ids are ASCII (validate.ts), so UTF-16 code-unit order is the scripts' byte order. */
/** persist.lua's margin: a legacy claim (EX 900) younger than 30 s may belong to a write in flight. */
const LEGACY_CLAIM_MS = 900_000;
const IN_FLIGHT_MS = 30_000;

const after = (a: [number, string], b: [number, string]) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
const newestFirst = (a: [string, number], b: [string, number]) => (after([a[1], a[0]], [b[1], b[0]]) ? -1 : 1);

export class SnapshotModel {
  private readonly regions = new Map<string, Region>();
  /** By-id key -> what was last written there (the default schema's by-id key has no region). */
  private readonly byId = new Map<string, { text: string; region: string; id: string; timestamp: number }>();
  private readonly schema: KeySchema;

  constructor(private readonly options: ModelOptions) {
    this.schema = options.schema ?? keySchemas['worldmonitor-v1'];
  }

  private region(name: string): Region {
    let r = this.regions.get(name);
    if (!r) {
      r = { index: new Map(), indexExpireAt: -1, latest: undefined, byTimestamp: new Map(), claims: new Map(), live: undefined };
      this.regions.set(name, r);
    }
    return r;
  }

  /** `realTime`: Date.now() just before the call was sent and just after its reply arrived. */
  persist(s: SnapshotInput, now: number, realTime: [number, number]): PersistOutcome {
    const { retentionMs, dedup } = this.options;
    const r = this.region(s.region);
    void now; // bounds the timestamp in validate.ts only
    const cutoff = realTime[0] - retentionMs;
    if (s.timestamp <= cutoff) return { status: 'expired', latestAdvanced: false, pruned: 0 };

    const text = typeof s.payload === 'string' ? s.payload : JSON.stringify(s.payload);
    const indexed = r.index.get(s.id);
    if (indexed !== undefined) {
      if (indexed !== s.timestamp) return { error: 'SCRIPT_CONFLICT' };
      if (this.byId.has(this.schema.byId(s.region, s.id))) return { status: 'replayed', latestAdvanced: false, pruned: 0 };
    } else if ((this.byId.get(this.schema.byId(s.region, s.id))?.text ?? text) !== text) {
      return { error: 'SCRIPT_CONFLICT' }; // the by-id key holds another snapshot
    }

    const bucket = Math.floor(s.timestamp / dedup.windowMs);
    const claimKey = `${s.trigger}:${bucket}`;
    const holder = s.trigger === undefined ? undefined : r.claims.get(claimKey)?.id;
    // A claim blocks while its holder is readable inside the window, or while it is a legacy
    // claim young enough to belong to a write still in flight; else it is taken over.
    const claim = s.trigger === undefined ? undefined : r.claims.get(claimKey);
    const holderTs = holder === undefined ? undefined : r.index.get(holder);
    if (holder !== undefined && holder !== s.id) {
      if (holderTs !== undefined && holderTs > cutoff && this.byId.has(this.schema.byId(s.region, holder))) return { status: 'duplicate', latestAdvanced: false, pruned: 0 };
      const remaining = claim!.ttlMs - (realTime[0] - claim!.at[1]);
      if (holderTs === undefined && claim!.legacy && remaining > LEGACY_CLAIM_MS - IN_FLIGHT_MS) return { status: 'duplicate', latestAdvanced: false, pruned: 0 };
    }

    // Latest moves only forward, unless what it names is no longer indexed (or the policy is 'always').
    const advance = this.options.latest === 'always' || !r.latest || !r.index.has(r.latest.id) || after([s.timestamp, s.id], [r.latest.timestamp, r.latest.id]);
    const ownsTimestamp = [...r.index].every(([id, ts]) => ts !== s.timestamp || !(id > s.id));

    if (s.trigger !== undefined) r.claims.set(claimKey, { trigger: s.trigger, bucket, id: s.id, at: realTime, ttlMs: dedup.ttlMs });
    this.byId.set(this.schema.byId(s.region, s.id), { text, region: s.region, id: s.id, timestamp: s.timestamp });
    if (ownsTimestamp) r.byTimestamp.set(s.timestamp, this.options.timestampKey === 'id' ? s.id : text);
    r.index.set(s.id, s.timestamp);
    let pruned = 0;
    for (const [id, ts] of r.index) {
      if (ts <= cutoff) {
        r.index.delete(id);
        pruned++;
      }
    }
    r.indexExpireAt = Math.max(...r.index.values()) + retentionMs;
    if (advance) {
      r.latest = { id: s.id, timestamp: s.timestamp };
      r.live = undefined;
    }
    return { status: 'persisted', latestAdvanced: advance, pruned };
  }

  /** A claim the legacy writer made (`SET … PX ttl`) for a snapshot it has not written (yet). */
  plantLegacyClaim(region: string, trigger: string, bucket: number, id: string, ttlMs: number, realTime: [number, number]): void {
    this.region(region).claims.set(`${trigger}:${bucket}`, { trigger, bucket, id, at: realTime, ttlMs, legacy: true });
  }

  /** The seeder's live key, written outside the store. */
  setLive(region: string, value: string): void {
    this.region(region).live = value;
  }

  readById(region: string, id: string, now: number): StoredSnapshot | null {
    const ts = this.regions.get(region)?.index.get(id);
    const stored = this.byId.get(this.schema.byId(region, id));
    if (ts === undefined || ts <= now - this.options.retentionMs || !stored) return null;
    return { id, timestamp: ts, payload: JSON.parse(stored.text) };
  }

  /** Latest if it is readable, else the newest readable member of the window (drift repair). */
  readLatest(region: string, now: number): StoredSnapshot | null {
    const r = this.regions.get(region);
    if (!r) return null;
    const candidates = [...(r.latest ? [r.latest.id] : []), ...[...r.index].sort(newestFirst).map(([id]) => id)];
    for (const id of candidates) {
      const found = this.readById(region, id, now);
      if (found) return found;
    }
    return null;
  }

  list(region: string, { now, since = 0, until = Number.MAX_SAFE_INTEGER, limit }: ListOptions & { now: number }): Array<{ id: string; timestamp: number }> {
    const from = Math.max(since, now - this.options.retentionMs + 1);
    const members = [...(this.regions.get(region)?.index ?? [])].filter(([, ts]) => ts >= from && ts <= until).sort(newestFirst);
    return members.slice(0, limit ?? members.length).map(([id, timestamp]) => ({ id, timestamp }));
  }

  /**
   * Keys left by pruned snapshots: their payload keys, and dedup claims naming them. Redis would
   * have expired the payload keys by the time a real clock pruned them; under the test's clock
   * they stay, named by no index member.
   */
  leftovers(): Leftover[] {
    const out: Leftover[] = [];
    for (const [key, { region, id, timestamp }] of this.byId) {
      if (this.regions.get(region)?.index.get(id) !== timestamp) out.push({ role: 'by-id', region, key, id });
    }
    for (const [name, r] of this.regions) {
      const scores = new Set(r.index.values());
      for (const ts of r.byTimestamp.keys()) if (!scores.has(ts)) out.push({ role: 'timestamp', region: name, key: this.schema.timestamp(name, ts), timestamp: ts });
      for (const c of r.claims.values()) if (!r.index.has(c.id)) out.push({ role: 'claim', region: name, key: this.schema.dedup(name, c.trigger, c.bucket), id: c.id });
    }
    return out;
  }

  /** Every key the model holds, as Redis should hold it. */
  keyspace(): Map<string, KeyEntry> {
    const { retentionMs } = this.options;
    const keys = new Map<string, KeyEntry>();
    for (const [key, { text, timestamp }] of this.byId) keys.set(key, { type: 'string', value: text, expireAt: timestamp + retentionMs });
    for (const [name, r] of this.regions) {
      for (const [ts, text] of r.byTimestamp) keys.set(this.schema.timestamp(name, ts), { type: 'string', value: text, expireAt: ts + retentionMs });
      if (r.index.size > 0) {
        const members = [...r.index].sort((a, b) => -newestFirst(a, b));
        keys.set(this.schema.index(name), { type: 'zset', members, expireAt: r.indexExpireAt });
      }
      if (r.latest) keys.set(this.schema.latest(name), { type: 'string', value: r.latest.id, expireAt: r.latest.timestamp + retentionMs });
      if (r.live !== undefined) keys.set(this.schema.live(name), { type: 'string', value: r.live, expireAt: -1 });
      for (const c of r.claims.values()) {
        keys.set(this.schema.dedup(name, c.trigger, c.bucket), { type: 'string', value: c.id, expireAt: [c.at[0] + c.ttlMs, c.at[1] + c.ttlMs] });
      }
    }
    return keys;
  }
}
