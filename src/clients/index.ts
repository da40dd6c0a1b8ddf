import type { Connection } from '../connection.js';
import { ValidationError } from '../errors.js';
import { ioredisConnection, isIoredis } from './ioredis.js';
import { isUpstash, upstashConnection } from './upstash.js';

/** The Connection for a caller's client, or a ValidationError naming what is accepted. */
export function connect(client: unknown): { connection: Connection; cluster: boolean } {
  if (isIoredis(client)) return { connection: ioredisConnection(client), cluster: client.isCluster };
  if (isUpstash(client)) return { connection: upstashConnection(client), cluster: false };
  throw new ValidationError('options.client', 'expected an ioredis Redis or Cluster, or an @upstash/redis Redis');
}
