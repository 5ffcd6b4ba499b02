// The parameters an update resolved are remembered per EMA and handed out again when the same
// values come back (src/resolve.ts): these tests make sure a remembered list is never used where a
// fresh resolution would have refused or resolved differently: a buffer transferred between two
// updates, the same array with another length, the list reordered or grown, a variable disposed,
// a kind registered meanwhile. Values are checked against the float64 reference.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ExponentialMovingAverage, registerParameterKind } from '../src';
import { quietBackend } from './tfjs_helpers';
import { expectUpdateClose, fillRandom, sameBytes } from './reference';

const DECAY = 0.75;
const options = { decay: DECAY, useNumUpdates: false };
const shadowsOf = (ema: ExponentialMovingAverage): Float32Array[] => ema.stateDict().shadowParams as Float32Array[];

// Runs `update` and checks every shadow moved from `before` towards `params` by the float64 reference.
function expectUpdated(ema: ExponentialMovingAverage, params: readonly ArrayLike<number>[], update: () => void, context: string): void {
  const before = shadowsOf(ema);
  update();
  shadowsOf(ema).forEach((s, i) => expectUpdateClose(s, before[i], params[i], DECAY, 'float32', 1, `${context}, tensor ${i}`));
}

// The call throws (code and message as given) and changes neither shadows nor counters.
function expectRefusedUnchanged(ema: ExponentialMovingAverage, call: () => void, code: string, message: RegExp): void {
  const before = ema.stateDict();
  let error: (Error & { code?: string }) | undefined;
  try {
    call();
  } catch (e) {
    error = e as Error & { code?: string };
  }
  expect(error?.message).toMatch(message);
  expect(error?.code).toBe(code);
  const after = ema.stateDict();
  after.shadowParams.forEach((s, i) => expect(sameBytes(s, before.shadowParams[i])).toBe(true));
  expect([after.step, after.numUpdates]).toEqual([before.step, before.numUpdates]);
}

// Awkward sizes and many small tensors: 0, 1, 7, 4097, then twenty of 3.
const SIZES = [0, 1, 7, 4097, ...new Array(20).fill(3)];

test('the same list passed again (registered or explicit) updates as a fresh one would, values changing in between', () => {
  const params = SIZES.map((n, i) => fillRandom(new Float32Array(n), i));
  const ema = new ExponentialMovingAverage(params, options);
  for (let k = 0; k < 6; k++) {
    params.forEach((p, i) => p.set(fillRandom(new Float32Array(p.length), 100 * k + i)));
    expectUpdated(ema, params, () => (k % 2 === 0 ? ema.update() : ema.update(params)), `round ${k}`);
  }
  // A fresh array holding the same values each time resolves too.
  expectUpdated(ema, params, () => ema.update([...params]), 'a copy of the list');
});

test('a buffer transferred between two updates is refused, naming it, with nothing changed; a new list works', () => {
  const params = [fillRandom(new Float32Array(7), 1), fillRandom(new Float32Array(5), 2)];
  const ema = new ExponentialMovingAverage(params, options);
  ema.update();
  ema.update(params);
  structuredClone(params[1].buffer, { transfer: [params[1].buffer] });
  expectRefusedUnchanged(ema, () => ema.update(), 'ERR_MODEL_EMA_PARAMETER_GONE', /parameter 1 of the registered parameters.*its buffer was detached/);
  expectRefusedUnchanged(ema, () => ema.update(params), 'ERR_MODEL_EMA_PARAMETER_GONE', /parameter 1 of parameters.*its buffer was detached/);
  const replacement = [params[0], fillRandom(new Float32Array(5), 3)];
  expectUpdated(ema, replacement, () => ema.update(replacement), 'replacement');
});

test('the same array object with another length (a resizable buffer) is refused, and works again at its size', () => {
  const buffer = new (ArrayBuffer as unknown as new (n: number, o: object) => ArrayBuffer & { resize(n: number): void })(7 * 4, { maxByteLength: 64 });
  const tracking = new Float32Array(buffer); // follows the buffer's length
  tracking.set(fillRandom(new Float32Array(7), 4));
  const params = [tracking, fillRandom(new Float32Array(3), 5)];
  const ema = new ExponentialMovingAverage(params, options);
  expectUpdated(ema, params, () => ema.update(params), 'before the resize');
  buffer.resize(10 * 4);
  expect(tracking.length).toBe(10);
  expectRefusedUnchanged(ema, () => ema.update(params), 'ERR_MODEL_EMA_INVALID_ARGUMENT', /Expected 7 elements.*parameter 0 of parameters but received 10/);
  expectRefusedUnchanged(ema, () => ema.update(), 'ERR_MODEL_EMA_INVALID_ARGUMENT', /Expected 7 elements.*received 10/);
  buffer.resize(7 * 4);
  tracking.set(fillRandom(new Float32Array(7), 6));
  expectUpdated(ema, params, () => ema.update(params), 'after resizing back');
});

