/**
 * uvu's `suite`, made to fail loudly. uvu 0.5.6 swallows an exception thrown in a `before` or
 * `after` hook (its runner returns from a `finally`): the suite prints `(0 / N)` and the process
 * exits 0. Here a failed setup fails every test of its suite by name, a failed teardown fails the
 * suite, and each suite declares how many tests it has: test/run.ts checks the count that ran
 * against it, so a suite that silently runs fewer tests than it declares fails the run.
 */
import { appendFileSync } from 'node:fs';
import { suite as uvuSuite, type Context, type Test } from 'uvu';

export interface SuiteReport {
  name: string;
  declared: number;
  registered: number;
  passed: number;
  failed: number;
  /** Setup or teardown errors, one line each. */
  errors: string[];
}

/**
 * test/run.ts names a file in SUITE_REPORT_FILE; every change of a suite's counts appends the
 * suite's report there at once, so what ran is known even if the process is killed mid-suite.
 */
function publish(report: SuiteReport): void {
  if (process.env.SUITE_REPORT_FILE) appendFileSync(process.env.SUITE_REPORT_FILE, `${JSON.stringify(report)}\n`);
}

/** A test that hangs fails by name after this long, and the suite goes on. */
const TEST_TIMEOUT_MS = Number(process.env.TEST_TIMEOUT_MS ?? 5 * 60_000);

async function bounded(what: string, work: unknown): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still running after ${TEST_TIMEOUT_MS / 1000} s`)), TEST_TIMEOUT_MS);
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const firstLine = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).split('\n')[0]!;

export function suite<T extends Context = Context>(name: string, declared: number): Test<T> {
  const inner = uvuSuite<T>(name);
  const report: SuiteReport = { name, declared, registered: 0, passed: 0, failed: 0, errors: [] };
  publish(report);
  let setupError: string | undefined;

  const test = ((testName: string, handler: (context: T) => unknown) => {
    report.registered++;
    inner(testName, async (context) => {
      try {
        if (setupError !== undefined) throw new Error(`setup of suite '${name}' failed: ${setupError}`);
        await bounded(`test '${testName}'`, handler(context));
        report.passed++;
      } catch (error) {
        report.failed++;
        throw error;
      } finally {
        publish(report);
      }
    });
  }) as Test<T>;

  test.before = ((hook: (context: T) => unknown) =>
    inner.before(async (context) => {
      try {
        if (setupError === undefined) await bounded('before', hook(context));
      } catch (error) {
        setupError = firstLine(error);
        report.errors.push(`before: ${setupError}`);
        publish(report);
      }
    })) as Test<T>['before'];
  // A before.each that throws fails its test in uvu without running it: count it here.
  test.before.each = (hook) =>
    inner.before.each(async (context) => {
      try {
        if (setupError === undefined) await hook(context);
      } catch (error) {
        report.failed++;
        publish(report);
        throw error;
      }
    });
  test.after = ((hook: (context: T) => unknown) =>
    inner.after(async (context) => {
      try {
        await hook(context);
      } catch (error) {
        report.errors.push(`after: ${firstLine(error)}`);
        publish(report);
        process.exitCode = 1;
      }
    })) as Test<T>['after'];
  test.after.each = (hook) =>
    inner.after.each(async (context) => {
      if (setupError === undefined) await hook(context);
    });
  test.only = () => {
    throw new Error(`suite '${name}': test.only would silently skip the others; not allowed`);
  };
  test.skip = () => {
    throw new Error(`suite '${name}': test.skip would silently skip a test; not allowed`);
  };
  test.run = () => {
    publish(report); // registration is complete
    inner.run();
  };
  return test;
}
