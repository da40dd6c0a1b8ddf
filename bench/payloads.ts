import { readFileSync } from 'node:fs';

const fixture = JSON.parse(readFileSync(new URL('../test/fixtures/regional-snapshot-mena.json', import.meta.url), 'utf8'));
const evidence: Array<{ summary: string }> = fixture.evidence;

/**
 * JSON text of exactly `bytes` bytes in the seeder's RegionalSnapshot shape: the fixture with its
 * evidence list trimmed or padded by repeating its items. Below the fixture's size without
 * evidence, only the identifying fields (region, time, meta, regime) are kept. The fixture is
 * ASCII, so characters are bytes.
 */
export function snapshotPayload(bytes: number): string {
  const { evidence: _, ...full } = fixture;
  const head = { region_id: fixture.region_id, generated_at: fixture.generated_at, meta: fixture.meta, regime: fixture.regime };
  const base = JSON.stringify(full).length < bytes / 2 ? full : head;
  const items: Array<{ summary: string }> = [];
  const size = () => JSON.stringify({ ...base, evidence: items }).length;
  for (let i = 0; size() < bytes; i++) items.push({ ...evidence[i % evidence.length]! });
  // The last item's summary is trimmed or lengthened (its words repeated) to land on `bytes`.
  if (size() - items.at(-1)!.summary.length > bytes) items.pop();
  const last = items.at(-1)!;
  const room = bytes - (size() - last.summary.length);
  last.summary = last.summary.repeat(Math.ceil(room / last.summary.length)).slice(0, room);
  const text = JSON.stringify({ ...base, evidence: items });
  if (text.length !== bytes) throw new Error(`payload of ${bytes} bytes came out at ${text.length}`);
  return text;
}
