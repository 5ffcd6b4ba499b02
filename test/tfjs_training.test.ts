// model-ema/tfjs in training: the EMA callback under model.fit() and model.fitDataset() against a
// float64 reference recomputed from the weights after every batch, its update schedule, epoch-end
// evaluation with the averaged weights (logged as val_*_ema, raw weights back bit for bit), and
// saving the averaged model as an ordinary tfjs model.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage } from '../src';
import { createEmaCallback, fileIOHandler, saveAveragedModel } from '../src/tfjs';
import { expectBitsEqual, expectError, expectRejection } from './helpers/state';
import { effectiveDecay, expectUpdateClose, updateReference } from './reference';
import { denseModel, expectValues, quietBackend, regressionData, snapshot } from './tfjs_helpers';

beforeAll(() => quietBackend('cpu'));

function compiled(prefix: string, options: { batchNorm?: boolean } = {}): tf.Sequential {
  const model = denseModel(prefix, options);
  model.compile({ optimizer: tf.train.sgd(0.2), loss: 'meanSquaredError', metrics: ['mae'] });
  return model;
}

function shadowsOf(ema: ExponentialMovingAverage): Float32Array[] {
  return ema.stateDict().shadowParams as Float32Array[];
}

/** A plain callback object: runs `onBatchEnd`/`onEpochEnd` after the callbacks before it. */
class Probe extends tf.Callback {
  constructor(
    private readonly batchEnd: (batch: number, logs?: tf.Logs) => void = () => undefined,
    private readonly epochEnd: (epoch: number, logs?: tf.Logs) => void = () => undefined,
  ) {
    super();
  }
  override async onBatchEnd(batch: number, logs?: tf.Logs): Promise<void> {
    this.batchEnd(batch, logs);
  }
  override async onEpochEnd(epoch: number, logs?: tf.Logs): Promise<void> {
    this.epochEnd(epoch, logs);
  }
}

