/**
 * An invariant checker written from the design's invariants and the README's key layout, not from
 * the product: it imports nothing from src/ (no key schema, no id ordering, no expiry formatting
 * shared with the code under test), reads the keyspace with plain commands and says what is wrong.
 *
 * For every region found in the keyspace:
 *  - latest: a string naming an indexed member inside the window whose by-id and timestamp keys
 *    exist; the newest member by (timestamp, id in byte order) unless the policy is `always`;
 *    expiring exactly at its timestamp + retention;
 *  - index ⇔ payloads: every member inside the window has a by-id key and a timestamp key, both
 *    expiring exactly at timestamp + retention; every by-id and timestamp key is named by a member;
 *    the timestamp key holds the greatest id at its timestamp (one copy) or that id's payload (two);
 *  - the index expires exactly at its newest member's timestamp + retention;
 *  - live: if the caller says which `latest` the live key was written under, live exists exactly
 *    while latest still names that snapshot (it is deleted whenever latest moves);
 *  - staging keys (`<by-id key>:staging`): none, or (when allowed) each with a TTL in (0, 1000] ms,
 *    read from the server (PTTL), so a key that never expires is a finding;
 *  - dedup claims: each names a persisted snapshot (indexed inside the window, by-id key present)
 *    of the claim key's region, whose bucket is floor(timestamp / window) and, when the caller
 *    gives what it sent, whose trigger is the claim key's; with a TTL in (0, ttl]. A claim may
 *    outlive its snapshot only when the caller sent that snapshot and it has left the window.
 *
 * Time: a key whose absolute expiry is at or before `now` is treated as gone (Redis would have
 * dropped it by then), so a test that simulates a later clock gets the keyspace that clock sees.
 * Claims and staging keys expire relative to the server's clock and are judged by their PTTL.
 */
import type { Redis } from 'ioredis';

/** Key names as the README's layout table gives them, as plain string functions and patterns. */
export interface Layout {
  timestamp(region: string, timestamp: number): string;
  byId(region: string, id: string): string;
  latest(region: string): string;
  index(region: string): string;
  live(region: string): string;
  dedup(region: string, trigger: string, bucket: number): string;
  /** Recognises a key: its role and what its name carries. */
  parse(key: string): Parsed | undefined;
}

export type Parsed =
  | { role: 'timestamp'; region: string; timestamp: number }
  | { role: 'byId'; region?: string; id: string }
  | { role: 'staging'; byIdKey: string }
  | { role: 'latest' | 'index' | 'live'; region: string }
  | { role: 'dedup'; region: string; trigger: string; bucket: number };

const NAME = '[a-z0-9][a-z0-9_-]*';

function layoutOf(open: string, close: string): Layout {
  const r = (region: string) => `${open}${region}${close}`;
  const reg = `${open.replace('{', '\\{')}(${NAME})${close.replace('}', '\\}')}`;
  const idPart = open === '' ? '' : `${reg}:`;
  const patterns: Array<[RegExp, (m: RegExpExecArray) => Parsed]> = [
    [/^(.*):staging$/, (m) => ({ role: 'staging', byIdKey: m[1]! })],
    [new RegExp(`^intelligence:snapshot:v1:${reg}:latest$`), (m) => ({ role: 'latest', region: m[1]! })],
    [new RegExp(`^intelligence:snapshot:v1:${reg}:live$`), (m) => ({ role: 'live', region: m[1]! })],
    [new RegExp(`^intelligence:snapshot:v1:${reg}:(\\d+)$`), (m) => ({ role: 'timestamp', region: m[1]!, timestamp: Number(m[2]) })],
    [new RegExp(`^intelligence:snapshot-index:v1:${reg}$`), (m) => ({ role: 'index', region: m[1]! })],
    [new RegExp(`^intelligence:snapshot-by-id:v1:${idPart}([^:]+)$`), (m) => (open === '' ? { role: 'byId', id: m[1]! } : { role: 'byId', region: m[1]!, id: m[2]! })],
    [new RegExp(`^dedup:snapshot:v1:${reg}:(.+):(\\d+)$`), (m) => ({ role: 'dedup', region: m[1]!, trigger: m[2]!, bucket: Number(m[3]) })],
  ];
  return {
    timestamp: (region, t) => `intelligence:snapshot:v1:${r(region)}:${t}`,
    byId: (region, id) => (open === '' ? `intelligence:snapshot-by-id:v1:${id}` : `intelligence:snapshot-by-id:v1:${r(region)}:${id}`),
    latest: (region) => `intelligence:snapshot:v1:${r(region)}:latest`,
    index: (region) => `intelligence:snapshot-index:v1:${r(region)}`,
    live: (region) => `intelligence:snapshot:v1:${r(region)}:live`,
    dedup: (region, trigger, bucket) => `dedup:snapshot:v1:${r(region)}:${trigger}:${bucket}`,
    parse(key) {
      for (const [pattern, build] of patterns) {
        const m = pattern.exec(key);
        if (m) return build(m);
      }
      return undefined;
    },
  };
}

