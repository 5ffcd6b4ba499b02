// src/native.ts in a throw-away copy of the package: with no binary it says where it looked and how
// to fix it; with a binary built for another version it refuses it as stale.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

function packageCopy(version: string, withBinary: boolean): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-loader-'));
  fs.cpSync(path.join(root, 'src'), path.join(dir, 'src'), { recursive: true });
  fs.copyFileSync(path.join(root, 'binding.d.ts'), path.join(dir, 'binding.d.ts'));
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ ...pkg, version }));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  if (withBinary) {
    fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
    const binary = (require('node-gyp-build') as { path(dir: string): string }).path(root);
    fs.copyFileSync(binary, path.join(dir, 'build', 'Release', 'model_ema.node'));
  }
  return dir;
}

function load(dir: string): { status: number | null; stderr: string } {
  const run = spawnSync(
    process.execPath,
    ['-r', path.join(__dirname, 'helpers', 'register_ts.js'), '-e', `require(${JSON.stringify(path.join(dir, 'src', 'native.ts'))})`],
    { encoding: 'utf8' },
  );
  fs.rmSync(dir, { recursive: true, force: true });
  return { status: run.status, stderr: run.stderr };
}

test('with no binary, the error lists every place looked in and how to fix it', () => {
  const { status, stderr } = load(packageCopy(version, false));
  expect(status).not.toBe(0);
  expect(stderr).toMatch(/model-ema could not load its native addon for/);
  expect(stderr).toMatch(/build[/\\]Release \(missing\)/);
  expect(stderr).toMatch(/prebuilds[/\\][a-z0-9]+-[a-z0-9]+ \(missing\)/);
  expect(stderr).toMatch(/npm rebuild model-ema/);
});

test('a binary built for another version is reported as stale, not used', () => {
  const { status, stderr } = load(packageCopy('9.9.9', true));
  expect(status).not.toBe(0);
  expect(stderr).toMatch(new RegExp(`built for version ${version.replace(/\./g, '\\.')}, but the package is 9\\.9\\.9: the binary is stale`));
});
