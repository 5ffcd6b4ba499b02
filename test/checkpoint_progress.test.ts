// save(path, { onProgress }) and load(path, { onProgress }) report `{ file, bytes, totalBytes }` of tensor
// data as it is written or read (for long checkpoints); a listener that throws aborts the transfer:
// the old file stays (save) or nothing changes (load). Sharded checkpoints report per file.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage, type TransferProgress } from '../src';
import { fillRandom, sameBytes } from './reference';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'model-ema-progress-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const SIZES = [4097, 1, 0, 300_000, 7];
const params = (seed: number): Float32Array[] => SIZES.map((n, i) => fillRandom(new Float32Array(n), seed + i));
const dataBytes = 4 * SIZES.reduce((a, b) => a + b, 0);

function expectMonotoneTo(events: TransferProgress[], file: string, total: number): void {
  expect(events.length).toBeGreaterThan(0);
  events.forEach((e, i) => {
    expect(e.file).toBe(file);
    expect(e.totalBytes).toBe(total);
    if (i > 0) expect(e.bytes).toBeGreaterThanOrEqual(events[i - 1].bytes);
  });
  expect(events[events.length - 1].bytes).toBe(total);
}

test('save reports each tensor written, load each group read, up to the tensor data size', async () => {
  const file = path.join(dir, 'ema.safetensors');
  const ema = new ExponentialMovingAverage(params(1), { decay: 0.9 });
  const saved: TransferProgress[] = [];
  await ema.save(file, { onProgress: (p) => saved.push({ ...p }) });
  expectMonotoneTo(saved, file, dataBytes);
  expect(saved).toHaveLength(SIZES.length);
  const loaded: TransferProgress[] = [];
  const other = new ExponentialMovingAverage(params(2), { decay: 0.5 });
  await other.load(file, { onProgress: (p) => loaded.push({ ...p }) });
  expectMonotoneTo(loaded, file, dataBytes);
  other.stateDict().shadowParams.forEach((s, i) => expect(sameBytes(s, ema.stateDict().shadowParams[i])).toBe(true));
});

test('a listener that throws aborts: save keeps the old file, load changes nothing', async () => {
  const file = path.join(dir, 'ema.safetensors');
  const ema = new ExponentialMovingAverage(params(1), { decay: 0.9 });
  await ema.save(file);
  const before = readFileSync(file);
  ema.update(params(3));
  const stop = new Error('stop at the second tensor');
  let calls = 0;
  await expect(ema.save(file, { onProgress: () => { if (++calls === 2) throw stop; } })).rejects.toBe(stop);
  expect(readFileSync(file).equals(before)).toBe(true);
  expect(readdirSync(dir)).toEqual(['ema.safetensors']); // no temporary file left behind
  const other = new ExponentialMovingAverage(params(2), { decay: 0.5 });
  const state = other.stateDict();
  // load() names the file in what it rethrows: "Cannot read '<file>': stop at ...".
  await expect(other.load(file, { onProgress: () => { throw stop; } })).rejects.toThrow(/ema\.safetensors.*stop at the second tensor/);
  other.stateDict().shadowParams.forEach((s, i) => expect(sameBytes(s, state.shadowParams[i])).toBe(true));
  expect(other.decay).toBe(0.5);
});

test('sharded saves and loads report per shard file', async () => {
  const prefix = path.join(dir, 'ckpt');
  const ranks = [0, 1].map((rank) => new ExponentialMovingAverage(params(1), { decay: 0.9, shard: { rank, worldSize: 2 } }));
  const files = new Set<string>();
  for (const ema of ranks) await ema.save(prefix, { onProgress: (p) => files.add(path.basename(p.file)) });
  expect([...files].sort()).toEqual(['ckpt-00001-of-00002.safetensors', 'ckpt-00002-of-00002.safetensors']);
  const whole = new ExponentialMovingAverage(params(5), { decay: 0.5 });
  const read: TransferProgress[] = [];
  await whole.load(prefix, { onProgress: (p) => read.push({ ...p }) });
  expect(new Set(read.map((p) => path.basename(p.file)))).toEqual(files);
  expect(existsSync(`${prefix}.safetensors.index.json`)).toBe(true);
});

test.each([
  [{ onProgress: 1 }, /Expected a function for options\.onProgress but received 1/],
  [{ onprogress: () => {} }, /Unknown option 'onprogress'.*did you mean 'onProgress'/],
  ['fast', /for options but received "fast"/],
])('save and load refuse options %p, naming them', async (options, message) => {
  const ema = new ExponentialMovingAverage(params(1), { decay: 0.9 });
  await expect(ema.save(path.join(dir, 'x.safetensors'), options as never)).rejects.toThrow(message);
  await expect(ema.load(path.join(dir, 'x.safetensors'), options as never)).rejects.toThrow(message);
  expect(readdirSync(dir)).toEqual([]);
});
