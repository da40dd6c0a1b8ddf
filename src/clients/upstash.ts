import type { Redis } from '@upstash/redis';
import { pairs, type Connection } from '../connection.js';

export function isUpstash(client: unknown): client is Redis {
  const c = client as Partial<Redis> | null;
  return typeof c === 'object' && c !== null && typeof c.evalsha === 'function' && typeof c.pipeline === 'function' && 'readYourWritesSyncToken' in c;
}

/**
 * @upstash/redis over REST: one batch is one explicit pipeline, one HTTP request, whatever the
 * client's auto-pipelining setting. Replies are decoded so that automaticDeserialization on or
 * off gives the same result (see the scripts' Output blocks).
 */
export function upstashConnection(client: Redis): Connection {
  return {
    async evalMany(commands) {
      const pipeline = client.pipeline();
      for (const c of commands) {
        if (c.op === 'eval') pipeline.eval(c.script, [...c.keys], [...c.args]);
        else pipeline.evalsha(c.script, [...c.keys], [...c.args]);
      }
      try {
        const replies = await pipeline.exec<unknown[]>({ keepErrors: true });
        return replies.map(({ error, result }) => (error ? { ok: false, error: new Error(error) } : { ok: true, value: result }));
      } catch (error) {
        return commands.map(() => ({ ok: false, error }));
      }
    },
    async rangeByScoreDesc(key, min, max, count) {
      const flat = await client.zrange(key, max, min, { byScore: true, rev: true, offset: 0, count, withScores: true });
      return pairs(flat as unknown[]);
    },
    async scan(pattern) {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await client.scan(cursor, { match: pattern, count: 1000 });
        keys.push(...batch.map(String));
        cursor = String(next);
      } while (cursor !== '0');
      return keys;
    },
    get: (key) => client.get(key),
  };
}
