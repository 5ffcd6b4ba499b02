'use strict';
// Save and load time and peak memory for a large EMA checkpoint (default: gpt2-medium-like,
// 354,823,168 float32 parameters, a 1.4 GB file), side by side in one run with:
// - the disk's ceiling: a plain fs write + fsync and a read of the same byte count (from and into one
//   reused buffer, so no fresh pages are counted), as MB/s;
// - torch.save (with fsync) / torch.load of the same tensors (bench/checkpoint_torch.py), when some
//   python3 imports torch (skipped with a note otherwise);
// - what bounds the work on one core: sha256 and first-touch (fresh page) copies, as MB/s.
// Rounds are interleaved; each row reports its best round. Reads come from the page cache (the file
// was just written) for every row alike. 'model-ema load()' loads into the EMA that saved (it streams
// into save()'s spare copy); 'into a new EMA' is the resume case, fresh pages as for torch.load.
// Usage: node bench/checkpoint.js [--elements N] [--dir DIR] [--rounds R (default 3)]
// Peak RSS is Linux's VmHWM, reset before each phase (/proc/self/clear_refs), and reported above the
// resident set at the start of the phase: what saving or loading adds.
const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ExponentialMovingAverage } = require('../dist/index.js');
const { loadWorkload } = require('./workloads.js');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
}

function statusKiB(field) {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field));
  return Number(line.split(/\s+/)[1]);
}

async function phase(fn) {
  fs.writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
  const before = statusKiB('VmRSS:');
  const start = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, peakMiB: (statusKiB('VmHWM:') - before) / 1024 };
}

const CHUNK = 64 << 20;

/** The disk's ceiling: `bytes` written (+ fsync) and read back through one reused, touched buffer. */
async function diskCeiling(file, bytes) {
  const buffer = Buffer.alloc(CHUNK, 0x3e);
  const write = await phase(async () => {
    const handle = await fs.promises.open(file, 'w');
    for (let done = 0; done < bytes; done += CHUNK) await handle.write(buffer, 0, Math.min(CHUNK, bytes - done), done);
    await handle.sync();
    await handle.close();
  });
  const read = await phase(async () => {
    const handle = await fs.promises.open(file, 'r');
    for (let done = 0; done < bytes; done += CHUNK) await handle.read(buffer, 0, Math.min(CHUNK, bytes - done), done);
    await handle.close();
  });
  fs.rmSync(file);
  return { write, read };
}

/** One core's sha256 and first-touch copy speeds (bytes per second). */
function coreSpeeds() {
  const source = Buffer.alloc(CHUNK * 4, 0x3e);
  const time = (fn) => {
    const start = process.hrtime.bigint();
    fn();
    return source.length / (Number(process.hrtime.bigint() - start) / 1e9);
  };
  return {
    sha256: time(() => crypto.createHash('sha256').update(source).digest()),
    freshCopy: time(() => source.copy(Buffer.allocUnsafeSlow(source.length))),
  };
}

