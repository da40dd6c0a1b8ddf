import type { Connection, Outcome, ScriptCommand, Wait } from './connection.js';
import { RedisError, isNoScript, toSnapshotError } from './errors.js';
import { backoffMs, type RetryPolicy } from './retry.js';

export interface ScriptCall {
  readonly keys: readonly string[];
  readonly args: readonly string[];
  readonly stage?: ScriptCommand['stage'];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A Lua script with its SHA1. The only place that knows about EVALSHA, EVAL and NOSCRIPT: calls go
 * as EVALSHA; those answered NOSCRIPT (cache flushed, server restarted, failover) go again at once
 * as EVAL, which also reloads the cache for the next calls. EVAL rather than SCRIPT LOAD: on
 * Upstash a SCRIPT LOAD does not advance the read-your-writes token.
 */
export class Script {
  constructor(
    readonly text: string,
    readonly sha: string,
  ) {}

  /**
   * Runs every call, batched into one round trip per try, and settles each: errors are
   * SnapshotErrors. Transient failures are retried (a replayed persist is harmless). With `wait`,
   * every try's batch ends with it, and a call's `durable` comes from the try that settled it.
   */
  async runMany(connection: Connection, calls: readonly ScriptCall[], retry: RetryPolicy, wait?: Wait): Promise<Outcome[]> {
    const results: Outcome[] = new Array(calls.length);
    const asEval = new Set<number>();
    let pending = calls.map((_, i) => i);
    for (let attempt = 0; pending.length > 0; ) {
      const outcomes = await connection.evalMany(
        pending.map((i) => {
          const op = asEval.has(i) ? 'eval' : 'evalsha';
          const { keys, args, stage } = calls[i]!;
          return { op, script: op === 'eval' ? this.text : this.sha, keys, args, stage };
        }),
        wait,
      );
      const next: number[] = [];
      let backoff = false;
      outcomes.forEach((outcome, j) => {
        const i = pending[j]!;
        if (outcome.ok) {
          results[i] = outcome;
        } else if (!asEval.has(i) && isNoScript(outcome.error)) {
          asEval.add(i);
          next.push(i);
        } else {
          const error = toSnapshotError(outcome.error);
          if (error instanceof RedisError && error.transient && attempt < retry.attempts) {
            next.push(i);
            backoff = true;
          } else {
            results[i] = { ok: false, error };
          }
        }
      });
      if (backoff) await sleep(backoffMs(retry, attempt++));
      pending = next;
    }
    return results;
  }
}
