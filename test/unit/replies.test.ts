import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { RedisError } from '../../src/errors.js';
import { decodePersist, decodeRead } from '../../src/replies.js';

const test = suite('replies', 3);

/** What @upstash/redis's automaticDeserialization does to every string of a reply. */
function deserialize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(deserialize);
  if (typeof value !== 'string') return value;
  try {
    const parsed: unknown = JSON.parse(value);
    return typeof parsed === 'number' && String(parsed) !== value ? value : parsed;
  } catch {
    return value;
  }
}

test('persist replies decode to the same result, raw or deserialised', () => {
  for (const [reply, expected] of [
    [[1, 1, 0], { status: 'persisted', latestAdvanced: true, pruned: 0 }],
    [[2, 0, 0], { status: 'replayed', latestAdvanced: false, pruned: 0 }],
    [[3, 0, 0], { status: 'duplicate', latestAdvanced: false, pruned: 0 }],
    [[4, 0, 0], { status: 'expired', latestAdvanced: false, pruned: 0 }],
    [[1, 0, 7], { status: 'persisted', latestAdvanced: false, pruned: 7 }],
  ] as const) {
    assert.equal(decodePersist(reply), expected);
    assert.equal(decodePersist(deserialize(reply)), expected);
  }
});

test('read replies decode to the same snapshot, raw or deserialised, for ids that read like JSON', () => {
  const payload = { region_id: 'mena', n: 12345678901234567890, nested: ['1', 2, null] };
  for (const id of ['a1', '123', '007', '1e5', 'true', 'null', '12345678901234567890', '1.50']) {
    const reply = [id, 1795845600000, JSON.stringify(payload)];
    const expected = { id, timestamp: 1795845600000, payload: JSON.parse(JSON.stringify(payload)) };
    assert.equal(decodeRead(reply), expected, id);
    assert.equal(decodeRead(deserialize(reply)), expected, id);
  }
  assert.is(decodeRead(null), null);
});

test('a reply of another shape is a BAD_REPLY RedisError, not a wrong result', () => {
  for (const reply of [undefined, 'OK', [1, 1], [9, 0, 0], {}]) {
    assert.throws(() => decodePersist(reply), (e: unknown) => e instanceof RedisError && e.code === 'BAD_REPLY');
  }
  assert.throws(() => decodeRead(['a', 1]), (e: unknown) => e instanceof RedisError && e.code === 'BAD_REPLY');
});

test.run();
