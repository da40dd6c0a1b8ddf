/**
 * Bad input writes nothing (DESIGN.md invariant 6). Every input of the corpus must be rejected
 * with a ValidationError naming the argument and saying what is expected, never quoting the
 * payload, before any byte is sent: the store talks to Redis through a TcpProxy whose upstream
 * byte count must not move, and the keyspace must be unchanged.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { createSnapshotStore, ValidationError, type SnapshotInput, type SnapshotStore, type SnapshotStoreOptions } from '../../src/index.js';
import { checkInvariants } from '../support/checker.js';
import { dumpKeyspace } from '../support/keyspace.js';
import { TcpProxy } from '../support/proxy.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const NOW = Date.now();
const DAY_MS = 86_400_000;
const MAX_PAYLOAD_BYTES = 64;
/** Put into every payload of the corpus: no message may contain it. */
const SECRET = 'PAYLOAD-SECRET';
const good: SnapshotInput = { region: 'mena', id: 'snap-1', timestamp: NOW, payload: { v: 1 }, trigger: 'scheduled_6h' };

interface BadInput {
  /** What the input is, for failure messages. */
  name: string;
  /** The ValidationError's `field`. */
  field: string;
  /** The call; resolves to the rejection of a persistMany slot, or throws. */
  call: (store: SnapshotStore) => unknown;
}

const cyclic: Record<string, unknown> = { [SECRET]: 1 };
cyclic.self = cyclic;
const badNames: unknown[] = [
  '', ' ', 'me na', ' mena', 'mena\n', 'me\nna', 'me\tna', 'me:na', 'me{na}', '{mena}', 'mena*', 'me?na', 'me[n]a', 'Mena', 'MENA',
  '-mena', '_mena', 'm\u00e9na', 'mena\u0000', 'x'.repeat(65), 1, 0, null, {}, [], ['mena'], true,
];
const badIds: unknown[] = [
  '', ' ', 'snap 1', 'snap\n1', 'snap\t1', 'snap:1', '{snap}', 'snap*', 'snap?', 'snap[1]', '.snap', '-snap', '_snap', 'sn\u00e4p', 'x'.repeat(129), 42, null, {}, [],
];
const badTimestamps: unknown[] = [NaN, Infinity, -Infinity, -1, 1.5, NOW + 0.5, 2 ** 53, 2 ** 53 + 2, 1e300, String(NOW), null, {}, [NOW], NOW + DAY_MS + 1];
/** Payload and why it is bad. */
const badPayloads: Array<[string, unknown]> = [
  ['cyclic', cyclic],
  ['BigInt', 10n],
  ['object with a BigInt', { [SECRET]: 10n }],
  ['undefined', undefined],
  ['function', () => SECRET],
  ['symbol', Symbol(SECRET)],
  ['plain string', SECRET],
  ['JSON string', JSON.stringify(SECRET)],
  ['JSON number text', '42'],
  ['JSON null text', 'null'],
  ['JSON boolean text', 'true'],
  ['empty string', ''],
  ['number', 42],
  ['null', null],
  ['true', true],
  ['false', false],
  ['truncated JSON text', `{"${SECRET}": 1`],
  ['single-quoted JSON text', `{'${SECRET}': 1}`],
  ['JSON text with trailing garbage', `{"${SECRET}": 1} x`],
  ['toJSON returning a string', { toJSON: () => SECRET }],
  ['over the limit (ASCII)', { [SECRET]: 'x'.repeat(MAX_PAYLOAD_BYTES) }],
  ['JSON text over the limit', `["${SECRET}${'x'.repeat(MAX_PAYLOAD_BYTES)}"]`],
  // 2 bytes per character in UTF-8: under the limit in length, over it in bytes.
  ['over the limit in UTF-8 bytes only', { s: '\u00e9'.repeat(40) }],
  ['over the limit in UTF-8 bytes only (4-byte characters)', `["${'\u{1f600}'.repeat(20)}"]`],
];

