import type { Redis } from 'ioredis';
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
}

/**
 * The invariants of DESIGN.md, read off the keyspace itself with plain commands (independent of
 * the library's scripts). Returns one line per violation; [] means consistent.
 */
export async function violations(client: Redis, { regions, now, retentionMs, schema = keySchemas['worldmonitor-v1'] }: Checked): Promise<string[]> {
  const found: string[] = [];
  const cutoff = now - retentionMs;
  const persisted = new Set<string>();
  for (const region of regions) {
    const indexKey = schema.index(region);
    const flat = await client.zrange(indexKey, 0, -1, 'WITHSCORES');
    const members = new Map<string, number>();
    for (let i = 0; i < flat.length; i += 2) members.set(flat[i]!, Number(flat[i + 1]));
    for (const id of members.keys()) persisted.add(`${region}\u0000${id}`);
    let newest: [number, string] | undefined;
    for (const [id, ts] of members) {
      if (ts <= cutoff) continue;
      if (!newest || ts > newest[0] || (ts === newest[0] && id > newest[1])) newest = [ts, id];
      for (const key of [schema.byId(region, id), schema.timestamp(region, ts)]) {
        const at = await client.pexpiretime(key);
        if (at === -2) found.push(`${region}: member ${id} has no ${key}`);
        else if (at !== ts + retentionMs) found.push(`${region}: ${key} expires at ${at}, not ${ts + retentionMs}`);
      }
    }
    if (members.size > 0) {
      const maxScore = Math.max(...members.values());
      const at = await client.pexpiretime(indexKey);
      if (at !== maxScore + retentionMs) found.push(`${region}: index expires at ${at}, not ${maxScore + retentionMs}`);
    }
    const latest = await client.get(schema.latest(region));
    if (latest !== null) {
      const ts = members.get(latest);
      if (ts === undefined) found.push(`${region}: latest ${latest} is not in the index`);
      else {
        if ((await client.exists(schema.byId(region, latest))) === 0) found.push(`${region}: latest ${latest} has no by-id key`);
        if ((await client.exists(schema.timestamp(region, ts))) === 0) found.push(`${region}: latest ${latest} has no timestamp key`);
        const at = await client.pexpiretime(schema.latest(region));
        if (at !== ts + retentionMs) found.push(`${region}: latest expires at ${at}, not ${ts + retentionMs}`);
      }
      if (newest && newest[1] !== latest) found.push(`${region}: latest is ${latest}, newest is ${newest[1]}`);
    } else if (newest) {
      found.push(`${region}: no latest, newest is ${newest[1]}`);
    }
    for (const key of await client.keys(schema.dedup(region, '*', '*' as unknown as number))) {
      const id = await client.get(key);
      if (id === null || !persisted.has(`${region}\u0000${id}`)) found.push(`${region}: ${key} claims ${id}, which was never persisted`);
    }
  }
  return found;
}
