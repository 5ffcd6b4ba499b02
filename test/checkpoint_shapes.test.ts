// Checkpoints hold each parameter's real shape where it has one (a tfjs variable's, or the `shape`
// of `{ name, value, shape }`) instead of its flat length; loading checks it: the element count
// always, the layout when the file and the EMA both know one. Flat files (from before) still load.
// Shapes in a file are untrusted: hostile ones are refused with an error naming the tensor.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ERROR_CODES, ExponentialMovingAverage } from '../src';
import { parseSafetensors, readSafetensorsFile } from '../src/checkpoint/safetensors';
import { expectBitsEqual, expectError, expectSameState } from './helpers/state';
import { fillRandom } from './reference';
import { denseModel, quietBackend } from './tfjs_helpers';

beforeAll(() => quietBackend('cpu'));

function shapesIn(bytes: Uint8Array): Record<string, number[]> {
  return Object.fromEntries(parseSafetensors(bytes).tensors.map((t) => [t.name, t.shape]));
}

/** The same file with its header JSON edited by `change` (tensor data and checksums untouched). */
function withHeader(bytes: Uint8Array, change: (header: Record<string, { shape: unknown }>) => void): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = Number(view.getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + length)).toString('utf8')) as Record<string, { shape: unknown }>;
  change(header);
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const json = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + json.length + bytes.length - 8 - length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes.subarray(8 + length), 8 + json.length);
  return out;
}

function named(shape?: number[]) {
  const weight = fillRandom(new Float32Array(6), 1);
  const bias = fillRandom(new Float32Array(3), 2);
  return [
    shape === undefined ? { name: 'fc.weight', value: weight } : { name: 'fc.weight', value: weight, shape },
    { name: 'fc.bias', value: bias },
  ];
}

