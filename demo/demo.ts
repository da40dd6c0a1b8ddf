/**
 * `npm run demo`: the seeder's job against a throwaway Redis this script starts (testcontainers):
 * a snapshot for each of the 8 regions in one round trip, a replay, an older snapshot, and the
 * resulting keyspace.
 */
import { readFileSync } from 'node:fs';
import { createSnapshotStore, fromRegionalSnapshot, type RegionalSnapshot } from '../src/index.js';
import { startRedis } from '../test/support/redis.js';

const REGIONS = ['mena', 'east-asia', 'europe', 'north-america', 'south-asia', 'latam', 'sub-saharan-africa', 'global'];
const base = JSON.parse(readFileSync(new URL('../test/fixtures/regional-snapshot-mena.json', import.meta.url), 'utf8')) as RegionalSnapshot;
const generatedAt = Math.floor(Date.now() / 900_000) * 900_000;
const snapshot = (region: string, at: number, id: string): RegionalSnapshot => ({
  ...base,
  region_id: region,
  generated_at: at,
  meta: { ...base.meta, snapshot_id: id, trigger_reason: 'scheduled_6h' },
});

console.log('Starting a throwaway Redis…');
const redis = await startRedis();
try {
  const client = redis.client();
  const store = createSnapshotStore({ client });
  const rows: Array<{ step: string; region: string; id: string; status: string; latestAdvanced: boolean | string }> = [];

  const batch = REGIONS.map((r) => snapshot(r, generatedAt, `${r}-${generatedAt}`));
  const results = await store.persistMany(batch.map(fromRegionalSnapshot));
  results.forEach((r, i) =>
    rows.push({
      step: '1. persistMany, 8 regions, one round trip',
      region: REGIONS[i]!,
      id: batch[i]!.meta.snapshot_id,
      status: r.status === 'fulfilled' ? r.value.status : String(r.reason),
      latestAdvanced: r.status === 'fulfilled' ? r.value.latestAdvanced : '',
    }),
  );

  const replay = await store.persist(fromRegionalSnapshot(batch[0]!));
  rows.push({ step: '2. the same snapshot again (a retry)', region: 'mena', id: batch[0]!.meta.snapshot_id, status: replay.status, latestAdvanced: replay.latestAdvanced });

  const older = snapshot('mena', generatedAt - 6 * 3_600_000, `mena-${generatedAt - 6 * 3_600_000}`);
  const late = await store.persist(fromRegionalSnapshot(older));
  rows.push({ step: '3. an older snapshot (backfill)', region: 'mena', id: older.meta.snapshot_id, status: late.status, latestAdvanced: late.latestAdvanced });
  console.table(rows);

  const keys = (await client.keys('*mena*')).sort();
  const keyspace = [];
  for (const key of keys) {
    const type = await client.type(key);
    const value = type === 'zset' ? (await client.zrange(key, 0, -1, 'WITHSCORES')).join(' ') : (await client.get(key))!;
    const expiresAt = await client.pexpiretime(key);
    keyspace.push({ key, type, expires: new Date(expiresAt).toISOString(), value: value.length > 48 ? `${value.slice(0, 45)}… (${value.length} B)` : value });
  }
  console.log(`\nKeyspace of region mena (${await client.dbsize()} keys in all, 8 regions):`);
  console.table(keyspace);

  const latest = await store.readLatest('mena');
  console.log(`\nreadLatest('mena') in one round trip → id ${latest?.id}, generated ${new Date(latest!.timestamp).toISOString()}`);
} finally {
  await redis.stop();
}
