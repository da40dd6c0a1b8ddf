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
 * call that made each claim and expects the key's expiry inside it; so are the legacy writer's
 * `EX` expiries.
 *
 * The legacy writer (`legacyWrite`) is modelled command by command, cut after any of its six:
 * it writes unconditionally, with `EX` expiries, and never sets the index's expiry. What it
 * leaves is what persist.lua and read.lua must cope with: a `latest` the index does not hold (its
 * age is then its payload's `generated_at`), an index without expiry, members it pruned by its
 * own clock.
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

/** An absolute expiry (ms; -1: none), or the range an expiry relative to the server's clock falls in. */
type Expiry = number | [number, number];

/** One key as stored: its value and its expiry. */
export type KeyEntry =
  | { type: 'string'; value: string; expireAt: Expiry }
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
  latest: { id: string; expireAt: Expiry } | undefined;
  /** Timestamp -> what the timestamp key holds: payload text (or id) of the greatest id there. */
  byTimestamp: Map<number, { value: string; expireAt: Expiry }>;
  /**
   * `trigger:bucket` -> the claiming id, the wall-clock interval of its claim and its PX ttl.
   */
  claims: Map<string, { trigger: string; bucket: number; id: string; at: [number, number]; ttlMs: number }>;
  /** Set by someone else (the seeder's live view); deleted whenever latest moves. */
  live: string | undefined;
}

/** Ids are ASCII (validate.ts), so UTF-16 code-unit order is the scripts' byte order. */
/** persist.lua's margin: a legacy claim (EX 900) younger than 30 s may belong to a write in flight. */
const LEGACY_CLAIM_MS = 900_000;
const IN_FLIGHT_MS = 30_000;

const newestFirst = (a: [string, number], b: [string, number]) => (a[1] > b[1] || (a[1] === b[1] && a[0] > b[0]) ? -1 : 1);

/** A payload's `generated_at`, the age persist.lua and read.lua give a snapshot the index does not hold. */
export function generatedAt(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    const at = (JSON.parse(text) as { generated_at?: unknown } | null)?.generated_at;
    return typeof at === 'number' ? at : undefined;
  } catch {
    return undefined;
  }
}

