/**
 * DESIGN.md "Commands sent" lists what a proxy or an ACL must allow: the lists must be the
 * commands the scripts and the Upstash adapter actually send, no more, no less.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';

const root = new URL('../../', import.meta.url);
const design = readFileSync(new URL('DESIGN.md', root), 'utf8');
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** The backticked command names of the DESIGN.md bullet that starts with `lead`. */
function documented(lead: string): string[] {
  const bullet = design.split(/\n- |\n\n/).find((b) => b.replace(/^- /, '').startsWith(lead));
  assert.ok(bullet, `DESIGN.md has a bullet starting "${lead}"`);
  return [...new Set([...bullet!.matchAll(/`([A-Z]+)`/g)].map((m) => m[1]!))].sort();
}

const test = suite('DESIGN.md command lists', 2);

test('the commands the scripts run', () => {
  const lua = readdirSync(new URL('lua/', root))
    .filter((f) => f.endsWith('.lua'))
    .map((f) => read(`lua/${f}`).replace(/--\[\[[\s\S]*?\]\]|--[^\n]*/g, ''))
    .join('\n');
  // redis.call('X', …), and repair.lua's planned writes, write('X', …), run by redis.call(unpack(…)).
  const used = [...new Set([...lua.matchAll(/(?:redis\.p?call|write)\('([A-Z]+)'/g)].map((m) => m[1]!))].sort();
  assert.equal(documented('Commands the scripts run'), used);
});

test('the commands the Upstash adapter sends', () => {
  const adapter = read('src/clients/upstash.ts');
  const used = [...new Set([...adapter.matchAll(/pipeline(?:\(\))?\.(\w+)\((?!\))/g)].map((m) => m[1]!.toUpperCase()))].sort();
  assert.equal(documented('Over the wire, through @upstash/redis'), used);
});

test.run();
