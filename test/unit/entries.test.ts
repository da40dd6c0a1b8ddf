/**
 * The two builds of the public API: src/index.ts (Node: ioredis and @upstash/redis) and src/edge.ts
 * (what edge runtimes' export conditions load: @upstash/redis only). Same names, same kinds; the
 * edge build refuses an ioredis client by name. No server: refused clients never send a command.
 */
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { Redis as UpstashRedis } from '@upstash/redis';
import { Cluster, Redis } from 'ioredis';
import * as edge from '../../src/edge.js';
import * as node from '../../src/index.js';
import { driftContextOf } from '../../src/store.js';

const test = suite('entries (Node and edge)', 2);

test('the edge entry exports what the Node entry exports', () => {
  const kinds = (entry: object) => Object.entries(entry).map(([name, value]) => `${name}: ${typeof value}`).sort();
  assert.equal(kinds(edge), kinds(node));
  for (const shared of ['keySchemas', 'ValidationError', 'SnapshotError', 'persistSnapshot'] as const) assert.is(edge[shared], node[shared], shared);
});

test('the edge entry takes @upstash/redis, for snapshot-persist/ops too, and refuses ioredis (Redis and Cluster) with a ValidationError saying why', () => {
  // verify and repair find a store's context by the store object, whichever entry made it.
  assert.ok(driftContextOf(edge.createSnapshotStore({ client: new UpstashRedis({ url: 'http://127.0.0.1:1', token: 't' }) })));
  const redis = new Redis({ lazyConnect: true });
  const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
  for (const client of [redis, cluster]) {
    assert.throws(() => edge.createSnapshotStore({ client }), (e: unknown) => e instanceof node.ValidationError && /^options\.client: .*cannot run ioredis.*use @upstash\/redis/.test(e.message));
    assert.ok(driftContextOf(node.createSnapshotStore({ client, keys: { schema: 'cluster' } })));
  }
  assert.throws(() => edge.createSnapshotStore({ client: {} as never }), (e: unknown) => e instanceof node.ValidationError && e.field === 'options.client');
  redis.disconnect();
  cluster.disconnect();
});

test.run();
