import type { Cluster, Redis } from 'ioredis';
import { pairs, type Connection, type Outcome } from '../connection.js';

export function isIoredis(client: unknown): client is Redis | Cluster {
  const c = client as Partial<Redis> | null;
  return typeof c === 'object' && c !== null && typeof c.isCluster === 'boolean' && typeof c.pipeline === 'function' && typeof c.call === 'function';
}

const settle = (promise: Promise<unknown>): Promise<Outcome> =>
  promise.then((value) => ({ ok: true, value }) as const, (error: unknown) => ({ ok: false, error }) as const);

/** ioredis, standalone or Sentinel (one pipeline per batch) or Cluster (one batch per node). */
export function ioredisConnection(client: Redis | Cluster): Connection {
  return {
    async evalMany(commands) {
      const argv = (c: (typeof commands)[number]) => [c.script, c.keys.length, ...c.keys, ...c.args];
      if (client.isCluster) {
        // Calls issued in one tick are written to each node's socket together.
        return Promise.all(commands.map((c) => settle(client.call(c.op, ...argv(c)))));
      }
      const pipeline = client.pipeline();
      for (const c of commands) pipeline.call(c.op, ...argv(c));
      try {
        const replies = (await pipeline.exec()) ?? [];
        return commands.map((_, i) => {
          const [error, value] = replies[i] ?? [new Error('Connection is closed.'), undefined];
          return error ? { ok: false, error } : { ok: true, value };
        });
      } catch (error) {
        return commands.map(() => ({ ok: false, error }));
      }
    },
    async rangeByScoreDesc(key, min, max, count) {
      const flat = await client.call('ZRANGE', key, max, min, 'BYSCORE', 'REV', 'LIMIT', 0, count, 'WITHSCORES');
      return pairs(flat as unknown[]);
    },
  };
}
