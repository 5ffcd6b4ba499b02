const tf = require('@tensorflow/tfjs');
const { ExponentialMovingAverage } = require('model-ema');
const { fileIOHandler } = require('model-ema/tfjs');

// Saving: the model's raw weights and the EMA, side by side. Save the model itself, not
// saveAveragedModel: training resumes from the raw weights; the EMA keeps the averaged ones.
async function saveTrainingState(model, ema, dir) {
  await model.save(fileIOHandler(dir));
  await ema.save(`${dir}/ema.safetensors`);
}

// Resuming: the model first, then an EMA over its weights, then the EMA's state (shadows, decay,
// schedule, counters). tfjs names layers differently in each process: match by position.
async function resumeTraining(dir) {
  const model = await tf.loadLayersModel(fileIOHandler(dir));
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.99 });
  await ema.load(`${dir}/ema.safetensors`, { matchNames: false });
  return { model, ema };
}

async function main() {
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 1 })] });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  const x = tf.randomNormal([64, 4], 0, 1, 'float32', 3);
  const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.99 });
  for (let step = 0; step < 20; step++) {
    await model.trainOnBatch(x, x.sum(1, true));
    ema.update();
  }
  await saveTrainingState(model, ema, './checkpoint');

  const resumed = await resumeTraining('./checkpoint');
  const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
  const shadows = (e) => e.stateDict().shadowParams.map((s) => Array.from(s));
  console.log(`numUpdates ${ema.numUpdates} -> ${resumed.ema.numUpdates}, ` +
    `same shadows: ${same(shadows(ema).flat(), shadows(resumed.ema).flat())}, ` +
    `same weights: ${same(model.getWeights().flatMap((w) => Array.from(w.dataSync())), resumed.model.getWeights().flatMap((w) => Array.from(w.dataSync())))}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
