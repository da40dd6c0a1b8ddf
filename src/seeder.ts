import { ValidationError } from './errors.js';
import type { At, SnapshotStore } from './store.js';
import type { SnapshotInput } from './validate.js';

/** The seeder's snapshot shape; only these fields are read, the whole object is stored. */
export interface RegionalSnapshot {
  region_id: string;
  generated_at: number;
  meta: { snapshot_id: string; trigger_reason?: string };
}

export type SeederReason = 'ok' | 'duplicate-bucket' | 'replayed' | 'expired';

/** A RegionalSnapshot as the store's input; the payload is the snapshot itself. */
export function fromRegionalSnapshot(snapshot: RegionalSnapshot): SnapshotInput {
  if (typeof snapshot !== 'object' || snapshot === null || typeof snapshot.meta !== 'object' || snapshot.meta === null) {
    throw new ValidationError('snapshot', 'expected a RegionalSnapshot with region_id, generated_at and meta.snapshot_id');
  }
  const input: SnapshotInput = { region: snapshot.region_id, id: snapshot.meta.snapshot_id, timestamp: snapshot.generated_at, payload: snapshot };
  if (snapshot.meta.trigger_reason !== undefined) input.trigger = snapshot.meta.trigger_reason;
  return input;
}

const reasons = { persisted: 'ok', duplicate: 'duplicate-bucket', replayed: 'replayed', expired: 'expired' } as const;

/**
 * Drop-in for the seeder's persist step. `persisted` is true when the snapshot is stored after
 * the call (`replayed`: an earlier try stored it). Failures are thrown, never folded into a reason.
 */
export async function persistSnapshot(
  snapshot: RegionalSnapshot,
  { store, now }: { store: SnapshotStore } & At,
): Promise<{ persisted: boolean; reason: SeederReason }> {
  const { status } = await store.persist(fromRegionalSnapshot(snapshot), now === undefined ? undefined : { now });
  return { persisted: status === 'persisted' || status === 'replayed', reason: reasons[status] };
}
