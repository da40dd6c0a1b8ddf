// The edge entry, what the export conditions edge-light, worker and browser load (package.json):
// the Node entry's API, with a store that takes @upstash/redis only, so that an edge bundle
// carries neither the ioredis adapter nor cluster-key-slot. Types: src/index.ts's. Not workerd's:
// with nodejs_compat, workerd runs ioredis over TCP (node:net).
import { connect } from './clients/edge.js';
import { createStore, type SnapshotStore, type SnapshotStoreOptions } from './store.js';

export * from './api.js';

export function createSnapshotStore(options: SnapshotStoreOptions): SnapshotStore {
  return createStore(options, connect);
}
