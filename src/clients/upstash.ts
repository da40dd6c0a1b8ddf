import type { Redis } from '@upstash/redis';
import { pairs, type Connection, type Outcome, type ScriptCommand } from '../connection.js';
import { upstashRequestError, ValidationError } from '../errors.js';

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

/** Upstash refuses request bodies over 10 MB; this is the smaller reading of "10 MB". */
export const REQUEST_LIMIT_BYTES = 10_000_000;

/** UTF-8 length of JSON text (JSON.stringify escapes lone surrogates: surrogates come in pairs). */
function jsonUtf8Bytes(json: string): number {
  let n = json.length;
  for (let i = 0; i < json.length; i++) {
    const unit = json.charCodeAt(i);
    if (unit >= 0x80) n += unit < 0x800 || (unit >= 0xd800 && unit <= 0xdfff) ? 1 : 2;
  }
  return n;
}

/** The exact UTF-8 size of a command in a pipeline body, written as @upstash/redis writes it. */
export function commandBytes(c: ScriptCommand): number {
  return jsonUtf8Bytes(JSON.stringify([c.op, c.script, c.keys.length, ...c.keys, ...c.args]));
}

/**
 * The batch cut into runs whose request bodies (`[cmd,cmd,…]`) each fit the limit: one run, one
 * request, in the usual case. A command that cannot fit a request of its own is settled here with
 * a ValidationError and never sent.
 */
function underRequestLimit(commands: readonly ScriptCommand[], outcomes: Outcome[]): number[][] {
  const runs: number[][] = [];
  let size = Infinity;
  commands.forEach((c, i) => {
    const bytes = commandBytes(c);
    if (2 + bytes > REQUEST_LIMIT_BYTES) {
      const reason = `the request would be ${2 + bytes} bytes (the payload's JSON text escaped inside the JSON request), over Upstash's ${REQUEST_LIMIT_BYTES}-byte limit; nothing was sent`;
      outcomes[i] = { ok: false, error: new ValidationError('payload', reason) };
    } else if (size + 1 + bytes > REQUEST_LIMIT_BYTES) {
      runs.push([i]);
      size = 2 + bytes;
    } else {
      runs.at(-1)!.push(i);
      size += 1 + bytes;
    }
  });
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
      const outcomes: Outcome[] = new Array(commands.length);
      await Promise.all(
        underRequestLimit(commands, outcomes).map(async (run) => {
          const pipeline = client.pipeline();
          for (const i of run) {
            const c = commands[i]!;
            if (c.op === 'eval') pipeline.eval(c.script, [...c.keys], [...c.args]);
            else pipeline.evalsha(c.script, [...c.keys], [...c.args]);
          }
          (await send(pipeline)).forEach((outcome, j) => (outcomes[run[j]!] = outcome));
        }),
      );
      return outcomes;
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
