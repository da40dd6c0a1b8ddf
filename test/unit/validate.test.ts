/**
 * src/validate.ts and the store's option checks, without Redis: the edges of what is accepted
 * (the rejections are the corpus of test/faults/bad-input.test.ts).
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { createSnapshotStore, ValidationError } from '../../src/index.js';
import { checkId, checkInteger, checkName, validateSnapshot } from '../../src/validate.js';

const NOW = 1_700_000_000_000;
const DAY_MS = 86_400_000;
const limits = { now: NOW, maxPayloadBytes: 64 };
const snapshot = { region: 'mena', id: 'snap-1', timestamp: NOW, payload: { v: 1 } };

function fieldOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (error) {
    if (error instanceof ValidationError) return error.field;
    throw error;
  }
  return undefined;
}

const test = suite('validate', 9);

test('names: 1 to 64 of a-z 0-9 _ -, from a letter or digit', () => {
  for (const name of ['a', '0', 'sub-saharan-africa', 'scheduled_6h', 'x'.repeat(64)]) assert.is(checkName('region', name), name);
  assert.is(fieldOf(() => checkName('region', 'x'.repeat(65))), 'region');
  assert.is(fieldOf(() => checkName('trigger', 'Manual')), 'trigger');
});

test('ids: 1 to 128 of A-Z a-z 0-9 . _ -, from a letter or digit', () => {
  for (const id of ['A', '9', 'a.b_c-D', 'x'.repeat(128)]) assert.is(checkId('id', id), id);
  assert.is(fieldOf(() => checkId('id', 'x'.repeat(129))), 'id');
});

test('integers: safe, inside the bounds given', () => {
  assert.is(checkInteger('n', 0, 0), 0);
  assert.is(checkInteger('n', Number.MAX_SAFE_INTEGER, 0), Number.MAX_SAFE_INTEGER);
  assert.is(checkInteger('n', 100, 0, 100), 100);
  assert.is(fieldOf(() => checkInteger('n', 101, 0, 100)), 'n');
  assert.is(fieldOf(() => checkInteger('n', Number.MAX_SAFE_INTEGER + 1, 0)), 'n');
  assert.throws(() => checkInteger('options.retentionMs', 0, 1), /options\.retentionMs: expected an integer from 1 to 9007199254740991/);
});

test('a snapshot: payload serialised once, JSON text kept verbatim, trigger optional', () => {
  assert.equal(validateSnapshot(snapshot, limits), { region: 'mena', id: 'snap-1', timestamp: NOW, trigger: undefined, payloadText: '{"v":1}' });
  const text = ' [ 1, {"a" : "\u00e9"} ] ';
  assert.is(validateSnapshot({ ...snapshot, payload: text, trigger: 'manual' }, limits).payloadText, text);
  assert.is(validateSnapshot({ ...snapshot, payload: [] }, limits).payloadText, '[]');
});

test('timestamps: from 0 to a day after now', () => {
  assert.is(validateSnapshot({ ...snapshot, timestamp: 0 }, limits).timestamp, 0);
  assert.is(validateSnapshot({ ...snapshot, timestamp: NOW + DAY_MS }, limits).timestamp, NOW + DAY_MS);
  assert.throws(() => validateSnapshot({ ...snapshot, timestamp: NOW + DAY_MS + 1 }, limits), /timestamp: more than a day in the future/);
});

test('payload size counts UTF-8 bytes: 1, 2, 3 and 4 bytes a character', () => {
  const fits = (payload: string) => fieldOf(() => validateSnapshot({ ...snapshot, payload }, limits)) === undefined;
  // `["…"]` around 60 bytes of characters is exactly 64 bytes; one ASCII character more is over.
  for (const [char, bytes] of [['x', 1], ['\u00e9', 2], ['\u20ac', 3], ['\u{1f600}', 4]] as const) {
    const chars = char.repeat(60 / bytes);
    assert.ok(fits(`["${chars}"]`), `${bytes}-byte characters at the limit`);
    assert.not.ok(fits(`["${chars}x"]`), `${bytes}-byte characters over the limit`);
  }
});

test('payload size is exact when a high surrogate is followed by a non-surrogate; lone surrogates are refused', () => {
  const reason = (payload: string, maxPayloadBytes: number) => {
    try {
      validateSnapshot({ ...snapshot, payload }, { now: NOW, maxPayloadBytes });
      return undefined;
    } catch (error) {
      return (error as ValidationError).message;
    }
  };
  // 20 x (lone high surrogate, U+4E00): 20 x (3 + 3) bytes once encoded (U+FFFD for the lone one).
  const text = `["${'\ud800\u4e00'.repeat(20)}"]`;
  assert.match(reason(text, 200) ?? '', /lone UTF-16 surrogate/);
  assert.match(reason(`["a\udc00"]`, 200) ?? '', /lone UTF-16 surrogate/);
  // Serialised payloads escape lone surrogates (\ud800 in ASCII): they round-trip and are accepted.
  assert.is(fieldOf(() => validateSnapshot({ ...snapshot, payload: { s: '\ud800' } }, limits)), undefined);
  // A real pair is 4 bytes, exactly at the limit.
  assert.is(reason(`["${'\u{1f600}'.repeat(15)}"]`, 64), undefined);
});

test("a region named 'all' is refused: verify, repair and the CLI read it as every region", () => {
  assert.is(fieldOf(() => validateSnapshot({ ...snapshot, region: 'all' }, limits)), 'region');
});

test('store options: defaults and documented values accepted', () => {
  const client = new Redis({ lazyConnect: true });
  try {
    for (const options of [
      {},
      { dedup: false as const },
      { dedup: { windowMs: 1, ttlMs: 1 } },
      { latest: 'always' as const },
      { retry: false as const },
      { retry: { attempts: 0 } },
      { maxPayloadBytes: 2, retentionMs: 1 },
      { keys: { schema: 'worldmonitor-v1' as const, prefix: 'staging:' } },
    ]) {
      assert.type(createSnapshotStore({ client, ...options }).persist, 'function');
    }
    assert.is(fieldOf(() => createSnapshotStore({ client, maxPayloadBytes: 1 })), 'options.maxPayloadBytes');
  } finally {
    client.disconnect();
  }
});

test.run();
