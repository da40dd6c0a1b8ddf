import type { Connection } from './connection.js';
import { RedisError, toSnapshotError } from './errors.js';
import type { KeySchema } from './keys.js';
import { repairLua } from './lua-repair.generated.js';
import type { RetryPolicy } from './retry.js';
import { Script } from './script.js';
import { checkName } from './validate.js';

/** What is wrong, one class per invariant of DESIGN.md that legacy writes break. */
export type DriftClass =
  | 'latest-not-indexed'
  | 'latest-missing-payload'
  | 'latest-not-newest'
  | 'member-missing-payload'
  | 'orphan-payload'
  | 'payload-mismatch'
  | 'orphan-dedup'
  | 'no-ttl'
  | 'ttl-misaligned'
  | 'expired-member'
  | 'unindexed-payload'
  | 'foreign-type';

/** Findings that repair leaves to the operator: after one repair, verify reports only these. */
export const UNREPAIRABLE: readonly DriftClass[] = ['unindexed-payload', 'foreign-type'];

export interface Finding {
  /** `null` for a by-id key that no index holds and whose payload names no region. */
  region: string | null;
  class: DriftClass;
  detail: string;
  keys: string[];
}

export interface DriftReport {
  /** The regions inspected. */
  regions: string[];
  /** Empty when every inspected region is consistent. */
  findings: Finding[];
}

export interface RepairReport extends DriftReport {
  /** The writes made, or with `dryRun` those that would be made, as commands without values. */
  changes: Array<{ region: string; command: string }>;
}

export interface DriftContext {
  connection: Connection;
  schema: KeySchema;
  retentionMs: number;
  retry: RetryPolicy;
  /** What the timestamp key holds: a second copy of the payload, or its owner's id. */
  timestampKey: 'payload' | 'id';
  /** The store's latest policy: under 'always' latest names the last persisted, not the newest. */
  latest: 'monotonic' | 'always';
}

/**
 * Bounds of one repair.lua call, so that none blocks the server for long (RELIABILITY.md measures
 * them, about 1 ms each): index members per page, members per check, pairs per adopt (which
 * writes), keys per digest, drop or dedup call, and payload bytes copied through Lua per call (a
 * snapshot larger than that still goes, alone in its call: about 3 µs per KB of it).
 */
export const LIMITS = { page: 200, members: 32, pairs: 16, keys: 64, bytes: 131_072, top: 16 } as const;

const repairScript = new Script(repairLua.text, repairLua.sha);

// Placeholders that no valid region, id or trigger contains: they mark where those go in a key.
const REGION = '\u0001';
const PARAM = '\u0002';
const BUCKET = '\u0003';
const groups: Record<string, string> = {
  [REGION]: '(?<region>[a-z0-9][a-z0-9_-]{0,63})',
  [PARAM]: '(?<param>[^\\u0000-\\u0020]+?)',
  [BUCKET]: '\\d+',
};

