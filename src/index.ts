// The runtime: persist and read. verify and repair are in snapshot-persist/ops (src/ops.ts).
export { createSnapshotStore } from './store.js';
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
