import type { Redis } from 'ioredis';

const RETENTION_S = 7_776_000;

/**
 * The seeder's legacy path, as DESIGN.md describes it, for comparisons and for producing drift:
 * a separate dedup claim, then six commands as one (non-atomic) pipeline, payload twice.
 * Returns false when the dedup bucket was already claimed.
 */
export async function legacyPersist(
  client: Redis,
  s: { region: string; id: string; timestamp: number; payload: string; trigger: string },
  now = Date.now(),
): Promise<boolean> {
  const claimed = await client.set(`dedup:snapshot:v1:${s.region}:${s.trigger}:${Math.floor(s.timestamp / 900_000)}`, s.id, 'EX', 900, 'NX');
  if (claimed !== 'OK') return false;
  await legacyPipeline(client, s, now).exec();
  return true;
}

/** The six writes of a legacy persist, queued on a pipeline (not yet sent). */
export function legacyPipeline(client: Redis, s: { region: string; id: string; timestamp: number; payload: string }, now = Date.now()) {
  return client
    .pipeline()
    .set(`intelligence:snapshot:v1:${s.region}:${s.timestamp}`, s.payload, 'EX', RETENTION_S)
    .set(`intelligence:snapshot-by-id:v1:${s.id}`, s.payload, 'EX', RETENTION_S)
    .set(`intelligence:snapshot:v1:${s.region}:latest`, s.id, 'EX', RETENTION_S)
    .zadd(`intelligence:snapshot-index:v1:${s.region}`, s.timestamp, s.id)
    .zremrangebyscore(`intelligence:snapshot-index:v1:${s.region}`, '-inf', `(${now - RETENTION_S * 1000}`)
    .del(`intelligence:snapshot:v1:${s.region}:live`);
}
