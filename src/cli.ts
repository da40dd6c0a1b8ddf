#!/usr/bin/env node
/**
 * snapshot-persist: persist, backfill, verify, repair, latest, list.
 * Exit codes: 0 ok; 1 a snapshot failed, verify found problems, or Redis failed;
 * 2 usage or configuration; 130 backfill interrupted (checkpoint written).
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { backfill, toSnapshotInput, type BackfillSummary } from './cli/backfill.js';
import { connectFromEnv, UsageError } from './cli/env.js';
import { SnapshotError } from './errors.js';
import { createSnapshotStore, type SnapshotStore } from './store.js';
import type { DriftReport, RepairReport } from './verify.js';

const CONNECTION = `Connection (environment): REDIS_URL=redis://host:port (or rediss://), or
UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN.
Exit codes: 0 ok, 1 failed or inconsistent, 2 usage or configuration.`;

const common = {
  json: { type: 'boolean', default: false },
  cluster: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

interface Command {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Positional arguments: [min, max]. */
  positionals: [number, number];
  run(store: SnapshotStore, args: string[], values: Record<string, string | boolean | undefined>): Promise<number>;
}

const print = (json: boolean, value: unknown, text: string) => process.stdout.write(`${json ? JSON.stringify(value) : text}\n`);

function printDrift(json: boolean, report: DriftReport | RepairReport, dryRun?: boolean): void {
  const lines = report.findings.map((f) => `${f.region ?? '-'}\t${f.class}\t${f.detail}\t${f.keys.join(' ')}`);
  if ('changes' in report) {
    const verb = dryRun ? 'would run' : 'ran';
    lines.push(...report.changes.map((c) => `${c.region}\t${verb}\t${c.command}`));
  }
  const summary = `${report.findings.length} finding(s) in ${report.regions.length} region(s)` + ('changes' in report ? `, ${report.changes.length} change(s)` : '');
  print(json, report, [...lines, summary].join('\n'));
}

function printBackfill(json: boolean, s: BackfillSummary): void {
  const where = (list: Array<{ line: string; reason: string }>) => list.map((e) => `\n    ${e.line}: ${e.reason}`).join('');
  const text = [
    `backfill of ${s.source}: ${s.lines} lines settled${s.interrupted ? ` (interrupted; resume with --resume, checkpoint ${s.checkpoint})` : ''}`,
    ...Object.entries(s.counts).map(([status, n]) => `  ${status.padEnd(10)}${n}`),
    `  ${'invalid'.padEnd(10)}${s.invalid.length}${where(s.invalid)}`,
    `  ${'failed'.padEnd(10)}${s.failed.length}${where(s.failed)}`,
  ].join('\n');
  print(json, s, text);
}

function positiveInteger(name: string, value: string | boolean | undefined): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name}: expected a positive integer`);
  return n;
}

const commands: Record<string, Command> = {
  persist: {
    usage: `snapshot-persist persist <file|->
Persists one snapshot: a RegionalSnapshot (region_id, generated_at, meta.snapshot_id) or
{ region, id, timestamp, payload, trigger? }, read from the file or from stdin (-).`,
    options: {},
    positionals: [1, 1],
    async run(store, [file], values) {
      const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file!, 'utf8');
      const result = await store.persist(toSnapshotInput(text));
      print(values.json === true, result, `${result.status}${result.latestAdvanced ? ', latest advanced' : ''}`);
      return 0;
    },
  },
  backfill: {
    usage: `snapshot-persist backfill <file.ndjson | dir> [--concurrency N] [--batch N] [--resume] [--checkpoint FILE]
Persists one snapshot per line (a directory: its *.ndjson files by name). Older snapshots are
indexed without moving latest. Ctrl-C finishes the calls in flight and writes the checkpoint
(default <source>.checkpoint.json); --resume continues from it. Exit 130 when interrupted.`,
    options: {
      concurrency: { type: 'string', default: '4' },
      batch: { type: 'string', default: '100' },
      resume: { type: 'boolean', default: false },
      checkpoint: { type: 'string' },
    },
    positionals: [1, 1],
    async run(store, [source], values) {
      const concurrency = positiveInteger('concurrency', values.concurrency);
      const batchSize = positiveInteger('batch', values.batch);
      const interrupt = new AbortController();
      process.once('SIGINT', () => interrupt.abort());
      const summary = await backfill({
        store,
        source: source!,
        checkpoint: typeof values.checkpoint === 'string' ? values.checkpoint : `${source!.replace(/\/+$/, '')}.checkpoint.json`,
        resume: values.resume === true,
        concurrency,
        batchSize,
        progress: process.stderr,
        signal: interrupt.signal,
      });
      printBackfill(values.json === true, summary);
      if (summary.interrupted) return 130;
      return summary.failed.length > 0 ? 1 : 0;
    },
  },
  verify: {
    usage: `snapshot-persist verify [region]
