import type { Redis } from 'ioredis';

const RETENTION_S = 7_776_000;

type LegacySnapshot = { region: string; id: string; timestamp: number; payload: string };

/**
 * The legacy key layout, written out as the legacy writer and the application's readers use it
 * (not taken from src/keys.ts, so that the tests check the product against it).
 */
export const legacyKeys = {
  ts: (r: string, t: number) => `intelligence:snapshot:v1:${r}:${t}`,
  byId: (id: string) => `intelligence:snapshot-by-id:v1:${id}`,
  latest: (r: string) => `intelligence:snapshot:v1:${r}:latest`,
  index: (r: string) => `intelligence:snapshot-index:v1:${r}`,
  live: (r: string) => `intelligence:snapshot:v1:${r}:live`,
  /** The claim of `trigger`'s 15-minute bucket holding timestamp `t`. */
  dedup: (r: string, trigger: string, t: number) => `dedup:snapshot:v1:${r}:${trigger}:${Math.floor(t / 900_000)}`,
};

/**
 * The seeder's legacy path, as DESIGN.md describes it, for comparisons and for producing drift:
 * a separate dedup claim, then six commands as one (non-atomic) pipeline, payload twice.
 * Returns false when the dedup bucket was already claimed.
 */
export async function legacyPersist(client: Redis, s: LegacySnapshot & { trigger: string }, now = Date.now()): Promise<boolean> {
  if (!(await legacyClaim(client, s))) return false;
  await legacyPipeline(client, s, now).exec();
  return true;
}

/** The legacy dedup claim, a request of its own: `SET … <id> EX 900 NX`. */
export async function legacyClaim(client: Redis, s: { region: string; id: string; timestamp: number; trigger: string }): Promise<boolean> {
  return (await client.set(legacyKeys.dedup(s.region, s.trigger, s.timestamp), s.id, 'EX', 900, 'NX')) === 'OK';
}

/**
 * The six writes of a legacy persist, in pipeline order, as command arrays; `now` is the legacy
 * writer's clock, `retentionS` its retention (90 days in the field).
 */
export function legacyCommands(s: LegacySnapshot, now = Date.now(), retentionS = RETENTION_S): string[][] {
  const index = legacyKeys.index(s.region);
  return [
    ['SET', legacyKeys.ts(s.region, s.timestamp), s.payload, 'EX', String(retentionS)],
    ['SET', legacyKeys.byId(s.id), s.payload, 'EX', String(retentionS)],
    ['SET', legacyKeys.latest(s.region), s.id, 'EX', String(retentionS)],
    ['ZADD', index, String(s.timestamp), s.id],
    ['ZREMRANGEBYSCORE', index, '-inf', `(${now - retentionS * 1000}`],
    ['DEL', legacyKeys.live(s.region)],
  ];
}

/** The six writes of a legacy persist, queued on a pipeline (not yet sent). */
export function legacyPipeline(client: Redis, s: LegacySnapshot, now = Date.now()) {
  const pipeline = client.pipeline();
  for (const [command, ...args] of legacyCommands(s, now)) pipeline.call(command!, ...args);
  return pipeline;
}

/**
 * A legacy persist whose pipeline was cut after its first `k` commands (0..6): the claim, then
 * only those commands reach Redis, which is the keyspace a cut connection leaves (the cut sweep
 * in test/faults proves cuts land between commands).
 */
export async function legacyCut(client: Redis, s: LegacySnapshot & { trigger: string }, k: number, now = Date.now()): Promise<boolean> {
  if (!(await legacyClaim(client, s))) return false;
  const pipeline = client.pipeline();
  for (const [command, ...args] of legacyCommands(s, now).slice(0, k)) pipeline.call(command!, ...args);
  await pipeline.exec();
  return true;
}
