import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { createSnapshotStore } from '../src/index.js';
import { persistLua } from '../src/lua.generated.js';
import { commandStats, concurrently, mainThreadCpuUs, median, type SnapshotSource } from './measure.js';
import { RETENTION_MS, spyClient, type BenchSnapshot } from './strategies.js';

/** One cut of persist.lua: the script returns just before line `line` (1-based), or runs whole. */
interface Cut {
  /** First line of the statements this step adds; undefined for the whole script. */
  line: number | undefined;
  text: string;
}

export interface ProfileStep {
  /** persist.lua lines this step adds (the script up to the next cut). */
  lines: string;
  /** Redis commands this step runs per persist, from commandstats call counts. */
  commands: string;
  /** Cumulative, per persist: main-thread CPU µs, and the script's commandstats µs (EVALSHA). */
  cpuUs: number;
  scriptUs: number;
  /** What this step adds: median over rounds of the difference from the step before, within a round. */
  cpuStepUs: number | undefined;
  scriptStepUs: number | undefined;
}

export interface Profile {
  label: string;
  payloadBytes: number;
  /** Persists per batch (16 in flight) and rounds after the warm-up. */
  calls: number;
  rounds: number;
  steps: ProfileStep[];
}

/**
 * Where persist.lua is cut: before its first statement (the call with no statement run), then
 * before every top-level statement that runs a redis.call, so each step is one group of commands
 * with the plain Lua that follows it. Read from the script text at run time: whatever persist.lua
 * is, it is profiled. A top-level statement is a line at column 0 that is not a comment, a
 * closing keyword or part of the header comment; functions defined at top level run nothing.
 */
