// Published snapshots read from worker threads while the EMA's thread keeps publishing: every
// read is one whole version, versions never go back, and a reader that is terminated in the
// middle of a read affects neither the writer nor the other readers. The writer publishes
// versions whose every element equals the version number (decay 0 copies the parameters).
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ExponentialMovingAverage, PublishedWeightsReader } from '../src';

const WORKER = path.join(__dirname, 'helpers', 'publish_reader_worker.js');

interface Consistency {
  reads: number;
  distinct: number;
  torn: number;
  backwards: number;
  firstBad: string | null;
  lastVersion: number;
}

/** An EMA that publishes after every update, and a function that makes the next version all `v`. */
function writer(sizes: number[]) {
  const params = sizes.map((n) => new Float32Array(n));
  const ema = new ExponentialMovingAverage(params, { decay: 0, useNumUpdates: false, publishEvery: 1 });
  let version = 0;
  const publishNext = (): number => {
    version += 1;
    params.forEach((p) => p.fill(version));
    ema.update();
    return version;
  };
  return { ema, publishNext, get version() { return version; } };
}

function start(mode: 'consistency' | 'forever', handle: unknown, durationMs = 0): { worker: Worker; ready: Promise<void>; messages: unknown[] } {
  const worker = new Worker(WORKER, { workerData: { mode, handle, durationMs } });
  const messages: unknown[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => resolve());
  });
  worker.on('message', (m) => messages.push(m));
  return { worker, ready, messages };
}

function result(worker: Worker): Promise<Consistency> {
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', resolve);
  });
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('4 readers for 2 s while the writer publishes: every read is whole, versions never go back, many versions seen', async () => {
  const w = writer([1, 1000, 1 << 18, 7, 4097]);
  const handle = w.ema.shareable();
  w.publishNext();
  const readers = Array.from({ length: 4 }, () => start('consistency', handle, 2000));
  await Promise.all(readers.map((r) => r.ready));
  const results = readers.map((r) => result(r.worker));
  readers.forEach((r) => r.worker.postMessage('go'));
  // Publish for longer than the readers read, yielding now and then so that their results arrive.
  const end = performance.now() + 2300;
  while (performance.now() < end) {
    for (let k = 0; k < 10; k++) w.publishNext();
    await tick();
  }
  const outcomes = await Promise.all(results);
  if (process.env.PUBLISH_STATS) console.log(JSON.stringify({ published: w.version, outcomes }));
  await Promise.all(readers.map((r) => r.worker.terminate()));
  for (const o of outcomes) {
    expect(o.firstBad).toBeNull();
    expect(o.torn).toBe(0);
    expect(o.backwards).toBe(0);
    expect(o.distinct).toBeGreaterThanOrEqual(10);
    expect(o.lastVersion).toBeLessThanOrEqual(w.version);
  }
  expect(w.version).toBeGreaterThan(100);
  // The writer's own reader agrees with the last version published.
  const last = new PublishedWeightsReader(handle).read();
  expect(last.version).toBe(w.version);
  expect(last.tensors[2].every((x) => x === w.version)).toBe(true);
  w.ema.dispose();
}, 60_000);

test('readers terminated in the middle of reads hold up neither the writer nor another reader', async () => {
  const w = writer([1 << 20, 3]); // 4 MiB: a read takes long enough to be cut off in the middle
  const handle = w.ema.shareable();
  w.publishNext();
  const steady = start('consistency', handle, 2500);
  const doomed = Array.from({ length: 3 }, () => start('forever', handle));
  await Promise.all([steady.ready, ...doomed.map((d) => d.ready)]);
  const steadyResult = result(steady.worker);
  steady.worker.postMessage('go');
  const versionsAtTermination: number[] = [];
  const end = performance.now() + 2700;
  let next = 0;
  while (performance.now() < end) {
    w.publishNext();
    await tick();
    // Terminate each reader once it is busy reading (it has reported reads), at a random moment.
    const d = doomed[next];
    if (d !== undefined && d.messages.length > 2 && Math.random() < 0.2) {
      await d.worker.terminate();
      versionsAtTermination.push(w.version);
      next += 1;
    }
  }
  expect(versionsAtTermination).toHaveLength(3);
  const o = await steadyResult;
  expect(o.firstBad).toBeNull();
  expect(o.torn).toBe(0);
  expect(o.backwards).toBe(0);
  expect(o.distinct).toBeGreaterThanOrEqual(10);
  // The writer went on publishing after the terminations, and the steady reader saw it.
  expect(w.version).toBeGreaterThan(versionsAtTermination[2]);
  expect(o.lastVersion).toBeGreaterThan(versionsAtTermination[2]);
  await steady.worker.terminate();
  expect(new PublishedWeightsReader(handle).read().version).toBe(w.version);
  w.ema.dispose();
}, 60_000);
