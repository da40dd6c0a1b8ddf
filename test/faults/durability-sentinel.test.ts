/**
 * A Sentinel-managed primary and replica (one Sentinel, quorum 1), an ioredis client with the
 * `sentinels` option, the primary killed (SIGKILL) under load of ~40 KB snapshots, with
 * `durability: { replicas: 1 }` and without it, each on servers of its own. As in
 * durability-failover.test.ts, the replica's link is down for the last 300 ms before the kill
 * (the case that loses acknowledged writes). Counted on the promoted primary: acknowledged durable
 * and lost (must be 0), unconfirmed (and lost), refused, and invariant violations (must be 0).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { GenericContainer, type StartedTestContainer } from 'testcontainers';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { createSnapshotStore, keySchemas, type SnapshotInput, type SnapshotStoreOptions } from '../../src/index.js';
import { verify } from '../../src/ops.js';
import { FIXTURE, newFailoverTally, REGIONS, RETENTION_MS, sleep, tallyBatch, tallyLost, until, type Acked, type FailoverTally } from '../support/faults.js';
import { violations } from '../support/keyspace.js';
import { answersPing, freePort, redisImage, redisServerBin, startRedis, type RedisServer } from '../support/redis.js';

const DAY = 86_400_000;
const NOW = Date.now();
const T = Math.floor((NOW - DAY) / 900_000) * 900_000;
const schema = keySchemas['worldmonitor-v1'];
const LAG_MS = 300;
const PACE_MS = 150;
const docker = (...args: string[]) => promisify(execFile)('docker', args);

interface Setup {
  primary: RedisServer;
  replica: RedisServer;
  sentinel: StartedTestContainer;
  sentinelPort: number;
}

async function startSetup(): Promise<Setup> {
  const primary = await startRedis();
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(primary.port)]);
  const sentinelPort = await freePort();
  const config = [
    `port ${sentinelPort}`,
    'bind 127.0.0.1',
    `sentinel monitor main 127.0.0.1 ${primary.port} 1`,
    'sentinel down-after-milliseconds main 1000',
    'sentinel failover-timeout main 10000',
    '',
  ].join('\n');
  // Sentinel rewrites its configuration file: it must be a writable file of its own.
  const sentinel = await new GenericContainer(redisImage)
    .withNetworkMode('host')
    .withCopyContentToContainer([{ content: config, target: '/data/sentinel.conf' }])
    .withCommand([redisServerBin, '/data/sentinel.conf', '--sentinel'])
    .withWaitStrategy(answersPing(sentinelPort))
    .start();
  const admin = replica.client();
  await until('the replica to sync', async () => (await admin.info('replication')).includes('master_link_status:up'));
  return { primary, replica, sentinel, sentinelPort };
}

async function stopSetup(s: Setup | undefined): Promise<void> {
  if (!s) return;
  await docker('kill', '-s', 'CONT', s.replica.container.getId()).catch(() => {});
  await s.sentinel.stop({ timeout: 1 });
  await s.replica.stop();
  await s.primary.stop().catch(() => {});
}

interface Tally extends FailoverTally {
  promotedMs: number;
}

async function underSentinelFailover(s: Setup, durability: SnapshotStoreOptions['durability'] | undefined): Promise<Tally> {
  const client = new Redis({ sentinels: [{ host: '127.0.0.1', port: s.sentinelPort }], name: 'main' });
  client.on('error', () => {});
  const store = createSnapshotStore({ client, ...(durability && { durability }) });
  const tally: Tally = { ...newFailoverTally(), promotedMs: 0 };
  const acked: Acked[] = [];
  let seq = 0;
  let running = true;
  const worker = async (w: number) => {
    while (running) {
      const batch: SnapshotInput[] = REGIONS.map((region) => {
        seq += 1;
        return { region, id: `w${w}-${seq}`, timestamp: T + seq, payload: { ...FIXTURE, region_id: region, seq } };
      });
      acked.push(...tallyBatch(tally, batch, await store.persistMany(batch, { now: NOW })));
      await sleep(PACE_MS);
    }
  };
  const load = Promise.all([worker(0), worker(1)]);
  const replicaAdmin = s.replica.client();
  try {
    await sleep(2_000);
    await docker('kill', '-s', 'STOP', s.replica.container.getId());
    await s.primary.client().call('CLIENT', 'KILL', 'TYPE', 'replica');
    await sleep(LAG_MS);
    const killedAt = Date.now();
    await s.primary.kill();
    await docker('kill', '-s', 'CONT', s.replica.container.getId());
    await until('Sentinel to promote the replica', async () => ((await replicaAdmin.call('ROLE')) as string[])[0] === 'master');
    tally.promotedMs = Date.now() - killedAt;
    // Load goes on against the promoted primary for 3 s more.
    await sleep(3_000);
  } finally {
    running = false;
    await load;
  }
  for (const region of REGIONS) {
    await tallyLost(tally, replicaAdmin, schema, region, acked);
    const { findings } = await verify(store, region, { now: NOW });
    const own = await violations(replicaAdmin, { regions: [region], now: NOW, retentionMs: RETENTION_MS });
    tally.violations += findings.length + own.length;
  }
  client.disconnect();
  return tally;
}

const report = (label: string, t: Tally) =>
  console.log(
    `durability sentinel failover [${redisImage}] ${label}: kill -> promoted ${t.promotedMs} ms; persists attempted ${t.attempted}, ` +
      `acknowledged ${t.acknowledged} (durable ${t.durable}, unconfirmed ${t.unconfirmed}), refused ${t.refused}; ` +
      `lost ${t.lost} (durable ${t.lostDurable}, unconfirmed ${t.lostUnconfirmed}) = ${((100 * t.lost) / Math.max(1, t.acknowledged)).toFixed(2)} % of acknowledged; violations ${t.violations}`,
  );

const test = suite(`durability under Sentinel failover [${redisImage}]`, 2);

test('durability { replicas: 1 }: primary killed, Sentinel promotes the replica, 0 durable persists lost, 0 violations', async () => {
  let setup: Setup | undefined;
  try {
    setup = await startSetup();
    const t = await underSentinelFailover(setup, { replicas: 1, timeoutMs: 500 });
    report('with durability { replicas: 1, timeoutMs: 500 }', t);
    assert.ok(t.durable > 0, 'no persist was confirmed durable');
    assert.is(t.acknowledged, t.durable + t.unconfirmed);
    assert.is(t.lostDurable, 0);
    assert.is(t.violations, 0);
    assert.equal(t.anomalies, []);
  } finally {
    await stopSetup(setup);
  }
});

test('without durability: the same load and kill lose acknowledged persists, 0 violations', async () => {
  let setup: Setup | undefined;
  try {
    setup = await startSetup();
    const t = await underSentinelFailover(setup, undefined);
    report('without durability', t);
    assert.is(t.durable + t.unconfirmed, 0);
    assert.ok(t.lost > 0, 'no acknowledged persist lost without durability');
    assert.is(t.violations, 0);
    assert.equal(t.anomalies, []);
  } finally {
    await stopSetup(setup);
  }
});

test.run();
