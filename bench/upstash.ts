import { readFileSync } from 'node:fs';
import { Redis as UpstashRedis } from '@upstash/redis';
import { createSnapshotStore } from '../src/index.js';
import { TcpProxy } from '../test/support/proxy.js';
import type { RedisServer } from '../test/support/redis.js';
import { startUpstashServer } from '../test/support/upstash-server.js';
import { median, type SnapshotSource } from './measure.js';
import { RETENTION_MS } from './strategies.js';

export interface UpstashEncoding {
  /** @upstash/redis `responseEncoding`: 'base64' (its default: `Upstash-Encoding: base64`) or off. */
  encoding: 'base64' | 'off';
  /** Per persist, HTTP bytes through the proxy: request (up) and response (down). */
  persistUp: number;
  persistDown: number;
  /** Per readLatest of the same payload. */
  readUp: number;
  readDown: number;
  /** Client wall µs per readLatest, one at a time, no added delay: median over the reads. */
  readUs: number;
}

export interface UpstashResult {
  /** The @upstash/redis version installed. */
  clientVersion: string;
  payloadBytes: number;
  encodings: UpstashEncoding[];
}

/**
 * The Upstash path: @upstash/redis through the Upstash-protocol test server
 * (test/support/upstash-server.ts), a byte-counting proxy in between. Per response encoding:
 * bytes of a persist's and a readLatest's HTTP exchange, and the client's time per readLatest
 * (the two encodings alternate, `reads` reads each).
 */
export async function upstashScenario(options: { redis: RedisServer; source: SnapshotSource; payload: object; persists: number; reads: number }): Promise<UpstashResult> {
  const { redis, source, payload, persists, reads } = options;
  const server = await startUpstashServer(redis, { token: 'bench-token' });
  const proxy = await TcpProxy.start(Number(new URL(server.url).port));
  const payloadBytes = Buffer.byteLength(JSON.stringify(payload));
  try {
    const encodings = (['base64', 'off'] as const).map((encoding) => {
      const client = new UpstashRedis({ url: `http://127.0.0.1:${proxy.port}`, token: server.token, ...(encoding === 'off' ? { responseEncoding: false } : {}) });
      return { encoding, store: createSnapshotStore({ client, retentionMs: RETENTION_MS }), region: `upstash-${encoding}` };
    });
    const out: UpstashEncoding[] = [];
    for (const { encoding, store, region } of encodings) {
      await store.persist(source.next(payload, region)); // the first call loads the script (EVAL)
      await store.readLatest(region);
      proxy.resetCounters();
      for (let n = 0; n < persists; n++) await store.persist(source.next(payload, region));
      const [persistUp, persistDown] = [proxy.bytesUp / persists, proxy.bytesDown / persists];
      proxy.resetCounters();
      for (let n = 0; n < persists; n++) {
        const found = await store.readLatest(region);
        if (JSON.stringify(found?.payload) !== JSON.stringify(payload)) throw new Error(`upstash (${encoding}): readLatest did not return the payload`);
      }
      out.push({ encoding, persistUp, persistDown, readUp: proxy.bytesUp / persists, readDown: proxy.bytesDown / persists, readUs: 0 });
    }
    const times = encodings.map(() => [] as number[]);
    for (let n = 0; n < reads; n++) {
      for (const [i, { store, region }] of encodings.entries()) {
        const t0 = performance.now();
        await store.readLatest(region);
        times[i]!.push((performance.now() - t0) * 1000);
      }
    }
    out.forEach((e, i) => (e.readUs = median(times[i]!)));
    const clientVersion = (JSON.parse(readFileSync(new URL('../node_modules/@upstash/redis/package.json', import.meta.url), 'utf8')) as { version: string }).version;
    return { clientVersion, payloadBytes, encodings: out };
  } finally {
    await proxy.close();
    await server.close();
  }
}
