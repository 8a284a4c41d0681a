#!/usr/bin/env node
// The package is built by `npm run build` (run by `npm ci` through `prepare`): TypeScript
// to dist/src, then the CLI bundled into dist/bundle (scripts/bundle-cli.mjs), which loads
// in a fraction of the time of the separate modules.
import { setFlagsFromString } from 'node:v8';

// undici parses HTTP with a WebAssembly module, which V8 compiles again with its
// optimising compiler once it runs hot: ~27 MiB of passing compiler memory that set each
// file server's peak at start-up (105 MiB against 79 without). It parses heads and skips
// over bodies of known length (downloads do not use it at all), so the baseline
// compiler's code will do: repair (server to server through undici) and inventories
// measured no slower with it (W6 345 MiB/s, W7 6.2 s in the bench at bdffffb).
setFlagsFromString('--liftoff-only');

// Servers hold V8's young generation at a set size (src/common/gc-tuning.ts), which only
// works from their first allocation: loading the code alone doubled it, and a busy
// process never gets it back. It grows by 1 (not at all) until the server's tuning says.
if (process.argv[2] === 'main' || process.argv[2] === 'fileserver') {
  setFlagsFromString('--semi-space-growth-factor=1');
}
await import('../dist/bundle/index.js');
