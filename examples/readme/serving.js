// main thread: training, publishing the average every 10 updates
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { ExponentialMovingAverage } = require('model-ema');

const weights = [new Float32Array(1000)];
const ema = new ExponentialMovingAverage(weights, { decay: 0.9, publishEvery: 10 });
const server = new Worker(path.join(__dirname, 'serving_worker.js'), { workerData: { handle: ema.shareable() } });
server.on('message', ({ version, first }) => {
  console.log(`served from version ${version}: first weight ${first.toFixed(3)}`);
  if (version === 10) ema.dispose(); // closes the region: the server's loop ends
});
for (let step = 1; step <= 100; step++) {
  weights[0].fill(step); // a training step
  ema.update(); // every 10th also publishes: versions 1 to 10
}