describe('EMA callback in model.fit()', () => {
  test('the EMA follows a float64 reference recomputed from the trained weights after every batch', async () => {
    const model = compiled('reference');
    const { x, y } = regressionData(96, 1);
    const decay = 0.9;
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay });
    let previous = shadowsOf(ema);
    let reference: Float64Array<ArrayBufferLike>[] = previous.map((s) => Float64Array.from(s));
    let steps = 0;
    const probe = new Probe(() => {
      steps += 1;
      const weights = snapshot(model.trainableWeights); // read via dataSync, after this batch's step
      const d = effectiveDecay(decay, steps);
      const current = shadowsOf(ema);
      current.forEach((s, i) => expectUpdateClose(s, previous[i], weights[i], d, 'float32', 2, `batch ${steps}, ${ema.names[i]}`));
      // And the whole trajectory in float64: float32 rounding, contracted by d at every step, stays small.
      reference = reference.map((r, i) => updateReference(r, weights[i], d));
      current.forEach((s, i) =>
        s.forEach((v, j) => {
          if (Math.abs(v - reference[i][j]) > 1e-6 * (1 + Math.abs(reference[i][j]))) {
            throw new Error(`batch ${steps}, ${ema.names[i]}[${j}]: ${v} vs float64 reference ${reference[i][j]}`);
          }
        }),
      );
      previous = current;
    });
    const callback = createEmaCallback(ema, { tf });
    await model.fit(x, y, { epochs: 3, batchSize: 16, shuffle: false, callbacks: [callback, probe] });
    expect(steps).toBe(18);
    expect(callback.step).toBe(18);
    expect(callback.updates).toBe(18);
    expect(ema.numUpdates).toBe(18);
    ema.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  test('updateEvery and startStep pick the batches that update, counted across fit() calls', async () => {
    const model = compiled('schedule');
    const { x, y } = regressionData(80, 2);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.9 });
    const callback = createEmaCallback(ema, { tf, updateEvery: 3, startStep: 4 });
    const updatedAt: number[] = [];
    let step = 0;
    let seen = ema.numUpdates;
    const probe = new Probe(() => {
      step += 1;
      if (ema.numUpdates !== seen) updatedAt.push(step);
      seen = ema.numUpdates;
    });
    await model.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [callback, probe] }); // 5 batches
    await model.fit(x, y, { epochs: 2, batchSize: 16, callbacks: [callback, probe] }); // 10 more
    expect(updatedAt).toEqual([7, 10, 13]);
    expect(callback.step).toBe(15);
    expect(callback.updates).toBe(3);
    ema.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  test('epoch ends: val_*_ema are the averaged weights\' metrics, in the History; raw weights are back bit for bit', async () => {
    const model = compiled('evaluate');
    const { x, y } = regressionData(64, 3);
    const val = regressionData(40, 4);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.8 });
    let raw: Float32Array[] = [];
    const expected: number[][] = [];
    const after = new Probe(
      () => {
        raw = snapshot(model.trainableWeights);
      },
      (epoch, logs) => {
        // Runs after the EMA callback's epoch end: the raw weights must be back, exactly.
        expectValues(model.trainableWeights, raw, `epoch ${epoch}, after the EMA evaluation`);
        const outputs = ema.withAveragedParameters(() => model.evaluate(val.x, val.y, { batchSize: 8 }) as tf.Scalar[]);
        expected.push(outputs.map((o) => o.dataSync()[0]));
        tf.dispose(outputs);
        expect(Object.keys(logs ?? {})).toEqual(expect.arrayContaining(['val_loss', 'val_mae', 'val_loss_ema', 'val_mae_ema']));
      },
    );
    const callback = createEmaCallback(ema, { tf, validationData: [val.x, val.y], validationBatchSize: 8 });
    const tensors = tf.memory().numTensors;
    const history = await model.fit(x, y, {
      epochs: 4,
      batchSize: 16,
      validationData: [val.x, val.y],
      callbacks: [callback, after],
    });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(history.history.val_loss_ema).toEqual(expected.map((e) => e[0]));
    expect(history.history.val_mae_ema).toEqual(expected.map((e) => e[1]));
    expect(history.history.val_loss).toHaveLength(4);
    ema.dispose();
    model.dispose();
    tf.dispose([x, y, val.x, val.y]);
  });

  test('validationFreq evaluates every n-th epoch only', async () => {
    const model = compiled('freq');
    const { x, y } = regressionData(32, 5);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.8 });
    const logged: boolean[] = [];
    const probe = new Probe(undefined, (_, logs) => logged.push(logs?.val_loss_ema !== undefined));
    const callback = createEmaCallback(ema, { tf, validationData: [x, y], validationFreq: 2 });
    await model.fit(x, y, { epochs: 5, batchSize: 16, callbacks: [callback, probe] });
    expect(logged).toEqual([false, true, false, true, false]);
    ema.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  test('fitDataset(): updates per batch, evaluates a Dataset with the averaged weights', async () => {
    const model = compiled('dataset', { batchNorm: true });
    const { x, y } = regressionData(64, 6);
    const val = regressionData(32, 7);
    const train = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(16);
    const valSet = tf.data.zip({ xs: tf.data.array(tf.unstack(val.x)), ys: tf.data.array(tf.unstack(val.y)) }).batch(8);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.8 });
    let raw: Float32Array[] = [];
    const probe = new Probe(
      () => {
        raw = snapshot(model.weights);
      },
      () => expectValues(model.weights, raw, 'after the epoch end'),
    );
    const callback = createEmaCallback(ema, { tf, validationData: valSet, validationBatches: 3 });
    const history = await model.fitDataset(train, { epochs: 2, callbacks: [callback, probe] });
    expect(ema.numUpdates).toBe(8);
    expect(history.history.val_loss_ema).toHaveLength(2);
    expect(history.history.val_loss_ema.every((v) => typeof v === 'number' && Number.isFinite(v))).toBe(true);
    ema.dispose();
    model.dispose();
  });

  test('sits anywhere in a list of tfjs callbacks', async () => {
    const model = compiled('mixed_callbacks');
    const { x, y } = regressionData(32, 8);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.8 });
    const first = createEmaCallback(ema, { tf, validationData: [x, y] });
    await model.fit(x, y, { epochs: 2, batchSize: 16, callbacks: [first, tf.callbacks.earlyStopping({ monitor: 'loss', patience: 5 })] });
    const second = createEmaCallback(ema, { tf });
    await model.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [tf.callbacks.earlyStopping({ monitor: 'loss', patience: 5 }), second] });
    expect(ema.numUpdates).toBe(6);
    ema.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  test('without `tf`, the installed TensorFlow.js is found (here @tensorflow/tfjs; tfjs-node when present)', async () => {
    const model = compiled('autoload');
    const { x, y } = regressionData(32, 9);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.8 });
    const callback = createEmaCallback(ema);
    expect(callback).toBeInstanceOf(tf.Callback);
    await model.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [callback] });
    expect(ema.numUpdates).toBe(2);
    ema.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  test('a callback built on another copy of tfjs fails with an explanation, not a private-field TypeError', async () => {
    const model = compiled('wrong_copy');
    const { x, y } = regressionData(16, 10);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.8 });
    class ForeignCallback {
      model: unknown = null;
    }
    const callback = createEmaCallback(ema, { tf: { Callback: ForeignCallback } });
    await expectRejection(model.fit(x, y, { epochs: 1, callbacks: [callback] }), {
      name: 'Error',
      message: ['another copy of TensorFlow.js', 'createEmaCallback(ema, { tf })'],
    });
    ema.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  test('options are checked when the callback is made', () => {
    const ema = new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.8 });
    expectError(() => createEmaCallback(ema, { tf, updateEvery: 0 }), {
      name: 'RangeError',
      message: ['a positive integer', 'updateEvery', 'received 0'],
    });
    expectError(() => createEmaCallback(ema, { tf, startStep: -1 }), { name: 'RangeError', message: ['startStep', '-1'] });
    expectError(() => createEmaCallback(ema, { tf, startStep: 1.5 }), { name: 'RangeError', message: ['startStep', '1.5'] });
    expectError(() => createEmaCallback(ema, { tf, validationFreq: '2' as unknown as number }), {
      name: 'TypeError',
      message: ['validationFreq', '"2"'],
    });
    expectError(() => createEmaCallback(ema, { tf, validationData: [1] as unknown as [unknown, unknown] }), {
      name: 'TypeError',
      message: ['validationData'],
    });
    expectError(() => createEmaCallback({} as ExponentialMovingAverage, { tf }), { name: 'TypeError', message: ['ema'] });
    expectError(() => createEmaCallback(ema, { tf: {} as typeof tf }), { name: 'TypeError', message: ['TensorFlow.js module'] });
    ema.dispose();
  });

  test('an error in update() (EMA disposed mid-training) stops fit() with that error', async () => {
    const model = compiled('failing');
    const { x, y } = regressionData(32, 11);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.8 });
    const callback = createEmaCallback(ema, { tf });
    ema.dispose();
    await expectRejection(model.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [callback] }), {
      name: 'Error',
      message: ['update()', 'disposed'],
    });
    model.dispose();
    tf.dispose([x, y]);
  });
});