Lists every inconsistency of one region, or of every region found in the keyspace. Read-only.
Exit 1 when anything is found.`,
    options: {},
    positionals: [0, 1],
    async run(store, [region = 'all'], values) {
      const report = await store.verify(region);
      printDrift(values.json === true, report);
      return report.findings.length > 0 ? 1 : 0;
    },
  },
  repair: {
    usage: `snapshot-persist repair [region] [--dry-run]
Fixes what verify finds, each region in one atomic script call, and lists the writes. With
--dry-run, lists them without writing. Exit 1 when problems remain (or, with --dry-run, exist).`,
    options: { 'dry-run': { type: 'boolean', default: false } },
    positionals: [0, 1],
    async run(store, [region = 'all'], values) {
      const dryRun = values['dry-run'] === true;
      const report = await store.repair(region, { dryRun });
      printDrift(values.json === true, report, dryRun);
      const remaining = dryRun ? report.findings : (await store.verify(region)).findings;
      if (!dryRun && remaining.length > 0) process.stderr.write(`${remaining.length} finding(s) remain after repair; run verify for details\n`);
      return remaining.length > 0 ? 1 : 0;
    },
  },
  latest: {
    usage: `snapshot-persist latest <region>
Prints the region's latest snapshot as JSON: { id, timestamp, payload }. Exit 1 when there is none.`,
    options: {},
    positionals: [1, 1],
    async run(store, [region]) {
      const found = await store.readLatest(region!);
      if (!found) {
        process.stderr.write(`no snapshot for ${region}\n`);
        return 1;
      }
      process.stdout.write(`${JSON.stringify(found)}\n`);
      return 0;
    },
  },
  list: {
    usage: `snapshot-persist list <region> [--limit N]
Lists the region's snapshots inside the retention window, newest first: id and timestamp.`,
    options: { limit: { type: 'string' } },
    positionals: [1, 1],
    async run(store, [region], values) {
      const limit = values.limit === undefined ? undefined : positiveInteger('limit', values.limit);
      const items = await store.list(region!, limit === undefined ? {} : { limit });
      print(values.json === true, items, items.map((s) => `${s.id}\t${s.timestamp}\t${new Date(s.timestamp).toISOString()}`).join('\n'));
      return 0;
    },
  },
};

const USAGE = `Usage: snapshot-persist <command> [options]

Commands:
${Object.values(commands)
  .map((c) => `  ${c.usage.split('\n')[0]!.replace('snapshot-persist ', '')}`)
  .join('\n')}

Options for every command: --json (machine-readable output), --cluster (REDIS_URL is a Redis
Cluster node; keys use the 'cluster' schema), --help.
${CONNECTION}`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    (name === undefined ? process.stderr : process.stdout).write(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) throw new UsageError(`unknown command ${name} (try --help)`);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: { ...common, ...command.options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${name}: ${(error as Error).message}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${command.usage}\n\n${CONNECTION}\n`);
    return 0;
  }
  const [min, max] = command.positionals;
  if (positionals.length < min || positionals.length > max) throw new UsageError(`${name}: wrong number of arguments (try ${name} --help)`);
  const { client, close } = await connectFromEnv(process.env, values.cluster === true);
  try {
    const store = createSnapshotStore({ client, keys: { schema: values.cluster ? 'cluster' : 'worldmonitor-v1' } });
    return await command.run(store, positionals, values as Record<string, string | boolean | undefined>);
  } finally {
    await close().catch(() => {});
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const usage = error instanceof UsageError;
    // SnapshotErrors never carry payloads or credentials; anything else is reduced to its first line.
    const message = error instanceof SnapshotError || usage ? error.message : String((error as Error)?.message ?? error).split('\n')[0];
    process.stderr.write(`snapshot-persist: ${message}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
