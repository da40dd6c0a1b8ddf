import type { Redis as IoRedis } from 'ioredis';
import type { SnapshotStoreOptions } from '../../src/index.js';
import type { RedisServer } from './redis.js';

/**
 * A client library the store supports, connected to a test Redis. The conformance suite runs
 * once per kind: the same behaviour must hold whichever client carries it.
 */
export interface ClientKind {
  readonly name: string;
  connect(redis: RedisServer): Promise<{ client: SnapshotStoreOptions['client']; close(): Promise<void> }>;
}

export const ioredisKind: ClientKind = {
  name: 'ioredis',
  async connect(redis) {
    const client: IoRedis = redis.client();
    return { client, close: async () => void client.disconnect() };
  },
};

export const clientKinds: readonly ClientKind[] = [ioredisKind];
