import { Redis } from 'ioredis';
import { createSnapshotStore } from '../src/index.js';
import { keySchemas } from '../src/keys.js';
import { legacyPersist } from '../test/support/legacy.js';
import { TcpProxy } from '../test/support/proxy.js';
import { median, REGIONS, type SnapshotSource } from './measure.js';
import { RETENTION_MS } from './strategies.js';

export const DELAY_MS = 10;
const legacyKeys = keySchemas['worldmonitor-v1'];

export interface LatencyCase {
  name: string;
  legacyMs: number;
  moduleMs: number;
  /** Elapsed time over the round-trip time: about the number of sequential round trips. */
  legacyRoundTrips: number;
  moduleRoundTrips: number;
  speedup: number;
}

/** The readers' path today: the bare id from `latest`, then the payload by id. */
async function legacyReadLatest(client: Redis, region: string): Promise<string | null> {
  const id = await client.get(legacyKeys.latest(region));
  return id === null ? null : client.get(legacyKeys.byId(region, id));
}

/** Milliseconds one run takes. */
async function timed(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await run();
  return performance.now() - t0;
}

/**
 * The seeder and reader paths over a link with 2 x DELAY_MS of round-trip time: the loopback
 * proxy delays every chunk DELAY_MS each way. Each case alternates legacy and module `reps` times.
 */
export async function latencyScenario(redisPort: number, source: SnapshotSource, payload: string, reps: number): Promise<LatencyCase[]> {
  const proxy = await TcpProxy.start(redisPort);
  proxy.delayMs = DELAY_MS;
  const client = new Redis(proxy.port, '127.0.0.1');
  const store = createSnapshotStore({ client, retentionMs: RETENTION_MS });
  const rtt = 2 * DELAY_MS;
  try {
    await client.ping();
    const cases: Array<{ name: string; legacy: () => Promise<unknown>; module: () => Promise<unknown> }> = [
      {
        name: 'seeder: persist 8 regions',
        legacy: async () => {
          for (const s of source.regions(payload)) await legacyPersist(client, s);
        },
        module: () => store.persistMany(source.regions(payload)),
      },
      {
        name: 'read the latest of 8 regions',
        legacy: async () => {
          for (const region of REGIONS) await legacyReadLatest(client, region);
        },
        module: () => store.readLatestMany(REGIONS),
      },
      {
        name: 'read the latest of 1 region',
        legacy: () => legacyReadLatest(client, REGIONS[0]!),
        module: () => store.readLatest(REGIONS[0]!),
      },
    ];
    const results: LatencyCase[] = [];
    for (const c of cases) {
      await c.module(); // loads the script on first use: not part of the measurement
      const legacyMs: number[] = [];
      const moduleMs: number[] = [];
      for (let i = 0; i < reps; i++) {
        legacyMs.push(await timed(c.legacy));
        moduleMs.push(await timed(c.module));
      }
      const [l, m] = [median(legacyMs), median(moduleMs)];
      results.push({ name: c.name, legacyMs: l, moduleMs: m, legacyRoundTrips: l / rtt, moduleRoundTrips: m / rtt, speedup: l / m });
    }
    return results;
  } finally {
    client.disconnect();
    await proxy.close();
  }
}
