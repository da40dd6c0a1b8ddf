import type { Redis } from 'ioredis';
import type { SnapshotInput } from '../../src/index.js';

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

