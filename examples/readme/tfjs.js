const tf = require('@tensorflow/tfjs'); // or '@tensorflow/tfjs-node': the same API, native speed
const { ExponentialMovingAverage } = require('model-ema');
const { createEmaCallback, fileIOHandler, saveAveragedModel } = require('model-ema/tfjs');

async function main() {
  // Stand-ins for your model and data:
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [4], units: 16, activation: 'relu' }), tf.layers.dense({ units: 1 })],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  const [x, xVal] = [tf.randomNormal([512, 4], 0, 1, 'float32', 1), tf.randomNormal([128, 4], 0, 1, 'float32', 2)];
  const [y, yVal] = [x.sum(1, true), xVal.sum(1, true)];

  const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.99 });
  const history = await model.fit(x, y, {
    epochs: 5,
    batchSize: 32,
    verbose: 0,
    validationData: [xVal, yVal],
    // Updates after every batch (options: updateEvery, startStep), passing the batches since the last
    // update as progress.steps and their sizes as progress.samples; at each epoch end evaluates the
    // validation data with the averaged weights and logs val_loss_ema next to val_loss.
    callbacks: [createEmaCallback(ema, { tf, validationData: [xVal, yVal] })],
  });
  const last = (key) => history.history[key][history.history[key].length - 1].toFixed(4);
  console.log(`val_loss ${last('val_loss')}, val_loss_ema ${last('val_loss_ema')}, updates ${ema.numUpdates}`);

  // A normal tfjs model with the averaged weights. Plain @tensorflow/tfjs has no file:// handler:
  // fileIOHandler(dir) writes model.json and weights.bin (with tfjs-node, 'file://./model-ema' works too).
  await saveAveragedModel(model, ema, fileIOHandler('./model-ema'));
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
