// The EMA callback with a checkpoint in flight (issue 12 item 11): `ema.save()` started in an
// onEpochEnd and not awaited must not break model.fit(); the EMA ends as in an uninterrupted run.
// Since issue 16 a save copies the state at its call and does not make the EMA busy: the callback's
// updates stay synchronous. A load() in flight still does, and then the callback queues them.
// And a scope over a tfjs variable disposed while it is open still closes (item 4).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage } from '../src';
import { createEmaCallback } from '../src/tfjs';
import { expectBitsEqual } from './helpers/state';
import { denseModel, quietBackend, regressionData } from './tfjs_helpers';

beforeAll(() => quietBackend('cpu'));

/** Starts a save at every epoch end, without awaiting it. */
class Checkpointer extends tf.Callback {
  readonly saves: Promise<void>[] = [];
  readonly busyAfterSave: boolean[] = [];
  constructor(
    private readonly ema: ExponentialMovingAverage,
    private readonly folder: string,
  ) {
    super();
  }
  override async onEpochEnd(epoch: number): Promise<void> {
    this.saves.push(this.ema.save(path.join(this.folder, `ema-${epoch}.safetensors`)));
    this.busyAfterSave.push(this.ema.busy);
  }
}

/** Starts a load() of one file at every epoch end, without awaiting it: the EMA is busy meanwhile. */
class Reloader extends tf.Callback {
  readonly loads: Promise<void>[] = [];
  constructor(
    private readonly ema: ExponentialMovingAverage,
    private readonly file: string,
  ) {
    super();
  }
  override async onEpochEnd(): Promise<void> {
    this.loads.push(this.ema.load(this.file, { matchNames: false }));
  }
}

function compiledPair(): [tf.Sequential, tf.Sequential] {
  const models = [denseModel('ckpt_a'), denseModel('ckpt_b')] as [tf.Sequential, tf.Sequential];
  models[1].setWeights(models[0].getWeights());
  for (const m of models) m.compile({ optimizer: tf.train.sgd(0.2), loss: 'meanSquaredError' });
  return models;
}

describe('EMA callback with a save() in flight', () => {
  test.each([
    ['after the callback', false],
    ['before the callback (its epoch-end evaluation meets the save)', true],
  ])('fit() completes and the EMA equals an uninterrupted run (checkpointer %s)', async (_, first) => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'ema-ckpt-'));
    try {
      const [model, reference] = compiledPair();
      const { x, y } = regressionData(64, 3);
      const fitArgs = { epochs: 4, batchSize: 8, shuffle: false };
      const refEma = new ExponentialMovingAverage(reference.trainableWeights, { decay: 0.9 });
      await reference.fit(x, y, { ...fitArgs, callbacks: [createEmaCallback(refEma, { tf, validationData: [x, y] })] });

      const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.9 });
      const callback = createEmaCallback(ema, { tf, validationData: [x, y] });
      const checkpointer = new Checkpointer(ema, folder);
      const history = await model.fit(x, y, { ...fitArgs, callbacks: first ? [checkpointer, callback] : [callback, checkpointer] });
      await Promise.all(checkpointer.saves);
      expect(checkpointer.saves).toHaveLength(4);
      expect(checkpointer.busyAfterSave).toEqual([false, false, false, false]); // training never waited for a save
      expect(history.history.val_loss_ema).toHaveLength(4);
      expect(callback.updates).toBe(32);
      expect(ema.numUpdates).toBe(refEma.numUpdates);
      const actual = ema.stateDict().shadowParams;
      refEma.stateDict().shadowParams.forEach((s, i) => expectBitsEqual(actual[i], s, `shadow ${i}`));
      // The last checkpoint holds the final EMA.
      const loaded = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.5 });
      await loaded.load(path.join(folder, 'ema-3.safetensors'), { matchNames: false });
      loaded.stateDict().shadowParams.forEach((s, i) => expectBitsEqual(s, actual[i], `checkpoint shadow ${i}`));
      for (const e of [ema, refEma, loaded]) e.dispose();
      model.dispose();
      reference.dispose();
      tf.dispose([x, y]);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe('errors of a queued update', () => {
  test('a queued update (behind a load() in flight) that fails rejects fit() with its error, not silently', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'ema-ckpt-'));
    try {
      const [model, other] = compiledPair();
      const { x, y } = regressionData(32, 4);
      const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.9 });
      const file = path.join(folder, 'start.safetensors');
      await ema.save(file);
      const failure = new Error('queued update failed');
      const updateAsync = jest.spyOn(ema, 'updateAsync').mockImplementation(() => Promise.reject(failure));
      const reloader = new Reloader(ema, file);
      await expect(
        model.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, callbacks: [createEmaCallback(ema, { tf }), reloader] }),
      ).rejects.toBe(failure);
      expect(updateAsync).toHaveBeenCalled();
      await Promise.all(reloader.loads);
      ema.dispose();
      model.dispose();
      other.dispose();
      tf.dispose([x, y]);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe('a scope over a disposed tfjs variable (item 4)', () => {
  test('closing restores the others, names the disposed variable, and the EMA stays usable', () => {
    const a = tf.variable(tf.tensor1d([1, 2, 3]), true, 'scope_a');
    const b = tf.variable(tf.tensor1d([4, 5]), true, 'scope_b');
    const ema = new ExponentialMovingAverage([a, b], { decay: 0.5, useNumUpdates: false });
    ema.update([new Float32Array(3), new Float32Array(2)]);
    const scope = ema.averageParameters();
    expect(Array.from(b.dataSync())).toEqual([2, 2.5]);
    a.dispose();
    expect(() => scope.restore()).toThrow(/parameter 0 \("scope_a"\)/);
    expect(scope.closed).toBe(true);
    expect(Array.from(b.dataSync())).toEqual([4, 5]);
    ema.update([new Float32Array(3), new Float32Array(2)]);
    ema.dispose();
    b.dispose();
  });
});