/** The README's layouts: the legacy one (by-id key without region) and the cluster one (`{region}`). */
export const layouts = { legacy: layoutOf('', ''), cluster: layoutOf('{', '}') } as const;

export interface CheckOptions {
  retentionMs: number;
  layout?: Layout;
  /** What the timestamp key holds. Default 'payload' (two copies). */
  timestampKey?: 'payload' | 'id';
  /** Default 'monotonic': latest is the newest member. */
  latest?: 'monotonic' | 'always';
  /** Default: the server's clock (TIME). */
  now?: number;
  dedup?: { windowMs: number; ttlMs: number };
  /** Whether staging keys may exist (each bounded to 1 s). Default: none may. */
  stagingAllowed?: boolean;
  /** Region → the id `latest` named when the live key was written (null: no latest then). */
  liveWrittenUnder?: ReadonlyMap<string, string | null>;
  /** Regions that must be found (so that a layout matching nothing cannot pass vacuously). */
  regions?: readonly string[];
  /** Every snapshot the test sent: claims must match one of them in trigger. */
  sent?: Iterable<{ region: string; id: string; timestamp: number; trigger?: string }>;
  /** Claim key → id of claims the legacy writer made (a snapshot it has not written): not judged. */
  legacyClaims?: ReadonlyMap<string, string>;
}

interface Entry {
  type: string;
  value?: string;
  members?: Array<[string, number]>;
  /** Absolute expiry, -1 for none. */
  at: number;
  /** PTTL as the server reported it. */
  pttl: number;
}

const DEFAULT_DEDUP = { windowMs: 900_000, ttlMs: 900_000 };
const STAGING_TTL_MS = 1_000;

/** Byte order of two ids (Buffer.compare), newer-than for (timestamp, id). */
const newer = (a: [number, string], b: [number, string]) => a[0] !== b[0] ? a[0] > b[0] : Buffer.compare(Buffer.from(a[1]), Buffer.from(b[1])) > 0;

async function readAll(client: Redis): Promise<Map<string, Entry>> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  // One pipeline, not a transaction (a cluster node refuses one spanning slots). GET on a sorted
  // set and ZRANGE on a string fail harmlessly. A key that expired part-way (-2) counts as gone.
  const pipeline = client.pipeline();
  for (const key of keys) pipeline.type(key).pexpiretime(key).pttl(key).get(key).zrange(key, 0, -1, 'WITHSCORES');
  const replies = ((await pipeline.exec()) ?? []).map(([, value]) => value);
  const out = new Map<string, Entry>();
  keys.forEach((key, i) => {
    const [type, at, pttl, text, flat] = replies.slice(5 * i, 5 * i + 5);
    const entry: Entry = { type: String(type), at: Number(at), pttl: Number(pttl) };
    if (type === 'string' && typeof text === 'string') entry.value = text;
    if (type === 'zset' && Array.isArray(flat)) {
      entry.members = [];
      for (let j = 0; j < flat.length; j += 2) entry.members.push([String(flat[j]), Number(flat[j + 1])]);
    }
    if (type !== 'none' && entry.at !== -2 && entry.pttl !== -2) out.set(key, entry);
  });
  return out;
}

