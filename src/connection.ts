/** One script call as it goes on the wire: EVALSHA with a SHA1, or EVAL with the script text. */
export interface ScriptCommand {
  readonly op: 'evalsha' | 'eval';
  /** The SHA1 for `evalsha`, the text for `eval`. */
  readonly script: string;
  readonly keys: readonly string[];
  readonly args: readonly string[];
  /** SET this key to this value in the same MULTI/EXEC, just before the call (staged transfer). */
  readonly stage?: { readonly key: string; readonly value: string } | undefined;
}

/**
 * What a batch waits for after its writes, on the same connection: `WAIT replicas timeoutMs`, or
 * with `aof`, `WAITAOF 1 replicas timeoutMs` (the local AOF and that many replicas' AOFs fsynced).
 */
export interface Wait {
  readonly replicas: number;
  readonly timeoutMs: number;
  readonly aof: boolean;
}

/**
 * How one command of a batch ended. `error` is the client's own, unsanitised. `durable`, only when
 * the batch was sent with a Wait: whether the wait confirmed every write sent before it.
 */
export type Outcome = { readonly ok: true; readonly value: unknown; readonly durable?: boolean } | { readonly ok: false; readonly error: unknown };

/** What the store needs from a client. One implementation per client library, in clients/. */
export interface Connection {
  /** Whether evalMany takes commands with `stage` (a MULTI/EXEC per command inside the batch). */
  readonly staging: boolean;
  /**
   * Sends all commands in one round trip (one pipeline flush, one HTTP request). Never rejects.
   * With `wait`, each connection's part of the batch ends with that wait (one per node).
   */
  evalMany(commands: readonly ScriptCommand[], wait?: Wait): Promise<Outcome[]>;
  /**
   * Present where the client can wait on its own connection (TCP, not REST). `checkAof` rejects
   * with a typed error when the server cannot run `WAITAOF 1 …` (before Redis 7.2, or AOF off).
   */
  readonly waits?: { checkAof(): Promise<void> };
  /**
   * Present on a Redis Cluster connection only: a key's hash slot. Redis Cluster runs a script
   * only if all its keys share one, which the store checks before sending.
   */
  readonly slotOf?: (key: string) => number;
  /** Sorted-set members scored in [min, max], highest score first, at most `count` of them. */
  rangeByScoreDesc(key: string, min: number, max: number, count: number): Promise<Array<{ member: string; score: number }>>;
  /** Every key matching the glob, on every primary. For verify and repair, never on a hot path. */
  scan(pattern: string): Promise<string[]>;
  /** A string key's value (a client that JSON-parses replies may hand it over parsed), or null. */
  get(key: string): Promise<unknown>;
}

/** Members and scores from a flat `[member, score, …]` reply, whatever a client parsed them into. */
export function pairs(flat: readonly unknown[]): Array<{ member: string; score: number }> {
  const out: Array<{ member: string; score: number }> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: String(flat[i]), score: Number(flat[i + 1]) });
  return out;
}