const persistOne = (snapshot: unknown) => (store: SnapshotStore) => store.persist(snapshot as SnapshotInput, { now: NOW });
/** A bad snapshot in a batch of one: rejected in its slot, the call itself resolves. */
const persistInBatch = (snapshot: unknown) => async (store: SnapshotStore) => {
  const [slot] = await store.persistMany([snapshot as SnapshotInput], { now: NOW });
  if (slot?.status === 'rejected') throw slot.reason;
  return slot;
};

function snapshotCases(name: string, field: string, snapshot: unknown): BadInput[] {
  return [
    { name: `persist: ${name}`, field, call: persistOne(snapshot) },
    { name: `persistMany slot: ${name}`, field, call: persistInBatch(snapshot) },
  ];
}

const show = (value: unknown) => (typeof value === 'string' ? JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value) : String(value));
/** A store created over the proxied client with the given options on top of the suite's. */
const withStore = (options: Record<string, unknown>) => () => createSnapshotStore({ client: viaProxy, ...baseOptions, ...options } as SnapshotStoreOptions);

const corpus: BadInput[] = [
  ...[null, undefined, 5, 'mena', true].flatMap((s) => snapshotCases(`snapshot ${show(s)}`, 'snapshot', s)),
  ...badNames.flatMap((region) => [
    ...snapshotCases(`region ${show(region)}`, 'region', { ...good, region }),
    { name: `readLatest: region ${show(region)}`, field: 'region', call: (store: SnapshotStore) => store.readLatest(region as string, { now: NOW }) },
    { name: `list: region ${show(region)}`, field: 'region', call: (store: SnapshotStore) => store.list(region as string, { now: NOW }) },
  ]),
  ...badNames.flatMap((trigger) => snapshotCases(`trigger ${show(trigger)}`, 'trigger', { ...good, trigger })),
  ...badIds.flatMap((id) => [
    ...snapshotCases(`id ${show(id)}`, 'id', { ...good, id }),
    { name: `readById: id ${show(id)}`, field: 'id', call: (store: SnapshotStore) => store.readById('mena', id as string, { now: NOW }) },
  ]),
  ...badTimestamps.flatMap((timestamp) => snapshotCases(`timestamp ${show(timestamp)}`, 'timestamp', { ...good, timestamp })),
  ...badPayloads.flatMap(([name, payload]) => snapshotCases(`payload ${name}`, 'payload', { ...good, payload })),
  ...[NaN, -1, 1.5, Infinity, String(NOW), 2 ** 53].flatMap((now) => [
    { name: `persist: now ${show(now)}`, field: 'now', call: (store: SnapshotStore) => store.persist(good, { now: now as number }) },
    { name: `persistMany: now ${show(now)}`, field: 'now', call: (store: SnapshotStore) => store.persistMany([good], { now: now as number }) },
    { name: `readLatest: now ${show(now)}`, field: 'now', call: (store: SnapshotStore) => store.readLatest('mena', { now: now as number }) },
    { name: `list: now ${show(now)}`, field: 'now', call: (store: SnapshotStore) => store.list('mena', { now: now as number }) },
  ]),
  { name: 'persistMany: not an array', field: 'snapshots', call: (store) => store.persistMany(good as unknown as SnapshotInput[]) },
  { name: 'readLatestMany: not an array', field: 'regions', call: (store) => store.readLatestMany('mena' as unknown as string[]) },
  { name: 'readLatestMany: a bad region', field: 'regions[1]', call: (store) => store.readLatestMany(['mena', 'Bad Region']) },
  ...(
    [
      ['since', -1], ['since', 1.5], ['since', 'yesterday'], ['since', NaN],
      ['until', -1], ['until', Infinity], ['until', '1'],
      ['limit', 0], ['limit', -1], ['limit', 1.5], ['limit', '3'], ['limit', NaN],
    ] as const
  ).map(([option, value]) => ({
    name: `list: ${option} ${show(value)}`,
    field: `options.${option}`,
    call: (store: SnapshotStore) => store.list('mena', { now: NOW, [option]: value }),
  })),
  ...(
    [
      ['retentionMs', 0], ['retentionMs', -1], ['retentionMs', 1.5], ['retentionMs', '90d'], ['retentionMs', NaN], ['retentionMs', Infinity],
      ['maxPayloadBytes', 0], ['maxPayloadBytes', 1], ['maxPayloadBytes', '8MB'], ['maxPayloadBytes', 2 ** 60], ['maxPayloadBytes', NaN],
      ['latest', 'newest'], ['latest', true], ['latest', 1],
      ['retry', null], ['retry', 'yes'], ['retry', true], ['retry', 5],
    ] as const
  ).map(([option, value]) => ({ name: `options.${option} ${show(value)}`, field: `options.${option}`, call: withStore({ [option]: value }) })),
  ...(
    [
      ['dedup.windowMs', { windowMs: 0 }], ['dedup.windowMs', { windowMs: '15m' }], ['dedup.windowMs', { windowMs: 1.5 }],
      ['dedup.ttlMs', { ttlMs: -1 }], ['dedup.ttlMs', { ttlMs: NaN }],
      ['retry.attempts', { attempts: -1 }], ['retry.attempts', { attempts: 1.5 }], ['retry.attempts', { attempts: 1000 }],
      ['retry.baseDelayMs', { baseDelayMs: 'x' }], ['retry.maxDelayMs', { maxDelayMs: -1 }],
      ['keys.schema', { schema: 'v2' }], ['keys.schema', { schema: {} }], ['keys.schema', { schema: 5 }],
      ['keys.prefix', { prefix: 5 }], ['keys.prefix', { prefix: 'a b' }], ['keys.prefix', { prefix: 'app*' }],
    ] as const
  ).map(([path, value]) => {
    const [option] = path.split('.') as [string];
    return { name: `options.${path} ${JSON.stringify(value)}`, field: `options.${path}`, call: withStore({ [option]: value }) };
  }),
  ...[null, undefined, {}, 'redis://127.0.0.1:6379', 6379].map((client) => ({
    name: `options.client ${show(client)}`,
    field: 'options.client',
    call: () => createSnapshotStore({ client } as unknown as SnapshotStoreOptions),
  })),
  ...[null, undefined, 5].map((options) => ({ name: `options ${show(options)}`, field: 'options', call: () => createSnapshotStore(options as unknown as SnapshotStoreOptions) })),
];

