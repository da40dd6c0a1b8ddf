// The Node entry: persist and read through ioredis or @upstash/redis. Edge runtimes' export
// conditions load src/edge.ts instead (package.json); verify and repair are in src/ops.ts.
import { connect } from './clients/index.js';
import { createStore, type SnapshotStore, type SnapshotStoreOptions } from './store.js';

export * from './api.js';

export function createSnapshotStore(options: SnapshotStoreOptions): SnapshotStore {
  return createStore(options, connect);
}
