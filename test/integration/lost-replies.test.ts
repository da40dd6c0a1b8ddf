/**
 * A reply lost after the request reached Redis: the write ran, the caller cannot know it. ioredis
 * rejects the commands of a pipeline cut part-way through its replies with an AbortError that has
 * no `code`; the store must treat that as transient, retry, and end `replayed`.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { createSnapshotStore } from '../../src/index.js';
import { persistLua } from '../../src/lua.generated.js';
import { snapshotOf } from '../support/faults.js';
import { violations } from '../support/keyspace.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const test = suite('lost replies', 3);

const NOW = Date.now();
const T = NOW - 3_600_000;
const RETENTION_MS = 90 * 86_400_000;

/**
 * Forwards requests whole. Once armed, forwards only the first `keep` bytes of Redis's replies to
 * the client, swallows the rest, and closes both sides when Redis has sent `whole` reply bytes:
 * Redis has then run the whole request, and the client has lost part of the replies.
 */
class ReplyCutProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private armed: { keep: number; whole: number } | undefined;
  bytesDown = 0;
  port = 0;

  constructor(private readonly target: number) {
    this.server = createServer((client) => this.accept(client));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  cutReplies(keep: number, whole: number): void {
    this.bytesDown = 0;
    this.armed = { keep, whole };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = connect(this.target, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      const from = this.bytesDown;
      this.bytesDown += chunk.length;
      if (this.armed === undefined) return void client.write(chunk);
      const { keep, whole } = this.armed;
      if (from < keep) client.write(chunk.subarray(0, keep - from));
      if (this.bytesDown >= whole) {
        this.armed = undefined;
        end();
      }
    });
    for (const s of [client, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
  }
}

let redis: RedisServer;
let proxy: ReplyCutProxy;
let admin: Redis;
let client: Redis;

test.before(async () => {
  redis = await startRedis();
  proxy = new ReplyCutProxy(redis.port);
  await proxy.start();
  admin = redis.client();
  await admin.script('LOAD', persistLua.text); // a measured run and its cut twin send the same bytes
  // An ordinary client: reconnects after the cut.
  client = new Redis(proxy.port, '127.0.0.1', { retryStrategy: () => 10 });
  client.on('error', () => {});
  await client.ping();
});

test.after(async () => {
  client?.disconnect();
  await proxy?.close();
  await redis?.stop();
});

test.before.each(async () => {
  await admin.flushall();
  await client.ping(); // the client has reconnected after the previous test's cut
});

/**
 * Runs `op` once whole (to learn how many reply bytes it gets), empties the keyspace, then runs it
 * again with only the first `keep` reply bytes reaching the client.
 */
async function withRepliesCut<T>(keep: number, op: () => Promise<T>): Promise<T> {
  proxy.bytesDown = 0;
  await op();
  const whole = proxy.bytesDown;
  await admin.flushall();
  proxy.cutReplies(keep, whole);
  return op();
}

const statuses = (settled: PromiseSettledResult<{ status: string }>[]) =>
  settled.map((s) => (s.status === 'fulfilled' ? s.value.status : `rejected: ${String(s.reason)}`));

test('staged persist (MULTI…EXEC) whose replies are cut after MULTI\'s: retried, replayed, stored', async () => {
  const store = createSnapshotStore({ client, stagePayloadsFrom: 0, retry: { baseDelayMs: 10 } });
  // MULTI's reply arrives; SET's QUEUED, the script's and EXEC's do not: ioredis aborts them.
  const result = await withRepliesCut('+OK\r\n'.length, () => store.persist(snapshotOf('mena', 'm1', T, 1024, 'scheduled_6h'), { now: NOW }));
  assert.is(result.status, 'replayed');
  assert.is(await admin.get('intelligence:snapshot:v1:mena:latest'), 'm1');
  assert.equal(await violations(admin, { regions: ['mena'], now: NOW, retentionMs: RETENTION_MS }), []);
});

test('persistMany whose replies are cut after the first script\'s: the others retried, replayed', async () => {
  const store = createSnapshotStore({ client, stagePayloadsFrom: Infinity, retry: { baseDelayMs: 10 } });
  const regions = ['mena', 'latam', 'global'];
  const settled = await withRepliesCut('*3\r\n:1\r\n:1\r\n:0\r\n'.length, () =>
    store.persistMany(regions.map((r) => snapshotOf(r, `${r}-1`, T, 1024, 'scheduled_6h')), { now: NOW }),
  );
  assert.equal(statuses(settled), ['persisted', 'replayed', 'replayed']);
  assert.equal(await violations(admin, { regions, now: NOW, retentionMs: RETENTION_MS }), []);
});

test('staged persistMany whose replies are cut inside the first transaction: all retried, replayed', async () => {
  const store = createSnapshotStore({ client, stagePayloadsFrom: 0, retry: { baseDelayMs: 10 } });
  const regions = ['mena', 'latam'];
  const settled = await withRepliesCut('+OK\r\n+QUEUED\r\n'.length, () =>
    store.persistMany(regions.map((r) => snapshotOf(r, `${r}-1`, T, 1024, 'scheduled_6h')), { now: NOW }),
  );
  assert.equal(statuses(settled), ['replayed', 'replayed']);
  assert.equal(await violations(admin, { regions, now: NOW, retentionMs: RETENTION_MS }), []);
});

test.run();