/** Wrong shapes that once fell back to the defaults, and a getter that throws payload text. */
const wrongShapes: BadInput[] = [
  { name: 'options.dedup true', field: 'options.dedup', call: withStore({ dedup: true }) },
  { name: "options.dedup 'on'", field: 'options.dedup', call: withStore({ dedup: 'on' }) },
  { name: "options.keys 'cluster'", field: 'options.keys', call: withStore({ keys: 'cluster' }) },
  { name: 'persist: at 5', field: 'at', call: (store) => store.persist(good, 5 as never) },
  { name: 'list: options null', field: 'options', call: (store) => store.list('mena', null as never) },
  { name: 'list: options 5', field: 'options', call: (store) => store.list('mena', 5 as never) },
  { name: 'payload getter throwing with payload text', field: 'payload', call: persistOne({ ...good, payload: { get x(): never { throw new Error(SECRET); } } }) },
];

const test = suite('bad input: rejected before sending, keyspace unchanged', 4);
let redis: RedisServer;
let proxy: TcpProxy;
let viaProxy: Redis;
let direct: Redis;
let store: SnapshotStore;
/** The store's default retention: the checker is told it, not given the store's. */
const RETENTION_MS = 90 * 86_400_000;
const baseOptions = { maxPayloadBytes: MAX_PAYLOAD_BYTES, retry: false } as const;

