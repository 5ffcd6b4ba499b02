// Published snapshots in one thread: publish() and options.publishEvery write float32 copies of the
// shadows into two shared buffers with increasing versions; PublishedWeightsReader reads whole
// versions only (a read that a writer laps starts again), into copies or into targets; bad input is
// refused naming the argument and the value. Readers in worker threads: publish_workers.test.ts.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage, PublishedWeightsReader, type PublishedWeightsHandle } from '../src';
import { roundTo } from './reference';
import { expectError, expectRejection } from './helpers/state';
import { quietBackend } from './tfjs_helpers';

const uniform = (n: number, value: number): Float32Array => new Float32Array(n).fill(value);

/** An EMA whose update copies its parameters exactly (decay 0), so every version's values are known. */
function copying(sizes: number[], extra: Record<string, unknown> = {}) {
  const params = sizes.map((n) => uniform(n, 0));
  const ema = new ExponentialMovingAverage(params, { decay: 0, useNumUpdates: false, ...extra });
  const setTo = (value: number) => {
    params.forEach((p) => p.fill(value));
    ema.update();
  };
  return { params, ema, setTo };
}

function expectUniform(tensors: ArrayLike<number>[], value: number, context: string): void {
  tensors.forEach((t, i) => {
    for (let j = 0; j < t.length; j++) {
      if (t[j] !== value) throw new Error(`${context}: tensor ${i}[${j}] = ${t[j]}, expected ${value}`);
    }
  });
}

