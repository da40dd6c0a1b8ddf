import type { Connection } from './connection.js';
import { RedisError, toSnapshotError } from './errors.js';
import type { KeySchema } from './keys.js';
import { repairLua } from './lua.generated.js';
import type { RetryPolicy } from './retry.js';
import { Script, type ScriptCall } from './script.js';
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
  | 'expired-member';

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
}

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

type Role = 'index' | 'latest' | 'timestamp' | 'byId' | 'dedup';

/** Recognises the keys a schema names, from the names alone. */
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
  // SCAN only what starts like a key of the schema: the literal text every template opens with.
  const heads = Object.values(templates).map((t) => t.split(/[\u0001-\u0003]/)[0]!);
  let common = heads[0]!;
  for (const head of heads) while (!head.startsWith(common)) common = common.slice(0, -1);
  return {
    pattern: `${common.replace(/[*?[\]\\]/g, '\\$&')}*`,
    /** The by-id key names no region (worldmonitor-v1): its region comes from index or payload. */
    byIdHasRegion: templates.byId.includes(REGION),
    classify(key: string): { role: Role; region: string | undefined; param: string | undefined } | undefined {
      for (const [role, regex] of matchers) {
        const m = regex.exec(key);
        if (m) return { role, region: m.groups?.region, param: m.groups?.param };
      }
      return undefined;
    },
  };
}

/** A region's keys as repair.lua takes them: key → descriptor ("t<ts>", "i<id>", "d"). */
type RegionKeys = Map<string, string>;

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

/**
 * Finds every key of the schema by SCAN and groups them by region: timestamp, dedup, index and
 * latest keys name their region; under a schema whose by-id key does not, a by-id key belongs to
 * the region whose index holds its id, else to the region its payload's `region_id` names, else
 * to none (reported, never repaired). Index members' and latest's keys are added even when absent.
 */
async function discover(ctx: DriftContext, wanted: string | 'all'): Promise<{ byRegion: Map<string, RegionKeys>; unowned: string[] }> {
  const { connection, schema } = ctx;
  const keys = classifier(schema);
  const byRegion = new Map<string, RegionKeys>();
  const keysOf = (region: string) => byRegion.get(region) ?? byRegion.set(region, new Map()).get(region)!;
  const regionless = new Map<string, string>();
  for (const key of await connection.scan(keys.pattern)) {
    const found = keys.classify(key);
    if (!found) continue;
    if (found.region === undefined) regionless.set(found.param!, key);
    else if (found.role === 'timestamp') keysOf(found.region).set(key, `t${found.param}`);
    else if (found.role === 'byId') keysOf(found.region).set(key, `i${found.param}`);
    else if (found.role === 'dedup') keysOf(found.region).set(key, 'd');
    else keysOf(found.region);
  }
  for (const [region, regionKeys] of byRegion) {
    const members = await connection.rangeByScoreDesc(schema.index(region), -Number.MAX_VALUE, Number.MAX_VALUE, -1);
    for (const { member, score } of members) {
      regionKeys.set(schema.byId(region, member), `i${member}`);
      regionKeys.set(schema.timestamp(region, score), `t${score}`);
    }
    const latest = await connection.get(schema.latest(region));
    if (latest !== null) regionKeys.set(schema.byId(region, String(latest)), `i${String(latest)}`);
  }
  const unowned: string[] = [];
  if (!keys.byIdHasRegion) {
    const claimed = new Set([...byRegion.values()].flatMap((regionKeys) => [...regionKeys.keys()]));
    for (const [id, key] of regionless) {
      if (claimed.has(key)) continue;
      const region = regionOfPayload(await connection.get(key));
      if (region === undefined) unowned.push(key);
      else keysOf(region).set(key, `i${id}`);
    }
  }
  if (wanted !== 'all') return { byRegion: new Map([[wanted, byRegion.get(wanted) ?? new Map()]]), unowned: [] };
  return { byRegion, unowned };
}

function decodeFinding(region: string, text: unknown): Finding {
  const [cls, detail, ...keys] = String(text).split('\n');
  return { region, class: cls as DriftClass, detail: detail!, keys };
}

const MAX_ATTEMPTS = 3;

/**
 * Checks (`verify`) or repairs every wanted region, each in one repair.lua call, all calls in one
 * round trip. A region whose keys changed between the SCAN and its call wrote nothing and is
 * scanned and called again.
 */
export async function inspect(ctx: DriftContext, wanted: string | 'all', mode: 'verify' | 'repair', now: number): Promise<RepairReport> {
  const { schema } = ctx;
  const target = wanted === 'all' ? wanted : checkName('region', wanted);
  const done = new Map<string, { findings: unknown[]; changes: unknown[] }>();
  for (let attempt = 1; ; attempt++) {
    const { byRegion, unowned } = await discover(ctx, target).catch((error: unknown) => {
      throw toSnapshotError(error);
    });
    const regions = [...byRegion.keys()].filter((region) => !done.has(region));
    const calls: ScriptCall[] = regions.map((region) => {
      const regionKeys = byRegion.get(region)!;
      return {
        keys: [schema.latest(region), schema.index(region), schema.live(region), ...regionKeys.keys()],
        args: [mode, String(now - ctx.retentionMs), String(ctx.retentionMs), ...regionKeys.values(), ctx.timestampKey],
      };
    });
    const outcomes = await repairScript.runMany(ctx.connection, calls, ctx.retry);
    outcomes.forEach((outcome, i) => {
      if (!outcome.ok) throw toSnapshotError(outcome.error);
      const reply = outcome.value;
      if (!Array.isArray(reply) || reply.length !== 3 || !Array.isArray(reply[1]) || !Array.isArray(reply[2])) {
        throw new RedisError('BAD_REPLY', 'unexpected reply shape from the server', false);
      }
      if (Number(reply[0]) === 1) done.set(regions[i]!, { findings: reply[1], changes: reply[2] });
    });
    if (regions.every((region) => done.has(region))) {
      const report: RepairReport = { regions: [...done.keys()].sort(), findings: [], changes: [] };
      for (const region of report.regions) {
        const { findings, changes } = done.get(region)!;
        report.findings.push(...findings.map((text) => decodeFinding(region, text)));
        report.changes.push(...changes.map((command) => ({ region, command: String(command) })));
      }
      for (const key of unowned) {
        report.findings.push({ region: null, class: 'orphan-payload', detail: 'by-id key has no index member and its payload names no region', keys: [key] });
      }
      return report;
    }
    if (attempt === MAX_ATTEMPTS) throw new RedisError('STALE', 'the keyspace kept changing while it was being scanned; run again', true);
  }
}
