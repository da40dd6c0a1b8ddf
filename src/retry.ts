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
