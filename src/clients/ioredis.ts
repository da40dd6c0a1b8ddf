import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { pairs, type Connection, type Outcome, type ScriptCommand, type Wait } from '../connection.js';
import { RedisError, ValidationError, toSnapshotError } from '../errors.js';

export function isIoredis(client: unknown): client is Redis | Cluster {
  const c = client as Partial<Redis> | null;
  return typeof c === 'object' && c !== null && typeof c.isCluster === 'boolean' && typeof c.pipeline === 'function' && typeof c.call === 'function';
}

/**
 * Inside EXEC the script consumes the staging key at once. Only NOSCRIPT inside EXEC leaves it
 * behind, for the EVAL fallback that follows; if that fallback never arrives, it is gone in 1 s.
 */
const STAGE_TTL_MS = '1000';

/** WAIT's reply (replicas that acknowledged) or WAITAOF's ([local fsynced, replicas fsynced]). */
function confirmed(wait: Wait, reply: unknown): boolean {
  if (!wait.aof) return Number(reply) >= wait.replicas;
  const [local, replicas] = reply as [unknown, unknown];
  return Number(local) >= 1 && Number(replicas) >= wait.replicas;
}

/**
 * Sends the commands in one pipeline: one write, one round trip. Never rejects. A staged command
 * goes as MULTI, SET staging key, the script call, EXEC: Redis runs nothing of it unless the whole
 * transaction arrived. With `asking`, each command (a staged one: its MULTI) follows ASKING, which
 * Redis keeps until EXEC. With `wait`, the pipeline ends with WAIT (or WAITAOF): it waits for the
 * connection's last write, so one covers every command before it.
 */
async function execPipeline(client: Redis | Cluster, commands: readonly ScriptCommand[], wait?: Wait, asking = false): Promise<Outcome[]> {
  const pipeline = client.pipeline();
  const replyAt: number[] = [];
  const firstAt: number[] = [];
  for (const c of commands) {
    if (asking) pipeline.call('ASKING');
    firstAt.push(pipeline.length);
    if (c.stage) pipeline.call('MULTI').call('SET', c.stage.key, c.stage.value, 'PX', STAGE_TTL_MS);
    pipeline.call(c.op, c.script, c.keys.length, ...c.keys, ...c.args);
    if (c.stage) pipeline.call('EXEC');
    replyAt.push(pipeline.length - 1);
  }
  if (wait) {
    const timeout = String(wait.timeoutMs);
    if (wait.aof) pipeline.call('WAITAOF', '1', String(wait.replicas), timeout);
    else pipeline.call('WAIT', String(wait.replicas), timeout);
  }
  try {
    const replies = (await pipeline.exec()) ?? [];
    // Not confirmed (the wait failed, or its connection closed first) is not durable.
    const waited = wait && replies[pipeline.length - 1];
    const durable = waited ? !waited[0] && confirmed(wait, waited[1]) : undefined;
    return commands.map((c, i): Outcome => {
      const [error, value] = replies[replyAt[i]!] ?? [new Error('Connection is closed.'), undefined];
      // EXECABORT names no cause: report the command refused while queued (MOVED, ASK, OOM...).
      if (error) return { ok: false, error: (c.stage && replies.slice(firstAt[i], replyAt[i]).find(([queued]) => queued)?.[0]) || error };
      const ok = (result: unknown): Outcome => (wait ? { ok: true, value: result, durable: durable ?? false } : { ok: true, value: result });
      if (!c.stage) return ok(value);
      // EXEC's reply: [SET's, the script's]; ioredis puts a failed command's Error in its place.
      const script = (value as unknown[] | null)?.[1];
      return script instanceof Error ? { ok: false, error: script } : ok(script);
    });
  } catch (error) {
    return commands.map(() => ({ ok: false, error }));
  }
}

/**
 * A batch of one plain script call (no staging, no wait) goes as that one command: one write all
 * the same, without a pipeline's bookkeeping, which costs the client more than the call itself.
 */
async function execOne(client: Redis, c: ScriptCommand): Promise<Outcome[]> {
  try {
    return [{ ok: true, value: await client.call(c.op, c.script, c.keys.length, ...c.keys, ...c.args) }];
  } catch (error) {
    return [{ ok: false, error }];
  }
}

/** A command on its way: to the node that owns its slot, or (`ask`, `host:port`) to the node an ASK named. */
interface Routed {
  readonly command: ScriptCommand;
  readonly ask?: string | undefined;
}

/**
 * A Cluster pipeline must stay on one node: one pipeline per node, all sent at once. Grouped as
 * ioredis checks it, by the slot's node set; before the client has learned the slots, by slot
 * (each pipeline then waits for the client to be ready). Commands answered ASK go to the node it
 * named, after ASKING; a node the client has no connection to (it owns no slot yet) leaves their
 * ASK as the answer, retried as transient once the slot map names it.
 */
