// Child-process check (run with --expose-gc): EMAs that are dropped without dispose(), or disposed,
// give their native arenas back. Prints one JSON line with the RSS growth, in bytes, between a
// steady-state baseline (after the allocator has warmed up) and the end of the run.
//   node --expose-gc memory_check.js <drop|dispose|keep|tracks-drop|tracks-dispose> <cycles>
// 'keep' holds every EMA on purpose (a leak), so the test can show that the check can fail.
// 'tracks-*': an EmaTracks of two tracks instead, updated sync and async.
'use strict';
const { EmaTracks, ExponentialMovingAverage } = require('../../dist/index.js');

const mode = process.argv[2];
const cycles = Number(process.argv[3] ?? 2000);
const elements = 256 * 1024; // 1 MiB of float32 shadows per EMA (plus 1 MiB of store() backup)
if (typeof global.gc !== 'function') throw new Error('run with --expose-gc');
if (!['drop', 'dispose', 'keep', 'tracks-drop', 'tracks-dispose'].includes(mode)) throw new Error(`unknown mode ${mode}`);

const param = new Float32Array(elements).fill(0.5);
const next = new Float32Array(elements).fill(1.5);
const kept = [];

async function cycle() {
  if (mode.startsWith('tracks-')) {
    const tracks = new EmaTracks([param], { tracks: { fast: { decay: 0.9 }, slow: { decay: 0.99 } } });
    tracks.update([next]);
    await tracks.updateAsync([next]);
    if (mode === 'tracks-dispose') tracks.dispose();
    return;
  }
  const ema = new ExponentialMovingAverage([param], { decay: 0.9 });
  ema.update([next]);
  ema.store();
  if (mode === 'dispose') ema.dispose();
  else if (mode === 'keep') kept.push(ema);
}

// Node-API runs native finalizers from the event loop, not inside gc(): collect, let the
// finalizers run, collect again.
async function settle() {
  global.gc();
  await new Promise((resolve) => setImmediate(resolve));
  global.gc();
  await new Promise((resolve) => setImmediate(resolve));
}

async function main() {
  const baselineAt = Math.floor(cycles / 4);
  let baseline = 0;
  for (let i = 0; i < cycles; i++) {
    await cycle();
    if (i % 25 === 24) await settle();
    if (i === baselineAt) {
      await settle();
      baseline = process.memoryUsage().rss;
    }
  }
  await settle();
  const final = process.memoryUsage().rss;
  const result = { mode, cycles, baseline, final, growth: final - baseline, kept: kept.length };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack}\n`);
  process.exit(1);
});
