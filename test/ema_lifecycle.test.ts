// Lifetimes: weak references to the model, native memory of dropped and disposed EMAs, worker
// threads, and updateAsync() (snapshots, ordering, buffers detached while work is queued).
//
// The gc-dependent checks need `global.gc`, which exists only when node starts with --expose-gc;
// jest's workers do not, so those checks run plain .js scripts from test/helpers/ in a child node
// process, against dist/ compiled from the current sources in beforeAll.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { cpuInfo, ExponentialMovingAverage } from '../src';
import { DTYPES, effectiveDecay, expectSame, expectUpdateClose, fillRandom } from './reference';
import { expectBitsEqual, expectRejection, expectSameState } from './helpers/state';

const root = path.resolve(__dirname, '..');
const helper = (name: string) => path.join(__dirname, 'helpers', name);
const MiB = 2 ** 20;

function runNode(args: string[], env: Record<string, string> = {}): any {
  const result = spawnSync(process.execPath, args, {
    cwd: root,
    encoding: 'utf8',
    // Generous: on a loaded 2-core machine the 2000-cycle memory checks take 40 s of wall time for
    // 10 s of CPU (page faults of fresh arenas); the limit only catches hangs.
    timeout: 150_000,
    maxBuffer: 64 * MiB,
    env: { ...process.env, ...env },
  });
  if (result.status !== 0) {
    throw new Error(`node ${args.join(' ')} exited with ${result.status} (signal ${result.signal}):\n${result.stderr}`);
  }
  return JSON.parse(result.stdout.trim().split('\n').pop()!);
}

// Cheap deterministic values for the large tensors (the reference's fillRandom costs about a
// microsecond per element under jest, too slow for arenas above the parallel threshold).
function wave<T extends Float32Array | Float64Array>(array: T, seed: number): T {
  for (let j = 0; j < array.length; j++) array[j] = Math.sin(j * 0.7071 + seed) * (1 + (j % 97));
  return array;
}

function detach(array: Float32Array | Float64Array): void {
  const buffer = array.buffer as ArrayBuffer;
  structuredClone(buffer, { transfer: [buffer] });
}