test.before(async () => {
  redis = await startRedis();
  direct = redis.client();
  proxy = await TcpProxy.start(redis.port);
  viaProxy = new Redis(proxy.port, '127.0.0.1');
  store = createSnapshotStore({ client: viaProxy, ...baseOptions });
  // Something to leave unchanged, and a connection already open (its handshake counted before).
  await store.persist(good, { now: NOW });
});
test.after(async () => {
  viaProxy?.disconnect();
  await proxy?.close();
  await redis?.stop();
});

async function rejection(input: BadInput): Promise<unknown> {
  try {
    await input.call(store);
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Asserts one input is rejected as invariant 6 demands. */
async function assertRejected(input: BadInput): Promise<void> {
  const before = await dumpKeyspace(direct);
  const bytesBefore = proxy.bytesUp;
  const error = await rejection(input);
  assert.ok(error instanceof ValidationError, `${input.name}: expected a ValidationError, got ${String(error)}`);
  assert.is(error.code, 'INVALID_INPUT', input.name);
  assert.is(error.field, input.field, input.name);
  assert.ok(error.message.startsWith(`${input.field}: `), `${input.name}: ${error.message}`);
  assert.match(error.message, /expected|must be|larger than|serialisable to JSON/, `${input.name}: says what is expected`);
  assert.not.match(error.message, SECRET, `${input.name}: quotes the payload`);
  assert.is(proxy.bytesUp, bytesBefore, `${input.name}: sent a request`);
  assert.equal(await dumpKeyspace(direct), before, `${input.name}: keyspace changed`);
}

test('every input of the corpus is a ValidationError, nothing sent, keyspace unchanged', async () => {
  for (const input of corpus) await assertRejected(input);
  assert.equal(await checkInvariants(direct, { retentionMs: RETENTION_MS, now: NOW }), []);
  console.log(`bad input: ${corpus.length} inputs rejected, 0 bytes sent, keyspace unchanged`);
});

test('persistMany rejects bad members in their slots and persists the others', async () => {
  const valid = [1, 2, 3].map((n): SnapshotInput => ({ region: 'europe', id: `batch-${n}`, timestamp: NOW - n, payload: { n } }));
  const batch: unknown[] = [valid[0], { ...good, id: 'bad-1', region: 'Europe' }, valid[1], { ...good, id: 'bad-2', payload: cyclic }, valid[2], null];
  const settled = await store.persistMany(batch as SnapshotInput[], { now: NOW });
  assert.equal(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected']);
  const fields = settled.flatMap((s) => (s.status === 'rejected' ? [(s.reason as ValidationError).field] : []));
  assert.equal(fields, ['region', 'payload', 'snapshot']);
  for (const s of valid) assert.equal(await store.readById('europe', s.id, { now: NOW }), { id: s.id, timestamp: s.timestamp, payload: s.payload });
  for (const id of ['bad-1', 'bad-2']) assert.is(await direct.exists(`intelligence:snapshot-by-id:v1:${id}`), 0);
  assert.equal(await checkInvariants(direct, { retentionMs: RETENTION_MS, now: NOW }), []);
});

test('payloads at the size limit are accepted, in bytes', async () => {
  const ascii = { s: 'x'.repeat(MAX_PAYLOAD_BYTES - '{"s":""}'.length) };
  const twoByte = `["${'\u00e9'.repeat((MAX_PAYLOAD_BYTES - 4) / 2)}"]`;
  for (const [i, payload] of [ascii, twoByte].entries()) {
    const result = await store.persist({ region: 'global', id: `limit-${i}`, timestamp: NOW - i, payload }, { now: NOW });
    assert.is(result.status, 'persisted');
  }
});

test('options and arguments of the wrong shape are rejected, not defaulted', async () => {
  for (const input of wrongShapes) await assertRejected(input);
});

test.run();
