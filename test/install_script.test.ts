// scripts/install.js, npm's install step: where no binary loads and no source build can run, one
// short message (what is missing, which platforms have prebuilt binaries, how to fix); a failing
// source build shows its log's tail and where the whole log is; after a source build in a user's
// node_modules only the .node file stays. Run in a scratch package so nothing here is rebuilt;
// the tarball's real installs (with and without prebuilds) are in scripts/check-package.sh.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const install = require('../scripts/install.js') as {
  removeBuildLeftovers(buildDir: string): void;
  prebuiltPlatforms(dir: string): string[];
};
const platform = `${process.platform}-${process.arch}`;

/** A package like the tarball, without a binary for this platform: prebuilds only for two others. */
function scratchPackage(cmakeLists = 'cmake_minimum_required(VERSION 3.19)\nproject(broken CXX)\nmessage(FATAL_ERROR "broken on purpose")\n'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-install-'));
  fs.mkdirSync(path.join(dir, 'scripts'));
  fs.copyFileSync(path.join(root, 'scripts', 'install.js'), path.join(dir, 'scripts', 'install.js'));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'model-ema', version: '0.0.0', binary: { napi_versions: [8] } }));
  fs.writeFileSync(path.join(dir, 'CMakeLists.txt'), cmakeLists);
  for (const other of ['darwin-arm64', 'win32-x64']) {
    fs.mkdirSync(path.join(dir, 'prebuilds', other), { recursive: true });
    fs.writeFileSync(path.join(dir, 'prebuilds', other, 'model-ema.node'), 'not for this platform');
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

/** A PATH with node and the named tools only. */
function pathWith(...tools: string[]): string {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-bin-'));
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  for (const tool of tools) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (found) fs.symlinkSync(found, path.join(bin, tool));
  }
  return bin;
}

function runInstall(dir: string, PATH: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH };
  delete env.CXX;
  return spawnSync(process.execPath, [path.join(dir, 'scripts', 'install.js')], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
}

describe('scripts/install.js', () => {
  test('no binary and no CMake or compiler: three lines saying what is missing, what is prebuilt, and how to fix it', () => {
    const dir = scratchPackage();
    const result = runInstall(dir, pathWith());
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n')).toEqual([
      `model-ema: no prebuilt binary for ${platform} (prebuilt: darwin-arm64, win32-x64),`,
      'and building from source needs CMake (>= 3.19) and a C++17 compiler (g++ or clang++), not found on PATH.',
      expect.stringMatching(/^To fix: install CMake and a C\+\+ compiler .*then run `npm rebuild model-ema`\.$/),
    ]);
    expect(result.stderr).not.toMatch(/No native build was found|at load|node-gyp/);
  });

  test('CMake found but no compiler: names only the compiler', () => {
    const result = runInstall(scratchPackage(), pathWith('cmake'));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('needs a C++17 compiler (g++ or clang++), not found on PATH');
    expect(result.stderr).not.toContain('CMake (>= 3.19)');
  });

  test('a failing source build: the log tail, the log file, and the platforms; no stack trace', () => {
    const dir = scratchPackage();
    const result = runInstall(dir, pathWith('cmake', 'c++', 'g++', 'ninja', 'make', 'sh', 'cc', 'gcc', 'ld', 'as'));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('broken on purpose');
    expect(result.stderr).toContain(`model-ema: building the native addon from source failed (full log: ${path.join(dir, 'build', 'model-ema-build.log')})`);
    expect(result.stderr).toContain(`No prebuilt binary for ${platform} (prebuilt: darwin-arm64, win32-x64)`);
    expect(fs.readFileSync(path.join(dir, 'build', 'model-ema-build.log'), 'utf8')).toContain('broken on purpose');
    expect(result.stderr).not.toMatch(/No native build was found|at load\./);
  });

  test('a binary that loads (the build of this checkout): exits 0 and prints nothing', () => {
    const result = spawnSync(process.execPath, [path.join(root, 'scripts', 'install.js')], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
  });

  test('removeBuildLeftovers keeps build/Release/*.node and nothing else', () => {
    const build = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-build-'));
    for (const file of ['CMakeCache.txt', 'CMakeFiles/x/a.o', 'Release/model_ema.node', 'Release/libkernels.a', 'Release/obj/b.o', 'build.ninja']) {
      fs.mkdirSync(path.dirname(path.join(build, file)), { recursive: true });
      fs.writeFileSync(path.join(build, file), file);
    }
    install.removeBuildLeftovers(build);
    expect(fs.readdirSync(build)).toEqual(['Release']);
    expect(fs.readdirSync(path.join(build, 'Release'))).toEqual(['model_ema.node']);
  });

  test('prebuiltPlatforms names each folder with a .node file, with its libc tag', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-prebuilds-'));
    for (const file of ['linux-x64/model-ema.glibc.node', 'linux-arm64/model-ema.glibc.node', 'linux-arm64/model-ema.musl.node', 'darwin-x64/readme.txt']) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), '');
    }
    expect(install.prebuiltPlatforms(dir).sort()).toEqual(['linux-arm64 (glibc, musl)', 'linux-x64 (glibc)']);
  });
});
