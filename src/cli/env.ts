import type { SnapshotStoreOptions } from '../store.js';

/** Bad arguments or configuration: reported as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface Connected {
  client: SnapshotStoreOptions['client'];
  /** Where it connects, without credentials: for error messages. */
  target: string;
  /** Over REST (@upstash/redis), or TCP (ioredis). */
  rest: boolean;
  /** The last connection error's code (ECONNREFUSED, …), if any: for error messages. */
  lastError(): string | undefined;
  close(): Promise<void>;
}

/** The client library, or a UsageError saying what to install (only the one in use must be). */
async function load<T>(name: 'ioredis' | '@upstash/redis', why: string, imported: () => Promise<T>): Promise<T> {
  try {
    return await imported();
  } catch (error) {
    const missing = (error as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(`'${name}'`);
    if (!missing) throw error;
    throw new UsageError(`${why} needs the ${name} package, which is not installed: npm install ${name}`);
  }
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
    let target: string;
    try {
      target = new URL(restUrl).host;
    } catch {
      throw new UsageError('UPSTASH_REDIS_REST_URL is not a URL (expected https://host)');
    }
    const { Redis } = await load('@upstash/redis', 'UPSTASH_REDIS_REST_URL', () => import('@upstash/redis'));
    return { client: new Redis({ url: restUrl, token }), target, rest: true, lastError: () => undefined, close: async () => {} };
  }
  if (!redisUrl) throw new UsageError('no connection configured: set REDIS_URL, or UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN');
  let url: URL;
  try {
    url = new URL(redisUrl);
  } catch {
    throw new UsageError('REDIS_URL is not a URL (expected redis://host:port or rediss://host:port)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new UsageError(`REDIS_URL: unsupported scheme ${url.protocol} (expected redis: or rediss:)`);
  const { Redis, Cluster } = await load('ioredis', 'REDIS_URL', () => import('ioredis'));
  const target = `${url.hostname}:${url.port || 6379}`;
  // Connection errors reach the user through the command that fails, this one's code with it;
  // without a listener ioredis also prints each one as an "Unhandled error event" stack trace.
  let last: string | undefined;
  const onError = (error: Error & { code?: string }) => void (last = error.code ?? error.message.split('\n')[0]);
  // Fail a command after a few reconnection attempts instead of queueing it forever.
  const retryStrategy = (times: number) => (times > 5 ? null : Math.min(times * 200, 2000));
  if (!cluster) {
    const client = new Redis(redisUrl, { maxRetriesPerRequest: 2, retryStrategy });
    client.on('error', onError);
    return { client, target, rest: false, lastError: () => last, close: async () => void (await client.quit()) };
  }
  const client = new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
    clusterRetryStrategy: retryStrategy,
    redisOptions: {
      username: decodeURIComponent(url.username) || undefined,
      password: decodeURIComponent(url.password) || undefined,
      ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    },
  } as ConstructorParameters<typeof Cluster>[1]);
  client.on('error', onError);
  return { client, target, rest: false, lastError: () => last, close: async () => void (await client.quit()) };
}
