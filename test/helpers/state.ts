// EMA-level helpers shared by the test files: whole-state snapshots compared bit for bit, and
// assertions on errors by name and message (errors from the addon come from another realm, so
// `toThrow(RangeError)` cannot be used).
import type { EmaStateDict, ExponentialMovingAverage } from '../../src';

type Floats = Float32Array | Float64Array;

/**
 * 'Float32Array', 'Float64Array', ...: the type of a typed array whatever realm made it. Arrays the
 * addon returns come from Node's main realm, not from the jest sandbox the tests run in, so
 * `instanceof Float32Array` is false for them.
 */
export function tagOf(value: unknown): string {
  return Object.prototype.toString.call(value).slice(8, -1);
}

function bytesOf(array: Floats): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** Same constructor, same length and the same bytes (NaN payloads and -0 included). */
export function expectBitsEqual(actual: Floats, expected: Floats, context: string): void {
  if (tagOf(actual) !== tagOf(expected)) {
    throw new Error(`${context}: ${tagOf(actual)} != expected ${tagOf(expected)}`);
  }
  const a = bytesOf(actual);
  const e = bytesOf(expected);
  if (a.length !== e.length) throw new Error(`${context}: ${a.length} bytes != expected ${e.length}`);
  for (let i = 0; i < e.length; i++) {
    if (a[i] !== e[i]) {
      const element = Math.floor(i / expected.BYTES_PER_ELEMENT);
      throw new Error(`${context}: element ${element} is ${actual[element]}, expected ${expected[element]}`);
    }
  }
}

/** Two state dicts are identical: decay, counters, dtype, names, shadows and backups bit for bit. */
export function expectSameState(actual: EmaStateDict, expected: EmaStateDict, context = 'state'): void {
  expect({ decay: actual.decay, numUpdates: actual.numUpdates, dtype: actual.dtype, names: actual.names }).toEqual({
    decay: expected.decay,
    numUpdates: expected.numUpdates,
    dtype: expected.dtype,
    names: expected.names,
  });
  expect(actual.shadowParams).toHaveLength(expected.shadowParams.length);
  expected.shadowParams.forEach((e, i) => expectBitsEqual(actual.shadowParams[i], e, `${context}.shadowParams[${i}]`));
  if (expected.collectedParams === null) {
    expect(actual.collectedParams).toBeNull();
  } else {
    expect(actual.collectedParams).not.toBeNull();
    expected.collectedParams.forEach((e, i) =>
      expectBitsEqual(actual.collectedParams![i], e, `${context}.collectedParams[${i}]`),
    );
  }
}

/** Copies of the given parameter buffers, to check later that a failed call wrote nothing. */
export function copyAll<T extends Floats>(arrays: readonly T[]): T[] {
  return arrays.map((a) => a.slice() as T);
}

export interface ExpectedError {
  name: string;
  /** Every pattern must occur in the message. */
  message: (string | RegExp)[];
  /**
   * The error's `code`. Omitted: any model-ema code (ERR_MODEL_EMA_*) or a file-system errno code
   * (ENOENT, ...) will do, so every error these helpers see is checked for one; null: an error that
   * is not model-ema's (a callback's own error passed through), which is not checked.
   */
  code?: string | null;
}

/** Every error model-ema throws has a code: its family's, or the file system's for file-system errors. */
export const ANY_ERROR_CODE = /^(ERR_MODEL_EMA_[A-Z_]+|E[A-Z]+)$/;

function checkError(error: unknown, expected: ExpectedError): void {
  expect(error).toBeDefined();
  const e = error as Error;
  expect(typeof e.message).toBe('string');
  expect(e.name).toBe(expected.name);
  if (expected.code !== null) {
    const code = (e as { code?: unknown }).code;
    if (expected.code === undefined) expect([e.message, code]).toEqual([e.message, expect.stringMatching(ANY_ERROR_CODE)]);
    else expect([e.message, code]).toEqual([e.message, expected.code]);
  }
  for (const part of expected.message) {
    if (typeof part === 'string') expect(e.message).toContain(part);
    else expect(e.message).toMatch(part);
  }
}

/** Runs fn, which must throw the expected error; returns the error. */
export function expectError(fn: () => unknown, expected: ExpectedError): Error {
  let caught: unknown;
  let threw = false;
  try {
    fn();
  } catch (error) {
    caught = error;
    threw = true;
  }
  if (!threw) throw new Error(`expected ${expected.name} matching ${expected.message.join(', ')}, but nothing was thrown`);
  checkError(caught, expected);
  return caught as Error;
}

/** Awaits a promise that must reject with the expected error. */
export async function expectRejection(promise: Promise<unknown>, expected: ExpectedError): Promise<Error> {
  let caught: unknown;
  let rejected = false;
  try {
    await promise;
  } catch (error) {
    caught = error;
    rejected = true;
  }
  if (!rejected) throw new Error(`expected a rejection with ${expected.name}, but the promise resolved`);
  checkError(caught, expected);
  return caught as Error;
}

/**
 * The all-or-nothing check: `fn` must throw the expected error and leave the EMA's state and the
 * given parameter buffers bit for bit as they were.
 */
export function expectFailureChangesNothing(
  ema: ExponentialMovingAverage,
  params: readonly Floats[],
  fn: () => unknown,
  expected: ExpectedError,
): Error {
  const before = ema.stateDict();
  const paramsBefore = copyAll(params);
  const error = expectError(fn, expected);
  expectSameState(ema.stateDict(), before, 'state after the failed call');
  params.forEach((p, i) => expectBitsEqual(p, paramsBefore[i], `parameter ${i} after the failed call`));
  return error;
}