/** The first python3 that imports torch, or null. */
function pythonWithTorch() {
  for (const python of [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean)) {
    if (childProcess.spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return python;
  }
  return null;
}

function torchRound(python, sizesFile, dir) {
  const run = childProcess.spawnSync(python, [path.join(__dirname, 'checkpoint_torch.py'), sizesFile, dir], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`checkpoint_torch.py failed: ${run.stderr}`);
  const r = JSON.parse(run.stdout.trim().split('\n').pop());
  return { save: { seconds: r.save, peakMiB: r.saveMiB }, load: { seconds: r.load, peakMiB: r.loadMiB }, version: r.version };
}

function best(rows) {
  return rows.reduce((a, b) => (b.seconds < a.seconds ? b : a));
}

async function main() {
  const elements = arg('--elements');
  const rounds = Number(arg('--rounds', 3));
  const sizes = elements ? [Number(elements)] : loadWorkload('gpt2-medium-like').sizes;
  const total = sizes.reduce((a, b) => a + b, 0);
  const dir = fs.mkdtempSync(path.join(arg('--dir', os.tmpdir()), 'model-ema-ckpt-'));
  const file = path.join(dir, 'ema.safetensors');
  const sizesFile = path.join(dir, 'sizes.json');
  fs.writeFileSync(sizesFile, JSON.stringify(sizes));
  const python = pythonWithTorch();
  const params = sizes.map((n) => new Float32Array(n).fill(0.25));
  const ema = new ExponentialMovingAverage(params, { decay: 0.999 });
  ema.update();
  const dataBytes = total * 4;
  console.log(`${sizes.length} tensors, ${total.toLocaleString()} float32 parameters (${(dataBytes / 1e6).toFixed(0)} MB of tensor data), files in ${dir}; ${os.cpus().length} CPUs, ${os.cpus()[0].model}`);
  if (python === null) console.log('PyTorch rows skipped: no python3 here imports torch (Debian: apt-get install python3-torch; or set PYTHON)');
  const rows = { emaSave: [], emaSaveCopy: [], emaSaveWrite: [], emaLoad: [], emaLoadFresh: [], torchSave: [], torchLoad: [], diskWrite: [], diskRead: [] };
  const speeds = [];
  let torchVersion = '';
  try {
    const groups = [
      async () => {
        const disk = await diskCeiling(path.join(dir, 'plain.bin'), dataBytes);
        rows.diskWrite.push(disk.write);
        rows.diskRead.push(disk.read);
      },
      async () => {
        let call = 0;
        rows.emaSave.push(await phase(() => {
          const start = process.hrtime.bigint();
          const saving = ema.save(file); // copies the arenas before it returns: the file holds this moment
          call = Number(process.hrtime.bigint() - start) / 1e9;
          return saving;
        }));
        rows.emaSaveCopy.push({ seconds: call, peakMiB: NaN });
        rows.emaSaveWrite.push({ seconds: rows.emaSave[rows.emaSave.length - 1].seconds - call, peakMiB: NaN });
        rows.emaLoad.push(await phase(() => ema.load(file)));
        // The resume case: a new EMA (no spare arena from a save) loads into fresh pages, as torch.load does.
        const fresh = new ExponentialMovingAverage(params, { decay: 0.999 });
        try {
          rows.emaLoadFresh.push(await phase(() => fresh.load(file)));
        } finally {
          fresh.dispose();
        }
        fs.rmSync(file);
      },
      async () => {
        if (python === null) return;
        const t = torchRound(python, sizesFile, dir);
        rows.torchSave.push(t.save);
        rows.torchLoad.push(t.load);
        torchVersion = t.version;
      },
    ];
    for (let round = 0; round < rounds; round++) {
      // Each round starts with another group: on a VM, what ran just before (a large free, a large
      // write) changes the cost of fresh pages, and no row should always follow the same one.
      for (let g = 0; g < groups.length; g++) await groups[(round + g) % groups.length]();
      speeds.push(coreSpeeds());
      console.log(`round ${round + 1}: save ${rows.emaSave[round].seconds.toFixed(2)} s (copy ${rows.emaSaveCopy[round].seconds.toFixed(2)} s), load ${rows.emaLoad[round].seconds.toFixed(2)} s, into a new EMA ${rows.emaLoadFresh[round].seconds.toFixed(2)} s` +
        (python === null ? '' : `; torch ${rows.torchSave[round].seconds.toFixed(2)} s, ${rows.torchLoad[round].seconds.toFixed(2)} s`));
    }
  } finally {
    ema.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const mbps = (seconds) => (dataBytes / seconds / 1e6).toFixed(0);
  const line = (label, row, ceiling, torch) => {
    const r = best(row);
    const vsTorch = torch && torch.length ? `  ${(r.seconds / best(torch).seconds).toFixed(2)}x torch` : '';
    const rss = Number.isNaN(r.peakMiB) ? '' : `  peak RSS +${Math.max(0, r.peakMiB).toFixed(0)} MiB`;
    console.log(`${label.padEnd(22)} ${r.seconds.toFixed(2).padStart(6)} s  ${mbps(r.seconds).padStart(5)} MB/s  ${(best(ceiling).seconds / r.seconds).toFixed(2)} of disk${rss}${vsTorch}`);
  };
  console.log(`\nbest of ${rounds} interleaved rounds (MB = 1e6 bytes of tensor data)`);
  line('fs write + fsync', rows.diskWrite, rows.diskWrite);
  line('fs read', rows.diskRead, rows.diskRead);
  line('model-ema save()', rows.emaSave, rows.diskWrite, rows.torchSave);
  line(' its copy at the call', rows.emaSaveCopy, rows.diskWrite, rows.torchSave);
  line(' its file writing', rows.emaSaveWrite, rows.diskWrite, rows.torchSave);
  if (python !== null) line(`torch.save ${torchVersion}`, rows.torchSave, rows.diskWrite);
  line('model-ema load()', rows.emaLoad, rows.diskRead, rows.torchLoad);
  line('load() into a new EMA', rows.emaLoadFresh, rows.diskRead, rows.torchLoad);
  if (python !== null) line(`torch.load ${torchVersion}`, rows.torchLoad, rows.diskRead);
  const top = (key) => Math.max(...speeds.map((s) => s[key])) / 1e6;
  console.log(`one core: sha256 ${top('sha256').toFixed(0)} MB/s, first-touch copy (fresh pages) ${top('freshCopy').toFixed(0)} MB/s`);
  console.log(`load() RSS target: the new arena + 64 MiB = ${(dataBytes / 2 ** 20 + 64).toFixed(0)} MiB`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
