#!/usr/bin/env node
/**
 * snapshot-persist: persist, backfill, verify, repair, latest, list.
 * Exit codes, one rule (EXIT_CODES below, and the README): 2 when the command did not run because
 * what it was given is wrong, 1 when it ran and something is wrong with the data or with Redis.
 * Every error is one line on stderr.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { backfill, toSnapshotInput, type BackfillSummary } from './cli/backfill.js';
import { connectFromEnv, UsageError, type Connected } from './cli/env.js';
import { RedisError, SnapshotError, ValidationError } from './errors.js';
import { createSnapshotStore, type SnapshotStore } from './index.js';
import { repair, verify, type DriftReport, type RepairReport } from './ops.js';

const EXIT_CODES = `Exit codes:
  0  done, nothing wrong
  1  it ran, and something is wrong: a snapshot not stored, verify findings, no snapshot found,
     or Redis failed or could not be reached
  2  it did not run, nothing was written: a wrong command line, configuration or input (an
     unreadable file, invalid JSON, an invalid snapshot or region), a client library not
     installed, a server that refuses the scripts' commands
  130  backfill interrupted (checkpoint written)`;

const CONNECTION = `Connection (environment): REDIS_URL=redis://host:port (or rediss://; needs the ioredis
package), or UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (needs @upstash/redis).
${EXIT_CODES}`;

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
      const source = file === '-' ? 'stdin' : file!;
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file!, 'utf8');
      } catch (error) {
        throw new UsageError(`${source}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      const result = await store.persist(toSnapshotInput(text, source));
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
      const report = await verify(store, region);
      printDrift(values.json === true, report);
      return report.findings.length > 0 ? 1 : 0;
    },
  },
  repair: {
    usage: `snapshot-persist repair [region] [--dry-run]
Fixes what verify finds, in short script calls that each check before they write, and lists
the writes. With
--dry-run, lists them without writing. Exit 1 when problems remain (or, with --dry-run, exist).`,
    options: { 'dry-run': { type: 'boolean', default: false } },
    positionals: [0, 1],
    async run(store, [region = 'all'], values) {
      const dryRun = values['dry-run'] === true;
      const report = await repair(store, region, { dryRun });
      printDrift(values.json === true, report, dryRun);
      const remaining = dryRun ? report.findings : (await verify(store, region)).findings;
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

/** What the command connected to, once it has: errors from then on name it. */
let connected: Connected | undefined;

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
  connected = await connectFromEnv(process.env, values.cluster === true);
  const { client, close } = connected;
  try {
    const store = createSnapshotStore({ client, keys: { schema: values.cluster ? 'cluster' : 'worldmonitor-v1' } });
    return await command.run(store, positionals, values as Record<string, string | boolean | undefined>);
  } finally {
    await close().catch(() => {});
  }
}

/** A server, proxy or ACL that refuses a command the library sends. */
const REFUSED = /\bnot allowed\b|\bNOPERM\b|unknown command '?eval/i;

/** The one line and the exit code for an error, by the rule in EXIT_CODES. */
function failure(error: unknown): { line: string; code: number } {
  if (error instanceof UsageError || error instanceof ValidationError) return { line: error.message, code: 2 };
  // SnapshotErrors never carry payloads or credentials; anything else is reduced to its first line.
  const message = error instanceof SnapshotError ? error.message : String((error as Error)?.message ?? error).split('\n')[0]!;
  const at = connected ? `Redis at ${connected.target}: ` : '';
  if (REFUSED.test(message)) {
    const fix = connected?.rest
      ? "this library runs everything through EVALSHA and EVAL, so a REST proxy must allow them (README: \"Self-hosted Redis\"), or connect directly with REDIS_URL"
      : 'the Redis user needs every command DESIGN.md lists under "Commands sent"';
    return { line: `${at}the server refused a command the library sends (${message}): ${fix}`, code: 2 };
  }
  const cause = connected?.lastError();
  return { line: `${at}${message}${cause && error instanceof RedisError && error.transient ? ` (last connection error: ${cause})` : ''}`, code: 1 };
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const { line, code } = failure(error);
    process.stderr.write(`snapshot-persist: ${line}\n`);
    process.exitCode = code;
  },
);
