import type { Redis } from 'ioredis';
import { createSnapshotStore } from '../../src/index.js';
import { keySchemas, type KeySchema } from '../../src/keys.js';

/** Every key with its type, DUMP bytes and absolute expiry: equal dumps mean an identical keyspace. */
export async function dumpKeyspace(client: Redis): Promise<Map<string, string>> {
  const keys = (await client.keys('*')).sort();
  const out = new Map<string, string>();
  for (const key of keys) {
    const [dump, at] = await Promise.all([client.dumpBuffer(key), client.pexpiretime(key)]);
    out.set(key, `${dump?.toString('hex')} @${at}`);
  }
  return out;
}

export interface Checked {
  regions: readonly string[];
  now: number;
  retentionMs: number;
  schema?: KeySchema;
  timestampKey?: 'payload' | 'id';
}

/**
 * The invariants of DESIGN.md, as the store's own `verify` reads them off the keyspace (one
 * definition of consistent for every suite and the CLI). Returns one line per finding,
 * `<region>: <detail>`; [] means consistent.
 */
export async function violations(client: Redis, { regions, now, retentionMs, schema = keySchemas['worldmonitor-v1'], timestampKey = 'payload' }: Checked): Promise<string[]> {
  const store = createSnapshotStore({ client, keys: { schema, timestampKey }, retentionMs });
  const { findings } = await store.verify('all', { now });
  return findings.filter((f) => f.region === null || regions.includes(f.region)).map((f) => `${f.region}: ${f.detail}`);
}
