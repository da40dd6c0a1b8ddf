import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import { GenericContainer, type StartedTestContainer } from 'testcontainers';
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
import { checkInvariants, layouts, type CheckOptions } from './checker.js';
import { answersPing, freePort, redisImage, redisServerBin } from './redis.js';

/** One server of the cluster, with a plain (non-cluster) client of its own. */
export interface ClusterNode {
  readonly port: number;
  /** The cluster bus port (gossip, failover votes). */
  readonly busPort: number;
  readonly container: StartedTestContainer;
  readonly admin: Redis;
  readonly id: string;
}

export interface RedisCluster {
  /** nodes[0..2] start as the primaries, nodes[3 + i] as the replica of nodes[i]. */
  readonly nodes: readonly ClusterNode[];
  /** A new ioredis Cluster client; closed by stop(). */
  client(options?: ClusterOptions): Cluster;
  /** The live node that is primary for `key`'s slot, by that node's own view. */
  primaryFor(key: string): Promise<ClusterNode>;
  /** SIGKILL, like a crashed machine: no shutdown, no goodbye to the replicas. */
  kill(node: ClusterNode): Promise<void>;
  stop(): Promise<void>;
}

const PRIMARIES = 3;
const SLOTS = 16_384;
// Small, so that a killed primary is marked failed and replaced within a few seconds.
const NODE_TIMEOUT_MS = 1_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await check()); await sleep(100)) {
    if (Date.now() > deadline) throw new Error(`cluster: timed out waiting for ${what}`);
  }
}

/** CLUSTER NODES, one object per line. */
async function clusterNodes(admin: Redis): Promise<Array<{ id: string; flags: string[]; primaryId: string; slots: string[] }>> {
  const text = (await admin.call('CLUSTER', 'NODES')) as string;
  return text.trim().split('\n').map((line) => {
    const [id, , flags, primaryId, , , , , ...slots] = line.split(' ');
    return { id: id!, flags: flags!.split(','), primaryId: primaryId!, slots };
  });
}

/** Whether a CLUSTER NODES slot entry ("5461-10922" or "42") covers `slot`. */
function covers(range: string, slot: number): boolean {
  const [from, to = from] = range.split('-').map(Number);
  return slot >= from! && slot <= to!;
}

/** Ports free right now and distinct from each other. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

async function startNode(port: number, busPort: number): Promise<ClusterNode> {
  const container = await new GenericContainer(redisImage)
    .withNetworkMode('host')
    .withCommand([
      redisServerBin, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-port', String(busPort),
      '--cluster-node-timeout', String(NODE_TIMEOUT_MS), '--cluster-announce-ip', '127.0.0.1',
      // A replica may take over however long it was disconnected: the test decides when.
      '--cluster-replica-validity-factor', '0',
    ])
    .withWaitStrategy(answersPing(port))
    .start();
  const admin = new Redis(port, '127.0.0.1', { retryStrategy: () => null });
  admin.on('error', () => {}); // its node may be killed; commands still reject
  const id = (await admin.call('CLUSTER', 'MYID')) as string;
  return { port, busPort, container, admin, id };
}

/**
 * 3 primaries + 3 replicas on 127.0.0.1, formed with CLUSTER MEET / ADDSLOTSRANGE / REPLICATE
 * (no redis-cli), returned once every node reports cluster_state:ok and every replica is in sync.
 */
export async function startCluster(): Promise<RedisCluster> {
  const ports = await freePorts(4 * PRIMARIES);
  const starts = await Promise.allSettled(Array.from({ length: 2 * PRIMARIES }, (_, i) => startNode(ports[2 * i]!, ports[2 * i + 1]!)));
  const nodes = starts.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const killed = new Set<ClusterNode>();
  const clients: Cluster[] = [];
  const cluster: RedisCluster = {
    nodes,
    client(options = {}) {
      const c = new Cluster(nodes.slice(0, PRIMARIES).map(({ port }) => ({ host: '127.0.0.1', port })), options);
      c.on('error', () => {}); // node errors during a failover are expected; commands still reject
      clients.push(c);
      return c;
    },
    async primaryFor(key) {
      const slot = calculateSlot(key);
      for (const node of nodes) {
        if (killed.has(node)) continue;
        const self = (await clusterNodes(node.admin)).find((n) => n.flags.includes('myself'))!;
        if (self.flags.includes('master') && self.slots.some((range) => covers(range, slot))) return node;
      }
      throw new Error(`cluster: no live primary serves slot ${slot}`);
    },
    async kill(node) {
      killed.add(node);
      await promisify(execFile)('docker', ['kill', node.container.getId()]);
    },
    async stop() {
      clients.forEach((c) => c.disconnect());
      nodes.forEach((n) => n.admin.disconnect());
      await Promise.all(nodes.map((n) => n.container.stop({ timeout: 1 })));
    },
  };
  try {
    const failed = starts.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    await form(nodes);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/**
 * The independent invariant checker on each live primary that owns some of `regions` (each holds
 * its regions' keys whole: one hash slot per region, cluster layout), lines prefixed with its port.
 */
export async function ownerViolations(cluster: RedisCluster, regions: readonly string[], options: Omit<CheckOptions, 'layout' | 'regions'>): Promise<string[]> {
  const owned = new Map<ClusterNode, string[]>();
  for (const region of regions) {
    const owner = await cluster.primaryFor(layouts.cluster.index(region));
    owned.set(owner, [...(owned.get(owner) ?? []), region]);
  }
  const found: string[] = [];
  for (const [owner, mine] of owned) {
    const lines = await checkInvariants(owner.admin, { ...options, layout: layouts.cluster, regions: mine });
    found.push(...lines.map((line) => `${owner.port}: ${line}`));
  }
  return found;
}

async function form(nodes: readonly ClusterNode[]): Promise<void> {
  const [first] = nodes;
  for (const node of nodes.slice(1)) await first!.admin.call('CLUSTER', 'MEET', '127.0.0.1', String(node.port), String(node.busPort));
  const share = Math.ceil(SLOTS / PRIMARIES);
  await Promise.all(
    nodes.slice(0, PRIMARIES).map((node, i) =>
      node.admin.call('CLUSTER', 'ADDSLOTSRANGE', String(i * share), String(Math.min(SLOTS, (i + 1) * share) - 1)),
    ),
  );
  const everyNode = async (check: (admin: Redis) => Promise<boolean>) => (await Promise.all(nodes.map((n) => check(n.admin)))).every(Boolean);
  // REPLICATE needs the replica to know its primary; votes at failover need every primary to know every replica.
  await until('every node to know the others', () =>
    everyNode(async (admin) => (await clusterNodes(admin)).filter((n) => !n.flags.includes('handshake')).length === nodes.length),
  );
  await Promise.all(nodes.slice(PRIMARIES).map((node, i) => node.admin.call('CLUSTER', 'REPLICATE', nodes[i]!.id)));
  await until('cluster_state:ok and in-sync replicas', () =>
    everyNode(async (admin) => {
      const [info, replication, known] = await Promise.all([admin.call('CLUSTER', 'INFO') as Promise<string>, admin.info('replication'), clusterNodes(admin)]);
      const inSync = !replication.includes('role:slave') || replication.includes('master_link_status:up');
      return info.includes('cluster_state:ok') && inSync && known.filter((n) => n.flags.includes('slave')).length === PRIMARIES;
    }),
  );
}
