import { createReadStream, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fromRegionalSnapshot, type RegionalSnapshot } from '../seeder.js';
import type { PersistStatus, SnapshotStore } from '../store.js';
import type { SnapshotInput } from '../validate.js';
import { ValidationError } from '../errors.js';
import { UsageError } from './env.js';

const SHAPES = 'a RegionalSnapshot { region_id, generated_at, meta.snapshot_id } or { region, id, timestamp, payload }';

/**
 * A parsed JSON document as the store's input: the seeder's RegionalSnapshot (stored verbatim as
 * `text`) or the library's own SnapshotInput. Throws ValidationError, naming `source`, when it is
 * neither (without quoting the text: it may be a payload).
 */
export function toSnapshotInput(text: string, source = 'line'): SnapshotInput {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ValidationError(source, text.trim() === '' ? `empty, expected one JSON object: ${SHAPES}` : `not valid JSON, expected one JSON object: ${SHAPES}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(source, `expected one JSON object: ${SHAPES}`);
  if ('region_id' in value) return { ...fromRegionalSnapshot(value as RegionalSnapshot), payload: text };
  return value as SnapshotInput;
}

export interface BackfillOptions {
  store: SnapshotStore;
  source: string;
  checkpoint: string;
  resume: boolean;
  concurrency: number;
  batchSize: number;
  /** Where progress goes; overwritten in place when it is a TTY. */
  progress: NodeJS.WriteStream;
  /** Set by the caller on SIGINT: stop reading, settle what is in flight, write the checkpoint. */
  signal: AbortSignal;
}

export interface BackfillSummary {
  source: string;
  /** Input lines settled (a contiguous prefix of the input), including those of a resumed run. */
  lines: number;
  counts: Record<PersistStatus, number>;
  /** Lines that are not a valid snapshot: never sent. */
  invalid: Array<{ line: string; reason: string }>;
  /** Snapshots Redis did not store (after retries). */
  failed: Array<{ line: string; reason: string }>;
  interrupted: boolean;
  checkpoint: string;
}

interface Checkpoint {
  source: string;
  lines: number;
  counts: Record<PersistStatus, number>;
  invalid: BackfillSummary['invalid'];
  failed: BackfillSummary['failed'];
}

/** The NDJSON files of the source: the file itself, or a directory's *.ndjson files by name. */
function inputFiles(source: string): string[] {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(source).isDirectory();
  } catch {
    throw new UsageError(`${source}: no such file or directory`);
  }
  if (!isDirectory) return [source];
  const files = readdirSync(source).filter((name) => name.endsWith('.ndjson')).sort().map((name) => join(source, name));
  if (files.length === 0) throw new UsageError(`${source}: no .ndjson files`);
  return files;
}

async function* lines(files: readonly string[], onBytes: (n: number) => void): AsyncGenerator<{ where: string; text: string }> {
  for (const file of files) {
    let n = 0;
    for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
      n++;
      onBytes(Buffer.byteLength(text) + 1);
      yield { where: `${file}:${n}`, text };
    }
  }
}

function readCheckpoint(path: string, source: string): Checkpoint {
  let checkpoint: Checkpoint;
  try {
    checkpoint = JSON.parse(readFileSync(path, 'utf8')) as Checkpoint;
  } catch {
    throw new UsageError(`--resume: cannot read checkpoint ${path}`);
  }
  if (checkpoint.source !== source) throw new UsageError(`--resume: checkpoint ${path} is for ${checkpoint.source}, not ${source}`);
  return checkpoint;
}

/** Atomically: a reader never sees half a checkpoint, even if this process dies while writing. */
function writeCheckpoint(path: string, checkpoint: Checkpoint): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(checkpoint));
  renameSync(`${path}.tmp`, path);
}

const PLAIN_PROGRESS_MS = 5000;

/**
 * Persists every line of the source through persistMany, `batchSize` lines per call and at most
 * `concurrency` calls in flight. Lines settle out of order; the checkpoint records only the
 * contiguous prefix of settled lines, so a resumed run skips exactly what is done and repeats the
 * rest (a repeat of a stored snapshot is a harmless replay).
 */
export async function backfill(o: BackfillOptions): Promise<BackfillSummary> {
  const files = inputFiles(o.source);
  const totalBytes = files.reduce((n, f) => n + statSync(f).size, 0);
  const state: Checkpoint = o.resume
    ? readCheckpoint(o.checkpoint, o.source)
    : { source: o.source, lines: 0, counts: { persisted: 0, replayed: 0, duplicate: 0, expired: 0 }, invalid: [], failed: [] };
  const skip = state.lines;
  const started = Date.now();
  let bytesRead = 0;
  let complete = false;

  // Batches by their first line's ordinal; a finished batch's outcomes wait here until every
  // batch before it has finished too.
  const finished = new Map<number, { size: number; apply: (s: Checkpoint) => void }>();
  const inFlight = new Set<Promise<void>>();
  const settle = () => {
    let advanced = false;
    for (let next = finished.get(state.lines); next; next = finished.get(state.lines)) {
      finished.delete(state.lines);
      next.apply(state);
      state.lines += next.size;
      advanced = true;
    }
    if (advanced) writeCheckpoint(o.checkpoint, state);
  };

  const send = (first: number, batch: Array<{ where: string; text: string }>) => {
    const outcomes: Array<(s: Checkpoint) => void> = [];
    const inputs: SnapshotInput[] = [];
    const sources: string[] = [];
    for (const { where, text } of batch) {
      if (text.trim() === '') continue;
      try {
        inputs.push(toSnapshotInput(text));
        sources.push(where);
      } catch (error) {
        outcomes.push((s) => s.invalid.push({ line: where, reason: (error as Error).message }));
      }
    }
    const task = (inputs.length > 0 ? o.store.persistMany(inputs) : Promise.resolve([]))
      .then((settled) => {
        settled.forEach((result, i) => {
          const line = sources[i]!;
          if (result.status === 'fulfilled') outcomes.push((s) => s.counts[result.value.status]++);
          else if (result.reason instanceof ValidationError) outcomes.push((s) => s.invalid.push({ line, reason: result.reason.message }));
          else outcomes.push((s) => s.failed.push({ line, reason: (result.reason as Error).message }));
        });
      })
      .catch((error: unknown) => {
        // persistMany rejects only on a bug or a batch-wide argument fault: every line failed.
        for (const line of sources) outcomes.push((s) => s.failed.push({ line, reason: (error as Error).message }));
      })
      .then(() => {
        finished.set(first, { size: batch.length, apply: (s) => outcomes.forEach((apply) => apply(s)) });
        settle();
      });
    inFlight.add(task);
    void task.then(() => inFlight.delete(task));
  };

  let lastPlain = started;
  const report = (final: boolean) => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = (state.lines - skip) / Math.max(elapsed, 0.001);
    const fraction = totalBytes > 0 ? bytesRead / totalBytes : 1;
    const eta = fraction > 0 ? (elapsed / fraction) * (1 - fraction) : NaN;
    const line = `backfill: ${state.lines} lines settled, ${rate.toFixed(0)}/s, ${(fraction * 100).toFixed(1)}% read, ETA ${Number.isFinite(eta) ? `${eta.toFixed(0)}s` : '?'}`;
    if (o.progress.isTTY) o.progress.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else if (final || Date.now() - lastPlain >= PLAIN_PROGRESS_MS) {
      o.progress.write(`${line}\n`);
      lastPlain = Date.now();
    }
  };
  const ticker = setInterval(() => report(false), o.progress.isTTY ? 200 : PLAIN_PROGRESS_MS);

  try {
    let ordinal = 0;
    let batch: Array<{ where: string; text: string }> = [];
    let first = skip;
    for await (const item of lines(files, (n) => (bytesRead += n))) {
      if (o.signal.aborted) break;
      if (ordinal++ < skip) continue;
      batch.push(item);
      if (batch.length < o.batchSize) continue;
      send(first, batch);
      first += batch.length;
      batch = [];
      while (inFlight.size >= o.concurrency) await Promise.race(inFlight);
    }
    complete = !o.signal.aborted;
    if (complete && batch.length > 0) send(first, batch);
    await Promise.all(inFlight);
  } finally {
    clearInterval(ticker);
  }
  report(true);
  writeCheckpoint(o.checkpoint, state);
  return { ...state, interrupted: !complete, checkpoint: o.checkpoint };
}
