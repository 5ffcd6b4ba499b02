#!/usr/bin/env node
// prebuildify drives node-gyp only: it runs `<this script> rebuild --target=... --release ...`.
// This stand-in builds with cmake-js instead (Node-API mode, headers from node-api-headers, no
// download) and leaves build/Release/model_ema.node where prebuildify looks for it.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const run = spawnSync(process.execPath, [cmakeJs, 'rebuild'], { stdio: 'inherit' });
process.exit(run.status === null ? 1 : run.status);
