// Worker for test/publish_workers.test.ts: reads a published region (workerData.handle) in a
// tight loop. The writer publishes versions whose every element equals the version number, so a
// read is whole exactly when all its elements equal the version it reports.
//   mode 'consistency': after the 'go' message, reads for workerData.durationMs, then posts
//                       { reads, distinct, torn, backwards, firstBad, lastVersion }
//   mode 'forever':     reads until terminated, posting { reads } every 20 reads
// The sources are transpiled on load (test/helpers/register_ts.js), so this runs the code as it is.
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
require('./register_ts.js');
const { PublishedWeightsReader } = require('../../src/publish/reader.ts');

const reader = new PublishedWeightsReader(workerData.handle);

function wholeVersion({ version, tensors }) {
  for (const t of tensors) {
    for (let j = 0; j < t.length; j++) if (t[j] !== version) return `tensor of ${t.length}: [${j}] = ${t[j]} in version ${version}`;
  }
  return null;
}

if (workerData.mode === 'forever') {
  parentPort.postMessage({ ready: true });
  for (let reads = 1; ; reads++) {
    reader.read();
    if (reads % 20 === 0) parentPort.postMessage({ reads });
  }
} else {
  parentPort.once('message', () => {
    const seen = new Set();
    let reads = 0;
    let torn = 0;
    let backwards = 0;
    let firstBad = null;
    let last = 0;
    const end = performance.now() + workerData.durationMs;
    while (performance.now() < end) {
      const read = reader.read();
      reads++;
      const bad = wholeVersion(read);
      if (bad !== null) {
        torn++;
        firstBad ??= bad;
      }
      if (read.version < last) backwards++;
      last = read.version;
      seen.add(read.version);
    }
    parentPort.postMessage({ reads, distinct: seen.size, torn, backwards, firstBad, lastVersion: last });
  });
  parentPort.postMessage({ ready: true });
}
