// Bundles the built CLI (dist/src/cli/index.js) into dist/bundle/, which bin/sedfs.js runs.
// Why: every `sedfs` command is a new process, and resolving and loading ~300 module files
// (undici alone is 130) was a third of a short command's time; a bundle is read in a few
// files (`sedfs ls` of 2,000 entries: 0.28 -> 0.22 s). The servers, loaded only by
// `sedfs main`, `fileserver` and `dev`, become chunks of their own (code splitting), so a
// client command never reads them and every module still exists once.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunks are named by their content's hash: each build would add its own beside the old
// ones (a working copy held 300 MB of them after a day).
rmSync('dist/bundle', { recursive: true, force: true });

await build({
  // The seal worker is started by file name (new URL('./seal-worker.js', import.meta.url)),
  // so it is an entry of its own, next to the code that starts it.
  entryPoints: ['dist/src/cli/index.js', 'dist/src/client/seal-worker.js'],
  entryNames: '[name]',
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // Every process keeps the source of what it loaded in its heap, and a file holding one
  // character outside Latin-1 (a comment's ’ or §) is kept at two bytes a character:
  // without comments and indentation a server holds ~4 MiB less (main idle 89 -> 86 MiB
  // resident). Names stay, so stack traces still say which function; the .map files (run
  // with `node --enable-source-maps`) give the source line. Licence comments go to
  // *.LEGAL.txt beside the chunk they came from.
  minifyWhitespace: true,
  legalComments: 'external',
  // A native addon cannot be bundled; it is loaded from node_modules as usual.
  external: ['better-sqlite3'],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: {
    js: "import { createRequire as __sedfsRequire } from 'node:module'; const require = __sedfsRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