describe('child processes against dist/', () => {
  beforeAll(() => {
    const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: root,
      encoding: 'utf8',
    });
    if (tsc.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed:\n${tsc.stdout}${tsc.stderr}`);
  }, 60_000);

  test('a dropped model is collected while its EMA lives; implicit calls then name the lost parameter, explicit ones work', () => {
    const result = runNode(['--expose-gc', helper('weakref_check.js')]);
    for (const [variant, name] of [['named', '"fc.bias"'], ['unnamed', null]] as const) {
      const check = result[variant];
      expect(check.collected).toBe(true);
      for (const operation of ['update', 'copyTo', 'store']) {
        const error = check[operation];
        expect(error).not.toBeNull();
        expect(error.name).toBe('Error');
        expect(error.message).toContain(`${operation}():`);
        expect(error.message).toMatch(/parameter 1\b/);
        if (name !== null) expect(error.message).toContain(name);
        expect(error.message).toMatch(/garbage-collected/);
        expect(error.message).toMatch(/explicitly/);
      }
      expect(check.shadowsAfterFailure).toEqual([new Array(16).fill(1), new Array(4).fill(2)]);
      expect(check.explicit).toBeNull();
      expect(check.shadowsAfterExplicit).toEqual([new Array(16).fill(1), new Array(4).fill(3)]); // decay 0.5: (2 + 4) / 2
    }
  });

  test.each(['drop', 'dispose', 'tracks-drop', 'tracks-dispose'])('RSS stays flat over 2000 cycles of create/update/store then %s, with 1 MiB arenas', (mode) => {
    const result = runNode(['--expose-gc', helper('memory_check.js'), mode, '2000']);
    expect(result.cycles).toBe(2000);
    // A leak of the arenas would be 2 MiB per cycle, about 3 GiB over the measured 1500 cycles.
    expect(result.growth).toBeLessThan(100 * MiB);
  }, 160_000);

  test('the memory check can fail: keeping the EMAs alive grows RSS by about their arenas', () => {
    const result = runNode(['--expose-gc', helper('memory_check.js'), 'keep', '150']);
    expect(result.growth).toBeGreaterThan(100 * MiB); // about 113 cycles x 2 MiB after the baseline
  });

  test('EMAs in worker_threads (two at once, then one more) and on the main thread each match the reference', () => {
    // A low threshold makes every update of these small arenas use each instance's thread pool.
    const result = runNode([helper('worker_check.js')], { MODEL_EMA_PARALLEL_THRESHOLD: '1024' });
    expect(result.workers).toHaveLength(3);
    const runs = [result.main];
    for (const worker of result.workers) {
      expect(worker.exitCode).toBe(0);
      runs.push(worker.result);
    }
    runs.forEach((run, r) => {
      expect(run.numUpdates).toBe(3);
      expect(run.history[0]).toEqual(run.initial); // float32 parameters, float32 storage: exact copies
      run.steps.forEach((step: number[][], k: number) => {
        step.forEach((param, i) =>
          expectUpdateClose(run.history[k + 1][i], run.history[k][i], param, effectiveDecay(0.9, k + 1), 'float32', 4, `run ${r}, step ${k + 1}, tensor ${i}`),
        );
      });
    });
    expect(runs[1].initial).not.toEqual(runs[2].initial); // each thread did its own work
  });

  test('a worker that terminates or exits while its updateAsync() is in flight does not crash the process', () => {
    const result = runNode([helper('worker_check.js'), 'leave-while-busy']);
    expect(result.left).toBe(6);
  });
});

describe('updateAsync()', () => {
  const threshold = cpuInfo().parallelThreshold;
  const sizes = [0, 7, 4097, threshold + 33]; // the last one makes the arena big enough to be split

  test.each(DTYPES)('gives the same shadows as update(), bit for bit (%s storage)', async (dtype) => {
    const fill = (array: Float32Array | Float64Array, seed: number) => (array.length > 5000 ? wave(array, seed) : fillRandom(array, seed));
    const initial = sizes.map((n, i) => fill(i % 2 ? new Float64Array(n) : new Float32Array(n), i));
    const sync = new ExponentialMovingAverage(initial, { decay: 0.95, dtype });
    const async = new ExponentialMovingAverage(initial, { decay: 0.95, dtype });
    for (let k = 1; k <= 3; k++) {
      const params = sizes.map((n, i) => fill(i % 2 ? new Float32Array(n) : new Float64Array(n), 10 * k + i));
      sync.update(params);
      await async.updateAsync(params);
    }
    expectSameState(async.stateDict(), sync.stateDict());
  });

  test('overlapping calls apply in call order, each with its own warm-up decay, and resolve in order', async () => {
    // Dyadic values and decay 0.5: the float64 reference is exact, and any reordering changes it.
    const ema = new ExponentialMovingAverage([new Float64Array(3)], { decay: 0.5, dtype: 'float64', useNumUpdates: false });
    const settled: number[] = [];
    const calls = [1, 2, 4, 8, 16].map((v, k) =>
      ema.updateAsync([new Float64Array(3).fill(v)]).then(() => {
        settled.push(k);
      }),
    );
    await Promise.all(calls);
    expect(settled).toEqual([0, 1, 2, 3, 4]);
    let expected = 0;
    for (const v of [1, 2, 4, 8, 16]) expected = expected - 0.5 * (expected - v);
    expectSame(ema.stateDict().shadowParams[0], new Float64Array(3).fill(expected));

    const warm = new ExponentialMovingAverage([new Float64Array(1)], { decay: 0.999, dtype: 'float64' });
    await Promise.all([1, 2, 3].map(() => warm.updateAsync([new Float64Array([1])])));
    expect(warm.numUpdates).toBe(3);
    expect(warm.stateDict().shadowParams[0][0]).toBeCloseTo(1 - (2 / 11) * (3 / 12) * (4 / 13), 15);
  });

  test('parameters changed right after an un-awaited updateAsync() do not affect it (explicit and registered)', async () => {
    const n = threshold + 1;
    const registered = new Float32Array(n); // shadows start at 0
    const ema = new ExponentialMovingAverage([registered], { decay: 0.5, useNumUpdates: false });
    registered.fill(2);
    const first = ema.updateAsync(); // reads 2s
    registered.fill(1000);
    await first;
    expectSame(ema.stateDict().shadowParams[0], new Float32Array(n).fill(1));
    const explicit = new Float32Array(n).fill(3);
    const second = ema.updateAsync([explicit]);
    explicit.fill(-1000);
    await second;
    expectSame(ema.stateDict().shadowParams[0], new Float32Array(n).fill(2));
  });

  test('a buffer transferred away right after updateAsync() was called gives the snapshot result, no crash', async () => {
    const n = threshold + 1;
    const params = [new Float32Array(n).fill(4), new Float64Array(5).fill(8)];
    const ema = new ExponentialMovingAverage([new Float32Array(n), new Float64Array(5)], { decay: 0.5, useNumUpdates: false });
    const pending = ema.updateAsync(params);
    detach(params[0]);
    detach(params[1]);
    expect(params[0].length).toBe(0);
    await pending;
    const [a, b] = ema.stateDict().shadowParams;
    expectSame(a, new Float32Array(n).fill(2));
    expectSame(b, new Float32Array(5).fill(4));
  });

  test('a queued updateAsync() copies its parameters at the call: a buffer detached before its turn changes nothing', async () => {
    const init = [fillRandom(new Float32Array(4097), 1), fillRandom(new Float64Array(9), 2)];
    const ema = new ExponentialMovingAverage(init, { decay: 0.9 });
    const twin = new ExponentialMovingAverage(init, { decay: 0.9 }); // the same calls, synchronously
    const a = [fillRandom(new Float32Array(4097), 3), fillRandom(new Float64Array(9), 4)];
    const b = [fillRandom(new Float32Array(4097), 5), fillRandom(new Float64Array(9), 6)];
    const c = [fillRandom(new Float32Array(4097), 7), fillRandom(new Float64Array(9), 8)];
    const bAtCall = b.map((x) => x.slice());
    const first = ema.updateAsync(a); // starts now
    const second = ema.updateAsync(b); // queued: copied now
    const third = ema.updateAsync(c); // queued
    detach(b[1]);
    await Promise.all([first, second, third]);
    twin.update(a);
    twin.update(bAtCall);
    twin.update(c);
    expectSameState(ema.stateDict(), twin.stateDict());
    expect(ema.numUpdates).toBe(3);
    // Detached before the call: refused at once, naming the parameter, with nothing changed.
    const busy = ema.updateAsync(a);
    await expectRejection(ema.updateAsync(b), { name: 'RangeError', message: ['parameter 1', /detached/, /\b9\b/] });
    await busy;
    expect(ema.numUpdates).toBe(4);
  });

  test('update() on one EMA while another updates asynchronously: both match EMAs updated one after the other', async () => {
    const n = threshold + 64;
    const make = (dtype: 'float16' | 'float32', seed: number) =>
      new ExponentialMovingAverage([wave(new Float32Array(n), seed), fillRandom(new Float64Array(33), seed)], { decay: 0.9, dtype });
    const [left, right, leftTwin, rightTwin] = [make('float16', 1), make('float32', 2), make('float16', 1), make('float32', 2)];
    const p = [wave(new Float32Array(n), 3), fillRandom(new Float64Array(33), 3)];
    const q = [wave(new Float32Array(n), 4), fillRandom(new Float64Array(33), 4)];
    const before = right.stateDict().shadowParams[1];
    const pending = left.updateAsync(p);
    right.update(q);
    await pending;
    leftTwin.update(p);
    rightTwin.update(q);
    expectSameState(left.stateDict(), leftTwin.stateDict(), 'async EMA');
    expectSameState(right.stateDict(), rightTwin.stateDict(), 'sync EMA');
    expectUpdateClose(right.stateDict().shadowParams[1], before, q[1], 2 / 11, 'float32', 4, 'sync EMA, tensor 1');
  });
});
