// State that could be created but not saved: a parameter name that is not well-formed UTF-16 (a
// lone surrogate) is refused where it comes in; numUpdates never passes Number.MAX_SAFE_INTEGER, so
// stateDict() and save() always round-trip.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage, type EmaStateDict } from '../src';
import { expectError, expectSameState } from './helpers/state';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-limits-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('parameter names must be well-formed UTF-16', () => {
  test.each([
    ['a lone high surrogate', '\uD800'],
    ['a lone low surrogate after text', 'layer/\uDC00'],
    ['surrogates in the wrong order', '\uDC00\uD800'],
  ])('%s is refused at construction, naming the parameter index', (_, badName) => {
    const params = [{ name: 'ok', value: new Float32Array(2) }, { name: badName, value: new Float32Array(3) }];
    expectError(() => new ExponentialMovingAverage(params, { decay: 0.9 }), {
      name: 'TypeError',
      message: ['parameters[1]', 'not well-formed UTF-16'],
    });
  });

  test('names with paired surrogates (emoji) and any other text are accepted and round-trip through save/load', async () => {
    const names = ['😀/weight', 'ünïcødé', ''];
    const ema = new ExponentialMovingAverage(names.map((name, i) => ({ name, value: new Float32Array(i + 1) })), { decay: 0.9 });
    const file = path.join(tmp, 'emoji.safetensors');
    await ema.save(file);
    await ema.load(file);
    expect(ema.names).toEqual(names);
    ema.dispose();
  });

  test('explicit parameters passed to an operation follow the same rule', () => {
    const ema = new ExponentialMovingAverage([{ name: 'w', value: new Float32Array(2) }], { decay: 0.9 });
    expectError(() => ema.update([{ name: 'w\uD83D', value: new Float32Array(2) }]), {
      name: 'TypeError',
      message: ['parameters[0]', 'not well-formed UTF-16'],
    });
    expect(ema.numUpdates).toBe(0);
    ema.dispose();
  });

  test('loadStateDict() refuses a state whose names are not well-formed, and changes nothing', () => {
    const ema = new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.9 });
    const before = ema.stateDict();
    const state: EmaStateDict = { ...ema.stateDict(), names: ['\uDFFF'], decay: 0.5 };
    expectError(() => ema.loadStateDict(state), { name: 'TypeError', message: ['state.names[0]', 'not well-formed UTF-16'] });
    expectSameState(ema.stateDict(), before);
    ema.dispose();
  });
});

describe('numUpdates never passes Number.MAX_SAFE_INTEGER', () => {
  function atLimit() {
    const value = new Float32Array([1, 2]);
    const ema = new ExponentialMovingAverage([{ name: 'w', value }], { decay: 0.5 });
    ema.loadStateDict({ ...ema.stateDict(), numUpdates: Number.MAX_SAFE_INTEGER });
    return { ema, value };
  }

  test('update() at the limit still updates and the counter stays at 2^53 - 1; stateDict() and save() round-trip', async () => {
    const { ema, value } = atLimit();
    value.set([3, 4]);
    ema.update();
    expect(ema.numUpdates).toBe(Number.MAX_SAFE_INTEGER);
    expect(Array.from(ema.stateDict().shadowParams[0])).toEqual([2, 3]); // decay 0.5 (the warm-up bound is ~1)
    const state = ema.stateDict();
    const other = new ExponentialMovingAverage([{ name: 'w', value: new Float32Array(2) }], { decay: 0.9 });
    other.loadStateDict(state);
    expectSameState(other.stateDict(), state);
    const file = path.join(tmp, 'limit.safetensors');
    await ema.save(file);
    await other.load(file);
    expectSameState(other.stateDict(), state);
    other.deserialize(ema.serialize());
    expectSameState(other.stateDict(), state);
    ema.dispose();
    other.dispose();
  });

  test('updateAsync() saturates the same way', async () => {
    const { ema } = atLimit();
    await ema.updateAsync();
    await ema.updateAsync();
    expect(ema.numUpdates).toBe(Number.MAX_SAFE_INTEGER);
    expect(ema.currentDecay).toBe(0.5);
    await ema.save(path.join(tmp, 'limit-async.safetensors'));
    ema.dispose();
  });

  test('loadStateDict() refuses a numUpdates past the limit (the same rule as the checkpoint reader)', () => {
    const ema = new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.9 });
    expectError(() => ema.loadStateDict({ ...ema.stateDict(), numUpdates: 2 ** 53 }), {
      name: 'TypeError',
      message: ['state.numUpdates', String(2 ** 53)],
    });
    ema.dispose();
  });
});
