import type { Connection } from '../connection.js';
import { ValidationError } from '../errors.js';
import { isUpstash, upstashConnection } from './upstash.js';

/** The edge entry's Connection: @upstash/redis only (ioredis needs node:net, which edge runtimes lack). */
export function connect(client: unknown): Connection {
  if (isUpstash(client)) return upstashConnection(client);
  throw new ValidationError('options.client', 'expected an @upstash/redis Redis: this is the edge build of snapshot-persist (export conditions edge-light, worker, browser), and these runtimes cannot run ioredis; use @upstash/redis');
}
