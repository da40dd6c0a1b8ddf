import type { Redis } from 'ioredis';
import { persistLua } from '../src/lua.generated.js';
import { RETENTION_MS } from './strategies.js';

/** Where persist.lua stops in each cut, cumulative: the script returns just before the marker. */
const steps: Array<[step: string, marker: string | undefined]> = [
  ['EVALSHA of `return {1,0,0}` with the same KEYS and ARGV', ''],
  ['+ argument checks', 'local tsKey, byIdKey, latestKey'],
  ['+ type checks of the five keys (TYPE), server time (TIME)', 'local t = tonumber(ts)'],
  ['+ reads: replay, dedup, latest (ZSCORE, GET)', '-- ACLs are checked per command'],
  ['+ ACL checks of every write (redis.acl_check_cmd)', '-- Validation is over;'],
  ['+ SET by-id (inline 2 KB payload)', 'if ownsTsKey then'],
  ['+ SET timestamp key', "redis.call('ZADD', indexKey, ts, id)"],
  ['+ ZADD, ZREMRANGEBYSCORE', '-- The index lives as long'],
  ['+ index expiry (ZREVRANGE, PEXPIREAT)', 'if advance then'],
  ['+ SET latest, DEL live: the whole script', undefined],
];

/**
 * Server time of persist.lua cut short at each step (INFO commandstats, EVALSHA usec per call):
 * what bounds the script's cost is the number of redis.call it needs to validate, then write.
 */
export async function profileScript(client: Redis, calls: number): Promise<Array<{ step: string; us: number }>> {
  const payload = JSON.stringify({ pad: 'x'.repeat(2048 - 10) });
  const out: Array<{ step: string; us: number }> = [];
  for (const [step, marker] of steps) {
    const text = marker === '' ? 'return {1,0,0}' : marker === undefined ? persistLua.text : persistLua.text.replace(marker, `do return {1,0,0} end\n${marker}`);
    const sha = (await client.script('LOAD', text)) as string;
    await client.flushall();
    await client.config('RESETSTAT');
    const now = Date.now();
    for (let i = 0; i < calls; i++) {
      const t = now - calls * 1000 + i * 1000;
      const r = `profile-${i % 8}`;
      const keys = [`p:${r}:${t}`, `p:id:${i}`, `p:${r}:latest`, `p:${r}:index`, `p:${r}:live`];
      await client.evalsha(sha, keys.length, ...keys, payload, `id${i}`, t, t + RETENTION_MS, RETENTION_MS, 0, 'monotonic', 'inline', 'payload', 'p:id:', '');
    }
    const stats = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await client.info('commandstats'))!;
    out.push({ step, us: Number(stats[2]) / Number(stats[1]) });
  }
  await client.flushall();
  return out;
}
