import { Redis } from 'ioredis';
import { Redis as UpstashRedis } from '@upstash/redis';
import { createSnapshotStore, type SnapshotStore } from '../src/index.js';
import { keySchemas } from '../src/keys.js';
import { legacyPersist } from '../test/support/legacy.js';
import { TcpProxy } from '../test/support/proxy.js';
import type { RedisServer } from '../test/support/redis.js';
import { startUpstashServer } from '../test/support/upstash-server.js';
import { median, REGIONS, type SnapshotSource } from './measure.js';
import { asText, RETENTION_MS, type BenchSnapshot } from './strategies.js';

/** Added by the proxy to each direction: 20 ms of round-trip time. */
export const DELAY_MS = 10;
const RTT_MS = 2 * DELAY_MS;
const legacyKeys = keySchemas['worldmonitor-v1'];

export interface LatencyCase {
  transport: 'TCP' | 'HTTP';
  name: string;
  legacyMs: number;
  moduleMs: number;
  /** Elapsed time over the round-trip time: about the number of sequential round trips. */
  legacyRoundTrips: number;
  moduleRoundTrips: number;
  /** HTTP requests per run, counted by the Upstash test server (HTTP only). */
  legacyRequests?: number;
  moduleRequests?: number;
  speedup: number;
}

/** One client library behind the delaying proxy: the legacy seeder's and readers' calls, and the store. */
interface Link {
  transport: LatencyCase['transport'];
  store: SnapshotStore;
  /** The legacy dedup request, then the six-command pipeline: two round trips. */
  legacyPersist(s: BenchSnapshot): Promise<unknown>;
  get(key: string): Promise<unknown>;
  /** HTTP requests so far, where the transport has them. */
  requests?(): number;
  close(): Promise<void>;
}

async function tcpLink(redis: RedisServer): Promise<Link> {
  const proxy = await TcpProxy.start(redis.port);
  proxy.delayMs = DELAY_MS;
  const client = new Redis(proxy.port, '127.0.0.1');
  await client.ping();
  return {
    transport: 'TCP',
    store: createSnapshotStore({ client, retentionMs: RETENTION_MS }),
    legacyPersist: (s) => legacyPersist(client, asText(s)),
    get: (key) => client.get(key),
    async close() {
      client.disconnect();
      await proxy.close();
    },
  };
}

/** @upstash/redis, as the seeder runs in production, through the Upstash-protocol test server. */
async function httpLink(redis: RedisServer): Promise<Link> {
  const server = await startUpstashServer(redis, { token: 'bench-token' });
  const proxy = await TcpProxy.start(Number(new URL(server.url).port));
  proxy.delayMs = DELAY_MS;
  const client = new UpstashRedis({ url: `http://127.0.0.1:${proxy.port}`, token: server.token });
  const retentionS = RETENTION_MS / 1000;
  return {
    transport: 'HTTP',
    store: createSnapshotStore({ client, retentionMs: RETENTION_MS }),
    async legacyPersist(s) {
      const claimed = await client.set(legacyKeys.dedup(s.region, s.trigger, Math.floor(s.timestamp / 900_000)), s.id, { ex: 900, nx: true });
      if (claimed !== 'OK') return;
      await client
        .pipeline()
        .set(legacyKeys.timestamp(s.region, s.timestamp), s.payload, { ex: retentionS })
        .set(legacyKeys.byId(s.region, s.id), s.payload, { ex: retentionS })
        .set(legacyKeys.latest(s.region), s.id, { ex: retentionS })
        .zadd(legacyKeys.index(s.region), { score: s.timestamp, member: s.id })
        .zremrangebyscore(legacyKeys.index(s.region), '-inf', `(${Date.now() - RETENTION_MS}`)
        .del(legacyKeys.live(s.region))
        .exec();
    },
    get: (key) => client.get(key),
    requests: () => Object.values(server.requests).reduce((a, b) => a + b, 0),
    async close() {
      await proxy.close();
      await server.close();
    },
  };
}

/**
 * The seeder's and readers' paths, legacy against this module, over a link with 20 ms of
 * round-trip time: over TCP with ioredis and over HTTP with @upstash/redis. Each case alternates
 * legacy and module `reps` times; times are medians.
 */
export async function latencyScenario(redis: RedisServer, source: SnapshotSource, payload: object, reps: number): Promise<LatencyCase[]> {
  const results: LatencyCase[] = [];
  for (const open of [tcpLink, httpLink]) {
    const link = await open(redis);
    try {
      // The readers' path today: the bare id from `latest`, then the payload by id.
      const legacyReadLatest = async (region: string) => {
        const id = await link.get(legacyKeys.latest(region));
        return id === null ? null : link.get(legacyKeys.byId(region, String(id)));
      };
      const cases = [
        {
          name: 'seeder: persist 8 regions',
          legacy: async () => {
            for (const s of source.regions(payload)) await link.legacyPersist(s);
          },
          module: () => link.store.persistMany(source.regions(payload)),
        },
        {
          name: 'read the latest of 8 regions',
          legacy: async () => {
            for (const region of REGIONS) await legacyReadLatest(region);
          },
          module: () => link.store.readLatestMany(REGIONS),
        },
        {
          name: 'read the latest of 1 region',
          legacy: () => legacyReadLatest(REGIONS[0]!),
          module: () => link.store.readLatest(REGIONS[0]!),
        },
      ];
      for (const c of cases) {
        await c.module(); // loads the script on first use: not part of the measurement
        const runs = { legacy: [] as number[], module: [] as number[] };
        const requests = { legacy: 0, module: 0 };
        for (let i = 0; i < reps; i++) {
          for (const side of ['legacy', 'module'] as const) {
            const before = link.requests?.() ?? 0;
            const t0 = performance.now();
            await c[side]();
            runs[side].push(performance.now() - t0);
            requests[side] = (link.requests?.() ?? 0) - before;
          }
        }
        const [legacyMs, moduleMs] = [median(runs.legacy), median(runs.module)];
        results.push({
          transport: link.transport,
          name: c.name,
          legacyMs,
          moduleMs,
          legacyRoundTrips: legacyMs / RTT_MS,
          moduleRoundTrips: moduleMs / RTT_MS,
          ...(link.requests ? { legacyRequests: requests.legacy, moduleRequests: requests.module } : {}),
          speedup: legacyMs / moduleMs,
        });
      }
    } finally {
      await link.close();
    }
  }
  return results;
}
