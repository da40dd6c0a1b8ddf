import { createServer } from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { GenericContainer, type StartedTestContainer, type WaitStrategy } from 'testcontainers';
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once the server on `port` answers PING with PONG (not LOADING, not refused), or
 * rejects after `timeoutMs`. This, not a log line, is what "ready" means: after a restart Docker
 * records the container's StartedAt only once its process runs, and Redis can print "Ready to
 * accept connections" before that instant, so a log wait that reads the logs "since StartedAt"
 * (testcontainers' restart()) misses the line on a busy machine and gives up after 60 s.
 */
export async function untilPong(port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 1_000 });
  probe.on('error', () => {});
  try {
    for (let last = 'no answer'; ; await sleep(25)) {
      try {
        if (probe.status !== 'ready') await probe.connect();
        if ((await probe.ping()) === 'PONG') return;
      } catch (error) {
        last = (error as Error).message;
        probe.disconnect();
      }
      if (Date.now() > deadline) throw new Error(`redis on port ${port} did not answer PING within ${timeoutMs} ms (last: ${last})`);
    }
  } finally {
    probe.disconnect();
  }
}

/** testcontainers' wait strategy for a server on the host network: it answers PING. */
export function answersPing(port: number): WaitStrategy {
  let timeoutMs = 60_000;
  let set = false;
  const strategy: WaitStrategy = {
    waitUntilReady: () => untilPong(port, timeoutMs),
    withStartupTimeout(ms) {
      timeoutMs = ms;
      set = true;
      return strategy;
    },
    isStartupTimeoutSet: () => set,
    getStartupTimeout: () => timeoutMs,
  };
  return strategy;
}

const docker = (...args: string[]) => promisify(execFile)('docker', args);

export interface RedisServer {
  readonly port: number;
  readonly container: StartedTestContainer;
  /** A new ioredis client; closed by stop(). */
  client(options?: RedisOptions): Redis;
  /** SIGKILL the server: no shutdown, no final AOF rewrite, sockets reset. */
  kill(): Promise<void>;
  /** Starts the same container again (same data, same port) and waits until it answers PING. */
  start(): Promise<void>;
  /** kill(), then start(): an empty script cache, and whatever the persistence options kept. */
  restart(): Promise<void>;
  /**
   * Empties the server for the next test. A server that died mid-suite fails each remaining test
   * of its suite within seconds (and at once after the first), instead of every command waiting
   * out ioredis's reconnects; other suites have servers of their own.
   */
  fresh(): Promise<void>;
  stop(): Promise<void>;
}

/** A real Redis in a container on 127.0.0.1, with extra `redis-server` arguments. */
export async function startRedis(args: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const container = await new GenericContainer(redisImage)
    .withNetworkMode('host')
    .withCommand([redisServerBin, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args])
    .withWaitStrategy(answersPing(port))
    .start();
  const clients: Redis[] = [];
  let gone: Error | undefined;
  const server: RedisServer = {
    port,
    container,
    client(options = {}) {
      const c = new Redis(port, '127.0.0.1', options);
      c.on('error', () => {}); // reconnects are expected across restarts; commands still reject
      clients.push(c);
      return c;
    },
    async kill() {
      await docker('kill', '-s', 'KILL', container.getId());
    },
    async start() {
      await docker('start', container.getId());
      await untilPong(port);
    },
    async restart() {
      await server.kill();
      await server.start();
    },
    async fresh() {
      if (gone) throw gone;
      try {
        await untilPong(port, 10_000);
      } catch (error) {
        throw (gone = new Error(`the suite's Redis server is gone: ${(error as Error).message}`));
      }
      // A connection of its own, closed at once: tests count the server's clients.
      const admin = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      admin.on('error', () => {});
      try {
        await admin.flushall();
      } finally {
        admin.disconnect();
      }
    },
    async stop() {
      clients.forEach((c) => c.disconnect());
      await container.stop({ timeout: 1 });
    },
  };
  return server;
}
