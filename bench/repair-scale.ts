/**
 * verify and repair at scale (issue 11, item 8): one region of N snapshots, for N = 1,000,
 * 10,000 and 100,000 (2 KB payloads, two copies each), and 1,250 x 20 KB (the field report's
 * region). For each: verify of the consistent region; then, with its index deleted, repair
 * (every snapshot paired and indexed again) and verify again. Prints wall time and, from
 * SLOWLOG (threshold 0, every command logged), the number of script calls and the longest one.
 *
 *   image=$(bash test/support/bootstrap.sh) && REDIS_IMAGE=$image node --import tsx bench/repair-scale.ts
 */
import type { Redis } from 'ioredis';
import { createSnapshotStore } from '../src/index.js';
import { repair, verify } from '../src/ops.js';
import { startRedis } from '../test/support/redis.js';

const DAY = 86_400_000;
const RETENTION = 90 * DAY;
const NOW = Date.now();
const cases = [
  { members: 1_000, bytes: 2_048 },
  { members: 10_000, bytes: 2_048 },
  { members: 100_000, bytes: 2_048 },
  { members: 1_250, bytes: 20_480 },
];

async function fill(raw: Redis, members: number, bytes: number): Promise<void> {
  const first = NOW - 80 * DAY;
  const step = Math.floor((75 * DAY) / members);
  const pad = 'x'.repeat(bytes);
  for (let from = 0; from < members; from += 2_000) {
    const pipeline = raw.pipeline();
    for (let i = from; i < Math.min(members, from + 2_000); i++) {
      const t = first + i * step;
      const payload = JSON.stringify({ region_id: 'mena', generated_at: t, meta: { snapshot_id: `m${i}` }, pad });
      pipeline
        .set(`intelligence:snapshot:v1:mena:${t}`, payload, 'PXAT', t + RETENTION)
        .set(`intelligence:snapshot-by-id:v1:m${i}`, payload, 'PXAT', t + RETENTION)
        .zadd('intelligence:snapshot-index:v1:mena', t, `m${i}`);
    }
    await pipeline.exec();
  }
  const last = first + (members - 1) * step;
  await raw.set('intelligence:snapshot:v1:mena:latest', `m${members - 1}`, 'PXAT', last + RETENTION);
  await raw.pexpireat('intelligence:snapshot-index:v1:mena', last + RETENTION);
}

/** Runs `work`, then reads the script calls it made off SLOWLOG. */
async function measured(raw: Redis, work: () => Promise<unknown>): Promise<{ ms: number; calls: number; medianUs: number; p99Us: number; longestUs: number }> {
  await raw.slowlog('RESET');
  const began = performance.now();
  await work();
  const ms = performance.now() - began;
  const entries = (await raw.slowlog('GET', -1)) as Array<[number, number, number, string[]]>;
  const scripts = entries.filter((e) => /^eval/i.test(String(e[3][0])));
  const us = scripts.map((e) => Number(e[2])).sort((a, b) => a - b);
  const pick = (q: number) => us[Math.min(us.length - 1, Math.floor(q * us.length))] ?? 0;
  return { ms, calls: us.length, medianUs: pick(0.5), p99Us: pick(0.99), longestUs: us.at(-1) ?? 0 };
}

const redis = await startRedis(['--slowlog-log-slower-than', '0', '--slowlog-max-len', '1000000']);
try {
  const raw = redis.client();
  const store = createSnapshotStore({ client: raw });
  const at = { now: NOW };
  const rows: string[] = [];
  for (const { members, bytes } of cases) {
    await raw.flushall();
    await fill(raw, members, bytes);
    const verified = await measured(raw, async () => {
      const { findings } = await verify(store, 'mena', at);
      if (findings.length > 0) throw new Error(`consistent region: ${findings.length} findings`);
    });
    await raw.del('intelligence:snapshot-index:v1:mena');
    const repaired = await measured(raw, () => repair(store, 'mena', at));
    if ((await raw.zcard('intelligence:snapshot-index:v1:mena')) !== members) throw new Error('repair did not index every snapshot');
    if ((await verify(store, 'mena', at)).findings.length > 0) throw new Error('findings left after repair');
    const calls = (m: Awaited<ReturnType<typeof measured>>) => [
      `${(m.ms / 1000).toFixed(2)} s`,
      String(m.calls),
      [m.medianUs, m.p99Us, m.longestUs].map((us) => (us / 1000).toFixed(2)).join(' / '),
    ];
    const row = [members.toLocaleString('en-US'), `${bytes / 1024} KB`, ...calls(verified), ...calls(repaired)];
    rows.push(`| ${row.join(' | ')} |`);
    console.error(rows.at(-1));
  }
  console.log('| members | payload | verify | script calls | ms per call: median / p99 / max | repair (index lost) | script calls | ms per call: median / p99 / max |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
} finally {
  await redis.stop();
}
