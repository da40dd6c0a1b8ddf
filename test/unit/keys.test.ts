import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { byIdTemplate, keySchemas, resolveKeySchema } from '../../src/keys.js';
import { ValidationError } from '../../src/errors.js';

const test = suite('keys', 4);

test("'worldmonitor-v1' is byte-compatible with the legacy seeder's keys", () => {
  const s = keySchemas['worldmonitor-v1'];
  assert.is(s.timestamp('mena', 1795845600000), 'intelligence:snapshot:v1:mena:1795845600000');
  assert.is(s.byId('mena', '01a2-98eb'), 'intelligence:snapshot-by-id:v1:01a2-98eb');
  assert.is(s.latest('mena'), 'intelligence:snapshot:v1:mena:latest');
  assert.is(s.index('mena'), 'intelligence:snapshot-index:v1:mena');
  assert.is(s.live('mena'), 'intelligence:snapshot:v1:mena:live');
  assert.is(s.dedup('mena', 'scheduled_6h', 1995384), 'dedup:snapshot:v1:mena:scheduled_6h:1995384');
});

test("'cluster' puts the region's hash tag in every key", () => {
  const s = keySchemas.cluster;
  const keys = [s.timestamp('latam', 1), s.byId('latam', 'x'), s.latest('latam'), s.index('latam'), s.live('latam'), s.dedup('latam', 't', 2)];
  for (const key of keys) assert.ok(key.includes('{latam}'), key);
  assert.is(keys.every((key) => key.indexOf('{') === key.lastIndexOf('{')), true);
});

test('a prefix applies to every key; bad schemas and prefixes are refused', () => {
  const s = resolveKeySchema('cluster', 'staging:');
  assert.is(s.index('mena'), 'staging:intelligence:snapshot-index:v1:{mena}');
  assert.is(s.dedup('mena', 't', 3), 'staging:dedup:snapshot:v1:{mena}:t:3');
  assert.throws(() => resolveKeySchema('nope' as 'cluster'), (e: unknown) => e instanceof ValidationError && e.field === 'options.keys.schema');
  assert.throws(() => resolveKeySchema({ latest: () => 'x' } as never), (e: unknown) => e instanceof ValidationError);
  assert.throws(() => resolveKeySchema('cluster', 'a b'), (e: unknown) => e instanceof ValidationError && e.field === 'options.keys.prefix');
});

test('byIdTemplate splits the by-id key around the id, as read.lua rebuilds it', () => {
  assert.equal(byIdTemplate(resolveKeySchema('worldmonitor-v1', 'p:'), 'mena'), ['p:intelligence:snapshot-by-id:v1:', '']);
  assert.equal(byIdTemplate(keySchemas.cluster, 'mena'), ['intelligence:snapshot-by-id:v1:{mena}:', '']);
  const custom = { ...keySchemas.cluster, byId: (r: string, id: string) => `snap:${id}:{${r}}` };
  assert.equal(byIdTemplate(custom, 'mena'), ['snap:', ':{mena}']);
  const twice = { ...keySchemas.cluster, byId: (_r: string, id: string) => `${id}:${id}` };
  assert.throws(() => byIdTemplate(twice, 'mena'), (e: unknown) => e instanceof ValidationError);
});

test.run();
