// scripts/gpu-check.sh, the one command for a GPU machine, in the mode CI runs it: no GPU. It must
// build (reusing build/), run the host emulation, gpu_check's no-GPU part and the Python
// checkpoint check, say plainly that no GPU is present, and exit 0. Also: the checkpoint fixtures
// that the Python check reads are what the library writes now, and what a GPU machine needs of
// this repository travels within the device tool's 64 MiB.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lib from '../src';

const root = path.resolve(__dirname, '..');
const cuda = lib.backends().find((b) => b.name === 'cuda');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fixtures = require('../scripts/gpu_check/make_checkpoint_fixture.js') as {
  buildFixtures(library: typeof lib): Record<string, Buffer | string>;
  FIXTURE_DIR: string;
};

describe('scripts/gpu-check.sh without a GPU', () => {
  const gpuHere = cuda?.available === true;

  (gpuHere ? test.skip : test)('builds, runs everything that needs no GPU, says no GPU is present, exits 0', () => {
    const run = spawnSync('bash', [path.join(root, 'scripts', 'gpu-check.sh')], { cwd: root, encoding: 'utf8', timeout: 170_000 });
    const out = `${run.stdout}\n${run.stderr}`;
    expect({ status: run.status, tail: out.slice(-3000) }).toEqual({ status: 0, tail: expect.stringMatching(/^gpu-check: PASS$/m) });
    const summary = out.slice(out.indexOf('==== gpu-check summary ===='));
    expect(summary).toMatch(/^host emulation: +ok: \d+ checks, 0 failures$/m);
    expect(summary).toMatch(/^native: +gpu_check: NO GPU, \d+ checks passed without one \(.+\)$/m);
    expect(summary).toMatch(/^GPU: +none usable on this machine/m);
    // python3 with numpy runs the README reader's part; torch and safetensors are skipped, named.
    expect(summary).toMatch(/^checkpoint: +(check_checkpoint: PASS \d+ checks on 4 checkpoints|SKIPPED: no python3 on PATH)/m);
    // One line per check, no failures anywhere.
    expect(out).not.toMatch(/^FAIL /m);
    expect(out).toMatch(/^ok +bad device index 0 throws DeviceUnavailable$/m);
    expect(out).toMatch(/^ok +comparison sees a one-bit difference/m);
    expect(out).toMatch(/^ok +arena ops +bfloat16 +1000 tiny tensors: /m);
  }, 180_000);

  test('gpu_check refuses an unknown argument with exit code 2 and its usage', () => {
    const exe = path.join(root, 'build', 'gpu_check');
    expect(fs.existsSync(exe)).toBe(true); // built with the addon by `npx cmake-js compile`
    const run = spawnSync(exe, ['--devcie', '1'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/bad argument '--devcie'\nusage: gpu_check /);
  });
});

describe('the checkpoint fixtures of scripts/gpu_check/', () => {
  test('are what the library writes now (regenerate: npm run build:ts && node scripts/gpu_check/make_checkpoint_fixture.js)', () => {
    const files = fixtures.buildFixtures(lib);
    expect(Object.keys(files).sort()).toEqual(fs.readdirSync(fixtures.FIXTURE_DIR).sort());
    for (const [file, contents] of Object.entries(files)) {
      const committed = fs.readFileSync(path.join(fixtures.FIXTURE_DIR, file));
      expect({ file, same: Buffer.compare(committed, Buffer.from(contents)) === 0 }).toEqual({ file, same: true });
    }
  });

  test('hold every storage dtype, a duplicate name, an unnamed parameter, shapes and a backup', () => {
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16']) {
      const expected = JSON.parse(fs.readFileSync(path.join(fixtures.FIXTURE_DIR, `ema-${dtype}.json`), 'utf8'));
      expect(expected.dtype).toBe(dtype);
      expect(expected.keys).toEqual(['fc.weight#0', 'fc.bias', 'conv.kernel', 'fc.weight#3', '4']);
      expect(expected.shapes).toContainEqual([2, 2, 1, 3]);
      expect(expected.collected).toHaveLength(5);
    }
  });
});

describe('what a GPU machine needs travels with the working tree', () => {
  test('the tracked files (sources, scripts, fixtures) are far under the 64 MiB the device tool carries', () => {
    const listed = spawnSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' });
    if (listed.status !== 0) return; // not a git checkout (an unpacked tarball): nothing to measure
    const bytes = listed.stdout.split('\0').filter(Boolean).reduce((sum, f) => {
      const p = path.join(root, f);
      return sum + (fs.existsSync(p) ? fs.statSync(p).size : 0);
    }, 0);
    expect(bytes).toBeLessThan(16 * 2 ** 20); // room left for a carried build/gpu-check
  });
});
