// Every family of errors has a stable `code` (ERROR_CODES, exported from the package entry) while
// the classes stay what they were: each row provokes one family through the public API (or, for
// native errors, through the one place src/ makes arenas) and checks code, class and message.
// test/helpers/state.ts's expectError/expectRejection check that every error the other test files
// provoke has a code as well.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { ERROR_CODES, ExponentialMovingAverage, PublishedWeightsReader, type ErrorCode } from '../src';
import { codeNativeError } from '../src/errors';
import { newShadowArena } from '../src/native';
import { quietBackend } from './tfjs_helpers';

beforeAll(() => quietBackend('cpu'));

function ema(options: { decay?: number } = {}): { ema: ExponentialMovingAverage; weights: Float32Array[] } {
  const weights = [new Float32Array([1, 2, 3]), new Float32Array([4, 5])];
  return { ema: new ExponentialMovingAverage(weights, { decay: 0.9, ...options }), weights };
}

function thrown(fn: () => unknown): Error & { code?: unknown } {
  try {
    fn();
  } catch (error) {
    return error as Error & { code?: unknown };
  }
  throw new Error('expected a throw, but nothing was thrown');
}

async function rejected(promise: Promise<unknown>): Promise<Error & { code?: unknown }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: unknown };
  }
  throw new Error('expected a rejection, but the promise resolved');
}

test('ERROR_CODES is a frozen object of distinct ERR_MODEL_EMA_ codes', () => {
  expect(Object.isFrozen(ERROR_CODES)).toBe(true);
  const values = Object.values(ERROR_CODES);
  expect(new Set(values).size).toBe(values.length);
  for (const [key, value] of Object.entries(ERROR_CODES)) expect(value).toBe(`ERR_MODEL_EMA_${key}`);
  expect(() => {
    (ERROR_CODES as Record<string, string>).BUSY = 'x';
  }).toThrow(TypeError);
  const typed: ErrorCode = ERROR_CODES.BUSY; // the type is the union of the values
  expect(typed).toBe('ERR_MODEL_EMA_BUSY');
});

// [what, provoke, expected code, class name, a part of the message]
type Row = [string, () => unknown, ErrorCode, string, string | RegExp];

