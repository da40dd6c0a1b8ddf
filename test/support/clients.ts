import type { Redis as IoRedis } from 'ioredis';
import { Redis as UpstashRedis } from '@upstash/redis';
import type { SnapshotStoreOptions } from '../../src/index.js';
import type { RedisServer } from './redis.js';
import { startUpstashServer } from './upstash-server.js';

/**
 * A client library the store supports, connected to a test Redis. The conformance suite runs
 * once per kind: the same behaviour must hold whichever client carries it.
 */
export interface ClientKind {
  readonly name: string;
  /** Store options every store of this kind gets (e.g. a transfer mode to cover). */
  readonly storeOptions?: Partial<SnapshotStoreOptions>;
  connect(redis: RedisServer): Promise<{ client: SnapshotStoreOptions['client']; close(): Promise<void> }>;
}

export const ioredisKind: ClientKind = {
  name: 'ioredis',
  async connect(redis) {
    const client: IoRedis = redis.client();
    return { client, close: async () => void client.disconnect() };
  },
};

/** @upstash/redis through the Upstash-protocol test server, on the same Redis. */
function upstashKind(name: string, options: { automaticDeserialization?: boolean } = {}): ClientKind {
  return {
    name,
    async connect(redis) {
      const server = await startUpstashServer(redis, { token: 'conformance-token' });
      const client = new UpstashRedis({ url: server.url, token: server.token, ...options });
      return { client, close: () => server.close() };
    },
  };
}

export const clientKinds: readonly ClientKind[] = [
  ioredisKind,
  // Every payload staged (MULTI: SET staging key, script renames it), not only large ones.
  { ...ioredisKind, name: 'ioredis, staged transfer', storeOptions: { stagePayloadsFrom: 0 } },
  upstashKind('@upstash/redis'),
  upstashKind('@upstash/redis, automaticDeserialization: false', { automaticDeserialization: false }),
];