describe('shapes in checkpoints', () => {
  test('a tfjs model is saved with its variables\' shapes, shadows and backup alike, and loads back', async () => {
    const model = denseModel('shapes');
    const ema = new ExponentialMovingAverage(model.trainableWeights, { decay: 0.9 });
    ema.store();
    const bytes = ema.serialize();
    const expected = Object.fromEntries(
      model.trainableWeights.flatMap((v) => [[`shadow.${v.name}`, v.shape], [`collected.${v.name}`, v.shape]]),
    );
    expect(shapesIn(bytes)).toEqual(expected);
    expect(expected['shadow.shapes_hidden/kernel']).toEqual([5, 7]); // not [35]

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shapes-'));
    try {
      const file = path.join(dir, 'ema.safetensors');
      await ema.save(file);
      const parsed = await readSafetensorsFile(file);
      expect(Object.fromEntries(parsed.tensors.map((t) => [t.name, t.shape]))).toEqual(expected);
      const other = new ExponentialMovingAverage(denseModel('shapes').trainableWeights, { decay: 0.5 });
      await other.load(file, { matchNames: false }); // tfjs names differ between models
      expectSameState({ ...other.stateDict(), names: ema.names }, ema.stateDict());
      const inOrder = model.trainableWeights.map((v) => v.shape);
      expect(parseSafetensors(other.serialize()).tensors.map((t) => t.shape)).toEqual([...inOrder, ...inOrder]); // round-trips (names differ)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('{ name, value, shape } is saved with its shape; a typed array without one is 1-D; a scalar variable is []', () => {
    const scalar = tf.variable(tf.scalar(3), true, 'shapes_scalar');
    const ema = new ExponentialMovingAverage([...named([2, 3]), scalar], { decay: 0.9 });
    expect(shapesIn(ema.serialize())).toEqual({ 'shadow.fc.weight': [2, 3], 'shadow.fc.bias': [3], 'shadow.shapes_scalar': [] });
    scalar.dispose();
  });

  test('shaped and flat checkpoints load into EMAs with and without shapes; the shape follows the EMA', () => {
    const shaped = new ExponentialMovingAverage(named([2, 3]), { decay: 0.9 });
    const flat = new ExponentialMovingAverage(named(), { decay: 0.9 });
    flat.update([fillRandom(new Float32Array(6), 7), fillRandom(new Float32Array(3), 8)]);
    shaped.deserialize(flat.serialize()); // a file from before shapes: 1-D, loads by element count
    expectSameState(shaped.stateDict(), flat.stateDict());
    expect(shapesIn(shaped.serialize())['shadow.fc.weight']).toEqual([2, 3]);
    shaped.update([fillRandom(new Float32Array(6), 9), fillRandom(new Float32Array(3), 10)]);
    flat.deserialize(shaped.serialize()); // an EMA that knows no shape checks the element count
    expectSameState(flat.stateDict(), shaped.stateDict());
    expect(shapesIn(flat.serialize())['shadow.fc.weight']).toEqual([6]);
  });

  test('a tensor of another layout (a transposed kernel) is refused, naming both shapes, and nothing changes', () => {
    const source = new ExponentialMovingAverage(named([2, 3]), { decay: 0.9 });
    const target = new ExponentialMovingAverage(named([3, 2]), { decay: 0.5 });
    const before = target.stateDict();
    const error = expectError(() => target.deserialize(source.serialize()), {
      name: 'Error',
      message: ['Invalid model-ema checkpoint', '"shadow.fc.weight" has shape [2, 3]', 'parameter 0 ("fc.weight") of this EMA has shape [3, 2]'],
      code: ERROR_CODES.INVALID_CHECKPOINT,
    });
    expect(error.message).toContain('transpose');
    expectSameState(target.stateDict(), before);
  });

  test('a shape that does not hold the value is refused when the parameter is given', () => {
    const value = new Float32Array(6);
    const make = (shape: unknown) => () => new ExponentialMovingAverage([{ name: 'w', value, shape } as never], { decay: 0.9 });
    expectError(make([4, 2]), { name: 'RangeError', message: ['parameters[0].shape', 'a shape of 6 elements', '[4, 2] (8 elements)'], code: ERROR_CODES.INVALID_ARGUMENT });
    expectError(make([-2, -3]), { name: 'TypeError', message: ['parameters[0].shape', 'non-negative integers'], code: ERROR_CODES.INVALID_ARGUMENT });
    expectError(make([1.5, 4]), { name: 'TypeError', message: ['parameters[0].shape'], code: ERROR_CODES.INVALID_ARGUMENT });
    expectError(make('2x3'), { name: 'TypeError', message: ['parameters[0].shape', '"2x3"'], code: ERROR_CODES.INVALID_ARGUMENT });
    const ok = new ExponentialMovingAverage([{ name: 'w', value, shape: [3, 1, 2] }], { decay: 0.9 });
    expect(shapesIn(ok.serialize())['shadow.w']).toEqual([3, 1, 2]);
  });
});

describe('hostile shapes in a file are refused with an error naming the tensor', () => {
  const ema = () => new ExponentialMovingAverage(named([2, 3]), { decay: 0.9 });
  test.each([
    ['a product that does not match the data', [4, 2], /tensor "shadow\.fc\.weight" has shape \[4, 2\] of F32, which needs 32 bytes/],
    ['a product that matches the data but not the parameter', [6, 1], /tensor "shadow\.fc\.weight" has shape \[6, 1\] but parameter 0 \("fc\.weight"\) of this EMA has shape \[2, 3\]/],
    ['a negative dimension', [-2, -3], /tensor "shadow\.fc\.weight" has shape\[0\] = -2, expected a non-negative integer/],
    ['a fractional dimension', [1.5, 4], /tensor "shadow\.fc\.weight" has shape\[0\] = 1\.5/],
    ['a huge shape', [2 ** 40, 2 ** 40], /tensor "shadow\.fc\.weight" has shape \[1099511627776, 1099511627776\]/],
    ['a dimension past 2^53', [2 ** 60], /tensor "shadow\.fc\.weight" has shape\[0\] = /],
    ['a shape that is not an array', { rows: 2 }, /tensor "shadow\.fc\.weight" has shape \{"rows":2\}/],
    ['a zero dimension', [0, 6], /tensor "shadow\.fc\.weight" has shape \[0, 6\] of F32, which needs 0 bytes/],
  ])('%s', (_what, shape, message) => {
    const source = ema();
    const target = ema();
    const before = target.stateDict();
    const bytes = withHeader(source.serialize(), (header) => {
      header['shadow.fc.weight'].shape = shape;
    });
    const error = expectError(() => target.deserialize(bytes), { name: 'Error', message: [message], code: ERROR_CODES.INVALID_CHECKPOINT });
    expect(error.message).toMatch(/^Invalid (safetensors file|model-ema checkpoint): /);
    expectSameState(target.stateDict(), before);
  });

  test('the header editor itself changes nothing else: an unedited copy loads', () => {
    const source = ema();
    source.update([fillRandom(new Float32Array(6), 3), fillRandom(new Float32Array(3), 4)]);
    const target = ema();
    target.deserialize(withHeader(source.serialize(), () => undefined));
    expectBitsEqual(target.stateDict().shadowParams[0], source.stateDict().shadowParams[0], 'fc.weight');
  });
});
