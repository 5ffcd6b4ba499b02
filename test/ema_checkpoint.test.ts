// save/load and serialize/deserialize through the EMA: round trips in every storage dtype, with and
// without a store()d backup, named and unnamed parameters; conversion on load; every rejection
// leaves the EMA exactly as it was; saving is ordered with updateAsync and never torn.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage } from '../src';
import { DTYPES, fillRandom, roundTo } from './reference';
import { expectSameState } from './helpers/state';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-ckpt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function model(seed: number, named: boolean) {
  const values = [4097, 1, 0, 7].map((n, i) => fillRandom(new Float32Array(n), seed + i));
  const params = named ? values.map((value, i) => ({ name: `layer${i}/w`, value })) : values;
  return { values, params };
}

function trained(dtype: (typeof DTYPES)[number], named: boolean, withBackup: boolean) {
  const { values, params } = model(1, named);
  const ema = new ExponentialMovingAverage(params, { decay: 0.99, dtype });
  for (let step = 0; step < 3; step++) {
    values.forEach((v, i) => fillRandom(v, 100 * step + i));
    ema.update();
  }
  if (withBackup) ema.store();
  return { ema, values, params };
}

describe.each(DTYPES)('%s storage', (dtype) => {
  test.each([
    [true, true],
    [true, false],
    [false, true],
    [false, false],
  ])('save/load and serialize/deserialize are bit-exact (named %p, backup %p)', async (named, withBackup) => {
    const { ema } = trained(dtype, named, withBackup);
    const expected = ema.stateDict();
    const file = path.join(tmp, `${dtype}-${named}-${withBackup}.safetensors`);
    await ema.save(file);
    const bytes = ema.serialize();
    expect(Buffer.compare(fs.readFileSync(file), Buffer.from(bytes))).toBe(0);

    const { params } = model(50, named);
    const fromFile = new ExponentialMovingAverage(params, { decay: 0.5, dtype, useNumUpdates: false });
    await fromFile.load(file);
    expectSameState(fromFile.stateDict(), expected, 'load');
    const fromBytes = new ExponentialMovingAverage(params, { decay: 0.5, dtype });
    fromBytes.deserialize(bytes);
    expectSameState(fromBytes.stateDict(), expected, 'deserialize');
    [ema, fromFile, fromBytes].forEach((e) => e.dispose());
  });

  test.each(DTYPES)('loading into a %s EMA converts the values', (target) => {
    const { ema } = trained(dtype, true, false);
    const source = ema.stateDict();
    const other = new ExponentialMovingAverage(model(9, true).params, { decay: 0.5, dtype: target });
    other.deserialize(ema.serialize());
    const loaded = other.stateDict();
    expect(loaded.dtype).toBe(target);
    expect(loaded.numUpdates).toBe(3);
    source.shadowParams.forEach((s, i) =>
      expect(Array.from(loaded.shadowParams[i])).toEqual(Array.from(s, (x) => roundTo(x, target))),
    );
    ema.dispose();
    other.dispose();
  });
});

describe('rejections leave the EMA untouched', () => {
  function setup() {
    const { ema } = trained('float32', true, true);
    return { ema, bytes: ema.serialize(), before: ema.stateDict() };
  }

  test.each([
    ['truncated', (b: Uint8Array) => b.slice(0, b.length - 3), /Invalid/],
    ['a flipped data bit', (b: Uint8Array) => { const c = b.slice(); c[c.length - 5] ^= 1; return c; }, /checksum/i],
    ['a header length past the end', (b: Uint8Array) => { const c = b.slice(); new DataView(c.buffer).setUint32(0, 1e6, true); return c; }, /Invalid/],
    ['empty bytes', () => new Uint8Array(0), /Invalid/],
  ])('%s', (_, mutate, message) => {
    const { ema, bytes, before } = setup();
    expect(() => ema.deserialize(mutate(bytes))).toThrow(message);
    expectSameState(ema.stateDict(), before);
    ema.dispose();
  });

  test('a file for differently named or sized parameters is refused', async () => {
    const { ema, before } = setup();
    const other = new ExponentialMovingAverage([new Float32Array(3)], { decay: 0.9 });
    const file = path.join(tmp, 'other.safetensors');
    await other.save(file);
    await expect(ema.load(file)).rejects.toThrow(/tensor|parameter|name/i);
    expectSameState(ema.stateDict(), before);
    await expect(ema.load(path.join(tmp, 'missing.safetensors'))).rejects.toThrow(/ENOENT|no such file/);
    expect(() => ema.deserialize('bytes' as unknown as Uint8Array)).toThrow(/Expected a Uint8Array for bytes/);
    await expect(ema.save(42 as unknown as string)).rejects.toThrow(/Expected a file path for path/);
    ema.dispose();
    other.dispose();
  });
});

test('names must match unless matchNames is false, then parameters match by position', async () => {
  const { ema } = trained('float32', true, true);
  const expected = ema.stateDict();
  // Same shapes, other names: what tfjs gives a model built twice in one process.
  const renamed = model(7, false).values.map((value, i) => ({ name: `dense_Dense${i + 2}/kernel`, value }));
  const other = new ExponentialMovingAverage(renamed, { decay: 0.5 });
  const before = other.stateDict();
  const bytes = ema.serialize();
  expect(() => other.deserialize(bytes)).toThrow(/named "layer0\/w" in the checkpoint but "dense_Dense2\/kernel" in this EMA.*matchNames: false/);
  expectSameState(other.stateDict(), before, 'after the refused load');
  other.deserialize(bytes, { matchNames: false });
  expectSameState({ ...other.stateDict(), names: expected.names }, expected, 'matched by position');
  const file = path.join(tmp, 'renamed.safetensors');
  await ema.save(file);
  await expect(other.load(file, { matchNames: 'no' as unknown as boolean })).rejects.toThrow(/Expected a boolean for options.matchNames/);
  await other.load(file, { matchNames: false });
  // Sizes are still checked when names are not.
  const small = new ExponentialMovingAverage([new Float32Array(3), new Float32Array(1), new Float32Array(0), new Float32Array(7)], { decay: 0.5 });
  expect(() => small.deserialize(bytes, { matchNames: false })).toThrow(/has 4097 elements but parameter 0/);
  [ema, other, small].forEach((e) => e.dispose());
});

test('save is ordered after a pending updateAsync (synchronous changes wait for that update, not for the file write)', async () => {
  const values = [fillRandom(new Float32Array(1 << 20), 3)];
  const ema = new ExponentialMovingAverage(values, { decay: 0, useNumUpdates: false });
  values[0].fill(7);
  const updating = ema.updateAsync();
  const file = path.join(tmp, 'ordered.safetensors');
  const saving = ema.save(file);
  expect(() => ema.update()).toThrow(/still running/);
  await Promise.all([updating, saving]);
  const reader = new ExponentialMovingAverage([new Float32Array(1 << 20)], { decay: 0.5 });
  await reader.load(file);
  expect(reader.stateDict().shadowParams[0].every((x) => x === 7)).toBe(true);
  ema.dispose();
  reader.dispose();
});
