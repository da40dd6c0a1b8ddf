/**
 * The test runner behind `npm test`: every test file in a process of its own (a server that dies,
 * or a file that crashes, fails that file's tests only), one after another, each bounded in time.
 * Every suite reports how many tests it declares, registered, passed and failed
 * (test/support/suite.ts); anything short of "all declared tests ran and passed" fails the run,
 * by suite name. Ends with one line, `tests: N passed, N failed`, where a declared test that never
 * ran counts as failed; with TEST_TOTALS_FILE set, also appends the counts there as JSON.
 *
 *   node --import tsx test/run.ts [regex on file paths] [--label NAME]
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import type { SuiteReport } from './support/suite.js';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { label: { type: 'string', default: 'tests' } } });
const pattern = new RegExp(positionals[0] ?? '\\.test\\.ts$');
const FILE_TIMEOUT_MS = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 15 * 60_000);
const root = new URL('.', import.meta.url).pathname;

const files = (readdirSync(root, { recursive: true }) as string[])
  .filter((f) => f.endsWith('.test.ts') && pattern.test(f))
  .sort()
  .map((f) => join(root, f));

interface FileResult {
  file: string;
  seconds: number;
  exit: string;
  suites: SuiteReport[];
}

const reportDir = mkdtempSync(join(tmpdir(), 'suite-reports-'));
process.on('exit', () => rmSync(reportDir, { recursive: true, force: true }));

/** The last report of each suite the file published (test/support/suite.ts), in order. */
function readReports(reportFile: string): SuiteReport[] {
  let text = '';
  try {
    text = readFileSync(reportFile, 'utf8');
  } catch {}
  const latest = new Map<string, SuiteReport>();
  for (const line of text.split('\n')) {
    if (line) {
      const report = JSON.parse(line) as SuiteReport;
      latest.set(report.name, report);
    }
  }
  return [...latest.values()];
}

function runFile(file: string, index: number): Promise<FileResult> {
  const started = Date.now();
  const reportFile = join(reportDir, `${index}.ndjson`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true, // its own process group, so a timeout kills whatever it started
      env: { ...process.env, SUITE_REPORT_FILE: reportFile },
    });
    const stop = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {}
    };
    const interrupt = () => {
      stop();
      process.exit(130);
    };
    process.once('SIGINT', interrupt);
    const timer = setTimeout(() => {
      console.error(`\n${relative(root, file)}: still running after ${FILE_TIMEOUT_MS / 1000} s, killed`);
      stop();
    }, FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.off('SIGINT', interrupt);
      resolve({ file: relative(root, file), seconds: (Date.now() - started) / 1000, exit: signal ? `killed by ${signal}` : `exit code ${code}`, suites: readReports(reportFile) });
    });
  });
}

let passed = 0;
let failed = 0;
let notRun = 0;
/** Failures no test accounts for: a crashed file, a wrong declaration, a failed teardown. */
let other = 0;
const problems: string[] = [];
const rows: string[] = [];
for (const [index, file] of files.entries()) {
  const result = await runFile(file, index);
  if (result.suites.length === 0) {
    other++;
    problems.push(`${result.file}: ${result.exit} before any suite reported`);
  } else if (result.exit !== 'exit code 0' && result.suites.every((s) => s.failed === 0 && s.errors.length === 0)) {
    other++;
    problems.push(`${result.file}: ${result.exit} with no failing test`);
  }
  for (const s of result.suites) {
    const missing = Math.max(0, s.declared - s.passed - s.failed);
    passed += s.passed;
    failed += s.failed;
    notRun += missing;
    rows.push(`${String(s.passed).padStart(5)} ${String(s.failed).padStart(6)} ${String(missing).padStart(7)}  ${s.name}`);
    if (s.registered !== s.declared) {
      other++;
      problems.push(`${s.name}: declares ${s.declared} tests, registered ${s.registered}`);
    }
    if (missing > 0) problems.push(`${s.name}: ${missing} of ${s.declared} declared tests never ran`);
    for (const error of s.errors) {
      if (error.startsWith('after:')) other++;
      problems.push(`${s.name}: ${error}`);
    }
  }
  rows.push(`${''.padStart(20)}  ${result.file}, ${result.seconds.toFixed(1)} s`);
}
if (files.length === 0) {
  other++;
  problems.push(`no test file matches ${pattern}`);
}

console.log(`\n${values.label}: per suite\npassed failed not-run`);
for (const row of rows) console.log(row);
for (const problem of problems) console.log(`FAIL ${problem}`);
// A declared test that never ran counts as failed, and so does each failure no test accounts for.
console.log(`${values.label}: ${failed} failed, ${notRun} never ran, ${other} other failure(s)`);
console.log(`${values.label}: ${passed} passed, ${failed + notRun + other} failed`);
// For .ci/run and the matrix, which add up several runs.
if (process.env.TEST_TOTALS_FILE) appendFileSync(process.env.TEST_TOTALS_FILE, `${JSON.stringify({ label: values.label, passed, failed, notRun, other })}\n`);
process.exitCode = failed + notRun + other === 0 ? 0 : 1;