/** A key-name template of the schema as a RegExp, with named groups `region` and `param`. */
function matcher(template: string, param = groups[PARAM]!): RegExp {
  const escaped = template.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/[\u0001-\u0003]/g, (m) => (m === PARAM ? param : groups[m]!))}$`);
}

/** A template as a SCAN pattern: literal text escaped, the region given or `*`, other parts `*`. */
function glob(template: string, region: string | undefined): string {
  const escaped = template.replace(/[*?[\]\\]/g, '\\$&');
  return escaped.replace(/[\u0001-\u0003]/g, (m) => (m === REGION && region !== undefined ? region : '*'));
}

type Role = 'index' | 'latest' | 'timestamp' | 'byId' | 'dedup';

/** Recognises the keys a schema names, from the names alone, and the patterns that find them. */
function classifier(schema: KeySchema) {
  const templates: Record<Role, string> = {
    index: schema.index(REGION),
    latest: schema.latest(REGION),
    timestamp: schema.timestamp(REGION, PARAM as unknown as number),
    byId: schema.byId(REGION, PARAM),
    dedup: schema.dedup(REGION, PARAM, BUCKET as unknown as number),
  };
  const matchers: Array<[Role, RegExp]> = [
    ['index', matcher(templates.index)],
    ['latest', matcher(templates.latest)],
    ['timestamp', matcher(templates.timestamp, '(?<param>0|[1-9]\\d*)')],
    ['byId', matcher(templates.byId, '(?<param>[A-Za-z0-9][A-Za-z0-9._-]{0,127})')],
    ['dedup', matcher(templates.dedup, '[a-z0-9][a-z0-9_-]{0,63}')],
  ];
  return {
    /** The by-id key names no region (worldmonitor-v1): its region comes from index or payload. */
    byIdHasRegion: templates.byId.includes(REGION),
    /**
     * SCAN patterns for one region's keys (or every region's). A region's index, latest and live
     * keys are named exactly; its timestamp, by-id and dedup keys are found by pattern.
     */
    patterns(region: string | undefined): string[] {
      const byIdRegion = templates.byId.includes(REGION) ? region : undefined;
      const patterns = [glob(templates.timestamp, region), glob(templates.byId, byIdRegion), glob(templates.dedup, region)];
      // Which regions exist: for all of them, or for the indexes that may hold a region-less by-id key.
      if (region === undefined || byIdRegion === undefined) patterns.push(glob(templates.index, undefined));
      if (region === undefined) patterns.push(glob(templates.latest, undefined));
      return [...new Set(patterns)];
    },
    classify(key: string): { role: Role; region: string | undefined; param: string | undefined } | undefined {
      for (const [role, regex] of matchers) {
        const m = regex.exec(key);
        if (m) return { role, region: m.groups?.region, param: m.groups?.param };
      }
      return undefined;
    },
  };
}

interface Reply {
  status: number;
  findings: string[];
  changes: string[];
  data: string[];
}

function decodeFinding(region: string | null, text: string): Finding {
  const [cls, detail, ...keys] = text.split('\n');
  return { region, class: cls as DriftClass, detail: detail!, keys };
}

function regionOfPayload(value: unknown): string | undefined {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  try {
    return checkName('region_id', (parsed as { region_id?: unknown } | null)?.region_id);
  } catch {
    return undefined;
  }
}

const byScoreThenId = (a: { id: string; score: string }, b: { id: string; score: string }) =>
  Number(a.score) - Number(b.score) || Buffer.compare(Buffer.from(a.id), Buffer.from(b.id));

interface Region {
  name: string;
  timestampKeys: Map<string, string>;
  byIdKeys: Map<string, string>;
  dedupKeys: string[];
  latest: string;
  members: Array<{ id: string; score: string }>;
  blocked: boolean;
}

/**
 * Verify (`mode` "verify") or repair one region or every region found by SCAN, in bounded steps
 * (lua/repair.lua says what each step may conclude while persists run concurrently): page the
 * index; check its members; pair unindexed timestamp and by-id keys (a legacy write cut before
 * its ZADD) and index them, delete unpaired timestamp keys; drop dedup claims of nothing; then
 * move latest and set the index expiry. No call blocks the server beyond LIMITS.
 */
export async function inspect(ctx: DriftContext, wanted: string | 'all', mode: 'verify' | 'repair', now: number): Promise<RepairReport> {
  const target = wanted === 'all' ? undefined : checkName('region', wanted);
  try {
    return await inspectRegions(ctx, target, mode, now);
  } catch (error) {
    throw toSnapshotError(error);
  }
}

async function inspectRegions(ctx: DriftContext, target: string | undefined, mode: 'verify' | 'repair', now: number): Promise<RepairReport> {
  const { connection, schema } = ctx;
  const cutoff = now - ctx.retentionMs;
  const findings: Finding[] = [];
  const changes: RepairReport['changes'] = [];

  async function call(region: string | null, op: string, bound: number, keys: string[], args: string[]): Promise<Reply> {
    // digest reads payload keys only (KEYS[1..3] absent); a region's other calls lead with its keys.
    const fixed = region === null || op === 'digest' ? [] : [schema.latest(region), schema.index(region), schema.live(region)];
    const [outcome] = await repairScript.runMany(
      connection,
      [{ keys: [...fixed, ...keys], args: [op, mode, String(cutoff), String(ctx.retentionMs), ctx.timestampKey, String(bound), ...args] }],
      ctx.retry,
    );
    if (!outcome!.ok) throw outcome!.error;
    const reply = outcome!.value;
    if (!Array.isArray(reply) || reply.length !== 4 || !reply.slice(1).every(Array.isArray)) {
      throw new RedisError('BAD_REPLY', 'unexpected reply shape from the server', false);
    }
    const strings = (list: unknown) => (list as unknown[]).map(String);
    const decoded = { status: Number(reply[0]), findings: strings(reply[1]), changes: strings(reply[2]), data: strings(reply[3]).map((d) => d.slice(1)) };
    if (region !== null && decoded.status !== 2) changes.push(...decoded.changes.map((command) => ({ region, command })));
    findings.push(...decoded.findings.map((text) => decodeFinding(region, text)));
    return decoded;
  }

  /**
   * Runs a chunked operation over `items` until every item is done; returns the verdicts. Items
   * for which `together` holds with the previous one go in the same call.
   */
  async function chunked<T>(region: string | null, op: string, bound: number, items: T[], size: number, encode: (item: T) => { keys: string[]; args: string[] }, together?: (a: T, b: T) => boolean): Promise<string[]> {
    const verdicts: string[] = [];
    for (let i = 0; i < items.length; ) {
      let end = Math.min(items.length, i + size);
      while (together && end < items.length && together(items[end - 1]!, items[end]!)) end++;
      const batch = items.slice(i, end).map(encode);
      const reply = await call(region, op, bound, batch.flatMap((b) => b.keys), batch.flatMap((b) => b.args));
      if (reply.status === 2) throw new Blocked();
      const done = Number(reply.data[0]);
      verdicts.push(...reply.data.slice(1, 1 + done));
      i += done;
    }
    return verdicts;
  }

  // 1. SCAN, narrowed to the keys of the schema (and of the region, when one is wanted).
  const keys = classifier(schema);
  const regions = new Map<string, Region>();
  const regionOf = (name: string) =>
    regions.get(name) ??
    regions.set(name, { name, timestampKeys: new Map(), byIdKeys: new Map(), dedupKeys: [], latest: '', members: [], blocked: false }).get(name)!;
  if (target !== undefined) regionOf(target);
  const regionless = new Map<string, string>();
  const indexed = new Set<string>();
  for (const pattern of keys.patterns(target)) {
    for (const key of await connection.scan(pattern)) {
      const found = keys.classify(key);
      if (!found) continue;
      const name = found.region;
      if (name === undefined) {
        if (found.role === 'byId') regionless.set(found.param!, key);
        continue;
      }
      if (found.role === 'index') indexed.add(name);
      if (target !== undefined && name !== target) continue;
      const region = regionOf(name);
      if (found.role === 'timestamp') region.timestampKeys.set(found.param!, key);
      else if (found.role === 'byId') region.byIdKeys.set(found.param!, key);
      else if (found.role === 'dedup') region.dedupKeys.push(key);
    }
  }

  // 2. Page every index (also of regions not wanted, when by-id keys name no region: a by-id key
  // another region's index holds is no orphan).
  const memberAnywhere = new Set<string>();
  const paged = keys.byIdHasRegion ? [...regions.keys()] : [...new Set([...regions.keys(), ...indexed])];
  const latestOf = new Map<string, string>();
  const blockedRegions = new Set<string>();
  for (const name of paged) {
    const members: Region['members'] = [];
    let after = { score: '', id: '' };
    let blocked = false;
    for (;;) {
      const wantedRegion = regions.has(name);
      const reply = await call(wantedRegion ? name : null, 'page', LIMITS.page, wantedRegion ? [] : [schema.latest(name), schema.index(name), schema.live(name)], [after.score, after.id]);
      if (reply.status === 2) {
        blocked = true;
        break;
      }
      if (after.score === '') latestOf.set(name, reply.data[0]!);
      for (let i = 1; i + 1 < reply.data.length; i += 2) members.push({ id: reply.data[i]!, score: reply.data[i + 1]! });
      if (reply.data.length - 1 < 2 * LIMITS.page) break;
      after = members.at(-1)!;
    }
    if (blocked) blockedRegions.add(name);
    for (const m of members) memberAnywhere.add(keys.byIdHasRegion ? `${name}\u0000${m.id}` : m.id);
    const region = regions.get(name);
    if (region) {
      region.members = members;
      region.blocked = blocked;
      region.latest = latestOf.get(name) ?? '';
    }
  }
  // A page call for a region not wanted recorded nothing but its findings: drop those.
  for (let i = findings.length - 1; i >= 0; i--) if (findings[i]!.region === null) findings.splice(i, 1);

  // 3. Unindexed by-id keys that name no region: digested once, attributed below.
  const isOrphanId = (region: string, id: string) => !memberAnywhere.has(keys.byIdHasRegion ? `${region}\u0000${id}` : id);
  const loose = [...regionless].filter(([id]) => isOrphanId('', id));
  const looseDigest = new Map<string, string>();
  const mark = findings.length;
  if (loose.length > 0) {
    const verdicts = await chunked(null, 'digest', LIMITS.bytes, loose, LIMITS.keys, ([, key]) => ({ keys: [key], args: ['i'] }));
    loose.forEach(([id], i) => looseDigest.set(id, verdicts[i]!));
  }
  // Foreign-typed by-id keys that name no region: reported only when every region is inspected.
  const looseFindings = findings.splice(mark).filter(() => target === undefined);
  const claimed = new Set<string>();

  for (const region of [...regions.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (region.blocked) continue;
    try {
      await inspectRegion(region);
    } catch (error) {
      if (!(error instanceof Blocked)) throw error;
    }
  }

  async function inspectRegion(region: Region): Promise<void> {
    const { name } = region;
    // 4. Members, in chunks.
    const memberVerdicts = await chunked(name, 'check', LIMITS.bytes, region.members, LIMITS.members, (m) => ({
      keys: [schema.byId(name, m.id), schema.timestamp(name, Number(m.score))],
      args: [m.id, m.score],
    }), (a, b) => a.score === b.score);
    const readable = region.members.filter((_, i) => memberVerdicts[i] === 'r');
    const remaining = region.members.filter((_, i) => memberVerdicts[i] !== 'x');

    // 5. Unindexed payload keys: pairs become members, unpaired timestamp keys go.
    const scores = new Set(region.members.map((m) => String(Number(m.score))));
    const tsOrphans = [...region.timestampKeys].filter(([score]) => !scores.has(score));
    const tsDigests = await chunked(name, 'digest', LIMITS.bytes, tsOrphans, LIMITS.keys, ([, key]) => ({ keys: [key], args: ['t'] }));
    const idOrphans = new Map<string, string>(); // id → digest verdict
    if (keys.byIdHasRegion) {
      const own = [...region.byIdKeys].filter(([id]) => isOrphanId(name, id));
      const verdicts = await chunked(name, 'digest', LIMITS.bytes, own, LIMITS.keys, ([, key]) => ({ keys: [key], args: ['i'] }));
      own.forEach(([id], i) => idOrphans.set(id, verdicts[i]!));
    } else {
      for (const [id, verdict] of looseDigest) if (!claimed.has(id)) idOrphans.set(id, verdict);
    }
    const byDigest = new Map<string, string>();
    for (const [id, verdict] of idOrphans) {
      if (!verdict.startsWith('d')) continue;
      const prior = byDigest.get(verdict);
      if (prior === undefined || Buffer.compare(Buffer.from(id), Buffer.from(prior)) > 0) byDigest.set(verdict, id);
    }
    const pairs: Array<{ id: string; score: string; ts: string }> = [];
    const unpaired: Array<[string, string]> = [];
    tsOrphans.forEach(([score, key], i) => {
      const verdict = tsDigests[i]!;
      const id = verdict.startsWith('v') ? (idOrphans.get(verdict.slice(1)) === 's' ? verdict.slice(1) : undefined) : byDigest.get(verdict);
      if (id !== undefined && !claimed.has(id)) {
        claimed.add(id);
        pairs.push({ id, score, ts: key });
      } else if (verdict !== '-' && verdict !== 'f') {
        unpaired.push([score, key]);
      }
    });
    const byIdKey = (id: string) => (keys.byIdHasRegion ? region.byIdKeys.get(id)! : regionless.get(id)!);
    const adopted = await chunked(name, 'adopt', LIMITS.bytes, pairs, LIMITS.pairs, (p) => ({ keys: [p.ts, byIdKey(p.id)], args: [p.id, p.score] }));
    const indexedNow = pairs.filter((_, i) => adopted[i] === 'r');
    // Snapshots this repair deletes: latest must not stay on one of them.
    const doomed = new Set([...region.members.filter((_, i) => memberVerdicts[i] === 'x'), ...pairs.filter((_, i) => adopted[i] === 'x')].map((m) => m.id));
    await chunked(name, 'drop', LIMITS.keys, unpaired, LIMITS.keys, ([score, key]) => ({ keys: [key], args: [score] }));

    // By-id keys no member holds and nothing pairs with: their timestamp is unknown, so they can be
    // neither indexed nor known to be outside the window. Reported; they expire with their TTL.
    if (keys.byIdHasRegion) {
      for (const [id, verdict] of idOrphans) if (!claimed.has(id) && verdict !== '-' && verdict !== 'f') unindexed(name, id, region.byIdKeys.get(id)!);
    }

    // 6. Dedup claims of snapshots that are no member.
    const persisted = new Set([...remaining, ...indexedNow].filter((m) => Number(m.score) > cutoff).map((m) => m.id));
    for (let i = 0; i < region.dedupKeys.length; i += LIMITS.keys) {
      const batch = region.dedupKeys.slice(i, i + LIMITS.keys);
      const reply = await call(name, 'claims', LIMITS.keys, batch, []);
      if (reply.status === 2) throw new Blocked();
      const orphans = batch.flatMap((key, j) => (reply.data[j]!.startsWith('v') && !persisted.has(reply.data[j]!.slice(1)) ? [[key, reply.data[j]!.slice(1)]] : []));
      if (orphans.length > 0 && (await call(name, 'unclaim', LIMITS.keys, orphans.map(([key]) => key!), orphans.map(([, holder]) => holder!))).status === 2) throw new Blocked();
    }

    // 7. Latest, then the index expiry.
    // "" when the index is new: none before, or none of its members left (ZREM of the last deletes it).
    const maxBefore = remaining.length === 0 ? '' : (region.members.at(-1)?.score ?? '');
    const planned = [...remaining, ...indexedNow.map(({ id, score }) => ({ id, score }))].sort(byScoreThenId);
    const plannedNewest = planned.at(-1)?.score ?? '';
    const plan = [...readable, ...indexedNow.map(({ id, score }) => ({ id, score }))].sort(byScoreThenId).reverse().slice(0, LIMITS.top);
    for (let attempt = 1; ; attempt++) {
      const top = await call(name, 'top', LIMITS.top, [], []);
      if (top.status === 2) throw new Blocked();
      const seen = top.data[0]!;
      const candidates: Array<{ id: string; score: string }> = [];
      if (mode === 'verify') candidates.push(...plan);
      else for (let i = 1; i + 1 < top.data.length; i += 2) candidates.push({ id: top.data[i]!, score: top.data[i + 1]! });
      if (ctx.latest === 'always' && seen !== '') {
        // Latest names the last snapshot persisted: it stays while it is readable (the script
        // checks that in repair mode), so it goes first; only otherwise the newest replaces it.
        const own = [...candidates, ...plan, ...region.members].find((c) => c.id === seen);
        if (own) candidates.unshift({ id: seen, score: own.score });
      }
      const byIds = candidates.map((c) => schema.byId(name, c.id));
      if (seen !== '') byIds.push(schema.byId(name, seen));
      const reply = await call(name, 'latest', 1, byIds, [seen, plannedNewest, maxBefore, doomed.has(seen) ? '1' : '', ...candidates.flatMap((c) => [c.id, c.score])]);
      if (reply.status === 2) throw new Blocked();
      // 3: a writer moved latest meanwhile; after three tries it is left to the writers.
      if (reply.status === 1 || attempt === 3) break;
    }
  }

  function unindexed(region: string | null, id: string, key: string): void {
    const named = region !== null && latestOf.get(region) === id ? ' (latest names it)' : '';
    const detail = region === null ? 'by-id key has no index member and its payload names no region' : `by-id key of ${id} has no index member and no timestamp key pairs with it: its timestamp is unknown${named}`;
    findings.push({ region, class: 'unindexed-payload', detail, keys: [key] });
  }
  // Region-less by-id keys nothing took: they belong to the region whose latest names them, else
  // to the one their payload's region_id names.
  for (const f of looseFindings) findings.push(f);
  for (const [id, verdict] of looseDigest) {
    if (claimed.has(id) || verdict === '-' || verdict === 'f') continue;
    const key = regionless.get(id)!;
    const owner = [...latestOf].find(([, latest]) => latest === id)?.[0] ?? regionOfPayload(await connection.get(key).catch(() => null));
    // A blocked region's members are unknown: its by-id keys are no orphans of anyone's.
    if ((target !== undefined && owner !== target) || (owner !== undefined && blockedRegions.has(owner))) continue;
    if (owner !== undefined) regionOf(owner);
    unindexed(owner ?? null, id, key);
  }
  return { regions: [...regions.keys()].sort(), findings: sortFindings(findings), changes };
}

/** Findings grouped by region, in the order found within each. */
function sortFindings(findings: Finding[]): Finding[] {
  return findings.map((f, i) => [f, i] as const).sort(([a, i], [b, j]) => ((a.region ?? '\uffff') < (b.region ?? '\uffff') ? -1 : (a.region ?? '\uffff') > (b.region ?? '\uffff') ? 1 : i - j)).map(([f]) => f);
}

class Blocked extends Error {}
