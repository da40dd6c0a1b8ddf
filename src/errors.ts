/**
 * Every error this library throws or returns is a SnapshotError. Messages name what is wrong and
 * never carry a payload, Lua source, a token or a client's own copy of the command.
 */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
  constructor(
    /** Stable, machine-readable. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Bad input, rejected before any request is sent. */
export class ValidationError extends SnapshotError {
  override name = 'ValidationError';
  constructor(
    /** The argument at fault, e.g. `region`, `payload`, `options.retentionMs`. */
    readonly field: string,
    reason: string,
  ) {
    super('INVALID_INPUT', `${field}: ${reason}`);
  }
}

/** A script (persist.lua, repair.lua) refused the call before its first write; the keyspace is unchanged. */
export class ScriptRefusedError extends SnapshotError {
  override name = 'ScriptRefusedError';
}

/** Redis or the network failed; `transient` errors were retried until the retry budget ran out. */
export class RedisError extends SnapshotError {
  override name = 'RedisError';
  constructor(
    code: string,
    message: string,
    readonly transient: boolean,
  ) {
    super(code, message);
  }
}

/** The one mapping from the scripts' error replies (`SNAPSHOT_<CODE> <detail>`) to errors. */
const scriptErrors: Record<string, (detail: string) => string> = {
  ARGS: (detail) => `the script rejected argument ${detail} (a bug in this library: please report it)`,
  WRONGTYPE: (detail) => `the ${detail} key exists with a type the scripts do not write; nothing was written`,
  CONFLICT: (detail) =>
    detail === 'by-id'
      ? 'this snapshot id is already stored for another snapshot (another region, or another timestamp); nothing was written'
      : 'this snapshot id is already stored with another timestamp; nothing was written',
  NOPERM: (detail) => `the Redis user may not run ${detail} on this region's keys (ACL); nothing was written`,
};

// MOVED and ASK: nothing ran; ones the ioredis adapter did not follow within its bound are retried.
const transientReplies = new Set(['LOADING', 'BUSY', 'TRYAGAIN', 'CLUSTERDOWN', 'MASTERDOWN', 'READONLY', 'MOVED', 'ASK']);
const transientSocketCodes = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET']);

/** Text of an error reply up to where clients start quoting the command back. */
function replyText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split(/, command was:|\n/)[0]!.slice(0, 200);
}

/** True when the server answered that it has no script with this SHA (text differs by version). */
export function isNoScript(error: unknown): boolean {
  return /^(?:Command failed: )?NOSCRIPT/.test(replyText(error));
}

/**
 * An @upstash/redis request that failed as a whole: per-command errors arrive inside a 200
 * pipeline reply, so this is the network, a non-2xx status or an unreadable body. The client
 * hides the status and headers, so the server's error text decides: a refused token or an
 * oversized request is permanent; anything else (429, 5xx, a lost connection) is transient.
 */
export function upstashRequestError(error: unknown): RedisError {
  const name = error instanceof Error ? error.name : '';
  // Its message quotes up to 200 bytes of the body, which may be a cut-off reply holding a payload.
  if (name === 'UpstashJSONParseError') return new RedisError('BAD_REPLY', 'the server answered with a body that is not JSON', true);
  const reply = replyText(error);
  const text = `Upstash request failed: ${reply}`;
  if (name !== 'UpstashError') return new RedisError('CONNECTION', text, true);
  if (/^(?:WRONGPASS|NOAUTH|NOPERM)\b|unauthorized/i.test(reply)) return new RedisError('AUTH', text, false);
  if (/request size/i.test(reply)) return new RedisError('REQUEST_TOO_LARGE', text, false);
  return new RedisError('HTTP', text, true);
}

/**
 * Turns whatever a client threw or returned into a SnapshotError with a clean message. `cause`
 * is deliberately dropped: ioredis and @upstash/redis attach the full command (payload, script).
 */
export function toSnapshotError(error: unknown): SnapshotError {
  if (error instanceof SnapshotError) return error;
  const text = replyText(error).replace(/^(?:Command failed: |ERR )/, '');
  const script = /^SNAPSHOT_([A-Z]+) (\S+)/.exec(text);
  if (script) {
    const describe = scriptErrors[script[1]!];
    if (describe) return new ScriptRefusedError(`SCRIPT_${script[1]}`, describe(script[2]!));
  }
  // A script read a key it derives (not in KEYS) of a slot being migrated, and the key is not on
  // this node ("non local key"; newer servers say "rehashing" for a multi-key command there).
  // persist.lua and read.lua read such keys before their first write, so nothing was written;
  // a repair.lua step redoes on a retry what it may have written. A retry runs once the slot settles.
  if (/^(?:Script attempted to access a non local key|Unable to execute command '\w+' in script because undeclared keys were accessed during rehashing)/.test(text)) {
    return new RedisError('TRYAGAIN', text, true);
  }
  const word = /^[A-Z]+(?= |$)/.exec(text)?.[0];
  if (word && transientReplies.has(word)) return new RedisError(word, text, true);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && transientSocketCodes.has(code)) return new RedisError(code, text, true);
  // Whether the command ran is unknown in every case below (ioredis's AbortError, a command cut
  // off with its connection, has no `code`): transient, so it is retried and ends `replayed`.
  if ((error as Error | null)?.name === 'AbortError' || /Connection is closed|Command aborted|Command timed out|fetch failed|socket hang up|Stream isn't writeable|max retries per request/i.test(text)) {
    return new RedisError('CONNECTION', text, true);
  }
  return new RedisError(word ?? 'REDIS', text, false);
}
