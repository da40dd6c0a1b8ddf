import type { Redis } from '@upstash/redis';
import { pairs, type Connection, type Outcome, type ScriptCommand } from '../connection.js';
import { upstashRequestError } from '../errors.js';

type Pipeline = ReturnType<Redis['pipeline']>;

export function isUpstash(client: unknown): client is Redis {
  const c = client as Partial<Redis> | null;
  return typeof c === 'object' && c !== null && typeof c.evalsha === 'function' && typeof c.pipeline === 'function' && 'readYourWritesSyncToken' in c;
}

/**
 * Sends a pipeline as one HTTP request and settles each command. Commands that Redis refused
 * come back as errors inside the 200 reply; when the request fails as a whole (the client has
 * already re-sent it if fetch threw), every command gets the same classified error.
 */
async function send(pipeline: Pipeline): Promise<Outcome[]> {
  try {
    const replies = await pipeline.exec<unknown[]>({ keepErrors: true });
    return replies.map(({ error, result }) => (error ? { ok: false, error: new Error(error) } : { ok: true, value: result }));
  } catch (error) {
    const failure = upstashRequestError(error);
    return Array.from({ length: pipeline.length() }, () => ({ ok: false, error: failure }));
  }
}

/** One command as one request: its value, or its classified error thrown. */
async function sendOne(pipeline: Pipeline): Promise<unknown> {
  const [outcome] = await send(pipeline);
  if (!outcome!.ok) throw outcome!.error;
  return outcome!.value;
}

/** Upstash refuses requests over 10 MB; JSON escaping can add a tenth to a payload's length. */
const REQUEST_LIMIT_CHARS = 8_000_000;

/** The batch cut into runs that each fit one request: one run, one request, in the usual case. */
function underRequestLimit(commands: readonly ScriptCommand[]): ScriptCommand[][] {
  const runs: ScriptCommand[][] = [[]];
  let size = 0;
  for (const c of commands) {
    const length = [c.script, ...c.keys, ...c.args].reduce((n, part) => n + part.length, 0);
    if (size + length > REQUEST_LIMIT_CHARS && runs.at(-1)!.length > 0) {
      runs.push([]);
      size = 0;
    }
    runs.at(-1)!.push(c);
    size += length;
  }
  return runs;
}

/**
 * @upstash/redis over REST: every batch is one explicit pipeline, one HTTP request, whatever the
 * client's auto-pipelining setting (with it off, separate calls are separate requests). Replies
 * are decoded so that automaticDeserialization on or off gives the same result (see the scripts'
 * Output blocks).
 */
export function upstashConnection(client: Redis): Connection {
  return {
    // A MULTI/EXEC is a request of its own (POST /multi-exec): it cannot share a batch's request.
    staging: false,
    async evalMany(commands) {
      const requests = await Promise.all(
        underRequestLimit(commands).map((batch) => {
          const pipeline = client.pipeline();
          for (const c of batch) {
            if (c.op === 'eval') pipeline.eval(c.script, [...c.keys], [...c.args]);
            else pipeline.evalsha(c.script, [...c.keys], [...c.args]);
          }
          return send(pipeline);
        }),
      );
      return requests.flat();
    },
    async rangeByScoreDesc(key, min, max, count) {
      return pairs((await sendOne(client.pipeline().zrange(key, max, min, { byScore: true, rev: true, offset: 0, count, withScores: true }))) as unknown[]);
    },
    async scan(pattern) {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = (await sendOne(client.pipeline().scan(cursor, { match: pattern, count: 1000 }))) as [unknown, unknown[]];
        keys.push(...batch.map(String));
        cursor = String(next);
      } while (cursor !== '0');
      return keys;
    },
    get: (key) => sendOne(client.pipeline().get(key)),
  };
}
