#!/usr/bin/env node
// npm's install step for model-ema (package.json "install"). In order:
//   1. a binary that loads (prebuilds/<platform>-<arch>/ from the tarball, or an earlier build):
//      nothing to do, nothing printed;
//   2. else build from source with cmake-js, its output kept out of sight unless the build fails;
//      installed as a dependency, only the .node file is kept (build/ is ~20 MB of objects);
//   3. else (no CMake or no C++ compiler) one short message: what is missing, which platforms
//      have prebuilt binaries, how to fix it. Never node-gyp-build's stack traces.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const platform = `${process.platform}-${process.arch}`;

/** Whether a binary for this platform loads now; a binary that refuses this process's settings counts as loading. */
function binaryLoads() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch (error) {
    const code = error && error.code;
    return typeof code === 'string' && code.startsWith('ERR_MODEL_EMA_');
  }
}

/** "linux-x64 (glibc)" for each folder of prebuilds/ that holds a .node file. */
function prebuiltPlatforms(dir = path.join(root, 'prebuilds')) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).flatMap((folder) => {
    const files = fs.readdirSync(path.join(dir, folder)).filter((f) => f.endsWith('.node'));
    if (files.length === 0) return [];
    const libcs = [...new Set(files.map((f) => (/\.(glibc|musl)\./.exec(f) || [])[1]).filter(Boolean))];
    return [libcs.length > 0 ? `${folder} (${libcs.join(', ')})` : folder];
  });
}

/** Whether `command` runs (found on PATH). */
function runs(command, args = ['--version']) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return !result.error;
}

/** What a source build lacks here: [] when CMake and a C++ compiler are on PATH. */
function missingTools() {
  const missing = [];
  if (!runs('cmake')) missing.push('CMake (>= 3.19)');
  const compilers = process.platform === 'win32' ? [] : [process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean);
  if (compilers.length > 0 && !compilers.some((c) => runs(c))) missing.push('a C++17 compiler (g++ or clang++)');
  return missing;
}

function fixHint() {
  if (process.platform === 'darwin') return 'install CMake and the Xcode command line tools (brew install cmake; xcode-select --install)';
  if (process.platform === 'win32') return 'install CMake and Visual Studio Build Tools (C++ workload)';
  return 'install CMake and a C++ compiler (Debian/Ubuntu: apt-get install cmake g++; Alpine: apk add cmake g++ make)';
}

/** "no prebuilt binary for linux-arm64", or, where this platform has one that failed to load (another libc), says so. */
function noBinary(prebuilt) {
  const here = prebuilt.some((p) => p.split(' ')[0] === platform);
  return here ? `the prebuilt binary for ${platform} does not load here` : `no prebuilt binary for ${platform}`;
}

/** The short message for a platform without a prebuilt binary where a source build cannot run. */
function cannotBuildMessage(missing, prebuilt = prebuiltPlatforms()) {
  return [
    `model-ema: ${noBinary(prebuilt)} (prebuilt: ${prebuilt.length > 0 ? prebuilt.join(', ') : 'none in this package'}),`,
    `and building from source needs ${missing.join(' and ')}, not found on PATH.`,
    `To fix: ${fixHint()}, then run \`npm rebuild model-ema\`.`,
  ].join('\n');
}

/** After a source build installed as a dependency: keep build/Release/*.node, drop the rest (objects, CMake files). */
function removeBuildLeftovers(buildDir = path.join(root, 'build')) {
  const release = path.join(buildDir, 'Release');
  const keep = fs.existsSync(release) ? fs.readdirSync(release).filter((f) => f.endsWith('.node')) : [];
  if (keep.length === 0) return; // nothing built: leave it for whoever investigates
  for (const entry of fs.readdirSync(buildDir)) {
    if (entry !== 'Release') fs.rmSync(path.join(buildDir, entry), { recursive: true, force: true });
  }
  for (const entry of fs.readdirSync(release)) {
    if (!keep.includes(entry)) fs.rmSync(path.join(release, entry), { recursive: true, force: true });
  }
}

function capitalised(text) {
  return text[0].toUpperCase() + text.slice(1);
}

/** Installed under node_modules (a user's project), not a clone being developed in. */
function installedAsDependency() {
  return root.split(path.sep).includes('node_modules');
}

function buildFromSource() {
  const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const build = spawnSync(process.execPath, [cmakeJs, 'compile'], { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20 });
  const log = `${build.stdout || ''}${build.stderr || ''}`;
  if (build.status !== 0) {
    const logFile = path.join(root, 'build', 'model-ema-build.log');
    try {
      fs.mkdirSync(path.dirname(logFile), { recursive: true });
      fs.writeFileSync(logFile, log);
    } catch {
      // the message below still has the log's last lines
    }
    const tail = log.trimEnd().split('\n').slice(-25).join('\n');
    process.stderr.write(
      `${tail}\n\nmodel-ema: building the native addon from source failed (full log: ${logFile}).\n` +
        `${capitalised(noBinary(prebuiltPlatforms()))} (prebuilt: ${prebuiltPlatforms().join(', ') || 'none in this package'}).\n`,
    );
    return 1;
  }
  if (installedAsDependency()) removeBuildLeftovers();
  return 0;
}

function main() {
  if (binaryLoads()) return 0;
  const missing = missingTools();
  if (missing.length > 0) {
    process.stderr.write(`${cannotBuildMessage(missing)}\n`);
    return 1;
  }
  return buildFromSource();
}

module.exports = { cannotBuildMessage, missingTools, prebuiltPlatforms, removeBuildLeftovers };

if (require.main === module) process.exitCode = main();
