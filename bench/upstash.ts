import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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
  /** Client wall µs per readLatest from a server that answers a canned reply: median over the reads. */
  readUs: number;
}

export interface UpstashResult {
  /** The @upstash/redis version installed. */
  clientVersion: string;
  /** The `Upstash-Encoding` header a client with default options sent. */
  defaultEncodingHeader: string | undefined;
  payloadBytes: number;
  /** The payload's JSON text as a string inside the request's JSON body: quotes and backslashes escaped. */
  payloadInRequestBytes: number;
  encodings: UpstashEncoding[];
}

/**
 * The Upstash path: @upstash/redis through the Upstash-protocol test server
 * (test/support/upstash-server.ts), a byte-counting proxy in between. Per response encoding:
 * bytes of a persist's and a readLatest's HTTP exchange, and the client's time per readLatest
 * (see clientReadTimes).
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
    const { readUs, header } = await clientReadTimes(payload, reads);
    out.forEach((e) => (e.readUs = readUs[e.encoding]));
    const clientVersion = (JSON.parse(readFileSync(new URL('../node_modules/@upstash/redis/package.json', import.meta.url), 'utf8')) as { version: string }).version;
    return { clientVersion, defaultEncodingHeader: header, payloadBytes, payloadInRequestBytes: Buffer.byteLength(JSON.stringify(JSON.stringify(payload))), encodings: out };
  } finally {
    await proxy.close();
    await server.close();
  }
}

/**
 * The client's own cost of each response encoding: readLatest against an HTTP server that answers
 * every request with the reply the Upstash protocol gives for this payload (strings base64 when
 * the request asks for it), so the server does the same little work for both and the difference
 * is the client's (a larger body to receive and parse, and base64 to decode). The two encodings
 * alternate, `reads` reads each; medians. Also returns the encoding header a default client sends.
 */
async function clientReadTimes(payload: object, reads: number): Promise<{ readUs: Record<'base64' | 'off', number>; header: string | undefined }> {
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const [id, timestamp, text] = ['bench-read', 1_700_000_000_000, JSON.stringify(payload)];
  const bodies = { base64: JSON.stringify([{ result: [b64(id), timestamp, b64(text)] }]), off: JSON.stringify([{ result: [id, timestamp, text] }]) };
  let header: string | undefined;
  const server = createServer((req, res) => {
    header = req.headers['upstash-encoding'] as string | undefined;
    req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(header === 'base64' ? bodies.base64 : bodies.off));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const stores = {
      base64: createSnapshotStore({ client: new UpstashRedis({ url, token: 't' }), retentionMs: RETENTION_MS }),
      off: createSnapshotStore({ client: new UpstashRedis({ url, token: 't', responseEncoding: false }), retentionMs: RETENTION_MS }),
    };
    await stores.base64.readLatest('r');
    const defaultHeader = header;
    const times = { base64: [] as number[], off: [] as number[] };
    for (let n = 0; n <= reads; n++) {
      for (const encoding of ['base64', 'off'] as const) {
        const t0 = performance.now();
        const found = await stores[encoding].readLatest('r', { now: timestamp });
        if (n > 0) times[encoding].push((performance.now() - t0) * 1000);
        if (found?.id !== id || JSON.stringify(found.payload) !== text) throw new Error(`upstash (${encoding}): the canned reply did not decode to the payload`);
      }
    }
    return { readUs: { base64: median(times.base64), off: median(times.off) }, header: defaultHeader };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
