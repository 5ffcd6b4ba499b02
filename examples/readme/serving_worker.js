// worker thread: serves from the newest published average
const { parentPort, workerData } = require('node:worker_threads');
const { PublishedWeightsReader } = require('model-ema');

async function serve() {
  const reader = new PublishedWeightsReader(workerData.handle);
  const weights = [new Float32Array(reader.sizes[0])]; // or a tfjs model's trainableWeights
  let version = 0;
  while (!reader.closed) {
    const latest = await reader.waitForVersion(version + 1, 1000); // Atomics.waitAsync: no polling
    if (latest > version && !reader.closed) {
      version = reader.readInto(weights); // never torn: every tensor from one version
      parentPort.postMessage({ version, first: weights[0][0] });
    }
  }
}

serve();