describe('publish() and the reader', () => {
  test('versions count 1, 2, ... and a read gives copies of the shadows as float32 at that version', () => {
    const params = [Float32Array.from([1.5, -2, 3]), Float64Array.from([0.1, 1e-9]), new Float32Array(0)];
    const ema = new ExponentialMovingAverage(params, { decay: 0.5, useNumUpdates: false, dtype: 'float64' });
    const reader = new PublishedWeightsReader(ema.shareable());
    expect(reader.version).toBe(0);
    expect(reader.sizes).toEqual([3, 2, 0]);
    expect(ema.publish()).toBe(1);
    const first = reader.read();
    expect(first.version).toBe(1);
    expect(Array.from(first.tensors[0])).toEqual([1.5, -2, 3]);
    expect(first.tensors[1][0]).toBe(Math.fround(0.1)); // float64 shadows, rounded to float32
    expect(first.tensors[2]).toHaveLength(0);
    params[0].fill(3.5);
    ema.update();
    expect(reader.version).toBe(1); // nothing new until published
    expect(ema.publish()).toBe(2);
    const second = reader.read();
    expect(second.version).toBe(2);
    expect(Array.from(second.tensors[0])).toEqual([2.5, 0.75, 3.25]);
    expect(Array.from(first.tensors[0])).toEqual([1.5, -2, 3]); // copies: the first read kept its values
    second.tensors[0][0] = 99;
    expect(reader.read().tensors[0][0]).toBe(2.5);
    expect(ema.publish()).toBe(3);
    ema.dispose();
  });

  test('an EMA over no parameters publishes empty versions', () => {
    const ema = new ExponentialMovingAverage([], { decay: 0.9, publishEvery: 1 });
    const reader = new PublishedWeightsReader(ema.shareable());
    ema.update([]);
    expect(reader.read()).toEqual({ version: 1, tensors: [] });
    expect(reader.readInto([])).toBe(1);
    ema.dispose();
  });

  test('float16 and bfloat16 shadows publish their exact values', () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const values = Float32Array.from([0.1, 1 / 3, -1234.567, 1e-3]);
      const ema = new ExponentialMovingAverage([values], { decay: 0.9, dtype });
      const reader = new PublishedWeightsReader(ema.shareable());
      ema.publish();
      expect(Array.from(reader.read().tensors[0])).toEqual(Array.from(values, (v) => roundTo(v, dtype)));
      ema.dispose();
    }
  });

  test('options.publishEvery publishes after every n-th update, update() and updateAsync() alike', async () => {
    const { ema, setTo } = copying([5, 300], { publishEvery: 3 });
    const reader = new PublishedWeightsReader(ema.shareable());
    for (let k = 1; k <= 7; k++) setTo(k);
    expect(reader.version).toBe(2); // after updates 3 and 6
    expectUniform(reader.read().tensors, 6, 'after 7 updates');
    const async = copying([5, 300], { publishEvery: 1 });
    const asyncReader = new PublishedWeightsReader(async.ema.shareable());
    async.params.forEach((p) => p.fill(4));
    const pending = async.ema.updateAsync();
    expect(asyncReader.version).toBe(0);
    await pending;
    expect(asyncReader.read()).toEqual({ version: 1, tensors: [uniform(5, 4), uniform(300, 4)] });
    ema.dispose();
    async.ema.dispose();
  });

  test('memory is two buffers, allocated once: the handle holds the same SharedArrayBuffers after many publishes', () => {
    const { ema, setTo } = copying([1000, 17]);
    const handle = ema.shareable();
    for (let k = 1; k <= 50; k++) {
      setTo(k);
      ema.publish();
    }
    const later = ema.shareable();
    expect(later.buffers[0]).toBe(handle.buffers[0]);
    expect(later.buffers[1]).toBe(handle.buffers[1]);
    // Each buffer holds every tensor once, each padded to 64 bytes.
    expect(handle.buffers.map((b) => b.byteLength)).toEqual([(1008 + 32) * 4, (1008 + 32) * 4]);
    expectUniform(new PublishedWeightsReader(later).read().tensors, 50, 'version 50');
    ema.dispose();
  });

  test('the handle survives structured cloning (postMessage) and shares memory with the original', () => {
    const { ema, setTo } = copying([8]);
    const clone = structuredClone(ema.shareable()) as PublishedWeightsHandle;
    const reader = new PublishedWeightsReader(clone);
    setTo(5);
    ema.publish();
    expect(reader.read()).toEqual({ version: 1, tensors: [uniform(8, 5)] });
    ema.dispose();
  });

  test('a read lapped by the writer (two publishes during the copy) starts again and returns one whole version', () => {
    const { ema, setTo } = copying([4, 4, 4]);
    const reader = new PublishedWeightsReader(ema.shareable());
    setTo(1);
    ema.publish();
    // A target whose set() lets the writer publish twice in the middle of a read: tensor 0 comes
    // from version 1, then versions 2 and 3 overwrite version 1's buffer before tensor 1 is copied.
    let interruptions = 0;
    class Interrupting extends Float32Array {
      override set(source: ArrayLike<number>, offset?: number): void {
        super.set(source, offset);
        if (interruptions++ === 0) {
          setTo(2);
          ema.publish();
          setTo(3);
          ema.publish();
        }
      }
    }
    const targets = [new Interrupting(4), new Interrupting(4), new Interrupting(4)];
    expect(reader.readInto(targets)).toBe(3);
    expectUniform(targets, 3, 'after the lapped read');
    expect(interruptions).toBeGreaterThan(3); // the first pass was thrown away
    ema.dispose();
  });

  test('readInto() writes Float32Array and Float64Array targets and returns the version', () => {
    const { ema, setTo } = copying([3, 2]);
    const reader = new PublishedWeightsReader(ema.shareable());
    setTo(0.1);
    ema.publish();
    const targets = [new Float64Array(3), new Float32Array(2)];
    expect(reader.readInto(targets)).toBe(1);
    expect(Array.from(targets[0])).toEqual([1, 1, 1].map(() => Math.fround(0.1)));
    expect(Array.from(targets[1])).toEqual([Math.fround(0.1), Math.fround(0.1)]);
    ema.dispose();
  });

  test('readInto() writes tfjs variables (through the parameter kinds) without leaking tensors', async () => {
    await quietBackend();
    const variables = [tf.variable(tf.zeros([2, 3])), tf.variable(tf.zeros([4]))];
    const ema = new ExponentialMovingAverage([Float32Array.from([1, 2, 3, 4, 5, 6]), Float32Array.from([7, 8, 9, 10])], { decay: 0.9 });
    ema.publish();
    const reader = new PublishedWeightsReader(ema.shareable());
    const before = tf.memory().numTensors;
    expect(reader.readInto(variables)).toBe(1);
    expect(Array.from(variables[0].dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(variables[1].dataSync())).toEqual([7, 8, 9, 10]);
    expect(tf.memory().numTensors).toBe(before);
    variables.forEach((v) => v.dispose());
    ema.dispose();
  });

  test('waitForVersion() resolves when the version is published, or with the older one at the timeout', async () => {
    const { ema, setTo } = copying([2]);
    const reader = new PublishedWeightsReader(ema.shareable());
    const waiting = reader.waitForVersion(2, 10_000);
    setTo(1);
    ema.publish();
    setTimeout(() => ema.publish(), 20);
    const started = performance.now();
    expect(await waiting).toBe(2);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(await reader.waitForVersion(1, 0)).toBe(2); // already there
    const t0 = performance.now();
    expect(await reader.waitForVersion(3, 60)).toBe(2);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50);
    ema.dispose();
  });

  test('after dispose() the last version stays readable, the reader is closed and waiting stops', async () => {
    const { ema, setTo } = copying([3]);
    const reader = new PublishedWeightsReader(ema.shareable());
    setTo(9);
    ema.publish();
    const waiting = reader.waitForVersion(5); // no timeout: only the dispose ends it
    expect(reader.closed).toBe(false);
    ema.dispose();
    expect(await waiting).toBe(1);
    expect(reader.closed).toBe(true);
    expect(reader.read()).toEqual({ version: 1, tensors: [uniform(3, 9)] });
  });
});

