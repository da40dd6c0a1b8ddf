/**
 * What `durability: { replicas: 1 }` costs in latency: one ~40 KB persist, and persistMany of the
 * 8 regions, with and without the option, against a primary with one replica (its own containers).
 * Three links: everything at loopback; the client 20 ms RTT from the primary (test/support/proxy.ts)
 * with the replica at loopback; the client at loopback and the replica 20 ms RTT away (it
 * replicates through the proxy). Prints medians and the ratio with / without, as a Markdown table.
 *
 *   image=$(bash test/support/bootstrap.sh) && REDIS_IMAGE=$image node --import tsx bench/durability.ts
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { createSnapshotStore, type SnapshotStore } from '../src/index.js';
import { TcpProxy } from '../test/support/proxy.js';
import { redisImage, startRedis, type RedisServer } from '../test/support/redis.js';
import { median, REGIONS } from './measure.js';

const DELAY_MS = 10; // each direction: 20 ms RTT
const fixture = JSON.parse(readFileSync(new URL('../test/fixtures/regional-snapshot-mena.json', import.meta.url), 'utf8')) as object;
const DAY = 86_400_000;
const T = Date.now() - DAY;
let seq = 0;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function untilReplicating(replica: RedisServer): Promise<void> {
  const admin = replica.client();
  while (!(await admin.info('replication')).includes('master_link_status:up')) await sleep(100);
  admin.disconnect();
}

/** Median ms of `runs` sequential calls, after 5 warm-up calls. */
async function timed(runs: number, call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 5; i++) await call();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await call();
    samples.push(performance.now() - started);
  }
  return median(samples);
}

const one = (store: SnapshotStore) => () => store.persist({ region: 'mena', id: `s${++seq}`, timestamp: T + seq, payload: fixture });
const eight = (store: SnapshotStore) => () => store.persistMany(REGIONS.map((region) => ({ region, id: `s${++seq}`, timestamp: T + seq, payload: fixture })));

interface Row {
  link: string;
  call: string;
  withoutMs: number;
  withMs: number;
}

async function measure(link: string, clientPort: number, runs: number, rows: Row[]): Promise<void> {
  const client = new Redis(clientPort, '127.0.0.1');
  const plain = createSnapshotStore({ client });
  const durable = createSnapshotStore({ client, durability: { replicas: 1, timeoutMs: 5_000 } });
  for (const [call, of] of [['persist, 1 x 40 KB', one], ['persistMany, 8 x 40 KB', eight]] as const) {
    const withoutMs = await timed(runs, of(plain));
    const withMs = await timed(runs, of(durable));
    rows.push({ link, call, withoutMs, withMs });
    await client.flushall();
  }
  client.disconnect();
}

const rows: Row[] = [];
{
  const primary = await startRedis();
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(primary.port)]);
  try {
    await untilReplicating(replica);
    await measure('loopback', primary.port, 200, rows);
    const proxy = await TcpProxy.start(primary.port);
    proxy.delayMs = DELAY_MS;
    await measure('client 20 ms RTT, replica loopback', proxy.port, 30, rows);
    await proxy.close();
  } finally {
    await replica.stop();
    await primary.stop();
  }
}
{
  const primary = await startRedis();
  const proxy = await TcpProxy.start(primary.port);
  proxy.delayMs = DELAY_MS;
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(proxy.port)]);
  try {
    await untilReplicating(replica);
    await measure('client loopback, replica 20 ms RTT', primary.port, 30, rows);
  } finally {
    await replica.stop();
    await proxy.close();
    await primary.stop();
  }
}

console.log(`durability { replicas: 1 } latency, median per call [${redisImage}]\n`);
console.log('| link | call | without | with durability | ratio |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.link} | ${r.call} | ${r.withoutMs.toFixed(2)} ms | ${r.withMs.toFixed(2)} ms | ${(r.withMs / r.withoutMs).toFixed(2)} x |`);
