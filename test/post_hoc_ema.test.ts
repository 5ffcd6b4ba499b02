// PostHocEma end to end (SPEC "Post-hoc EMA (EDM2)"): power-function tracks in one pass, snapshots
// every N steps or samples written into a folder, synthesis of tracked and untracked widths, and
// resuming after a restart (the resumed run writes the same snapshots, byte for byte, as one that
// never stopped). Synthesis itself is checked against float64 references in posthoc_synthesis.test.ts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ERROR_CODES, ExponentialMovingAverage, PostHocEma } from '../src';
import { fillRandom, random, sameBytes } from './reference';

const SIZES = [1, 7, 4097, 64];
let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-phema-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** A parameter random walk with drift, the same for a given seed. */
function walker(seed: number): { params: Float32Array[]; step: () => void } {
  const params = SIZES.map((n, i) => fillRandom(new Float32Array(n), seed + i));
  const r = random(seed * 7 + 1);
  return { params, step: () => params.forEach((p) => p.forEach((v, i) => (p[i] = v + 0.01 + (r() - 0.5) * 0.2))) };
}

const shadows = (ema: { stateDict(): { shadowParams: ArrayLike<number>[] } }) => ema.stateDict().shadowParams;

test('snapshots every N steps; synthesis reproduces a tracked width and approximates an untracked one', async () => {
  const dir = path.join(root, 'snapshots'); // created on the first snapshot
  const { params, step } = walker(1);
  const phema = new PostHocEma(params, { sigmaRels: [0.05, 0.1], snapshotEvery: { steps: 25 }, dir });
  const direct = new ExponentialMovingAverage(params, { decay: 1, schedule: { kind: 'power-function', sigmaRel: 0.07 } });
  for (let s = 0; s < 400; s++) {
    step();
    phema.update();
    direct.update();
  }
  await phema.flush();
  const listed = await phema.snapshots();
  expect(listed.map((s) => [s.t, s.track])).toEqual(Array.from({ length: 16 }, (_, i) => [[25 * (i + 1), 0], [25 * (i + 1), 1]]).flat());
  expect(listed.every((s) => s.dtype === 'float16' && s.unit === 'steps')).toBe(true);

  // The target is one of the snapshots' own profiles: the result is that snapshot (float16-rounded track).
  const tracked = await PostHocEma.synthesize(dir, { sigmaRel: 0.1 });
  expect(tracked.at).toBe(400);
  expect(tracked.coefficients.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  const exact = shadows(phema.track(0.1));
  tracked.values.forEach((v, i) => v.forEach((x, j) => expect(Math.abs(x - exact[i][j])).toBeLessThanOrEqual(Math.abs(exact[i][j]) * 2 ** -11 + 1e-7)));

  // An untracked width: close to an EMA that tracked it directly (the walk drifts by 4 over the run;
  // the reconstruction lands within 1% of that).
  const synthesized = await PostHocEma.synthesize(dir, { sigmaRel: 0.07 });
  const truth = shadows(direct);
  let worst = 0;
  synthesized.values.forEach((v, i) => v.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - truth[i][j])))));
  expect(worst).toBeLessThan(0.04);
  phema.dispose();
  direct.dispose();
});

test('unit samples: snapshots when the sample count passes a multiple; updateAsync snapshots too', async () => {
  const dir = path.join(root, 'samples');
  const { params, step } = walker(2);
  const phema = new PostHocEma(params, { sigmaRels: [0.05, 0.15], snapshotEvery: { samples: 1000 }, dir, snapshotDType: 'bfloat16' });
  expect(() => phema.update()).toThrow(/progress.samples is required/);
  for (let s = 0; s < 20; s++) {
    step();
    await phema.updateAsync(undefined, { samples: 300 });
  }
  await phema.flush();
  expect(phema.t).toBe(6000);
  expect((await phema.snapshots()).filter((s) => s.track === 0).map((s) => s.t)).toEqual([1200, 2100, 3000, 4200, 5100, 6000]);
  phema.dispose();
});

