import { createServer } from 'node:net';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { Redis, type RedisOptions } from 'ioredis';

// Containers share the host network (no bridge on the CI machine): Redis binds 127.0.0.1.
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';

/** The image test/support/bootstrap.sh prepared (npm test passes it on). */
export const redisImage = process.env.REDIS_IMAGE ?? 'redis:7.0';
/** The server binary inside that image: `valkey-server` for Valkey images (the matrix sets it). */
export const redisServerBin = process.env.REDIS_SERVER_BIN ?? 'redis-server';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  readonly port: number;
  readonly container: StartedTestContainer;
  /** A new ioredis client; closed by stop(). */
  client(options?: RedisOptions): Redis;
  stop(): Promise<void>;
}

/** A real Redis in a container on 127.0.0.1, with extra `redis-server` arguments. */
export async function startRedis(args: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const container = await new GenericContainer(redisImage)
    .withNetworkMode('host')
    .withCommand([redisServerBin, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args])
    .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
    .start();
  const clients: Redis[] = [];
  return {
    port,
    container,
    client(options = {}) {
      const c = new Redis(port, '127.0.0.1', options);
      c.on('error', () => {}); // reconnects are expected across restarts; commands still reject
      clients.push(c);
      return c;
    },
    async stop() {
      clients.forEach((c) => c.disconnect());
      await container.stop({ timeout: 1 });
    },
  };
}