const syncRows: Row[] = [
  ['decay of the wrong type', () => new ExponentialMovingAverage([], { decay: '0.9' as unknown as number }), ERROR_CODES.INVALID_ARGUMENT, 'TypeError', 'decay'],
  ['decay out of range', () => new ExponentialMovingAverage([], { decay: 1.5 }), ERROR_CODES.INVALID_ARGUMENT, 'RangeError', 'decay'],
  ['a misspelt option', () => new ExponentialMovingAverage([], { decay: 0.9, dtyp: 'float16' } as never), ERROR_CODES.INVALID_ARGUMENT, 'TypeError', "'dtyp'"],
  ['a parameter of the wrong type', () => new ExponentialMovingAverage([[1, 2]] as never, { decay: 0.9 }), ERROR_CODES.INVALID_ARGUMENT, 'TypeError', 'parameters[0]'],
  ['parameters of the wrong size', () => ema().ema.update([new Float32Array(3), new Float32Array(3)]), ERROR_CODES.INVALID_ARGUMENT, 'RangeError', '2 elements'],
  ['a bad state dict', () => ema().ema.loadStateDict({ decay: 2 } as never), ERROR_CODES.INVALID_ARGUMENT, 'RangeError', 'state.decay'],
  ['a partly overlapping scope', () => {
    const { ema: e, weights } = ema();
    e.averageParameters();
    e.averageParameters([weights[0], new Float32Array(2)]);
  }, ERROR_CODES.INVALID_ARGUMENT, 'Error', 'shares some of the parameters'],
  ['native: a bad argument ("Expected X for Y but received Z")', () => newShadowArena('float32', [3], -1), ERROR_CODES.INVALID_ARGUMENT, 'RangeError', /^Expected .* for device but received -1/],
  ['bytes that are no checkpoint', () => ema().ema.deserialize(new Uint8Array(5)), ERROR_CODES.INVALID_CHECKPOINT, 'Error', 'Invalid safetensors file'],
  ['a corrupted checkpoint', () => {
    const { ema: e } = ema();
    const bytes = e.serialize();
    bytes[bytes.length - 1] ^= 1;
    e.deserialize(bytes);
  }, ERROR_CODES.INVALID_CHECKPOINT, 'Error', 'checksum'],
  ['a checkpoint of another model', () => ema().ema.deserialize(new ExponentialMovingAverage([new Float32Array(3)], { decay: 0.9 }).serialize()), ERROR_CODES.INVALID_CHECKPOINT, 'Error', 'Invalid model-ema checkpoint'],
  ['a registered buffer transferred away', () => {
    const { ema: e, weights } = ema();
    structuredClone(weights[0].buffer, { transfer: [weights[0].buffer as ArrayBuffer] });
    e.update();
  }, ERROR_CODES.PARAMETER_GONE, 'RangeError', 'detached'],
  ['a detached buffer at construction', () => {
    const weight = new Float32Array(3);
    structuredClone(weight.buffer, { transfer: [weight.buffer] });
    return new ExponentialMovingAverage([weight], { decay: 0.9 });
  }, ERROR_CODES.PARAMETER_GONE, 'TypeError', 'parameters[0]'],
  ['a registered tfjs variable disposed', () => {
    const variable = tf.variable(tf.zeros([2]), true, 'codes_disposed');
    const e = new ExponentialMovingAverage([variable], { decay: 0.9 });
    variable.dispose();
    e.update();
  }, ERROR_CODES.PARAMETER_GONE, 'Error', 'was disposed'],
  ['an explicit tfjs variable disposed', () => {
    const variable = tf.variable(tf.zeros([2]), true, 'codes_explicit');
    const e = new ExponentialMovingAverage([new Float32Array(2)], { decay: 0.9 });
    variable.dispose();
    e.copyTo([variable]);
  }, ERROR_CODES.PARAMETER_GONE, 'TypeError', 'was disposed'],
  ['a sync call while updateAsync() runs', () => {
    const { ema: e } = ema();
    void e.updateAsync();
    e.update();
  }, ERROR_CODES.BUSY, 'Error', 'still running'],
  ['dispose() while updateAsync() runs', () => {
    const { ema: e } = ema();
    void e.updateAsync();
    e.dispose();
  }, ERROR_CODES.BUSY, 'Error', 'Cannot dispose'],
  ['native: an arena call while its updateAsync() runs', () => {
    const arena = newShadowArena('float32', [2], null);
    void arena.updateAsync([new Float32Array(2)], { decay: 0.5 });
    arena.copyTo([new Float32Array(2)]);
  }, ERROR_CODES.BUSY, 'Error', 'while an updateAsync() on this arena is running'],
  ['update() in a scope', () => {
    const { ema: e } = ema();
    e.averageParameters();
    e.update();
  }, ERROR_CODES.SCOPE_OPEN, 'Error', 'scope is open'],
  ['restore() with nothing stored', () => ema().ema.restore(), ERROR_CODES.NOTHING_STORED, 'Error', 'nothing is stored'],
  ['a published-weights read before the first publish', () => new PublishedWeightsReader(ema().ema.shareable()).read(), ERROR_CODES.NOTHING_PUBLISHED, 'Error', 'nothing has been published yet'],
  ['a device that is not there', () => new ExponentialMovingAverage([], { decay: 0.9, device: 'cuda:9999' }), ERROR_CODES.DEVICE_UNAVAILABLE, 'Error', "Device 'cuda:9999' is not available"],
  ['native: a device that is not there', () => newShadowArena('float32', [3], 9999), ERROR_CODES.DEVICE_UNAVAILABLE, 'Error', 'CUDA device 9999 is not available'],
  ['a disposed EMA', () => {
    const { ema: e } = ema();
    e.dispose();
    e.copyTo();
  }, ERROR_CODES.DISPOSED, 'Error', 'has been disposed'],
  ['native: a disposed arena', () => {
    const arena = newShadowArena('float32', [2], null);
    arena.dispose();
    arena.read(0);
  }, ERROR_CODES.DISPOSED, 'Error', 'the arena has been disposed'],
];

describe.each(syncRows)('%s', (_what, provoke, code, name, message) => {
  test(`throws a ${name} with code ${code}`, () => {
    const error = thrown(provoke);
    expect({ name: error.name, code: error.code }).toEqual({ name, code });
    if (typeof message === 'string') expect(error.message).toContain(message);
    else expect(error.message).toMatch(message);
  });
});

