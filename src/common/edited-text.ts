/**
 * The text of a file a person may have saved (a config file, a profile's `config.json`).
 * Windows PowerShell 5.1 writes files as UTF-16 (`Out-File`, `>`) or UTF-8 with a
 * byte-order mark (`Set-Content -Encoding UTF8`), Notepad UTF-8 with one: all are read,
 * as is plain UTF-8, rather than refused as not JSON.
 */
export function editedText(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return bytes.subarray(2).toString('utf16le');
  if (bytes[0] === 0xfe && bytes[1] === 0xff)
    return Buffer.from(bytes.subarray(2)).swap16().toString('utf16le');
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return bytes.subarray(3).toString('utf8');
  return bytes.toString('utf8');
}
