import assert from 'node:assert/strict';
import { test } from 'node:test';
import { byCodePoint, nameOrderFor } from '../../../src/client/name-order.js';

const names = ['b', 'É', 'a', 'B', 'f', 'e', 'é', '_x', '10', '9'];
const sorted = (env: NodeJS.ProcessEnv, platform: NodeJS.Platform = 'linux') =>
  [...names].sort(nameOrderFor(env, platform));

const codePointOrder = ['10', '9', 'B', 'a', 'b', 'e', 'f', '_x', 'É', 'é'].sort((x, y) =>
  // The same order spelled another way: by UTF-8 bytes.
  Buffer.compare(Buffer.from(x), Buffer.from(y)),
);
const englishOrder = ['_x', '10', '9', 'a', 'b', 'B', 'e', 'é', 'É', 'f'];

test('in the C and POSIX locales, and where none is set outside Windows, names go in code point order', () => {
  assert.deepEqual(codePointOrder, ['10', '9', 'B', '_x', 'a', 'b', 'e', 'f', 'É', 'é']);
  for (const LANG of ['C', 'C.UTF-8', 'C.utf8', 'POSIX'])
    assert.deepEqual(sorted({ LANG }), codePointOrder, LANG);
  assert.deepEqual(sorted({}), codePointOrder);
  assert.deepEqual(sorted({ LANG: '' }, 'darwin'), codePointOrder);
});

test("a named locale sorts names in that language's order, case and accents after the letter", () => {
  assert.deepEqual(sorted({ LANG: 'en_US.UTF-8' }), englishOrder);
  assert.deepEqual(sorted({ LANG: 'en_GB@euro' }), englishOrder);
  // Swedish puts å after z; English beside a.
  assert.deepEqual(['å', 'z', 'a'].sort(nameOrderFor({ LANG: 'sv_SE.UTF-8' }, 'linux')), ['a', 'z', 'å']);
  assert.deepEqual(['å', 'z', 'a'].sort(nameOrderFor({ LANG: 'en_US.UTF-8' }, 'linux')), ['a', 'å', 'z']);
});

test('LC_ALL wins over LC_COLLATE, which wins over LANG; empty ones are passed over', () => {
  assert.deepEqual(sorted({ LC_ALL: 'C', LC_COLLATE: 'en_US.UTF-8', LANG: 'en_US.UTF-8' }), codePointOrder);
  assert.deepEqual(sorted({ LC_COLLATE: 'C', LANG: 'en_US.UTF-8' }), codePointOrder);
  assert.deepEqual(sorted({ LC_ALL: '', LC_COLLATE: 'en_US.UTF-8', LANG: 'C' }), englishOrder);
});

test('Windows with no locale named sorts as ICU does by default, and a locale ICU cannot read does not fail', () => {
  const byDefault = [...names].sort(new Intl.Collator().compare);
  assert.notDeepEqual(byDefault, codePointOrder);
  assert.deepEqual(sorted({}, 'win32'), byDefault);
  assert.deepEqual(sorted({ LANG: 'not a locale!' }), byDefault);
});

test('code point order puts characters beyond U+FFFF after U+E000-U+FFFF, unlike UTF-16 code units', () => {
  const astral = '\u{1F600}';
  const high = '\uFFFD';
  assert.ok(astral < high, 'JavaScript compares code units');
  assert.ok(byCodePoint(astral, high) > 0);
  assert.ok(byCodePoint(high, astral) < 0);
  assert.ok(byCodePoint('\u{1F600}', '\u{1F601}') < 0);
  assert.equal(byCodePoint('ab', 'ab'), 0);
  assert.ok(byCodePoint('ab', 'abc') < 0);
  assert.ok(byCodePoint('abc', 'ab') > 0);
});
