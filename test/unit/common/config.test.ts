import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../../src/common/config.js';

const SPEC = {
  port: { kind: 'int', default: 0, min: 0, max: 65535, env: 'T_PORT' },
  ratio: { kind: 'number', default: 1.5 },
  name: { kind: 'string', env: 'T_NAME' },
  main: { kind: 'url' },
  open: { kind: 'bool', default: false, env: 'T_OPEN' },
} as const;

test('defaults fill what is not given, and the result is frozen', () => {
  const c = parseConfig(SPEC, {});
  assert.deepEqual({ ...c }, { port: 0, ratio: 1.5, open: false });
  assert.ok(Object.isFrozen(c));
});

test('environment fills in, and flags win over the environment', () => {
  assert.equal(parseConfig(SPEC, {}, { T_PORT: '7000' }).port, 7000);
  assert.equal(parseConfig(SPEC, { port: '8000' }, { T_PORT: '7000' }).port, 8000);
  assert.equal(parseConfig(SPEC, {}, { T_OPEN: 'true' }).open, true);
  assert.equal(parseConfig(SPEC, {}, { T_NAME: '' }).name, undefined);
});

test('unknown keys, bad numbers, out-of-range values and non-URLs are refused with SEDFS_ERR_CONFIG', () => {
  for (const flags of [
    { colour: 'blue' },
    { port: 'eighty' },
    { port: '1.5' },
    { port: 70000 },
    { main: 'ftp://x' },
    { main: 'not a url' },
    { open: 'yes' },
  ]) {
    assert.throws(() => parseConfig(SPEC, flags), { code: 'SEDFS_ERR_CONFIG' }, JSON.stringify(flags));
  }
});

test('a URL loses its trailing slashes', () => {
  assert.equal(parseConfig(SPEC, { main: 'http://h:1///' }).main, 'http://h:1');
});

test('a config file uses the flag names, fills in after flags and environment, and its values are checked', () => {
  const spec = { ...SPEC, lostAfter: { kind: 'number', default: 600, env: 'T_LOST' } } as const;
  const file = { 'lost-after': 30, port: 9000 };
  assert.equal(parseConfig(spec, {}, {}, file).lostAfter, 30);
  assert.equal(parseConfig(spec, {}, { T_LOST: '40' }, file).lostAfter, 40);
  assert.equal(parseConfig(spec, { lostAfter: '50' }, { T_LOST: '40' }, file).lostAfter, 50);
  assert.equal(parseConfig(spec, {}, {}, file).port, 9000);
  assert.throws(() => parseConfig(spec, {}, {}, { lostAfter: 1 }), { code: 'SEDFS_ERR_CONFIG' });
  assert.throws(() => parseConfig(spec, {}, {}, { 'lost-after': 'soon' }), { code: 'SEDFS_ERR_CONFIG' });
});
