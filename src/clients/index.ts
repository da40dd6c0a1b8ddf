import type { Connection } from '../connection.js';
import { ValidationError } from '../errors.js';
import { ioredisConnection, isIoredis } from './ioredis.js';
import { isUpstash, upstashConnection } from './upstash.js';

/** Any function: a client's methods are checked at run time (connect), not by their signatures. */
type Method = (...args: never[]) => unknown;

/** An ioredis `Redis` or `Cluster`, by the members that tell it apart. */
export interface IoredisClient {
  readonly isCluster: boolean;
  readonly status: string;
  call: Method;
  pipeline: Method;
  multi: Method;
}

/** An @upstash/redis `Redis`, by the members that tell it apart. */
export interface UpstashClient {
  readYourWritesSyncToken: string | undefined;
  evalsha: Method;
  pipeline: Method;
  multi: Method;
}

/**
 * The clients the store takes, described here rather than imported from the client libraries: a
 * project installs only the client it uses, its types check without the other, and anything
 * else (a number, a plain object) is still a type error.
 */
export type SupportedClient = IoredisClient | UpstashClient;

/** The Node entry's Connection for a caller's client, or a ValidationError naming what is accepted. */
export function connect(client: unknown): Connection {
  if (isIoredis(client)) return ioredisConnection(client);
  if (isUpstash(client)) return upstashConnection(client);
  throw new ValidationError('options.client', 'expected an ioredis Redis or Cluster, or an @upstash/redis Redis');
}
