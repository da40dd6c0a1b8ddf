import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { RedisError, type KeySchema, type PersistResult, type SnapshotInput } from '../../src/index.js';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` holds (a throwing check counts as not yet), polling every 100 ms. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ; await sleep(100)) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** The seeder's eight regions. */
export const REGIONS = ['mena', 'east-asia', 'europe', 'north-america', 'south-asia', 'latam', 'sub-saharan-africa', 'global'] as const;

/** The store's default retention, which the invariant checker needs to know. */
export const RETENTION_MS = 90 * 86_400_000;

/** The seeder's mena snapshot (test/fixtures), about 40 KB of JSON: a realistic payload, staged by default. */
export const FIXTURE = JSON.parse(readFileSync(new URL('../fixtures/regional-snapshot-mena.json', import.meta.url), 'utf8')) as Record<string, unknown>;

/** A snapshot of about `bytes` bytes of JSON: small enough to sweep every byte of a request. */
export function snapshotOf(region: string, id: string, timestamp: number, bytes = 1024, trigger?: string): SnapshotInput {
  const scores = Array.from({ length: Math.ceil(bytes / 24) }, (_, i) => ({ k: `i${i}`, v: i % 97 }));
  return { region, id, timestamp, ...(trigger === undefined ? {} : { trigger }), payload: { region_id: region, generated_at: timestamp, meta: { snapshot_id: id }, scores } };
}

/** A keyspace as dumpKeyspace gives it: key → `<DUMP hex> @<absolute expiry ms, -1 for none>`. */
export type Keyspace = Map<string, string>;

function parse(entry: string): { dump: string; at: number } {
  const [dump, at] = entry.split(' @') as [string, string];
  return { dump, at: Number(at) };
}

/** Replaces the whole keyspace with `state` (values and absolute expiry times). */
export async function restoreKeyspace(client: Redis, state: Keyspace): Promise<void> {
  const pipeline = client.pipeline().flushall();
  for (const [key, entry] of state) {
    const { dump, at } = parse(entry);
    if (at === -1) pipeline.restore(key, 0, Buffer.from(dump, 'hex'));
    else pipeline.restore(key, at, Buffer.from(dump, 'hex'), 'ABSTTL');
  }
  for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
}

/**
 * Whether two keyspaces hold the same keys with the same values and expiry times, looking only at
 * keys `within` selects. Expiries set relative to the server clock (`SET … EX`, the dedup
 * claim's `PX`) shift with the moment they were written, so they may differ by up to `slackMs`.
 */
export function sameKeyspace(a: Keyspace, b: Keyspace, slackMs: number, within: (key: string) => boolean = () => true): boolean {
  const keysA = [...a.keys()].filter(within);
  if (keysA.length !== [...b.keys()].filter(within).length) return false;
  return keysA.every((key) => {
    const other = b.get(key);
    if (other === undefined) return false;
    const [x, y] = [parse(a.get(key)!), parse(other)];
    return x.dump === y.dump && (x.at === y.at || (x.at !== -1 && y.at !== -1 && Math.abs(x.at - y.at) <= slackMs));
  });
}

/** Resolves once Redis has `count` clients connected, i.e. it has seen every dropped connection close. */
export async function awaitClients(admin: Redis, count: number): Promise<void> {
  for (;;) {
    const info = await admin.info('clients');
    if (Number(/connected_clients:(\d+)/.exec(info)![1]) <= count) return;
    await sleep(1);
  }
}


/** What a load under failover counts of its persists. */
export interface FailoverTally {
  attempted: number;
  acknowledged: number;
  /** Acknowledged as replayed: a retry after a lost reply found the snapshot stored. */
  replayed: number;
  durable: number;
  unconfirmed: number;
  refused: number;
  lost: number;
  lostDurable: number;
  lostUnconfirmed: number;
  violations: number;
  /** Results other than persisted, replayed or a transient RedisError. */
  anomalies: string[];
}

export const newFailoverTally = (): FailoverTally => ({ attempted: 0, acknowledged: 0, replayed: 0, durable: 0, unconfirmed: 0, refused: 0, lost: 0, lostDurable: 0, lostUnconfirmed: 0, violations: 0, anomalies: [] });

/** An acknowledged persist, and whether it was confirmed durable. */
export interface Acked {
  region: string;
  id: string;
  timestamp: number;
  durable: boolean | undefined;
}

/** Counts one persistMany's results into `tally`; returns the persists it acknowledged. */
export function tallyBatch(tally: FailoverTally, batch: readonly SnapshotInput[], results: ReadonlyArray<PromiseSettledResult<PersistResult>>): Acked[] {
  tally.attempted += batch.length;
  const acked: Acked[] = [];
  results.forEach((result, i) => {
    if (result.status === 'fulfilled') {
      const { status, durable } = result.value;
      if (status !== 'persisted' && status !== 'replayed') tally.anomalies.push(`status ${status}`);
      if (status === 'replayed') tally.replayed += 1;
      tally.acknowledged += 1;
      if (durable === true) tally.durable += 1;
      if (durable === false) tally.unconfirmed += 1;
      acked.push({ region: batch[i]!.region, id: batch[i]!.id, timestamp: batch[i]!.timestamp, durable });
    } else {
      tally.refused += 1;
      // Only transient failures, typed, after the retries ran out.
      const reason = result.reason as Error;
      if (!(reason instanceof RedisError && reason.transient)) tally.anomalies.push(`refused: ${reason.name}: ${reason.message}`);
    }
  });
  return acked;
}

/** Counts as lost each of `acked` (persists of `region`) that `node` does not hold indexed with its timestamp and its payload. */
export async function tallyLost(tally: FailoverTally, node: Redis, schema: KeySchema, region: string, acked: readonly Acked[]): Promise<void> {
  const members = new Map<string, string>();
  const flat = await node.zrange(schema.index(region), 0, -1, 'WITHSCORES');
  for (let i = 0; i < flat.length; i += 2) members.set(flat[i]!, flat[i + 1]!);
  const mine = acked.filter((a) => a.region === region);
  const present = await Promise.all(mine.map((a) => node.exists(schema.byId(region, a.id))));
  mine.forEach((a, i) => {
    if (members.get(a.id) === String(a.timestamp) && present[i] === 1) return;
    tally.lost += 1;
    if (a.durable === true) tally.lostDurable += 1;
    if (a.durable === false) tally.lostUnconfirmed += 1;
  });
}
