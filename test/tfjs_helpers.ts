// Helpers shared by the test/tfjs_*.test.ts files: small models, weight snapshots read straight
// from the backend, a dataSync() counter, and a quiet cpu backend.
import * as tf from '@tensorflow/tfjs';
import { expectBitsEqual } from './helpers/state';
import { random } from './reference';

/** The cpu backend prints a "install tfjs-node" banner on first use; tests don't need it. */
export async function quietBackend(name: 'cpu' | 'wasm' = 'cpu'): Promise<void> {
  const warn = console.warn;
  console.warn = () => undefined;
  try {
    await tf.setBackend(name);
    await tf.ready();
    tf.tidy(() => tf.zeros([1]).dataSync());
  } finally {
    console.warn = warn;
  }
}

/** A dense regression model with named layers (so weight names are predictable). */
export function denseModel(prefix: string, options: { constraint?: boolean; batchNorm?: boolean } = {}): tf.Sequential {
  const model = tf.sequential({ name: prefix });
  model.add(
    tf.layers.dense({
      name: `${prefix}_hidden`,
      inputShape: [5],
      units: 7,
      activation: 'tanh',
      kernelConstraint: options.constraint ? tf.constraints.maxNorm({ maxValue: 0.3 }) : undefined,
    }),
  );
  if (options.batchNorm) model.add(tf.layers.batchNormalization({ name: `${prefix}_bn` }));
  model.add(tf.layers.dense({ name: `${prefix}_out`, units: 2 }));
  return model;
}

/** Seeded inputs and targets. */
export function regressionData(samples: number, seed: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const next = random(seed);
  const x = Float32Array.from({ length: samples * 5 }, () => next() * 2 - 1);
  const y = new Float32Array(samples * 2);
  for (let i = 0; i < samples; i++) {
    y[2 * i] = x[5 * i] - 0.5 * x[5 * i + 1] + 0.3 * (next() - 0.5);
    y[2 * i + 1] = x[5 * i + 2] * x[5 * i + 3] + 0.3 * (next() - 0.5);
  }
  return { x: tf.tensor2d(x, [samples, 5]), y: tf.tensor2d(y, [samples, 2]) };
}

/** The tf.Variable behind a LayerVariable or a tf.Variable. */
export function coreVariable(v: tf.LayerVariable | tf.Variable): tf.Variable {
  return v instanceof tf.Variable ? v : (v.read() as tf.Variable);
}

/** Copies of the variables' values. */
export function snapshot(variables: readonly (tf.LayerVariable | tf.Variable)[]): Float32Array[] {
  return variables.map((v) => Float32Array.from(coreVariable(v).dataSync()));
}

export function expectValues(
  variables: readonly (tf.LayerVariable | tf.Variable)[],
  expected: readonly Float32Array[],
  context: string,
): void {
  expect(variables).toHaveLength(expected.length);
  variables.forEach((v, i) =>
    expectBitsEqual(Float32Array.from(coreVariable(v).dataSync()), Float32Array.from(expected[i]), `${context}: ${v.name}`),
  );
}

/** Counts dataSync() calls on each variable until the returned `stop` is called. */
export function countDataSync(variables: readonly (tf.LayerVariable | tf.Variable)[]) {
  const cores = variables.map(coreVariable);
  const counts = cores.map(() => 0);
  cores.forEach((v, i) => {
    const original = v.dataSync;
    Object.defineProperty(v, 'dataSync', {
      configurable: true,
      writable: true,
      value: function (this: tf.Variable) {
        counts[i] += 1;
        return original.call(this);
      },
    });
  });
  return {
    take(): number[] {
      const taken = counts.slice();
      counts.fill(0);
      return taken;
    },
    stop(): void {
      for (const v of cores) delete (v as unknown as { dataSync?: unknown }).dataSync;
    },
  };
}

/** Overwrites each variable with new seeded values (as an optimizer step would). */
export function perturb(variables: readonly (tf.LayerVariable | tf.Variable)[], seed: number): void {
  const next = random(seed);
  for (const v of variables) {
    const core = coreVariable(v);
    tf.tidy(() => core.assign(tf.tensor(Float32Array.from({ length: core.size }, () => next() * 2 - 1), core.shape)));
  }
}