test('a restart resumes: save(), new PostHocEma, load(); the snapshots equal an uninterrupted run byte for byte', async () => {
  const options = (dir: string) => ({ sigmaRels: [0.05, 0.1], snapshotEvery: { steps: 10 }, dir, dtype: 'bfloat16' as const, rounding: 'stochastic' as const, seed: 3 });
  const a = walker(3);
  const b = walker(3);
  const straight = new PostHocEma(a.params, options(path.join(root, 'straight')));
  let resumed = new PostHocEma(b.params, options(path.join(root, 'resumed')));
  for (let s = 0; s < 60; s++) {
    a.step();
    b.step();
    straight.update();
    if (s === 35) {
      await resumed.save();
      resumed.dispose();
      resumed = new PostHocEma(b.params, options(path.join(root, 'resumed')));
      // Starting over would write another run's averages over the snapshot times: refused until load().
      expect(() => resumed.update()).toThrow(/holds 6 snapshot files of an earlier run; await load\(\) to resume/);
      await resumed.load();
      expect(resumed.t).toBe(35);
    }
    resumed.update();
  }
  await straight.flush();
  await resumed.flush();
  const files = (dir: string) => fs.readdirSync(dir).filter((f) => f.startsWith('phema-')).sort();
  expect(files(path.join(root, 'resumed'))).toEqual(files(path.join(root, 'straight')));
  expect(files(path.join(root, 'straight'))).toHaveLength(12);
  for (const f of files(path.join(root, 'straight'))) {
    expect(sameBytes(fs.readFileSync(path.join(root, 'straight', f)), fs.readFileSync(path.join(root, 'resumed', f)))).toBe(true);
  }
  straight.dispose();
  resumed.dispose();
});

test('options are checked, naming the option; a failed snapshot write is reported, naming the file', async () => {
  const p = [new Float32Array(3)];
  const dir = path.join(root, 'x');
  const ok = { sigmaRels: [0.05, 0.1], snapshotEvery: { steps: 1 }, dir };
  expect(() => new PostHocEma(p, { ...ok, sigmaRels: [0.05] })).toThrow(/at least two sigmaRel values .* for sigmaRels/);
  expect(() => new PostHocEma(p, { ...ok, sigmaRels: [0.05, 0.3] })).toThrow(RangeError);
  expect(() => new PostHocEma(p, { ...ok, sigmaRels: [0.05, 0.05] })).toThrow(/distinct/);
  expect(() => new PostHocEma(p, { ...ok, snapshotEvery: { steps: 0 } })).toThrow(/snapshotEvery.steps/);
  expect(() => new PostHocEma(p, { ...ok, snapshotEvery: { steps: 1, samples: 2 } as never })).toThrow(/exactly one/);
  expect(() => new PostHocEma(p, { ...ok, snapshotEvery: { step: 1 } as never })).toThrow(/Unknown option 'step' in snapshotEvery \(did you mean 'steps'\?\)/);
  expect(() => new PostHocEma(p, { ...ok, dir: '' })).toThrow(/for dir/);
  expect(() => new PostHocEma(p, { ...ok, snapshotDType: 'float64' as never })).toThrow(/snapshotDType/);
  expect(() => new PostHocEma(p, { ...ok, decay: 0.9 } as never)).toThrow(/Unknown option 'decay'/);
  const phema = new PostHocEma(p, ok);
  expect(() => phema.track(0.2)).toThrow(/Expected one of 0.05, 0.1 for sigmaRel but received 0.2/);
  await expect(phema.snapshot()).rejects.toThrow(expect.objectContaining({ code: ERROR_CODES.INVALID_ARGUMENT }));
  fs.writeFileSync(dir, 'a file where the folder should be');
  phema.update();
  await expect(phema.flush()).rejects.toThrow(new RegExp(dir.replace(/[/\\]/g, '.')));
  phema.update(); // the error was reported once; later snapshots try again
  phema.dispose();
});
