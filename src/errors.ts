// Error messages in one shape, as the native side writes them: "Expected X for Y but received Z",
// and a stable `code` per family of errors on every error model-ema throws (as Node's own errors
// carry one): the builders here set it, and native errors get theirs as they cross into TS.

/**
 * The `code` of each family of errors. The classes stay what they were (TypeError, RangeError,
 * Error); the code tells the families apart in code: `if (error.code === ERROR_CODES.BUSY) ...`.
 */
export const ERROR_CODES = Object.freeze({
  /** An argument or option has the wrong type or value (TypeError, RangeError), or misspelt key. */
  INVALID_ARGUMENT: 'ERR_MODEL_EMA_INVALID_ARGUMENT',
  /** A checkpoint (file or bytes) is malformed, corrupted, or does not match this EMA. */
  INVALID_CHECKPOINT: 'ERR_MODEL_EMA_INVALID_CHECKPOINT',
  /** A parameter was garbage-collected, disposed (tfjs), or its buffer detached or transferred. */
  PARAMETER_GONE: 'ERR_MODEL_EMA_PARAMETER_GONE',
  /** An updateAsync(), save() or load() is in flight; await it (or ema.settled()) first. */
  BUSY: 'ERR_MODEL_EMA_BUSY',
  /** update() while an averageParameters() scope is open. */
  SCOPE_OPEN: 'ERR_MODEL_EMA_SCOPE_OPEN',
  /** restore() with nothing store()d. */
  NOTHING_STORED: 'ERR_MODEL_EMA_NOTHING_STORED',
  /** A published-weights reader's read() before the first publish(). */
  NOTHING_PUBLISHED: 'ERR_MODEL_EMA_NOTHING_PUBLISHED',
  /** The device asked for cannot be used here (no CUDA in this build, no driver, no such GPU). */
  DEVICE_UNAVAILABLE: 'ERR_MODEL_EMA_DEVICE_UNAVAILABLE',
  /** A CUDA call failed on a device that is there. */
  DEVICE_ERROR: 'ERR_MODEL_EMA_DEVICE_ERROR',
  /** The shadows (or a backup) could not be allocated. */
  OUT_OF_MEMORY: 'ERR_MODEL_EMA_OUT_OF_MEMORY',
  /** The EMA was dispose()d (or disposed during the call). */
  DISPOSED: 'ERR_MODEL_EMA_DISPOSED',
  /** The native addon could not be loaded, or is stale. */
  ADDON_UNAVAILABLE: 'ERR_MODEL_EMA_ADDON_UNAVAILABLE',
  /** MODEL_EMA_CPU_ISA names no instruction set, or one this CPU lacks (set by the addon). */
  CPU_ISA: 'ERR_MODEL_EMA_CPU_ISA',
  /** model-ema/tfjs found no usable TensorFlow.js. */
  TFJS_UNAVAILABLE: 'ERR_MODEL_EMA_TFJS_UNAVAILABLE',
  /** A broken invariant: a bug in model-ema, please report it. */
  INTERNAL: 'ERR_MODEL_EMA_INTERNAL',
} as const);

/** One of the values of ERROR_CODES. */
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];
export type ErrorFamily = keyof typeof ERROR_CODES;

/** Sets `error.code` to the family's code (as Node does: an own, enumerable property) and returns the error. */
export function withCode<E extends Error>(error: E, family: ErrorFamily): E & { code: ErrorCode } {
  (error as E & { code: ErrorCode }).code = ERROR_CODES[family];
  return error as E & { code: ErrorCode };
}

/** A plain Error with the family's code. */
export function codedError(family: ErrorFamily, message: string, options?: ErrorOptions): Error & { code: ErrorCode } {
  return withCode(new Error(message, options), family);
}

/** `${operation}: this ExponentialMovingAverage has been disposed` (or `what` instead of the default). */
export function disposedError(operation: string, what = 'has been disposed'): Error {
  return codedError('DISPOSED', `${operation}: this ExponentialMovingAverage ${what}`);
}

// The addon's own messages, by family (native/addon: args.cc, shadow_arena.cc, the CUDA arena).
const NATIVE_FAMILIES: readonly [RegExp, ErrorFamily][] = [
  [/^Expected [^]* for /, 'INVALID_ARGUMENT'], // args.cc's shape; also 'Expected tensor sizes whose total fits in memory for sizes'
  [/has been disposed/, 'DISPOSED'],
  [/while an updateAsync\(\) on (this arena|it) is running/, 'BUSY'],
  [/is not available/, 'DEVICE_UNAVAILABLE'],
  [/out of memory/i, 'OUT_OF_MEMORY'],
  [/^CUDA error/, 'DEVICE_ERROR'],
];

/**
 * Gives an error thrown by the native addon its family's code (an error that already has a
 * model-ema code keeps it). Errors from the addon come from the main realm, not the caller's:
 * duck-typed, never instanceof.
 */
export function codeNativeError(error: unknown): unknown {
  if (typeof error !== 'object' || error === null || typeof (error as Error).message !== 'string') return error;
  const e = error as Error & { code?: unknown };
  if (typeof e.code === 'string' && e.code.startsWith('ERR_MODEL_EMA_')) return error;
  e.code = ERROR_CODES[NATIVE_FAMILIES.find(([pattern]) => pattern.test(e.message))?.[1] ?? 'INTERNAL'];
  return error;
}

/** A short, safe description of any value for an error message. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'undefined': return 'undefined';
    case 'number': return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint': return `${value}n`;
    case 'boolean': return String(value);
    case 'symbol': return 'a symbol';
    case 'function': return 'a function';
    case 'string': return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
    default: break;
  }
  if (ArrayBuffer.isView(value)) {
    const length = 'length' in value ? `(${(value as { length: number }).length})` : '';
    return `${value.constructor.name}${length}`;
  }
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/** A TypeError (or `Class`) with the INVALID_ARGUMENT code, for messages not in the "Expected ..." shape. */
export function invalidArgument(message: string, Class: typeof TypeError | typeof RangeError | typeof Error = TypeError): Error {
  return withCode(new Class(message), 'INVALID_ARGUMENT');
}

export function expectedTypeError(expected: string, argument: string, received: unknown): TypeError {
  return withCode(new TypeError(`Expected ${expected} for ${argument} but received ${describe(received)}`), 'INVALID_ARGUMENT');
}

export function expectedRangeError(expected: string, argument: string, received: string): RangeError {
  return withCode(new RangeError(`Expected ${expected} for ${argument} but received ${received}`), 'INVALID_ARGUMENT');
}

/** A number in [0, 1]: TypeError for non-numbers, RangeError for NaN, infinities and the rest. */
export function checkUnitInterval(value: unknown, argument: string): number {
  if (typeof value !== 'number') throw expectedTypeError('a number in [0, 1]', argument, value);
  if (!(value >= 0 && value <= 1)) throw expectedRangeError('a number in [0, 1]', argument, describe(value));
  return value;
}

export function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// A misspelt option ({ dtyp: 'float16' }) would otherwise be ignored without a word, and the EMA
// would run with the default the user meant to change.
export function refuseUnknownOptions(options: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = known.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2);
    throw invalidArgument(
      `Unknown option '${key}' in ${where}${near === undefined ? '' : ` (did you mean '${near}'?)`}; the options are ${known.join(', ')}`,
    );
  }
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}
