'use strict';
// Memory per rank of a sharded EMA (options.shard) on resnet50-like (161 tensors, 25,557,032
// float32 parameters): for each world size, one forked process per rank holds the full replica (as
// a data-parallel rank does), builds its EMA shard, updates it, saves its shard and loads the
// checkpoint back. Reported per rank, from Linux's /proc/self/status: the resident set with the
// replica alone, what the EMA adds (shadows), and the peak (VmHWM) above the replica while saving
// and loading. Usage: node bench/shard_memory.js [--world 1,2,4] [--workload resnet50-like]
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
}

const kib = (field) => Number(fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field)).split(/\s+/)[1]);
const mib = (k) => (k / 1024).toFixed(0);

async function rank() {
  const { ExponentialMovingAverage } = require('../dist/index.js');
  const { loadWorkload } = require('./workloads.js');
  const [r, w, workload, prefix] = [Number(process.env.RANK), Number(process.env.WORLD_SIZE), process.env.WORKLOAD, process.env.PREFIX];
  const { names, sizes } = loadWorkload(workload);
  const replica = sizes.map((n, i) => ({ name: names[i], value: new Float32Array(n).fill(0.25 + i / 1000) }));
  const replicaKiB = kib('VmRSS:');
  const ema = new ExponentialMovingAverage(replica, { decay: 0.999, shard: { rank: r, worldSize: w } });
  for (let s = 0; s < 3; s++) ema.update();
  const emaKiB = kib('VmRSS:');
  fs.writeFileSync('/proc/self/clear_refs', '5'); // VmHWM := VmRSS
  await ema.save(prefix);
  const saveKiB = kib('VmHWM:');
  process.send({ type: 'saved' });
  await new Promise((resolve) => process.once('message', resolve)); // every shard is written
  fs.writeFileSync('/proc/self/clear_refs', '5');
  await ema.load(prefix);
  const loadKiB = kib('VmHWM:');
  process.send({ type: 'done', rank: r, tensors: ema.size, elements: ema.shardInfo.elements, replicaKiB, emaKiB, saveKiB, loadKiB });
  ema.dispose();
}

async function main() {
  const workload = arg('--workload', 'resnet50-like');
  const worlds = arg('--world', '1,2,4').split(',').map(Number);
  console.log(`${workload}, float32 shadows; MiB per rank (RSS: replica alone; EMA: shadows added; save/load: peak above the replica + EMA)`);
  console.log('world  rank  tensors  elements    replica  +EMA  +save  +load');
  for (const worldSize of worlds) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-shard-mem-'));
    const children = Array.from({ length: worldSize }, (_, r) =>
      fork(__filename, ['--rank'], { env: { ...process.env, RANK: String(r), WORLD_SIZE: String(worldSize), WORKLOAD: workload, PREFIX: path.join(dir, 'ema') } }),
    );
    let saved = 0;
    const results = await Promise.all(
      children.map(
        (child) =>
          new Promise((resolve, reject) => {
            child.on('error', reject);
            child.on('exit', (code) => code !== 0 && reject(new Error(`a rank exited with ${code}`)));
            child.on('message', (m) => {
              if (m.type === 'saved' && ++saved === worldSize) for (const c of children) c.send('load');
              if (m.type === 'done') resolve(m);
            });
          }),
      ),
    );
    for (const m of results) {
      console.log(
        `${String(worldSize).padStart(5)}  ${String(m.rank).padStart(4)}  ${String(m.tensors).padStart(7)}  ${String(m.elements).padStart(8)}  ` +
          `${mib(m.replicaKiB).padStart(9)}  ${mib(m.emaKiB - m.replicaKiB).padStart(4)}  ${mib(m.saveKiB - m.emaKiB).padStart(5)}  ${mib(m.loadKiB - m.emaKiB).padStart(5)}`,
      );
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(process.argv.includes('--rank') ? rank() : main()).catch((error) => {
  console.error(error);
  process.exit(1);
});
