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

/** How one command of a batch ended. `error` is the client's own, unsanitised. */
export type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** What the store needs from a client. One implementation per client library, in clients/. */
export interface Connection {
  /** Whether evalMany takes commands with `stage` (a MULTI/EXEC per command inside the batch). */
  readonly staging: boolean;
  /** Sends all commands in one round trip (one pipeline flush, one HTTP request). Never rejects. */
  evalMany(commands: readonly ScriptCommand[]): Promise<Outcome[]>;
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