test('the same list object reordered or grown resolves again: the new order is used, the longer list refused', () => {
  const [a, b] = [fillRandom(new Float32Array(9), 7), fillRandom(new Float32Array(9), 8)];
  const list = [a, b];
  const ema = new ExponentialMovingAverage(list, options);
  ema.update(list);
  list.reverse(); // the same array object, now [b, a]: shadow 0 must move towards b
  expectUpdated(ema, list, () => ema.update(list), 'reversed');
  list.push(new Float32Array(9));
  expectRefusedUnchanged(ema, () => ema.update(list), 'ERR_MODEL_EMA_INVALID_ARGUMENT', /Expected 2 parameters \(one per shadow\) for parameters but received 3/);
});

test('a named parameter, then the same value bare, then named again: each resolves with its own name', () => {
  const [w, bias] = [fillRandom(new Float32Array(6), 9), fillRandom(new Float32Array(2), 10)];
  const ema = new ExponentialMovingAverage([w, bias], options);
  expectUpdated(ema, [w, bias], () => ema.update([{ name: 'fc.weight', value: w }, bias]), 'named');
  expectUpdated(ema, [w, bias], () => ema.update([w, bias]), 'bare');
  const short = new Float32Array(1);
  expectRefusedUnchanged(ema, () => ema.update([{ name: 'fc.weight', value: w }, { name: 'fc.bias', value: short }]), 'ERR_MODEL_EMA_INVALID_ARGUMENT', /for parameter 1 \("fc.bias"\) of parameters but received 1/);
});

test('a kind registered between two updates takes over the explicit values it matches', () => {
  const p = fillRandom(new Float32Array(5), 11);
  const ema = new ExponentialMovingAverage([p], options);
  ema.update([p]);
  const claimed = new WeakSet<object>([p]);
  // Reads its values as all 2s: the next update must move the shadow towards 2, not towards p.
  registerParameterKind(
    {
      label: 'test.ClaimedArray',
      matches: (v: unknown): v is Float32Array => typeof v === 'object' && v !== null && claimed.has(v),
      ownName: () => undefined,
      numel: (v: Float32Array) => v.length,
      unusable: () => undefined,
      read: (v: Float32Array) => new Float32Array(v.length).fill(2),
      writeTarget: (v: Float32Array) => v,
      commit: () => undefined,
    },
    100,
  );
  expectUpdated(ema, [new Float32Array(5).fill(2)], () => ema.update([p]), 'the new kind');
});

describe('tfjs variables', () => {
  beforeAll(() => quietBackend());

  test('a variable disposed between two updates is refused, naming it, with nothing changed', () => {
    const variables = [tf.variable(tf.tensor1d(fillRandom(new Float32Array(7), 12))), tf.variable(tf.tensor1d(fillRandom(new Float32Array(3), 13)), true, 'head.bias')];
    const ema = new ExponentialMovingAverage(variables, options);
    expectUpdated(ema, variables.map((v) => v.dataSync()), () => ema.update(), 'registered');
    expectUpdated(ema, variables.map((v) => v.dataSync()), () => ema.update(variables), 'explicit');
    variables[0].assign(tf.tensor1d(fillRandom(new Float32Array(7), 14))); // new values, same variable
    expectUpdated(ema, variables.map((v) => v.dataSync()), () => ema.update(variables), 'after assign');
    variables[1].dispose();
    expectRefusedUnchanged(ema, () => ema.update(), 'ERR_MODEL_EMA_PARAMETER_GONE', /parameter 1 \("head.bias"\) was disposed/);
    expectRefusedUnchanged(ema, () => ema.update(variables), 'ERR_MODEL_EMA_PARAMETER_GONE', /head.bias.*was disposed/);
    variables[0].dispose();
  });
});

test('remembering a resolution keeps no model alive: dropped after updates, it is collected', () => {
  const helper = path.join(__dirname, 'helpers', 'resolve_memo_gc.js');
  const run = spawnSync(process.execPath, ['--expose-gc', '-r', path.join(__dirname, 'helpers', 'register_ts.js'), helper], { encoding: 'utf8' });
  expect(run.stderr).toBe('');
  const result = JSON.parse(run.stdout.trim()) as { collected: boolean; update: string | null };
  expect(result.collected).toBe(true);
  expect(result.update).toMatch(/update\(\): parameter \d has been garbage-collected/);
});
