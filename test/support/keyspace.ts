import type { Redis } from 'ioredis';
import { createSnapshotStore } from '../../src/index.js';
import { verify } from '../../src/ops.js';
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
 * The store's own `verify` as a list of findings, `<region>: <detail>`; [] means consistent. It
 * shares key schemas and ordering with the code under test: the fault suites use the independent
 * checker (checker.ts) instead, which is compared with this on the same keyspaces.
 */
export async function violations(client: Redis, { regions, now, retentionMs, schema = keySchemas['worldmonitor-v1'], timestampKey = 'payload' }: Checked): Promise<string[]> {
  const store = createSnapshotStore({ client, keys: { schema, timestampKey }, retentionMs });
  const { findings } = await verify(store, 'all', { now });
  return findings.filter((f) => f.region === null || regions.includes(f.region)).map((f) => `${f.region}: ${f.detail}`);
}
