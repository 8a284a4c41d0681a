import assert from 'node:assert/strict';
import { test } from 'node:test';
import { editedText } from '../../../src/common/edited-text.js';

test('a config file is read in UTF-8, UTF-8 with a byte-order mark, and UTF-16 either way round, as Windows PowerShell writes them', () => {
  const json = '{"heartbeat-timeout": 10, "data": "C:\\\\sedfs"}';
  const utf16le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(json, 'utf16le')]);
  const utf16be = Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(json, 'utf16le').swap16()]);
  const utf8bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json, 'utf8')]);
  for (const bytes of [Buffer.from(json, 'utf8'), utf8bom, utf16le, utf16be])
    assert.deepEqual(JSON.parse(editedText(bytes)), { 'heartbeat-timeout': 10, data: 'C:\\sedfs' });
});
