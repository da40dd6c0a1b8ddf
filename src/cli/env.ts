import type { SnapshotStoreOptions } from '../store.js';

/** Bad arguments or configuration: reported as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface Connected {
  client: SnapshotStoreOptions['client'];
  close(): Promise<void>;
}

/**
 * The client the seeder's environment describes: `UPSTASH_REDIS_REST_URL` with
 * `UPSTASH_REDIS_REST_TOKEN`, or `REDIS_URL` (`redis://` or `rediss://`; `cluster` for Cluster).
 * Client libraries are loaded on demand: only the one in use must be installed.
 */
export async function connectFromEnv(env: NodeJS.ProcessEnv, cluster: boolean): Promise<Connected> {
  const { UPSTASH_REDIS_REST_URL: restUrl, UPSTASH_REDIS_REST_TOKEN: token, REDIS_URL: redisUrl } = env;
  if ((restUrl || token) && redisUrl) throw new UsageError('both REDIS_URL and UPSTASH_REDIS_REST_URL/TOKEN are set: unset one of them');
  if (restUrl || token) {
    if (!restUrl || !token) throw new UsageError('UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN must be set together');
    if (cluster) throw new UsageError('--cluster needs REDIS_URL, not Upstash');
    const { Redis } = await import('@upstash/redis');
    return { client: new Redis({ url: restUrl, token }), close: async () => {} };
  }
  if (!redisUrl) throw new UsageError('no connection configured: set REDIS_URL, or UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN');
  let url: URL;
  try {
    url = new URL(redisUrl);
  } catch {
    throw new UsageError('REDIS_URL is not a URL (expected redis://host:port or rediss://host:port)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new UsageError(`REDIS_URL: unsupported scheme ${url.protocol} (expected redis: or rediss:)`);
  const { Redis, Cluster } = await import('ioredis');
  // Fail a command after a few reconnection attempts instead of queueing it forever.
  const retryStrategy = (times: number) => (times > 5 ? null : Math.min(times * 200, 2000));
  if (!cluster) {
    const client = new Redis(redisUrl, { maxRetriesPerRequest: 2, retryStrategy });
    return { client, close: async () => void (await client.quit()) };
  }
  const client = new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
    clusterRetryStrategy: retryStrategy,
    redisOptions: {
      username: decodeURIComponent(url.username) || undefined,
      password: decodeURIComponent(url.password) || undefined,
      ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    },
  } as ConstructorParameters<typeof Cluster>[1]);
  return { client, close: async () => void (await client.quit()) };
}
