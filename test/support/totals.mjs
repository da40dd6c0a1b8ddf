// Adds up the totals test/run.ts appends to a TEST_TOTALS_FILE (one JSON line per run) and
// prints "passed failed" (a declared test that never ran, and a failure no test accounts for,
// count as failed). With RUNS, each run missing from the file counts as one failure more.
//   node test/support/totals.mjs FILE [RUNS]
import { readFileSync } from 'node:fs';

const [file, runs] = process.argv.slice(2);
const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
const passed = lines.reduce((n, t) => n + t.passed, 0);
const missing = runs === undefined ? 0 : Math.max(0, Number(runs) - lines.length);
const failed = lines.reduce((n, t) => n + t.failed + t.notRun + t.other, 0) + missing;
console.log(passed, failed);
