#!/usr/bin/env node
// Serving while training: a TensorFlow.js model trains in the main thread with an EMA that
// publishes its averaged weights every few updates; a worker thread serves predictions over HTTP
// (127.0.0.1 only) from the newest published average, picking each new version up with
// waitForVersion() + readInto() and never stopping the training loop; a second worker is a small,
// bounded load generator (at most MAX_REQUESTS requests, MAX_SECONDS seconds) that reports how
// many requests were served during training and from which versions of the average.
//
//   npm run build:ts && node examples/train_and_serve.js
'use strict';
const http = require('node:http');
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const { ExponentialMovingAverage, PublishedWeightsReader } = require(path.join(__dirname, '..', 'dist', 'index.js'));
const { createEmaCallback, loadTfjs } = require(path.join(__dirname, '..', 'dist', 'tfjs', 'index.js'));

const INPUTS = 8;
const PUBLISH_EVERY = 5; // updates (batches) between published versions
const MAX_REQUESTS = 2000;
const MAX_SECONDS = 30;
const CONCURRENCY = 4;

function buildModel(tf) {
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [INPUTS], units: 32, activation: 'tanh' }));
  model.add(tf.layers.dense({ units: 1 }));
  return model;
}

function quietTfjs() {
  const warn = console.warn;
  console.warn = () => undefined; // the cpu backend's "install tfjs-node" banner
  try {
    const tf = loadTfjs();
    tf.tidy(() => tf.zeros([1]).dataSync()); // the banner comes with the first use
    return tf;
  } finally {
    console.warn = warn;
  }
}

// ---- the serving worker: one model, refreshed from the published average ----
async function serve() {
  const tf = quietTfjs();
  const model = buildModel(tf);
  const reader = new PublishedWeightsReader(workerData.handle);
  await reader.waitForVersion(1, 10_000);
  let version = reader.readInto(model.trainableWeights);
  let served = 0;
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    const x = (url.searchParams.get('x') || '').split(',').map(Number);
    if (url.pathname !== '/predict' || x.length !== INPUTS || x.some((v) => !Number.isFinite(v))) {
      response.writeHead(400, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: `GET /predict?x=<${INPUTS} comma-separated numbers>` }));
      return;
    }
    const y = tf.tidy(() => model.predict(tf.tensor2d(x, [1, INPUTS])).dataSync()[0]);
    served += 1;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ y, version }));
  });
  server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
  parentPort.on('message', (message) => {
    if (message === 'stop') server.close(() => parentPort.postMessage({ served, version }));
  });
  // Pick up each new version as it is published; requests are answered in between.
  while (!reader.closed) {
    const latest = await reader.waitForVersion(version + 1, 1000);
    if (latest > version) version = reader.readInto(model.trainableWeights);
  }
}

// ---- the load generator worker: bounded in requests and in time ----
async function load() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const deadline = Date.now() + MAX_SECONDS * 1000;
  const versions = new Map(); // version -> requests served from it
  let sent = 0;
  let failed = 0;
  let stop = false;
  parentPort.on('message', (message) => {
    if (message === 'stop') stop = true;
  });
  const get = (x) =>
    new Promise((resolve, reject) => {
      const query = x.map((v) => v.toFixed(3)).join(',');
      http.get({ host: '127.0.0.1', port: workerData.port, path: `/predict?x=${query}`, agent }, (response) => {
        let body = '';
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => (response.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(body))));
      }).on('error', reject);
    });
  const client = async () => {
    while (!stop && sent < MAX_REQUESTS && Date.now() < deadline) {
      sent += 1;
      try {
        const { version } = await get(Array.from({ length: INPUTS }, () => Math.random() * 2 - 1));
        versions.set(version, (versions.get(version) || 0) + 1);
      } catch {
        failed += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  agent.destroy();
  parentPort.postMessage({ sent, failed, versions: [...versions.entries()] });
}

// ---- the main thread: training ----
function message(worker, predicate = () => true) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (!predicate(m)) return;
      worker.off('message', onMessage);
      resolve(m);
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
  });
}

async function main() {
  const tf = quietTfjs();
  const model = buildModel(tf);
  model.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
  const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.98, publishEvery: PUBLISH_EVERY });
  ema.publish(); // version 1: the server can answer before the first PUBLISH_EVERY updates

  const server = new Worker(__filename, { workerData: { role: 'serve', handle: ema.shareable() } });
  const { port } = await message(server, (m) => m.port !== undefined);
  console.log(`serving on http://127.0.0.1:${port}/predict (worker thread), training in the main thread`);
  const client = new Worker(__filename, { workerData: { role: 'load', port } });
  const clientDone = message(client, (m) => m.sent !== undefined);

  // y = sin(2 x0) + x1 x2 - 0.5 x3^2 + ..., with noisy labels.
  const samples = 2048;
  const x = tf.randomUniform([samples, INPUTS], -1, 1, 'float32', 1);
  const y = tf.tidy(() => {
    const c = (j) => x.slice([0, j], [samples, 1]);
    const clean = tf.sin(c(0).mul(2)).add(c(1).mul(c(2))).sub(c(3).square().mul(0.5)).add(c(4).mul(0.3));
    return clean.add(tf.randomNormal([samples, 1], 0, 0.5, 'float32', 2));
  });
  const started = Date.now();
  const history = await model.fit(x, y, {
    epochs: 15,
    batchSize: 32,
    verbose: 0,
    yieldEvery: 'batch', // let the event loop run between batches
    callbacks: [createEmaCallback(ema, { tf })],
  });
  const trainSeconds = (Date.now() - started) / 1000;
  const published = ema.publish();

  client.postMessage('stop');
  const traffic = await clientDone;
  server.postMessage('stop');
  const serverStats = await message(server, (m) => m.served !== undefined);
  ema.dispose(); // the server's reader sees it closed and its refresh loop ends
  await Promise.all([server.terminate(), client.terminate()]);

  const losses = history.history.loss;
  const versions = traffic.versions.map(([v]) => v).sort((a, b) => a - b);
  console.log(`trained ${losses.length} epochs in ${trainSeconds.toFixed(1)} s: loss ${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)}, ${ema.numUpdates ?? '?'} updates`);
  console.log(`published versions 1..${published} (every ${PUBLISH_EVERY} updates)`);
  console.log(`requests served during training: ${serverStats.served} (load generator sent ${traffic.sent}, ${traffic.failed} failed)`);
  console.log(`served from ${versions.length} distinct versions, ${versions[0]}..${versions[versions.length - 1]}; the server ended on version ${serverStats.version}`);
  tf.dispose([x, y]);
}

if (isMainThread) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (workerData.role === 'serve') {
  serve();
} else {
  load();
}
