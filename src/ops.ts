/**
 * snapshot-persist/ops: the operations side, verify and repair (lua/repair.lua), as an entry point
 * of its own, so that a bundle which only persists and reads carries neither.
 */
import { driftContextOf, type At, type SnapshotStore } from './store.js';
import { checkNow, checkObject, clockOf } from './validate.js';
import { inspect, type DriftReport, type RepairReport } from './verify.js';

export { UNREPAIRABLE } from './verify.js';
export type { DriftClass, DriftReport, Finding, RepairReport } from './verify.js';

export interface RepairOptions extends At {
  dryRun?: boolean;
}

/** Every inconsistency of one region or of all (found by SCAN); read-only, in bounded script calls. */
export async function verify(store: SnapshotStore, region: string | 'all', at?: At): Promise<DriftReport> {
  const ctx = driftContextOf(store);
  const { regions, findings } = await inspect(ctx, region, 'verify', clockOf(at));
  return { regions, findings };
}

/** Fixes what verify finds, in bounded script calls (lua/repair.lua); `dryRun` reports without writing. */
export async function repair(store: SnapshotStore, region: string | 'all', options?: RepairOptions): Promise<RepairReport> {
  const ctx = driftContextOf(store);
  const { dryRun, now } = checkObject('options', options, '{ dryRun?, now? }');
  return inspect(ctx, region, dryRun ? 'verify' : 'repair', checkNow(now));
}
