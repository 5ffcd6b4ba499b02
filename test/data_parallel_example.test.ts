// examples/data_parallel.js as a test: 3 forked ranks train the demo model with gradients averaged
// over IPC, each keeping its EMA shard; they checkpoint, and one process loads the sharded
// checkpoint whole. Bounded in time (the ranks train one epoch).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage } from '../src';

const root = path.resolve(__dirname, '..');
const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-dp-test-'));
afterAll(() => fs.rmSync(folder, { recursive: true, force: true }));

beforeAll(() => {
  // The example requires the package's dist/, built from the current sources.
  const built = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
  expect(built.stdout + built.stderr).toBe('');
}, 120_000);

test('3 ranks train, save one shard each plus the index, and one process loads the average', async () => {
  const result = spawnSync(process.execPath, [path.join(root, 'examples', 'data_parallel.js'), folder, '3', '1'], { cwd: root, encoding: 'utf8', timeout: 90_000 });
  expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  const lines = result.stdout.trim().split('\n');
  const ranks = lines.slice(0, 3).map((line) => /^rank (\d): (\d) of 6 tensors \((\d+) of 4801 elements\), 64 EMA updates$/.exec(line));
  expect(ranks.map((m) => m?.[1])).toEqual(['0', '1', '2']);
  expect(ranks.reduce((n, m) => n + Number(m![2]), 0)).toBe(6); // the ranks split the tensors
  expect(ranks.reduce((n, m) => n + Number(m![3]), 0)).toBe(4801); // and the elements
  expect(lines[3]).toBe('saved: ema-00001-of-00003.safetensors, ema-00002-of-00003.safetensors, ema-00003-of-00003.safetensors, ema.safetensors.index.json');
  expect(lines[4]).toBe('loaded in one process: 6 tensors, 64 updates');
  const loss = /^val loss: raw (\d+\.\d+), averaged (\d+\.\d+); /.exec(lines[5]);
  expect(loss).not.toBeNull();
  expect(Number(loss![2])).toBeLessThan(0.5); // the average learned the function (the untrained model scores about 1)

  // The checkpoint, read here independently: the demo model's 6 tensors by name, 64 updates.
  const index = JSON.parse(fs.readFileSync(path.join(folder, 'ema.safetensors.index.json'), 'utf8'));
  expect(index.metadata.parameters).toEqual(['d1/kernel', 'd1/bias', 'd2/kernel', 'd2/bias', 'out/kernel', 'out/bias']);
  const sizes = [8 * 64, 64, 64 * 64, 64, 64, 1];
  const ema = new ExponentialMovingAverage(index.metadata.parameters.map((name: string, i: number) => ({ name, value: new Float32Array(sizes[i]) })), { decay: 0.5 });
  await ema.load(path.join(folder, 'ema'));
  expect({ decay: ema.decay, numUpdates: ema.numUpdates }).toEqual({ decay: 0.99, numUpdates: 64 });
  expect(ema.stateDict().shadowParams[2].some((v) => v !== 0)).toBe(true);
  ema.dispose();
}, 120_000);