async function execGrouped(client: Cluster, routed: readonly Routed[], wait?: Wait): Promise<Outcome[]> {
  const groups = new Map<string, number[]>();
  routed.forEach(({ command, ask }, i) => {
    const slot = calculateSlot(command.keys[0]!);
    const node = ask ? `ask ${ask}` : (client.slots[slot]?.join(';') ?? `slot ${slot}`);
    const group = groups.get(node);
    if (group) group.push(i);
    else groups.set(node, [i]);
  });
  const outcomes: Outcome[] = new Array(routed.length);
  await Promise.all(
    [...groups.values()].map(async (members) => {
      const commands = members.map((i) => routed[i]!.command);
      const ask = routed[members[0]!]!.ask;
      const node = ask && client.nodes().find((n) => `${n.options.host}:${n.options.port}` === ask);
      const replies = !ask
        ? await execPipeline(client, commands, wait)
        : node
          ? await execPipeline(node, commands, wait, true)
          : commands.map((): Outcome => ({ ok: false, error: new Error(`ASK to ${ask}, a node this client has no connection to`) }));
      members.forEach((i, j) => (outcomes[i] = replies[j]!));
    }),
  );
  return outcomes;
}

/** Where a MOVED or ASK reply sends its command (`host:port`); undefined for any other outcome. */
function redirection(outcome: Outcome): { ask: boolean; node: string } | undefined {
  const match = !outcome.ok && /^(MOVED|ASK) \d+ (\S+)/.exec((outcome.error as Error).message);
  return match ? { ask: match[1] === 'ASK', node: match[2]! } : undefined;
}

/** Hops one batch follows before a redirection is returned as its answer (transient: retried). */
const MAX_REDIRECTIONS = 5;

/**
 * Redirections, which mean the command ran nothing: MOVED after a failover or a finished slot
 * migration (the slot map is stale: refreshed, then the command goes where it says), ASK while a
 * slot is half-moved (the keys are not here: this command once to the named node, after ASKING).
 * ioredis follows a pipeline's redirection only when all its replies are the same one and none is
 * inside MULTI, so they are followed here, per command.
 */
async function execPerNode(client: Cluster, commands: readonly ScriptCommand[], wait?: Wait): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array(commands.length);
  let pending = commands.map((command, i) => ({ i, command, ask: undefined as string | undefined }));
  for (let hop = 0; pending.length > 0; hop++) {
    const replies = await execGrouped(client, pending, wait);
    const next: typeof pending = [];
    let moved = false;
    replies.forEach((outcome, j) => {
      const { i, command } = pending[j]!;
      outcomes[i] = outcome;
      const to = redirection(outcome);
      if (!to || hop >= MAX_REDIRECTIONS) return;
      next.push({ i, command, ask: to.ask ? to.node : undefined });
      moved ||= !to.ask;
    });
    if (moved) await new Promise<void>((resolve) => client.refreshSlotsCache(() => resolve()));
    pending = next;
  }
  return outcomes;
}

const unsupported = (reason: string) => new RedisError('DURABILITY_UNSUPPORTED', `durability.aof: ${reason}; nothing was written`, false);

/** ioredis, standalone or Sentinel (one pipeline per batch) or Cluster (one pipeline per node). */
export function ioredisConnection(client: Redis | Cluster): Connection {
  // ioredis prefixes KEYS but not the key names the scripts build from ARGV, nor SCAN patterns:
  // reads and verify would miss what persist wrote.
  const keyPrefix = (client as { options?: { keyPrefix?: unknown; redisOptions?: { keyPrefix?: unknown } } }).options;
  if (keyPrefix?.keyPrefix || keyPrefix?.redisOptions?.keyPrefix) {
    throw new ValidationError('options.client', "ioredis' keyPrefix is not supported (it prefixes KEYS but not the key names scripts derive, nor SCAN patterns): use the store's keys.prefix option instead");
  }
  return {
    staging: true,
    ...(client.isCluster && { slotOf: (key: string) => calculateSlot(key) }),
    evalMany: (commands, wait) => {
      if (client.isCluster) return execPerNode(client as Cluster, commands, wait);
      return commands.length === 1 && !commands[0]!.stage && !wait ? execOne(client as Redis, commands[0]!) : execPipeline(client, commands, wait);
    },
    waits: {
      async checkAof() {
        // Returns at once: numreplicas 0, and this connection's writes are fsynced or 1 ms passes.
        await client.call('WAITAOF', '1', '0', '1').catch((error: unknown) => {
          const text = error instanceof Error ? error.message : '';
          if (/unknown command/i.test(text)) throw unsupported('the server has no WAITAOF (Redis >= 7.2 has it)');
          if (/appendonly/i.test(text)) throw unsupported('the server runs without an AOF (appendonly no)');
          throw toSnapshotError(error);
        });
      },
    },
    async rangeByScoreDesc(key, min, max, count) {
      const flat = await client.call('ZRANGE', key, max, min, 'BYSCORE', 'REV', 'LIMIT', 0, count, 'WITHSCORES');
      return pairs(flat as unknown[]);
    },
    async scan(pattern) {
      const keys: string[] = [];
      for (const node of client.isCluster ? (client as Cluster).nodes('master') : [client as Redis]) {
        let cursor = '0';
        do {
          const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          keys.push(...batch);
          cursor = next;
        } while (cursor !== '0');
      }
      return keys;
    },
    get: (key) => client.get(key),
  };
}
