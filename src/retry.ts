import type { Connection } from './connection.js';
import { RedisError, toSnapshotError } from './errors.js';
import { checkInteger, checkObject } from './validate.js';

/** How transient failures are retried: `attempts` retries after the first try, full jitter. */
export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultRetry: RetryPolicy = { attempts: 5, baseDelayMs: 50, maxDelayMs: 2_000 };
const noRetry: RetryPolicy = { attempts: 0, baseDelayMs: 0, maxDelayMs: 0 };

export function resolveRetry(option: false | Partial<RetryPolicy> | undefined): RetryPolicy {
  if (option === false) return noRetry;
  const p = { ...defaultRetry, ...checkObject('options.retry', option, 'false or { attempts, baseDelayMs, maxDelayMs }') };
  return {
    attempts: checkInteger('options.retry.attempts', p.attempts, 0, 100),
    baseDelayMs: checkInteger('options.retry.baseDelayMs', p.baseDelayMs, 0, 60_000),
    maxDelayMs: checkInteger('options.retry.maxDelayMs', p.maxDelayMs, 0, 600_000),
  };
}

/** Delay before retry number `attempt` (0-based): uniform in [0, min(max, base * 2^attempt)]. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  return Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `call`, retrying its transient failures under `policy`; what it throws is a SnapshotError. */
async function withRetry<T>(policy: RetryPolicy, call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (thrown) {
      const error = toSnapshotError(thrown);
      if (!(error instanceof RedisError && error.transient) || attempt >= policy.attempts) throw error;
      await sleep(backoffMs(policy, attempt));
    }
  }
}

/**
 * The connection with its single-command calls (list's range, verify's scans and reads) retried
 * under the same policy and the same notion of transient as script calls (Script.runMany), so
 * every call the store makes retries alike. All of them are reads: repeating one is harmless.
 */
export function retrying(connection: Connection, policy: RetryPolicy): Connection {
  return {
    staging: connection.staging,
    evalMany: (commands, wait) => connection.evalMany(commands, wait),
    ...(connection.waits && { waits: connection.waits }),
    rangeByScoreDesc: (key, min, max, count) => withRetry(policy, () => connection.rangeByScoreDesc(key, min, max, count)),
    scan: (pattern) => withRetry(policy, () => connection.scan(pattern)),
    get: (key) => withRetry(policy, () => connection.get(key)),
  };
}
