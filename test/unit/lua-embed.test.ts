import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import * as runtime from '../../src/lua.generated.js';
import * as repair from '../../src/lua-repair.generated.js';
// @ts-expect-error: a plain .mjs build script, without type declarations.
import { stripLua } from '../../scripts/lua-strip.mjs';

const strip = stripLua as (text: string) => string;
const test = suite('lua-embed', 6);

// A script cannot change without its hash: the shipped text must be the file's without comments,
// the SHA1 the hash of that text. (The conformance suite checks the SHA1 against SCRIPT LOAD on a
// real server, and runs every script as shipped.)
for (const script of [...Object.values(runtime), ...Object.values(repair)]) {
  test(`embedded ${script.name} is lua/ without comments, with its SHA1`, () => {
    const file = readFileSync(new URL(`../../lua/${script.name.replace(/KeyLocking$/, '')}.lua`, import.meta.url), 'utf8');
    // persistKeyLocking is persist.lua behind Upstash's shebang line.
    const shebang = script.name.endsWith('KeyLocking') ? '#!lua flags=allow-key-locking\n' : '';
    assert.is(script.text, shebang + strip(file), 'src/lua*.generated.ts is stale: run node scripts/embed-lua.mjs');
    assert.is(script.sha, createHash('sha1').update(script.text).digest('hex'));
    assert.not.match(script.text, /^\s|--\[\[|\n\n/m);
  });
}

test('stripping removes comments, indentation and blank lines, and keeps strings byte for byte', () => {
  const source = [
    '--[[ header',
    '  KEYS[1] -- not code ]]',
    '',
    'local a = "-- kept", \'it\\\'s -- kept\' -- gone',
    '  if a then  --[==[ gone ]] still gone ]==] return [[',
    '  -- kept too',
    ']] end',
    '',
  ].join('\n');
  assert.is(strip(source), 'local a = "-- kept", \'it\\\'s -- kept\'\nif a then   return [[\n  -- kept too\n]] end\n');
});

test('stripping refuses an unterminated string rather than guess', () => {
  assert.throws(() => strip("local a = 'open\nreturn a"), /unterminated string/);
});

test.run();
