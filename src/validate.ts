import { ValidationError } from './errors.js';

/** A snapshot as callers hand it to `persist`. */
export interface SnapshotInput {
  /** `^[a-z0-9][a-z0-9_-]*$`, at most 64 characters. */
  region: string;
  /** `^[A-Za-z0-9][A-Za-z0-9._-]*$`, at most 128 characters. */
  id: string;
  /** Generation time, ms since the epoch. */
  timestamp: number;
  /** A JSON object or array, or its JSON text (stored verbatim). */
  payload: unknown;
  /** Why it was generated, e.g. `scheduled_6h`; names the dedup bucket. Same rule as region. */
  trigger?: string;
}

/** A snapshot that passed validation, payload serialised. */
export interface ValidSnapshot {
  region: string;
  id: string;
  timestamp: number;
  payloadText: string;
  trigger: string | undefined;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DAY_MS = 86_400_000;

export function checkName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new ValidationError(field, 'expected 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit');
  }
  return value;
}

export function checkId(field: string, value: unknown): string {
  if (typeof value !== 'string' || !ID.test(value)) {
    throw new ValidationError(field, 'expected 1-128 characters of A-Z, a-z, 0-9, ., _ and -, starting with a letter or digit');
  }
  return value;
}

/** A region name: a name, and not `all`, which verify, repair and the CLI take for every region. */
export function checkRegion(field: string, value: unknown): string {
  if (checkName(field, value) === 'all') throw new ValidationError(field, "'all' is reserved: verify, repair and the CLI read it as every region");
  return value as string;
}

/**
 * An optional argument that must be an object when given: undefined → {}. `shape` names the
 * properties it may have, e.g. `{ since?, limit? }`; any other own property is refused by name
 * (a typo such as `retentionMS` would otherwise be silently ignored).
 */
export function checkObject<T extends object>(field: string, value: T | undefined, shape: string): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(field, `expected ${shape}`);
  const known = new Set((/\{([^}]*)\}/.exec(shape)?.[1] ?? '').split(',').map((name) => name.trim().replace(/\?$/, '')));
  const unknown = Object.keys(value).filter((name) => !known.has(name));
  if (unknown.length > 0) throw new ValidationError(field, `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n.slice(0, 64))).join(', ')} (expected ${shape})`);
  return value;
}

/** The caller's `now` (ms since the epoch), checked; the local clock when not given. */
export function checkNow(now: number | undefined): number {
  return checkInteger('now', now ?? Date.now(), 0);
}

/** The `now` of an `{ now? }` argument, checked. */
export function clockOf(at: { now?: number } | undefined): number {
  return checkNow(checkObject('at', at, '{ now? }').now);
}

export function checkInteger(field: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ValidationError(field, `expected an integer from ${min} to ${max}`);
  }
  return value;
}

/** UTF-8 length of a well-formed string (no lone surrogate) without encoding it. */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A surrogate pair is 2 code units and 4 bytes: counted once per unit, as 2 + 2.
    if (c >= 0x80) bytes += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return bytes;
}

/** ES2024's String.prototype.isWellFormed (Node 20, every edge runtime): native, O(1) on one-byte strings. */
const wellFormed = (text: string) => (text as string & { isWellFormed(): boolean }).isWellFormed();

/** JSON text of the payload: verbatim when it already is JSON text, else serialised once. */
function payloadText(payload: unknown, maxBytes: number): string {
  let text: string | undefined;
  if (typeof payload === 'string') {
    try {
      JSON.parse(payload);
    } catch {
      throw new ValidationError('payload', 'a string payload must be JSON text');
    }
    text = payload;
  } else {
    try {
      text = JSON.stringify(payload);
    } catch (error) {
      // Name the cause, never quote it: a toJSON or getter may throw with payload text.
      const message = error instanceof TypeError ? error.message : '';
      const cause = /circular/i.test(message) ? 'it contains a cycle' : /BigInt/.test(message) ? 'it contains a BigInt' : 'a toJSON method or getter threw';
      throw new ValidationError('payload', `not serialisable to JSON: ${cause} (expected a JSON object or array)`);
    }
  }
  // Readers must get back what they can tell apart from a string reply: an object or an array.
  if (text === undefined || !/^\s*[{[]/.test(text)) {
    throw new ValidationError('payload', 'expected a JSON object or array');
  }
  const tooLarge = () => new ValidationError('payload', `larger than maxPayloadBytes (${maxBytes} bytes)`);
  if (text.length > maxBytes) throw tooLarge();
  if (!wellFormed(text)) throw new ValidationError('payload', 'contains a lone UTF-16 surrogate, which UTF-8 cannot carry: it would not read back as given');
  // A code unit is at most 3 bytes: count them (a loop over the whole text) only when that could pass the limit.
  if (text.length * 3 > maxBytes && utf8Length(text) > maxBytes) throw tooLarge();
  return text;
}

/** Validates one snapshot for a store; throws ValidationError naming the first fault. */
export function validateSnapshot(input: unknown, limits: { now: number; maxPayloadBytes: number }): ValidSnapshot {
  if (typeof input !== 'object' || input === null) throw new ValidationError('snapshot', 'expected an object');
  const s = input as Partial<SnapshotInput>;
  const region = checkRegion('region', s.region);
  const id = checkId('id', s.id);
  const timestamp = checkInteger('timestamp', s.timestamp, 0);
  if (timestamp > limits.now + DAY_MS) throw new ValidationError('timestamp', 'more than a day in the future (expected ms since the epoch)');
  const trigger = s.trigger === undefined ? undefined : checkName('trigger', s.trigger);
  return { region, id, timestamp, trigger, payloadText: payloadText(s.payload, limits.maxPayloadBytes) };
}