test('an EMA dropped without dispose() closes its region when collected, so waiting readers stop (child with --expose-gc)', () => {
  const script = `
    const { ExponentialMovingAverage, PublishedWeightsReader } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'index.ts'))});
    let ema = new ExponentialMovingAverage([new Float32Array(10).fill(3)], { decay: 0.9 });
    const reader = new PublishedWeightsReader(ema.shareable());
    ema.publish();
    ema = null;
    const waiting = reader.waitForVersion(2, 20000);
    setTimeout(() => global.gc(), 50);
    waiting.then((version) => console.log(JSON.stringify({ version, closed: reader.closed, value: reader.read().tensors[0][9] })));
  `;
  const child = spawnSync(process.execPath, ['--expose-gc', '-r', path.join(__dirname, 'helpers', 'register_ts.js'), '-e', script], {
    encoding: 'utf8',
    timeout: 50_000,
  });
  expect(child.stderr).toBe('');
  expect(JSON.parse(child.stdout)).toEqual({ version: 1, closed: true, value: 3 });
}, 60_000);

describe('refusals, naming the argument and the value', () => {
  test('options.publishEvery must be a positive integer; a misspelt key is refused', () => {
    for (const [value, name, shown] of [
      [0, 'RangeError', 'received 0'], [-2, 'RangeError', 'received -2'], [1.5, 'RangeError', 'received 1.5'],
      [NaN, 'RangeError', 'received NaN'], [Infinity, 'RangeError', 'received Infinity'],
      ['2', 'TypeError', 'received "2"'], [null, 'TypeError', 'received null'],
    ] as const) {
      expectError(() => new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.9, publishEvery: value as number }), {
        name,
        message: ['publishEvery', 'positive integer', shown],
      });
    }
    expectError(() => new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.9, publishEvry: 2 } as never), {
      name: 'TypeError',
      message: ["Unknown option 'publishEvry'", "did you mean 'publishEvery'?"],
    });
  });

  test('publish() and shareable() on a disposed EMA, and publish() while an updateAsync() runs', async () => {
    const ema = new ExponentialMovingAverage([new Float32Array(4)], { decay: 0.9 });
    const pending = ema.updateAsync();
    expectError(() => ema.publish(), { name: 'Error', message: ['publish()', 'updateAsync()', 'await'] });
    await pending;
    expect(ema.publish()).toBe(1);
    ema.dispose();
    expectError(() => ema.publish(), { name: 'Error', message: ['publish()', 'disposed'] });
    expectError(() => ema.shareable(), { name: 'Error', message: ['shareable()', 'disposed'] });
  });

  test('a reader refuses anything but a well-formed handle', () => {
    const ema = new ExponentialMovingAverage([new Float32Array(10), new Float32Array(3)], { decay: 0.9 });
    const good = ema.shareable();
    const bad = (handle: unknown) => () => new PublishedWeightsReader(handle as PublishedWeightsHandle);
    expectError(bad(undefined), { name: 'TypeError', message: ['handle from ema.shareable()', 'for handle', 'received undefined'] });
    expectError(bad({ ...good, format: 'x' }), { name: 'TypeError', message: ['for handle', 'received an object'] });
    expectError(bad({ ...good, sizes: [10, -3] }), { name: 'TypeError', message: ['handle.sizes', 'an array of length 2'] });
    expectError(bad({ ...good, names: [null] }), { name: 'TypeError', message: ['handle.names', '2 names'] });
    expectError(bad({ ...good, control: new ArrayBuffer(48) }), { name: 'TypeError', message: ['SharedArrayBuffer', 'handle.control', 'ArrayBuffer'] });
    expectError(bad({ ...good, buffers: [good.buffers[0], new SharedArrayBuffer(8)] }), {
      name: 'RangeError',
      message: ['handle.buffers[1]', '128 bytes', 'received 8 bytes'],
    });
    expectError(bad({ ...good, sizes: [10, 100] }), { name: 'RangeError', message: ['handle.buffers[0]', '512 bytes', 'received 128 bytes'] });
    ema.dispose();
  });

  test('read() before the first publish, and readInto() with wrong targets, change nothing', () => {
    const ema = new ExponentialMovingAverage([new Float32Array(3), new Float32Array(2)], { decay: 0.9 });
    const reader = new PublishedWeightsReader(ema.shareable());
    expectError(() => reader.read(), { name: 'Error', message: ['read()', 'nothing has been published', 'waitForVersion(1)'] });
    ema.publish();
    const first = new Float32Array(3).fill(-1);
    expectError(() => reader.readInto([first]), { name: 'RangeError', message: ['2 parameters', 'readInto()', 'received 1'] });
    expectError(() => reader.readInto([first, new Float32Array(5)]), { name: 'RangeError', message: ['parameter 1', '2 elements', 'received 5'] });
    expectError(() => reader.readInto([first, new Int32Array(2)] as never), { name: 'TypeError', message: ['targets[1]', 'Int32Array'] });
    expectError(() => reader.readInto(42 as never), { name: 'TypeError', message: ['iterable', 'targets', 'received 42'] });
    expect(Array.from(first)).toEqual([-1, -1, -1]); // checked before anything was written
    ema.dispose();
  });

  test('waitForVersion() checks its arguments', async () => {
    const ema = new ExponentialMovingAverage([new Float32Array(1)], { decay: 0.9 });
    const reader = new PublishedWeightsReader(ema.shareable());
    await expectRejection(reader.waitForVersion(0), { name: 'RangeError', message: ['positive integer', 'version', 'received 0'] });
    await expectRejection(reader.waitForVersion(1.5), { name: 'RangeError', message: ['version', 'received 1.5'] });
    await expectRejection(reader.waitForVersion('2' as never), { name: 'TypeError', message: ['version', 'received "2"'] });
    await expectRejection(reader.waitForVersion(1, -1), { name: 'RangeError', message: ['timeoutMs', 'received -1'] });
    await expectRejection(reader.waitForVersion(1, NaN), { name: 'RangeError', message: ['timeoutMs', 'received NaN'] });
    await expectRejection(reader.waitForVersion(1, '5' as never), { name: 'TypeError', message: ['timeoutMs', 'received "5"'] });
    ema.dispose();
  });
});
