#!/usr/bin/env node
// The package is built to dist/ by `npm run build` (run by `npm ci` through `prepare`).
import '../dist/src/cli/index.js';