describe('asynchronous families', () => {
  test('load() of a missing file keeps the file system code; of a bad file, INVALID_CHECKPOINT', async () => {
    const { ema: e } = ema();
    const missing = await rejected(e.load(path.join(__dirname, 'no-such-file.safetensors')));
    expect(missing.code).toBe('ENOENT');
    const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'codes-'));
    try {
      const file = path.join(dir, 'bad.safetensors');
      fs.writeFileSync(file, Buffer.from('not a checkpoint at all'));
      const bad = await rejected(e.load(file));
      expect({ name: bad.name, code: bad.code }).toEqual({ name: 'Error', code: ERROR_CODES.INVALID_CHECKPOINT });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('updateAsync() of a disposed EMA rejects with DISPOSED, with bad progress with INVALID_ARGUMENT', async () => {
    const { ema: e } = ema();
    const bad = await rejected(e.updateAsync(undefined, { steps: -1 }));
    expect({ name: bad.name, code: bad.code }).toEqual({ name: 'TypeError', code: ERROR_CODES.INVALID_ARGUMENT });
    e.dispose();
    const gone = await rejected(e.updateAsync());
    expect({ name: gone.name, code: gone.code }).toEqual({ name: 'Error', code: ERROR_CODES.DISPOSED });
  });

  test('native: a rejected updateAsync() of an arena carries its code', async () => {
    const arena = newShadowArena('float32', [2], null);
    const error = await rejected(Promise.resolve().then(() => arena.updateAsync([new Float32Array(3)], { decay: 0.5 })));
    expect(error.code).toBe(ERROR_CODES.INVALID_ARGUMENT);
    arena.dispose();
  });

  test('a garbage-collected registered parameter is PARAMETER_GONE', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const e = (() => new ExponentialMovingAverage([new Float32Array(1 << 16)], { decay: 0.9 }))();
    for (let i = 0; i < 10 && e.names.length === 1; i++) {
      await new Promise((resolve) => setImmediate(resolve)); // WeakRefs are cleared between jobs
      gc();
      const error = (() => {
        try {
          e.update();
          return undefined;
        } catch (caught) {
          return caught as Error & { code?: unknown };
        }
      })();
      if (error === undefined) continue;
      expect({ name: error.name, code: error.code }).toEqual({ name: 'Error', code: ERROR_CODES.PARAMETER_GONE });
      expect(error.message).toContain('garbage-collected');
      return;
    }
    throw new Error('the parameter was never collected');
  });
});

describe('native errors by family (messages as native/ writes them)', () => {
  const sources = ['native/addon/shadow_arena.cc', 'native/kernels/cuda/cuda_resources.h']
    .map((file) => fs.readFileSync(path.join(__dirname, '..', file), 'utf8'))
    .join('\n');
  test.each([
    ['Cannot allocate a float32 arena of that size: out of memory', ' arena of that size: out of memory', ERROR_CODES.OUT_OF_MEMORY],
    ['CUDA error in cudaMalloc: out of memory (cudaErrorMemoryAllocation = 2)', 'CUDA error in ', ERROR_CODES.OUT_OF_MEMORY],
    ['CUDA error in cudaMemcpyAsync: an illegal memory access was encountered', 'CUDA error in ', ERROR_CODES.DEVICE_ERROR],
    ['Arena::CopyFrom needs a source with the same tensor sizes', 'Arena::CopyFrom', ERROR_CODES.INTERNAL],
  ])('%s -> %s', (message, inSource, code) => {
    expect(sources.includes(inSource) || fs.readFileSync(path.join(__dirname, '..', 'native/kernels/arena.cc'), 'utf8').includes(inSource)).toBe(true);
    const error = codeNativeError(new Error(message)) as Error & { code?: unknown };
    expect(error.code).toBe(code);
  });

  test('an error that already has a model-ema code keeps it', () => {
    const error = Object.assign(new Error('MODEL_EMA_CPU_ISA is invalid'), { code: ERROR_CODES.CPU_ISA });
    expect((codeNativeError(error) as { code: string }).code).toBe(ERROR_CODES.CPU_ISA);
  });
});
