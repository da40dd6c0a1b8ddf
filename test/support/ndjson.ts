import { writeFileSync } from 'node:fs';

export const REGIONS = ['mena', 'east-asia', 'europe', 'north-america', 'south-asia', 'latam', 'sub-saharan-africa', 'global'] as const;
const STEP_MS = 600_000;

/**
 * `count` RegionalSnapshots, one per line, round-robin over the 8 regions, ten minutes apart
 * (so each region's snapshots fall in distinct 15-minute dedup buckets), ending an hour before
 * `now`: all inside a 90-day window for counts up to about 12,000. Each payload is padded to
 * about `payloadBytes`.
 */
export function snapshotLines(count: number, { now, payloadBytes = 200 }: { now: number; payloadBytes?: number }): string[] {
  const first = now - 3_600_000 - count * STEP_MS;
  return Array.from({ length: count }, (_, i) => {
    const region = REGIONS[i % REGIONS.length]!;
    const generatedAt = first + i * STEP_MS;
    const snapshot = {
      region_id: region,
      generated_at: generatedAt,
      meta: { snapshot_id: `bf-${region}-${generatedAt}`, trigger_reason: 'scheduled_6h', model_version: '0.4.1' },
      narrative: '',
    };
    snapshot.narrative = 'x'.repeat(Math.max(0, payloadBytes - JSON.stringify(snapshot).length));
    return JSON.stringify(snapshot);
  });
}

export function writeNdjson(path: string, lines: readonly string[]): void {
  writeFileSync(path, `${lines.join('\n')}\n`);
}

/** Generates an NDJSON file: `node --import tsx test/support/ndjson.ts <path> <count> <payloadBytes>`. */
if (import.meta.url === `file://${process.argv[1]}`) {
  const [path, count, bytes] = process.argv.slice(2);
  writeNdjson(path!, snapshotLines(Number(count), { now: Date.now(), payloadBytes: Number(bytes) }));
}