export function cuts(script: string): Cut[] {
  const lines = script.split('\n');
  const headerEnd = script.startsWith('--[[') ? lines.findIndex((l) => l.includes(']]')) + 1 : 0;
  const starts: number[] = [];
  for (let i = headerEnd; i < lines.length; i++) {
    if (/^[A-Za-z_]/.test(lines[i]!) && !/^(end|else|elseif|until)\b/.test(lines[i]!)) starts.push(i);
  }
  const runsCommands = (k: number) => {
    const body = lines.slice(starts[k], starts[k + 1] ?? lines.length).join('\n');
    return !/^(local\s+)?function\b/.test(lines[starts[k]!]!) && /redis\.p?call\(/.test(body);
  };
  const at = starts.filter((_, k) => k === 0 || runsCommands(k));
  const cut = (i: number) => [...lines.slice(0, i), '-- profile cut', 'do return { 1, 0, 0 } end', ...lines.slice(i)].join('\n');
  return [...at.map((i) => ({ line: i + 1, text: cut(i) })), { line: undefined, text: script }];
}

/**
 * persist.lua cut at every step (see `cuts`), each cut run through the store with default options,
 * `calls` persists at a time, 16 in flight, the cuts taking turns over `rounds` rounds; figures
 * are medians over rounds. The store is unchanged: a spying client swaps persist.lua's SHA for the
 * cut's. Cut scripts return early, so the store may reject their reply: only the whole script
 * must persist, and commandstats must count no failed script call in any step.
 */
export async function profileScript(options: {
  client: Redis;
  control: Redis;
  source: SnapshotSource;
  payloads: ReadonlyArray<{ label: string; payload: object; bytes: number }>;
  calls: number;
  rounds: number;
}): Promise<Profile[]> {
  const { client, control, source, calls, rounds } = options;
  // A cut that does not compile (a statement the line rule misread) is dropped: its lines join the next step.
  // Cut the source as written: the shipped text has no indentation to tell top-level statements by.
  const written = readFileSync(new URL('../lua/persist.lua', import.meta.url), 'utf8');
  const loaded = await Promise.all(cuts(written).map((step) => (control.script('LOAD', step.text) as Promise<string>).then((sha) => ({ step, sha }), () => undefined)));
  const usable = loaded.filter((l) => l !== undefined);
  const steps = usable.map((l) => l.step);
  const shas = usable.map((l) => l.sha);
  if (steps.at(-1)?.line !== undefined) throw new Error('profile: lua/persist.lua itself does not load');
  let current = 0;
  const spy = spyClient(client, (args) => {
    if (String(args[0]).toLowerCase() === 'evalsha' && args[1] === persistLua.sha) return [args[0], shas[current], ...args.slice(2)];
    return args;
  });
  const store = createSnapshotStore({ client: spy, retentionMs: RETENTION_MS });
  const profiles: Profile[] = [];
  for (const { label, payload, bytes } of options.payloads) {
    const samples = steps.map(() => ({ cpu: [] as number[], script: [] as number[], calls: new Map<string, number>() }));
    for (let round = 0; round <= rounds; round++) {
      for (let k = 0; k < steps.length; k++) {
        await control.flushall();
        // A region in its steady state: the whole script persists one snapshot of each region
        // first, so every cut finds a latest and an index as persists normally do.
        current = steps.length - 1;
        for (const s of source.regions(payload)) await store.persist(s);
        current = (k + round) % steps.length;
        await control.config('RESETSTAT');
        const cpu0 = await mainThreadCpuUs(control);
        const whole = current === steps.length - 1;
        await concurrently(calls, 16, async () => {
          const s: BenchSnapshot = source.next(payload);
          const done = store.persist(s);
          if (whole) {
            if ((await done).status !== 'persisted') throw new Error('profile: the whole persist.lua did not persist');
          } else {
            await done.catch(() => undefined);
          }
        });
        const cpu = ((await mainThreadCpuUs(control)) - cpu0) / calls;
        const stats = await commandStats(control);
        const script = ['evalsha', 'eval'].map((name) => stats.get(name) ?? { calls: 0, usec: 0, failed: 0 });
        if (script.some((s) => s.failed > 0)) throw new Error(`profile: a cut of persist.lua at line ${steps[current]!.line} failed in Redis`);
        if (round === 0) continue; // warm-up
        samples[current]!.cpu.push(cpu);
        samples[current]!.script.push((script[0]!.usec + script[1]!.usec) / calls);
        // Commands the script ran: everything but the call itself and its transaction.
        for (const [name, { calls: n }] of stats) {
          if (!['evalsha', 'eval', 'multi', 'exec', 'script', 'flushall', 'config', 'info'].includes(name.split('|')[0]!)) samples[current]!.calls.set(name, n / calls);
        }
      }
    }
    // Staged: the staging SET is a top-level SET outside the script, in every step alike.
    const lines = written.split('\n').length;
    profiles.push({
      label,
      payloadBytes: bytes,
      calls,
      rounds,
      steps: steps.map((step, k) => {
        const before = k === 0 ? new Map<string, number>() : samples[k - 1]!.calls;
        const ran = [...samples[k]!.calls]
          .map(([name, n]) => [name, Math.round((n - (before.get(name) ?? 0)) * 100) / 100] as const)
          .filter(([, n]) => n !== 0)
          .map(([name, n]) => `${name.toUpperCase()}${n === 1 ? '' : ` ×${n}`}`);
        const first = k === 0 ? 1 : steps[k - 1]!.line!;
        const last = (step.line ?? lines + 1) - 1;
        return {
          lines: k === 0 ? 'the call, no statement run' : `${first}–${last}`,
          commands: k === 0 ? [...samples[0]!.calls].map(([name, n]) => `${name.toUpperCase()}${n === 1 ? '' : ` ×${n}`}`).join(', ') || '—' : ran.join(', ') || '—',
          cpuUs: median(samples[k]!.cpu),
          scriptUs: median(samples[k]!.script),
          cpuStepUs: k === 0 ? undefined : median(samples[k]!.cpu.map((v, r) => v - samples[k - 1]!.cpu[r]!)),
          scriptStepUs: k === 0 ? undefined : median(samples[k]!.script.map((v, r) => v - samples[k - 1]!.script[r]!)),
        };
      }),
    });
  }
  await control.flushall();
  return profiles;
}
