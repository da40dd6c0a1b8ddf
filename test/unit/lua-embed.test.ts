import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import * as embedded from '../../src/lua.generated.js';

const test = suite('lua-embed', 4);

// A script cannot change without its hash: the shipped text must be the file's, the SHA1 its hash.
// (The conformance suite checks the SHA1 against SCRIPT LOAD on a real server.)
for (const script of Object.values(embedded)) {
  test(`embedded ${script.name} matches lua/ and its SHA1`, () => {
    // persistKeyLocking is persist.lua behind Upstash's shebang line.
    const file = readFileSync(new URL(`../../lua/${script.name.replace(/KeyLocking$/, '')}.lua`, import.meta.url), 'utf8');
    assert.ok(script.text.endsWith(file), `src/lua.generated.ts is stale: run node scripts/embed-lua.mjs`);
    assert.is(script.sha, createHash('sha1').update(script.text).digest('hex'));
  });
}

test.run();
