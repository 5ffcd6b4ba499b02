// What the npm tarball holds and says: a LICENSE, every file the README links to, the bin and the
// install script; tfjs-node an optional peer named only in peerDependenciesMeta (so `npm ls` shows
// no unmet peer for it). The file list is npm's own (`npm pack --dry-run`).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
let packed: string[];

beforeAll(() => {
  // dist/ is in the tarball: build it from the current sources, as `prepare` does before a pack.
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`tsc failed:\n${tsc.stdout}${tsc.stderr}`);
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  if (pack.status !== 0) throw new Error(`npm pack --dry-run failed:\n${pack.stderr}`);
  packed = (JSON.parse(pack.stdout)[0].files as { path: string }[]).map((f) => f.path);
}, 120_000);

/** Relative link and image targets of a Markdown file (no URLs, no in-page anchors). */
function relativeLinks(markdown: string): string[] {
  const targets = [...markdown.matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1]);
  return targets.filter((t) => !/^(https?:|mailto:|#)/.test(t)).map((t) => t.split('#')[0]);
}

describe('the npm tarball', () => {
  test('has an MIT LICENSE by the model-ema contributors, 2026, matching package.json', () => {
    expect(packed).toContain('LICENSE');
    const license = fs.readFileSync(path.join(root, 'LICENSE'), 'utf8');
    expect(license.split('\n')[0]).toBe('MIT License');
    expect(license).toContain('Copyright (c) 2026 model-ema contributors');
    expect(pkg.license).toBe('MIT');
  });

  test('every file the README links to is in it', () => {
    const links = relativeLinks(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));
    expect(links.length).toBeGreaterThan(0); // the chart at least
    expect(links.filter((l) => !packed.includes(l))).toEqual([]);
  });

  test('the link finder sees a link to an unshipped file (negative control)', () => {
    const links = relativeLinks('See [the map](ARCHITECTURE.md), [a section](#usage) and [npm](https://npmjs.com).');
    expect(links).toEqual(['ARCHITECTURE.md']);
    expect(packed).not.toContain('ARCHITECTURE.md');
  });

  test('ships the bin (model-ema inspect) and the install script it runs', () => {
    expect(pkg.bin).toEqual({ 'model-ema': 'dist/cli/main.js' });
    expect(packed).toEqual(expect.arrayContaining(['dist/cli/main.js', 'dist/cli/inspect.js', 'scripts/install.js']));
    expect(pkg.scripts.install).toBe('node scripts/install.js');
    expect(fs.readFileSync(path.join(root, 'dist', 'cli', 'main.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  test('tfjs-node is an optional peer through peerDependenciesMeta alone; tfjs keeps its range', () => {
    expect(pkg.peerDependencies).toEqual({ '@tensorflow/tfjs': '>=4.0.0' });
    expect(pkg.peerDependenciesMeta).toEqual({ '@tensorflow/tfjs': { optional: true }, '@tensorflow/tfjs-node': { optional: true } });
  });
});
