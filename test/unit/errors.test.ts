import { suite } from '../support/suite.js';
import * as assert from 'uvu/assert';
import { RedisError, ScriptRefusedError, isNoScript, toSnapshotError } from '../../src/errors.js';

const test = suite('errors', 4);

const reply = (message: string, extra: object = {}) => Object.assign(new Error(message), extra);

test('persist.lua error replies map to ScriptRefusedError codes', () => {
  const e = toSnapshotError(reply('SNAPSHOT_WRONGTYPE index'));
  assert.instance(e, ScriptRefusedError);
  assert.is(e.code, 'SCRIPT_WRONGTYPE');
  assert.match(e.message, /the index key/);
  assert.is(toSnapshotError(reply('ERR SNAPSHOT_CONFLICT index')).code, 'SCRIPT_CONFLICT');
  assert.match(toSnapshotError(reply('SNAPSHOT_CONFLICT by-id')).message, /another snapshot/);
  const noperm = toSnapshotError(reply('SNAPSHOT_NOPERM ZADD script: 0123abcd, on @user_script:1.'));
  assert.instance(noperm, ScriptRefusedError);
  assert.is(noperm.code, 'SCRIPT_NOPERM');
  assert.match(noperm.message, /may not run ZADD/);
});

test('NOSCRIPT is matched by prefix only', () => {
  assert.ok(isNoScript(reply('NOSCRIPT No matching script. Please use EVAL.')));
  assert.ok(isNoScript(reply('NOSCRIPT No matching script')));
  assert.ok(isNoScript('Command failed: NOSCRIPT whatever'));
  assert.not.ok(isNoScript(reply('ERR NOSCRIPT-like')));
});

test('transient replies and socket errors are retryable; others are not', () => {
  for (const text of ['LOADING Redis is loading the dataset in memory', 'BUSY Redis is busy running a script.', 'TRYAGAIN Multiple keys request during rehashing of slot', 'CLUSTERDOWN The cluster is down', 'MOVED 3999 127.0.0.1:6381', 'ASK 3999 127.0.0.1:6381']) {
    const e = toSnapshotError(reply(text));
    assert.instance(e, RedisError);
    assert.ok((e as RedisError).transient, text);
  }
  // A script reading a derived key that MIGRATE already moved (nothing written): retried.
  for (const text of [
    'ERR Script attempted to access a non local key in a cluster node script: e31cd71f, on @user_script:27.',
    "ERR Unable to execute command 'exists' in script because undeclared keys were accessed during rehashing of the slot script: 0063fe4a, on @user_script:4.",
  ]) {
    const moved = toSnapshotError(reply(text));
    assert.is(moved.code, 'TRYAGAIN');
    assert.ok((moved as RedisError).transient, text);
  }
  assert.ok((toSnapshotError(reply('connect ECONNREFUSED 127.0.0.1:1', { code: 'ECONNREFUSED' })) as RedisError).transient);
  assert.ok((toSnapshotError(reply('Connection is closed.')) as RedisError).transient);
  // ioredis, when a connection closes with a pipeline's or transaction's replies outstanding: the command may have run.
  const aborted = toSnapshotError(Object.assign(reply('Command aborted due to connection close'), { name: 'AbortError' }));
  assert.is(aborted.code, 'CONNECTION');
  assert.ok((aborted as RedisError).transient);
  // ioredis, when the server stays unreachable for maxRetriesPerRequest reconnections.
  assert.ok((toSnapshotError(reply('Reached the max retries per request limit (which is 20). Refer to "maxRetriesPerRequest" option for details.')) as RedisError).transient);
  const oom = toSnapshotError(reply("OOM command not allowed when used memory > 'maxmemory'."));
  assert.is(oom.code, 'OOM');
  assert.is((oom as RedisError).transient, false);
  assert.is(toSnapshotError(reply('BUSYKEY Target key name already exists.')).code, 'BUSYKEY');
});

test('messages never carry the command a client quotes back', () => {
  const secret = '{"payload":"s3cret"} local x = redis.call';
  const e = toSnapshotError(reply(`ERR something, command was: ["evalsha","abc","${secret}"]`, { command: { args: [secret] } }));
  assert.not.ok(e.message.includes('s3cret'));
  assert.not.ok(JSON.stringify(e).includes('s3cret'));
  assert.is(e.cause, undefined);
});

test.run();
