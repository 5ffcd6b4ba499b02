// save() no longer stops training (issue 16): it copies the state at its call and writes the file
// from the copy, while update() and updateAsync() go on. The file holds the state at the call, the
// updates made meanwhile all apply, load() still waits for the work (saves included) before it.
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage, type EmaStateDict } from '../src';
import { expectSameState } from './helpers/state';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ema-save-while-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

// Several tensors, 2 MiB: writing the file takes many event-loop turns.
const SIZES = [1 << 18, 4099, 7, 1 << 18];

function wave(array: Float32Array, seed: number): Float32Array {
  for (let j = 0; j < array.length; j++) array[j] = Math.sin(j * 0.7071 + seed) * (1 + (j % 97));
  return array;
}

/** Two EMAs over the same parameters, in the same state: one to save, one as the reference. */
function twins() {
  const params = SIZES.map((n, i) => wave(new Float32Array(n), i));
  const make = () => new ExponentialMovingAverage(params, { decay: 0.9 });
  const ema = make();
  const reference = make();
  // The next optimizer step: cheap (a native fill), different at every step.
  const step = (k: number) => params.forEach((p, i) => p.fill(k * 0.25 - i, (k * 61) % 3, Math.min(p.length, 3 + ((k * 997) % 5000))));
  for (let k = 1; k <= 3; k++) {
    step(k);
    ema.update();
    reference.update();
  }
  ema.store(); // a backup too, which the file must hold as it was at the call
  reference.store();
  return { params, ema, reference, step };
}

async function loaded(file: string): Promise<EmaStateDict> {
  const reader = new ExponentialMovingAverage(SIZES.map((n) => new Float32Array(n)), { decay: 0.5 });
  await reader.load(file, { matchNames: false });
  const state = reader.stateDict();
  reader.dispose();
  return state;
}

test('save() while 100 update() calls run: the file holds the state at the call, and every update applied', async () => {
  const { ema, reference, step } = twins();
  const atCall = ema.stateDict();
  const file = path.join(tmp, 'sync.safetensors');
  const saving = ema.save(file);
  expect(ema.busy).toBe(false); // nothing queued: training goes on
  for (let k = 4; k < 104; k++) {
    step(k);
    ema.update(); // threw while a save was in flight, before issue 16
    reference.update();
    if (k % 10 === 0) await new Promise((resolve) => setImmediate(resolve)); // the write proceeds meanwhile
  }
  await saving;
  expectSameState({ ...(await loaded(file)), names: atCall.names }, atCall, 'the file');
  expectSameState(ema.stateDict(), reference.stateDict(), 'after 100 updates');
  expect(ema.numUpdates).toBe(103);
  ema.dispose();
  reference.dispose();
});

test('save() while 100 updateAsync() calls are queued: the file holds the state at the call, and every update applied', async () => {
  const { ema, reference, step } = twins();
  const atCall = ema.stateDict();
  const file = path.join(tmp, 'async.safetensors');
  const saving = ema.save(file);
  const updates: Promise<void>[] = [];
  for (let k = 4; k < 104; k++) {
    step(k);
    updates.push(ema.updateAsync()); // the first reads the parameters now, the others copy them
    reference.update();
  }
  await Promise.all([saving, ...updates]);
  expectSameState({ ...(await loaded(file)), names: atCall.names }, atCall, 'the file');
  expectSameState(ema.stateDict(), reference.stateDict(), 'after 100 updates');
  ema.dispose();
  reference.dispose();
});

test('a save() behind an updateAsync() copies the state after it; the EMA is busy only until the copy', async () => {
  const { ema, step } = twins();
  step(50);
  const updating = ema.updateAsync();
  const saving = ema.save(path.join(tmp, 'behind.safetensors'));
  expect(() => ema.update()).toThrow(/still running/); // the updateAsync() in flight
  await updating;
  await new Promise((resolve) => setImmediate(resolve));
  const afterUpdate = ema.stateDict(); // the save copied this state at its turn...
  ema.update(); // ...and no longer holds the EMA while the file is written
  await saving;
  expectSameState({ ...(await loaded(path.join(tmp, 'behind.safetensors'))), names: afterUpdate.names }, afterUpdate, 'the file');
  ema.dispose();
});

test('saves to one path land in call order, and a load() after them waits for them and reads the last one', async () => {
  const { ema, step } = twins();
  const file = path.join(tmp, 'ordered.safetensors');
  const states: EmaStateDict[] = [];
  const saves: Promise<void>[] = [];
  for (let k = 0; k < 3; k++) {
    step(200 + k);
    ema.update();
    states.push(ema.stateDict());
    saves.push(ema.save(file));
  }
  step(300);
  ema.update(); // a state no file holds
  const loading = ema.load(file); // not awaited, and the saves are still writing
  expect(ema.busy).toBe(true);
  await Promise.all([...saves, loading]);
  expectSameState(ema.stateDict(), states[2], 'loaded after the saves');
  ema.dispose();
});

test('dispose() while a save() writes: the save completes from its copy; settled() waits for it', async () => {
  const { ema } = twins();
  const atCall = ema.stateDict();
  const file = path.join(tmp, 'disposed.safetensors');
  const saving = ema.save(file);
  ema.dispose();
  await ema.settled();
  await saving;
  expectSameState({ ...(await loaded(file)), names: atCall.names }, atCall, 'the file');
  await expect(ema.save(file)).rejects.toThrow(/save\(\): this ExponentialMovingAverage has been disposed/);
});

test('saves one after another reuse their copy, each file holding its own state, across a change of dtype', async () => {
  const { ema, step } = twins();
  const states: EmaStateDict[] = [];
  for (let k = 0; k < 3; k++) {
    if (k === 2) ema.to({ dtype: 'bfloat16' }); // the kept copy no longer fits: a new one is made
    step(400 + k);
    ema.update();
    states.push(ema.stateDict());
    await ema.save(path.join(tmp, `sequential-${k}.safetensors`));
  }
  for (let k = 0; k < 3; k++) {
    const file = await loaded(path.join(tmp, `sequential-${k}.safetensors`));
    // The reader's dtype is float32; a bfloat16 file's values are exact in it.
    expectSameState({ ...file, names: states[k].names, dtype: states[k].dtype }, states[k], `file ${k}`);
  }
  ema.dispose();
});