describe('saving the averaged model', () => {
  function decodeWeights(artifacts: tf.io.ModelArtifacts): Map<string, Float32Array> {
    const data = artifacts.weightData as ArrayBuffer;
    const out = new Map<string, Float32Array>();
    let offset = 0;
    for (const spec of artifacts.weightSpecs ?? []) {
      const n = spec.shape.reduce((a, b) => a * b, 1);
      out.set(spec.name, new Float32Array(data.slice(offset, offset + 4 * n)));
      offset += 4 * n;
    }
    return out;
  }

  async function trainedWithEma(prefix: string) {
    const model = compiled(prefix, { batchNorm: true });
    const { x, y } = regressionData(48, 12);
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.7 });
    await model.fit(x, y, { epochs: 2, batchSize: 16, callbacks: [createEmaCallback(ema, { tf })] });
    tf.dispose([x, y]);
    return { model, ema };
  }

  test('saved weights are the EMA shadows (trainable) and the raw values (the rest); the model keeps its raw weights', async () => {
    const { model, ema } = await trainedWithEma('save');
    const raw = snapshot(model.weights);
    const tensors = tf.memory().numTensors;
    let saved: tf.io.ModelArtifacts | undefined;
    const result = await saveAveragedModel(
      model,
      ema,
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    expect(result.modelArtifactsInfo.modelTopologyType).toBe('JSON');
    const weights = decodeWeights(saved!);
    const shadows = shadowsOf(ema);
    ema.names.forEach((name, i) => expectBitsEqual(weights.get(name!)!, shadows[i], `saved ${name}`));
    model.weights.forEach((w, i) => {
      if (!w.trainable) expectBitsEqual(weights.get(w.name)!, raw[i], `saved non-trainable ${w.name}`);
    });
    expectValues(model.weights, raw, 'the model after saving');
    expect(tf.memory().numTensors).toBe(tensors);
    ema.dispose();
    model.dispose();
  });

  test('a failing save rejects with its error and still puts the raw weights back', async () => {
    const { model, ema } = await trainedWithEma('save_fails');
    const raw = snapshot(model.weights);
    const handler = tf.io.withSaveHandler(async () => {
      throw new Error('disk full');
    });
    await expectRejection(saveAveragedModel(model, ema, handler), { name: 'Error', message: ['disk full'], code: null });
    expectValues(model.weights, raw, 'after the failed save');
    ema.update(); // no scope left open
    ema.dispose();
    model.dispose();
  });

  test('fileIOHandler(): model.json + weights.bin that tf.loadLayersModel() reads back as the averaged model', async () => {
    const { model, ema } = await trainedWithEma('file');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'model-ema-tfjs-'));
    try {
      const target = path.join(dir, 'nested', 'averaged');
      const info = await saveAveragedModel(model, ema, fileIOHandler(target));
      expect((await readdir(target)).sort()).toEqual(['model.json', 'weights.bin']);
      const json = JSON.parse(await readFile(path.join(target, 'model.json'), 'utf8'));
      expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
      expect(json.format).toBe('layers-model');
      expect(json.generatedBy).toMatch(/tfjs-layers/);
      expect(info.modelArtifactsInfo.weightDataBytes).toBe((await readFile(path.join(target, 'weights.bin'))).length);

      const loaded = await tf.loadLayersModel(fileIOHandler(target));
      const averaged = ema.withAveragedParameters(() => snapshot(model.weights));
      expectValues(loaded.weights, averaged, 'the loaded model');
      const probe = tf.randomNormal([3, 5], 0, 1, 'float32', 1);
      const fromLoaded = loaded.predict(probe) as tf.Tensor;
      const fromAveraged = ema.withAveragedParameters(() => model.predict(probe) as tf.Tensor);
      expectBitsEqual(fromLoaded.dataSync() as Float32Array, fromAveraged.dataSync() as Float32Array, 'predictions');
      tf.dispose([probe, fromLoaded, fromAveraged]);
      loaded.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    ema.dispose();
    model.dispose();
  });

  test('fileIOHandler().load() refuses weight paths outside its folder', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'model-ema-tfjs-'));
    try {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(
        path.join(dir, 'model.json'),
        JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['../secret.bin'], weights: [] }] }),
      );
      await expectRejection(fileIOHandler(dir).load(), { name: 'Error', message: ['outside its folder', '../secret.bin'] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
