#!/usr/bin/env node
// The package is built by `npm run build` (run by `npm ci` through `prepare`): TypeScript
// to dist/src, then the CLI bundled into dist/bundle (scripts/bundle-cli.mjs), which loads
// in a fraction of the time of the separate modules.
import '../dist/bundle/index.js';