async function serverTime(client: Redis): Promise<number> {
  const [seconds, micros] = (await client.call('TIME')) as [string, string];
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** One line per violated invariant; [] means consistent. */
export async function checkInvariants(client: Redis, options: CheckOptions): Promise<string[]> {
  const { retentionMs, layout = layouts.legacy, timestampKey = 'payload', latest: policy = 'monotonic', dedup = DEFAULT_DEDUP } = options;
  const now: number = options.now ?? (await serverTime(client));
  const cutoff = now - retentionMs;
  const found: string[] = [];
  const all = await readAll(client);
  // What `now` sees: keys whose absolute expiry (snapshot timestamp + retention) is past by then
  // are gone. Claims and staging keys expire relative to the server's clock: they stay.
  const keys = new Map<string, Entry>();
  const parsed = new Map<string, Parsed>();
  const regions = new Set<string>();
  for (const [key, entry] of all) {
    const p = layout.parse(key);
    const relative = p?.role === 'dedup' || p?.role === 'staging';
    if (!relative && entry.at !== -1 && entry.at <= now) continue;
    keys.set(key, entry);
    if (!p) continue;
    parsed.set(key, p);
    if ('region' in p && p.region !== undefined) regions.add(p.region);
  }
  for (const region of options.regions ?? []) if (!regions.has(region)) found.push(`${region}: no key of this region found`);
  const get = (key: string) => keys.get(key);
  const str = (key: string) => (get(key)?.type === 'string' ? get(key)!.value : undefined);
  const expectType = (key: string, type: string) => {
    const e = get(key);
    if (e && e.type !== type) found.push(`${key}: a ${e.type}, expected a ${type}`);
    return e?.type === type;
  };
  const expectAt = (key: string, at: number, what: string) => {
    const e = get(key);
    if (e && e.at !== at) found.push(`${key}: ${what} expires at ${e.at}, expected ${at}`);
  };

  // Which region's window member each by-id key belongs to.
  const owners = new Map<string, Array<{ region: string; id: string; timestamp: number }>>();
  const liveMembers = new Map<string, Array<[string, number]>>();
  for (const region of regions) {
    const indexKey = layout.index(region);
    const members = expectType(indexKey, 'zset') ? get(indexKey)!.members! : [];
    if (members.length > 0) expectAt(indexKey, Math.max(...members.map(([, ts]) => ts)) + retentionMs, 'the index');
    const inWindow = members.filter(([, ts]) => ts > cutoff);
    liveMembers.set(region, inWindow);
    for (const [id, ts] of inWindow) {
      const byIdKey = layout.byId(region, id);
      owners.set(byIdKey, [...(owners.get(byIdKey) ?? []), { region, id, timestamp: ts }]);
      if (!expectType(byIdKey, 'string')) found.push(`${region}: member ${id} has no by-id key`);
      else expectAt(byIdKey, ts + retentionMs, 'by-id key');
      const tsKey = layout.timestamp(region, ts);
      if (!expectType(tsKey, 'string')) found.push(`${region}: member ${id} has no timestamp key`);
      else expectAt(tsKey, ts + retentionMs, 'timestamp key');
    }
    // The timestamp key holds the greatest id at its timestamp (or that id's payload).
    const byTs = new Map<number, string>();
    for (const [id, ts] of inWindow) if (!byTs.has(ts) || newer([ts, id], [ts, byTs.get(ts)!])) byTs.set(ts, id);
    for (const [ts, id] of byTs) {
      const held = str(layout.timestamp(region, ts));
      if (held === undefined) continue;
      const want = timestampKey === 'id' ? id : str(layout.byId(region, id));
      if (want !== undefined && held !== want) found.push(`${region}: timestamp key ${ts} holds ${timestampKey === 'id' ? held : 'another payload'}, expected ${timestampKey === 'id' ? id : `the payload of ${id}`}`);
    }

    // latest
    const latestKey = layout.latest(region);
    const latestId = expectType(latestKey, 'string') ? str(latestKey)! : undefined;
    if (latestId === undefined) {
      // Under 'always' latest may have moved back to a snapshot that expired before newer ones.
      if (inWindow.length > 0 && policy === 'monotonic') found.push(`${region}: no latest, but ${inWindow.length} snapshot(s) in the window`);
    } else {
      const member = inWindow.find(([id]) => id === latestId);
      if (!member) found.push(`${region}: latest names ${latestId}, not a member inside the window`);
      else {
        expectAt(latestKey, member[1] + retentionMs, 'latest');
        if (str(layout.byId(region, latestId)) === undefined) found.push(`${region}: latest names ${latestId}, whose by-id key is missing`);
        if (str(layout.timestamp(region, member[1])) === undefined) found.push(`${region}: latest names ${latestId}, whose timestamp key is missing`);
        if (policy === 'monotonic') {
          const newest = inWindow.reduce((a, b) => (newer([b[1], b[0]], [a[1], a[0]]) ? b : a));
          if (newest[0] !== latestId) found.push(`${region}: latest names ${latestId}, but ${newest[0]} is newer`);
        }
      }
    }

    // live
    const liveKey = layout.live(region);
    expectType(liveKey, 'string');
    const under = options.liveWrittenUnder?.get(region);
    if (under !== undefined) {
      const moved = (latestId ?? null) !== under;
      if (moved && get(liveKey)) found.push(`${region}: latest moved from ${under} to ${latestId ?? 'nothing'} but live was not deleted`);
      if (!moved && !get(liveKey)) found.push(`${region}: live was deleted though latest still names ${under}`);
    }
  }

  const sent = new Map<string, Array<{ region: string; id: string; timestamp: number; trigger?: string }>>();
  for (const s of options.sent ?? []) sent.set(`${s.region} ${s.id}`, [...(sent.get(`${s.region} ${s.id}`) ?? []), s]);
  const sentAs = (region: string, id: string) => (options.sent ? (sent.get(`${region} ${id}`) ?? []) : undefined);
  for (const [key, p] of parsed) {
    if (p.role === 'byId' || p.role === 'timestamp') {
      if (!expectType(key, 'string')) continue;
      const named = p.role === 'byId' ? owners.has(key) : (liveMembers.get(p.region) ?? []).some(([, ts]) => ts === p.timestamp);
      if (!named) found.push(`${key}: no index member inside the window names it`);
      if (p.role === 'byId' && (owners.get(key)?.length ?? 0) > 1) found.push(`${key}: named by ${owners.get(key)!.length} members`);
    } else if (p.role === 'staging') {
      const e = get(key)!;
      if (!options.stagingAllowed) found.push(`${key}: a staging key was left`);
      else if (!(e.pttl > 0 && e.pttl <= STAGING_TTL_MS)) found.push(`${key}: a staging key with TTL ${e.pttl} ms, expected (0, ${STAGING_TTL_MS}]`);
      if (layout.parse(p.byIdKey)?.role !== 'byId') found.push(`${key}: a staging key not named after a by-id key`);
    } else if (p.role === 'dedup') {
      if (!expectType(key, 'string')) continue;
      const e = get(key)!;
      if (!(e.pttl > 0 && e.pttl <= dedup.ttlMs)) found.push(`${key}: claim TTL ${e.pttl} ms, expected (0, ${dedup.ttlMs}]`);
      const id = e.value!;
      if (options.legacyClaims?.get(key) === id) continue;
      // A claim may outlive its snapshot once that has left the window (the id may even name a
      // newer snapshot by then): only when the caller says it sent such a snapshot.
      const outlived = sentAs(p.region, id)?.some((s) => s.trigger === p.trigger && Math.floor(s.timestamp / dedup.windowMs) === p.bucket && s.timestamp <= cutoff);
      if (outlived) continue;
      const member = (liveMembers.get(p.region) ?? []).find(([m]) => m === id);
      if (!member || str(layout.byId(p.region, id)) === undefined) {
        found.push(`${key}: claims ${id}, which is not a persisted snapshot of ${p.region}`);
        continue;
      }
      if (Math.floor(member[1] / dedup.windowMs) !== p.bucket) found.push(`${key}: claims ${id}, whose timestamp ${member[1]} is in bucket ${Math.floor(member[1] / dedup.windowMs)}`);
      const as = sentAs(p.region, id);
      if (as && !as.some((s) => s.timestamp === member[1] && s.trigger === p.trigger)) {
        found.push(`${key}: claims ${id}, which was never sent with trigger ${p.trigger}`);
      }
    }
  }
  return found;
}
