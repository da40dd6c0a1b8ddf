// The public API that both entries share (src/index.ts, src/edge.ts), all but createSnapshotStore,
// which each entry binds to the clients it supports. verify and repair: snapshot-persist/ops.
export type {
  At,
  LatestPolicy,
  ListOptions,
  PersistResult,
  PersistStatus,
  SnapshotStore,
  SnapshotStoreOptions,
  StoredSnapshot,
} from './store.js';
export type { SnapshotInput } from './validate.js';
export { keySchemas } from './keys.js';
export type { KeySchema, KeySchemaName } from './keys.js';
export { fromRegionalSnapshot, persistSnapshot } from './seeder.js';
export type { RegionalSnapshot, SeederReason } from './seeder.js';
export { RedisError, ScriptRefusedError, SnapshotError, ValidationError } from './errors.js';
export type { RetryPolicy } from './retry.js';
export type { IoredisClient, SupportedClient, UpstashClient } from './clients/index.js';
