const os = require('node:os');
const path = require('node:path');
const tf = require('@tensorflow/tfjs');
const { PostHocEma } = require('model-ema');

// The demo's task: a smooth function of 8 inputs learned from very noisy labels by plain SGD.
function data(samples, noise, seed) {
  let a = seed;
  const next = () => ((a = (a * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const x = Float32Array.from({ length: samples * 8 }, () => next() * 2 - 1);
  const y = Float32Array.from({ length: samples }, (_, i) => {
    const v = x.subarray(i * 8, i * 8 + 8);
    const signal = Math.sin(2 * v[0]) + v[1] * v[2] - 0.5 * v[3] ** 2 + 0.5 * Math.tanh(3 * v[4]) + 0.3 * v[5] - 0.4 * v[6] * v[7];
    return signal + noise * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  });
  return [tf.tensor2d(x, [samples, 8]), tf.tensor2d(y, [samples, 1])];
}

async function main() {
  const [x, y] = data(2048, 1.0, 1);
  const [xVal, yVal] = data(1024, 0, 2); // clean labels
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [8], units: 32, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }),
      tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.08), loss: 'meanSquaredError' });

  // Two power-function EMAs in one pass; a float16 snapshot of each every 16 steps.
  const dir = path.join(os.tmpdir(), `post-hoc-ema-${process.pid}`);
  const phema = new PostHocEma(model.trainableWeights, { sigmaRels: [0.05, 0.1], snapshotEvery: { steps: 16 }, dir });
  await model.fit(x, y, {
    epochs: 6,
    batchSize: 16,
    verbose: 0,
    callbacks: [new (class extends tf.Callback { async onBatchEnd() { phema.update(); } })()],
  });
  await phema.flush();

  // After training: any width, at the last snapshot, from the snapshots alone.
  const loss = () => tf.tidy(() => model.evaluate(xVal, yVal).dataSync()[0]);
  const rows = [['raw weights', loss()]];
  for (const sigmaRel of [0.02, 0.05, 0.1, 0.15, 0.25]) {
    const { snapshots } = await PostHocEma.synthesizeInto(dir, { sigmaRel }, model.trainableWeights);
    const tracked = phema.sigmaRels.includes(sigmaRel) ? 'tracked' : 'synthesized';
    rows.push([`sigmaRel ${sigmaRel} (${tracked} from ${snapshots.length} snapshots)`, loss()]);
  }
  console.log('validation loss');
  for (const [what, value] of rows) console.log(`  ${what.padEnd(46)} ${value.toFixed(4)}`);
  phema.dispose();
  require('node:fs').rmSync(dir, { recursive: true, force: true });
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