export class SnapshotModel {
  private readonly regions = new Map<string, Region>();
  /** By-id key -> what was last written there (the default schema's by-id key has no region). */
  private readonly byId = new Map<string, { text: string; region: string; id: string; timestamp: number; expireAt: Expiry }>();
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
      // persist.lua knows a legacy claim by its PTTL alone (EX 900): a claim of ours with the
      // same ttl whose holder the legacy writer pruned from the index looks the same.
      const remaining = claim!.ttlMs - (realTime[0] - claim!.at[1]);
      if (holderTs === undefined && remaining > LEGACY_CLAIM_MS - IN_FLIGHT_MS && remaining <= LEGACY_CLAIM_MS) return { status: 'duplicate', latestAdvanced: false, pruned: 0 };
    }

    // Latest moves only forward, unless the age of what it names cannot be known (or the policy is 'always').
    const current = r.latest?.id;
    const currentTs = current === undefined ? undefined : this.ageOf(s.region, current);
    const advance = this.options.latest === 'always' || currentTs === undefined || s.timestamp > currentTs || (s.timestamp === currentTs && s.id >= current!);
    // The timestamp key holds the greatest id the index holds at its timestamp.
    const ownsTimestamp = !r.byTimestamp.has(s.timestamp) || [...r.index].every(([id, ts]) => ts !== s.timestamp || !(id > s.id));

    if (s.trigger !== undefined) r.claims.set(claimKey, { trigger: s.trigger, bucket, id: s.id, at: realTime, ttlMs: dedup.ttlMs });
    const expireAt = s.timestamp + retentionMs;
    this.byId.set(this.schema.byId(s.region, s.id), { text, region: s.region, id: s.id, timestamp: s.timestamp, expireAt });
    if (ownsTimestamp) r.byTimestamp.set(s.timestamp, { value: this.options.timestampKey === 'id' ? s.id : text, expireAt });
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
      r.latest = { id: s.id, expireAt };
      r.live = undefined;
    }
    return { status: 'persisted', latestAdvanced: advance, pruned };
  }

  /** Whether `latest` names a snapshot the index does not hold (legacy drift). */
  latestUnindexed(region: string): boolean {
    const r = this.regions.get(region);
    return r?.latest !== undefined && !r.index.has(r.latest.id);
  }

  /** How old persist.lua takes the snapshot `id` to be: its index score, else its payload's `generated_at`. */
  ageOf(region: string, id: string): number | undefined {
    return this.regions.get(region)?.index.get(id) ?? generatedAt(this.byId.get(this.schema.byId(region, id))?.text);
  }

  /**
   * The legacy writer's persist (DESIGN.md, "The problem it replaces"), its claim made when it has a
   * trigger (`SET … EX 900 NX`: nothing more when the bucket is claimed), then its first `k` of
   * six commands, every one unconditional, expiring `retentionMs` after the server ran it (inside
   * `realTime`); it prunes by its own clock `now`. Returns whether it wrote (claimed).
   */
  legacyWrite(s: { region: string; id: string; timestamp: number; text: string; trigger?: string }, k: number, now: number, realTime: [number, number]): boolean {
    const { retentionMs, dedup } = this.options;
    const r = this.region(s.region);
    if (s.trigger !== undefined) {
      const bucket = Math.floor(s.timestamp / dedup.windowMs);
      if (r.claims.has(`${s.trigger}:${bucket}`)) return false;
      this.plantLegacyClaim(s.region, s.trigger, bucket, s.id, LEGACY_CLAIM_MS, realTime);
    }
    const expireAt: Expiry = [realTime[0] + retentionMs, realTime[1] + retentionMs];
    const steps = [
      () => r.byTimestamp.set(s.timestamp, { value: s.text, expireAt }),
      () => this.byId.set(this.schema.byId(s.region, s.id), { text: s.text, region: s.region, id: s.id, timestamp: s.timestamp, expireAt }),
      () => (r.latest = { id: s.id, expireAt }),
      () => {
        if (r.index.size === 0) r.indexExpireAt = -1; // ZADD creates the index without an expiry
        r.index.set(s.id, s.timestamp);
      },
      () => {
        for (const [id, ts] of r.index) if (ts < now - retentionMs) r.index.delete(id);
      },
      () => (r.live = undefined),
    ];
    for (const step of steps.slice(0, k)) step();
    return true;
  }

  /** A claim the legacy writer made (`SET … PX ttl`) for a snapshot it has not written (yet). */
  plantLegacyClaim(region: string, trigger: string, bucket: number, id: string, ttlMs: number, realTime: [number, number]): void {
    this.region(region).claims.set(`${trigger}:${bucket}`, { trigger, bucket, id, at: realTime, ttlMs });
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

  /**
   * Latest if it is readable (indexed inside the window, or not indexed with a `generated_at`
   * inside it), else the newest readable member of the window.
   */
  readLatest(region: string, now: number): StoredSnapshot | null {
    const r = this.regions.get(region);
    if (!r) return null;
    const current = r.latest?.id;
    if (current !== undefined && !r.index.has(current)) {
      const text = this.byId.get(this.schema.byId(region, current))?.text;
      const at = generatedAt(text);
      if (at !== undefined && at > now - this.options.retentionMs) return { id: current, timestamp: at, payload: JSON.parse(text!) };
    }
    const candidates = [...(current === undefined ? [] : [current]), ...[...r.index].sort(newestFirst).map(([id]) => id)];
    for (const id of candidates) {
      const found = this.readById(region, id, now);
      if (found) return found;
    }
    return null;
  }

  list(region: string, { now, since = 0, until = Number.MAX_SAFE_INTEGER, limit }: ListOptions & { now: number }): Array<{ id: string; timestamp: number }> {
    const from = Math.max(since, now - this.options.retentionMs + 1);
    const members = [...(this.regions.get(region)?.index ?? [])].filter(([, ts]) => ts >= from && ts <= until).sort(newestFirst);
    const listed = members.slice(0, limit ?? members.length);
    // The snapshot the application's readers get is listed too when the index does not hold it.
    const current = this.regions.get(region)?.latest?.id;
    const found = current === undefined || listed.some(([id]) => id === current) ? null : this.readLatest(region, now);
    if (found && found.id === current && found.timestamp >= since && found.timestamp <= until) listed.push([found.id, found.timestamp]);
    return listed.sort(newestFirst).slice(0, limit ?? listed.length).map(([id, timestamp]) => ({ id, timestamp }));
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
    const keys = new Map<string, KeyEntry>();
    for (const [key, { text, expireAt }] of this.byId) keys.set(key, { type: 'string', value: text, expireAt });
    for (const [name, r] of this.regions) {
      for (const [ts, { value, expireAt }] of r.byTimestamp) keys.set(this.schema.timestamp(name, ts), { type: 'string', value, expireAt });
      if (r.index.size > 0) {
        const members = [...r.index].sort((a, b) => -newestFirst(a, b));
        keys.set(this.schema.index(name), { type: 'zset', members, expireAt: r.indexExpireAt });
      }
      if (r.latest) keys.set(this.schema.latest(name), { type: 'string', value: r.latest.id, expireAt: r.latest.expireAt });
      if (r.live !== undefined) keys.set(this.schema.live(name), { type: 'string', value: r.live, expireAt: -1 });
      for (const c of r.claims.values()) {
        keys.set(this.schema.dedup(name, c.trigger, c.bucket), { type: 'string', value: c.id, expireAt: [c.at[0] + c.ttlMs, c.at[1] + c.ttlMs] });
      }
    }
    return keys;
  }
}
