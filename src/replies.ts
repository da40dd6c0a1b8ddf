import { RedisError } from './errors.js';
import type { PersistResult, PersistStatus, StoredSnapshot } from './store.js';

/** Decoding of the scripts' replies, identical whether or not the client JSON-parsed strings. */

const statuses: Record<number, PersistStatus> = { 1: 'persisted', 2: 'replayed', 3: 'duplicate', 4: 'expired' };

function badReply(): never {
  throw new RedisError('BAD_REPLY', 'unexpected reply shape from the server', false);
}

/** persist.lua's reply: integers only, so every client hands it over alike. */
export function decodePersist(value: unknown): PersistResult {
  if (!Array.isArray(value) || value.length !== 3) badReply();
  const status = statuses[Number(value[0])];
  if (!status) badReply();
  return { status, latestAdvanced: Number(value[1]) === 1, pruned: Number(value[2]) };
}

/**
 * read.lua's reply. A client that JSON-parses strings (@upstash/redis by default) hands the id
 * over as a number, boolean or null when it reads like one, and the payload as an object or
 * array: String() restores the first exactly, and a payload is never a bare JSON string.
 */
export function decodeRead(value: unknown): StoredSnapshot | null {
  if (value === null) return null;
  if (!Array.isArray(value) || value.length !== 3) badReply();
  const [id, timestamp, payload] = value;
  return { id: String(id), timestamp: Number(timestamp), payload: typeof payload === 'string' ? JSON.parse(payload) : payload };
}
