// Saving never damages the previous checkpoint: not when the process is killed mid-save, not when a
// tensor's bytes() throws, not when a tensor has the wrong size. And saving streams: each tensor's
// bytes are requested only once all but at most two chunk buffers of the data before it reached the file.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCheckpoint, saveCheckpoint } from '../src/checkpoint/ema_checkpoint';
import { STREAM_CHUNK_BYTES } from '../src/checkpoint/safetensors_stream_read';
import { decodedEquals, expectedOf, floats, mixedState, sourceOf, type StateFixture } from './helpers/checkpoint_fixtures';

let dir: string;
let target: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-atomic-'));
  target = path.join(dir, 'ema.safetensors');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const temporaryFiles = () => fs.readdirSync(dir).filter((f) => /^\.ema\.safetensors\.\d+\.[0-9a-f]+\.tmp$/.test(f));

const stateB: StateFixture = { ...mixedState(), decay: 0.5, numUpdates: null, collected: null, shadow: mixedState().shadow.map((_, i) => floats(Float32Array, mixedState().shadow[i].byteLength / 4, 100 + i)) };

async function expectFileHolds(state: StateFixture): Promise<void> {
  expect(decodedEquals(await loadCheckpoint(target, expectedOf(state)), state)).toBe(true);
}

test('a save killed with SIGKILL midway leaves the previous file intact, and the stale temp file does not break the next save', async () => {
  await saveCheckpoint(target, sourceOf(mixedState()));

  // The child transpiles the TypeScript sources itself (test/helpers/register_ts.js), so it runs the
  // current code without depending on a fresh dist/.
  const child = spawn(process.execPath, [path.join(__dirname, 'helpers/slow_checkpoint_writer.js'), target, '200'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));

  // Kill once the temporary file exists and holds more than 40 MB of the 200 MB being written.
  const deadline = Date.now() + 30_000;
  let grown: string | undefined;
  while (!grown) {
    if (Date.now() > deadline) throw new Error(`the child never grew its temp file; stderr: ${stderr}`);
    grown = temporaryFiles().find((f) => {
      try {
        return fs.statSync(path.join(dir, f)).size > 40 << 20;
      } catch {
        return false;
      }
    });
    if (!grown) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL'); // it really was interrupted, not finished

  await expectFileHolds(mixedState());
  expect(temporaryFiles()).toEqual([grown]);
  expect(grown).toContain(`.${child.pid}.`);

  await saveCheckpoint(target, sourceOf(stateB));
  await expectFileHolds(stateB);
  expect(temporaryFiles()).toEqual([grown]); // the stale file is left alone, never reused
}, 60_000);

test('an error thrown by bytes() mid-save leaves the previous file intact and no temp file behind', async () => {
  await saveCheckpoint(target, sourceOf(mixedState()));
  const failing = sourceOf(stateB);
  failing.shadowBytes = (i) => {
    if (i === 3) throw new Error('device lost while reading parameter 3');
    return stateB.shadow[i];
  };
  await expect(saveCheckpoint(target, failing)).rejects.toThrow('device lost while reading parameter 3');
  await expectFileHolds(mixedState());
  expect(fs.readdirSync(dir)).toEqual(['ema.safetensors']);
});

test('bytes() of the wrong length fails the save, naming the tensor, and leaves the previous file intact', async () => {
  await saveCheckpoint(target, sourceOf(mixedState()));
  const short = sourceOf(stateB);
  short.shadowBytes = (i) => (i === 2 ? new Float32Array(1) : stateB.shadow[i]);
  await expect(saveCheckpoint(target, short)).rejects.toThrow(/tensor "shadow.b#2" \(F32, shape \[2\]\) needs 8 bytes but bytes\(\) returned 4/);
  await expectFileHolds(mixedState());
  expect(fs.readdirSync(dir)).toEqual(['ema.safetensors']);
});

test('saving streams: each tensor is requested once all but at most two chunks of the data before it are in the temp file', async () => {
  // Four tensors of 1.25 chunks: a writer holding more than its two chunk buffers (say, the whole
  // state before writing) would show a file still at the header when the third and fourth are requested.
  const n = (STREAM_CHUNK_BYTES * 1.25) / 4;
  const state: StateFixture = { ...mixedState(), names: ['a', 'b', 'c', 'd'], shapes: undefined, collected: null, dtype: 'float32', shadow: [0, 1, 2, 3].map((i) => floats(Float32Array, n, 7 + i)) };
  const seenSizes: number[] = [];
  const source = sourceOf(state);
  const readShadow = source.shadowBytes;
  source.shadowBytes = (i) => {
    const [temp] = temporaryFiles();
    seenSizes.push(fs.statSync(path.join(dir, temp)).size);
    return readShadow(i);
  };
  await saveCheckpoint(target, source);
  const file = fs.readFileSync(target);
  const dataStart = 8 + Number(file.readBigUInt64LE(0));
  expect(seenSizes).toHaveLength(4);
  seenSizes.forEach((size, i) => {
    expect(size).toBeGreaterThanOrEqual(dataStart + Math.max(0, i * n * 4 - 2 * STREAM_CHUNK_BYTES));
    expect(size).toBeLessThanOrEqual(dataStart + i * n * 4); // and nothing of it before it was requested
  });
  expect(seenSizes[3]).toBeGreaterThan(dataStart); // the bound above is not vacuous
  await expectFileHolds(state);
});

test('saving into a missing folder rejects and creates nothing', async () => {
  const missing = path.join(dir, 'no-such-folder', 'ema.safetensors');
  await expect(saveCheckpoint(missing, sourceOf(mixedState()))).rejects.toThrow(/ENOENT/);
  expect(fs.readdirSync(dir)).toEqual([]);
});
