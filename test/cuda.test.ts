// CUDA device arenas. The first part runs everywhere: what backends() reports, the host emulation
// of the CUDA path, argument checks, and that asking for a device that cannot be used throws an
// Error naming the device and the reason and changes nothing. The second part needs a CUDA GPU
// (without one it is skipped, and says why): device arenas must give the CPU's results bit for
// bit (both sides use the same per-element functors, and nvcc builds with --fmad=false), except
// for which NaN comes out: x86 propagates an operand's NaN payload and sign (and makes Inf - Inf
// a negative NaN) where NVIDIA GPUs return their canonical NaN, so a NaN only has to meet a NaN.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExponentialMovingAverage } from '../src';
import { binding, newShadowArena, ShadowArena, StorageDType } from '../src/native';
import { fillRandom, unaligned } from './reference';
import { expectBitsEqual, expectError, expectFailureChangesNothing, expectSameState } from './helpers/state';

const root = path.join(__dirname, '..');
const cuda = binding.backends().find((b) => b.name === 'cuda');
const gpuCount = cuda?.available ? (cuda.devices?.length ?? 0) : 0;
const dtypes: StorageDType[] = ['float32', 'float64', 'float16', 'bfloat16'];

// Whether the build that made build/Release found nvcc (CMakeLists.txt records it in the cache).
function builtWithCuda(): boolean | null {
  const cache = path.join(root, 'build', 'CMakeCache.txt');
  if (!fs.existsSync(cache)) return null;
  const line = fs.readFileSync(cache, 'utf8').match(/^MODEL_EMA_CUDA_BUILT:INTERNAL=(\w+)$/m);
  return line === null ? null : line[1] === 'ON';
}

describe('CUDA backend report and unusable devices (runs everywhere)', () => {
  test('backends() has a cuda entry saying whether it is compiled and available, and why not', () => {
    expect(cuda).toBeDefined();
    expect(typeof cuda!.compiled).toBe('boolean');
    expect(typeof cuda!.available).toBe('boolean');
    if (cuda!.available) {
      expect(cuda!.reason).toBeUndefined();
      expect(cuda!.devices!.length).toBeGreaterThan(0);
      cuda!.devices!.forEach((d, i) => {
        expect(d).toEqual({ index: i, name: expect.any(String), totalMemory: expect.any(Number) });
        expect(d.totalMemory).toBeGreaterThan(0);
      });
    } else {
      expect(cuda!.reason).toMatch(/\S/);
      expect(cuda!.devices).toBeUndefined();
    }
  });

  test('a build that found nvcc reports CUDA as compiled; without a usable GPU the reason names the CUDA error and code', () => {
    const built = builtWithCuda();
    if (built === null) return; // a prebuilt binary: nothing to compare with
    expect(cuda!.compiled).toBe(built);
    if (!built) expect(cuda!.reason).toMatch(/no CUDA kernels/);
    if (built && !cuda!.available) expect(cuda!.reason).toMatch(/\(cuda[A-Za-z]+ = \d+\)/);
  });

  test('the host emulation of the CUDA path (staging plan, chunk tables, kernel blocks) matches the CPU kernels bit for bit', () => {
    const exe = path.join(root, 'build', 'multi_tensor_emulation_test');
    expect(fs.existsSync(exe)).toBe(true); // built with the addon by `npx cmake-js compile`
    const run = spawnSync(exe, ['quick'], { encoding: 'utf8', timeout: 50000 });
    expect(run.stdout).toMatch(/^ok: \d+ checks, 0 failures/m);
    expect(run.status).toBe(0);
  });

  test('ShadowArena rejects bad device arguments by name', () => {
    const cases: [unknown, string, string[]][] = [
      [-1, 'RangeError', ['device', '-1']],
      [1.5, 'RangeError', ['device', '1.5']],
      [NaN, 'RangeError', ['device', 'NaN']],
      ['gpu', 'TypeError', ['device', "'gpu'"]],
      ['0', 'TypeError', ['device', "'0'"]],
    ];
    for (const [device, name, message] of cases) {
      expectError(() => newShadowArena('float32', [3], device as number), { name, message });
    }
    const host = newShadowArena('float32', [3], null);
    for (const [device, name, message] of [...cases, [undefined, 'TypeError', ['device', 'undefined']]] as typeof cases) {
      expectError(() => host.toDevice(device as number), { name, message });
    }
    expect(host.disposed).toBe(false);
    host.dispose();
  });

  test('the EMA rejects bad device options by name, in the constructor and in to(), changing nothing', () => {
    const cases: [unknown, string, string[]][] = [
      [-1, 'TypeError', ['device', '-1']],
      [1.5, 'TypeError', ['device', '1.5']],
      ['gpu', 'RangeError', ['device', 'gpu']],
      ['cuda:-1', 'RangeError', ['device', 'cuda:-1']],
      ['cuda:1.5', 'RangeError', ['device', 'cuda:1.5']],
    ];
    const weight = fillRandom(new Float32Array(4), 9);
    const ema = new ExponentialMovingAverage([weight], { decay: 0.9 });
    for (const [device, name, message] of cases) {
      expectError(() => new ExponentialMovingAverage([weight], { decay: 0.9, device: device as 'cpu' }), { name, message });
      expectFailureChangesNothing(ema, [weight], () => ema.to({ device: device as 'cpu' }), { name, message });
    }
    expect(ema.device).toBe('cpu');
  });

  test('host arenas report device null, and toDevice(null) gives an independent copy', () => {
    const host = new binding.ShadowArena('bfloat16', [5, 0, 70]);
    expect(host.device).toBeNull();
    expect(new binding.ShadowArena('float32', [1], null).device).toBeNull();
    host.copyFrom([fillRandom(new Float32Array(5), 1), new Float64Array(0), fillRandom(new Float64Array(70), 2)]);
    host.threads = 1;
    const copy = host.toDevice(null);
    expect([copy.device, copy.dtype, copy.sizes, copy.threads]).toEqual([null, 'bfloat16', [5, 0, 70], 1]);
    const before = [0, 1, 2].map((i) => host.readBytes(i));
    host.dispose();
    [0, 1, 2].forEach((i) => expect(copy.readBytes(i)).toEqual(before[i]));
    copy.dispose();
  });

  test('an index past the last device throws an Error naming the device, for arenas and cudaMemoryInfo', () => {
    const index = gpuCount + 3;
    expectError(() => newShadowArena('float32', [3], index), { name: 'Error', message: [`CUDA device ${index}`, /not available: \S+/] });
    expectError(() => binding.cudaMemoryInfo(index), { name: 'Error', message: [`CUDA device ${index}`, /not available: \S+/] });
    expectError(() => binding.cudaMemoryInfo(-1), { name: 'RangeError', message: ['device'] });
    expectError(() => binding.cudaMemoryInfo('0' as unknown as number), { name: 'TypeError', message: ['device'] });
    const host = newShadowArena('float32', [3], null);
    expectError(() => host.toDevice(index), { name: 'Error', message: [`CUDA device ${index}`] });
    host.dispose();
  });

  test('the EMA refuses a device past the last one, naming it, and changes nothing', () => {
    const device = `cuda:${gpuCount + 3}` as const;
    const weight = fillRandom(new Float32Array(6), 3);
    expectError(() => new ExponentialMovingAverage([weight], { decay: 0.9, device }), {
      name: 'Error',
      message: [`'${device}'`, /not available: \S+/],
    });
    const ema = new ExponentialMovingAverage([weight], { decay: 0.9 });
    ema.update([fillRandom(new Float32Array(6), 4)]);
    ema.store();
    expectFailureChangesNothing(ema, [weight], () => ema.to({ device, dtype: 'float16' }), {
      name: 'Error',
      message: [`'${device}'`, /not available: \S+/],
    });
    expect([ema.device, ema.dtype]).toEqual(['cpu', 'float32']);
  });

  (gpuCount === 0 ? describe : describe.skip)('without a usable GPU', () => {
    test("new ExponentialMovingAverage(p, { device: 'cuda' | 'cuda:0' | 'cuda:3' }) throws an Error naming the device and the reason", () => {
      for (const device of ['cuda', 'cuda:0', 'cuda:3'] as const) {
        expectError(() => new ExponentialMovingAverage([new Float32Array(4)], { decay: 0.99, device }), {
          name: 'Error',
          message: [`Device '${device}' is not available: `, cuda!.reason!],
        });
      }
    });

    test("to({ device: 'cuda:0' }) throws naming the device and the reason, and changes nothing", () => {
      const weight = fillRandom(new Float32Array(9), 5);
      const bias = fillRandom(new Float64Array(2), 6);
      const ema = new ExponentialMovingAverage([weight, bias], { decay: 0.9, dtype: 'float16' });
      ema.update([fillRandom(new Float32Array(9), 7), fillRandom(new Float64Array(2), 8)]);
      ema.store();
      for (const options of [{ device: 'cuda:0' }, { device: 'cuda' }, { device: 'cuda:0', dtype: 'float32' }] as const) {
        expectFailureChangesNothing(ema, [weight, bias], () => ema.to(options), {
          name: 'Error',
          message: [`'${options.device}' is not available: `, cuda!.reason!],
        });
      }
      expect([ema.device, ema.dtype]).toEqual(['cpu', 'float16']);
    });

    test('new ShadowArena(dtype, sizes, 0) and cudaMemoryInfo(0) throw an Error naming the device and the reason', () => {
      for (const dtype of dtypes) {
        expectError(() => newShadowArena(dtype, [3, 0, 5], 0), {
          name: 'Error',
          message: ['CUDA device 0 is not available: ', cuda!.reason!],
        });
      }
      expectError(() => binding.cudaMemoryInfo(0), { name: 'Error', message: ['CUDA device 0 is not available: ', cuda!.reason!] });
      const host = newShadowArena('float32', [3], null);
      host.copyFrom([new Float32Array([1, 2, 3])]);
      expectError(() => host.toDevice(0), { name: 'Error', message: ['CUDA device 0 is not available'] });
      expect(host.read(0)).toEqual(new Float32Array([1, 2, 3]));
      host.dispose();
    });
  });
});

// ---------------------------------------------------------------------------------------------
// With a GPU: every operation on a device arena against the same operation on a host arena.

type Params = (Float32Array | Float64Array)[];

function tinySizes(): number[] {
  const next = (() => {
    let s = 7;
    return () => (s = (s * 1103515245 + 12345) % 2147483648);
  })();
  return Array.from({ length: 1000 }, () => next() % 40);
}

const shapes: [string, number[]][] = [
  ['an empty tensor', [0]],
  ['one element', [1]],
  ['seven elements', [7]],
  ['4097 elements', [4097]],
  ['2^20 + 3 elements', [2 ** 20 + 3]],
  ['1000 tiny tensors', tinySizes()],
  ['mixed sizes', [3, 0, 8193, 70001, 64]],
];

// Parameters as unaligned views (offset 1 element), float32, float64 or alternating, with (unless
// `specials` is false) a NaN, an infinity and a -0 in each tensor of more than 10 elements.
function makeParams(sizes: number[], mix: 'f32' | 'f64' | 'mixed', seed: number, specials = true): Params {
  return sizes.map((n, i) => {
    const wide = mix === 'f64' || (mix === 'mixed' && i % 2 === 1);
    const p = wide ? unaligned(Float64Array, n, 1) : unaligned(Float32Array, n, 1);
    fillRandom(p, seed + i, 100);
    if (specials && n > 10) {
      p[3] = NaN;
      p[n - 2] = Infinity;
      p[5] = -0;
    }
    return p;
  });
}

function allBytes(arena: ShadowArena): Uint8Array[] {
  return arena.sizes.map((_, i) => arena.readBytes(i));
}

const elementBytes: Record<StorageDType, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2 };

// Whether the little-endian element at `at` is a NaN of `dtype`.
function isNaNAt(bytes: Uint8Array, at: number, dtype: StorageDType): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'float32': return Number.isNaN(view.getFloat32(at, true));
    case 'float64': return Number.isNaN(view.getFloat64(at, true));
    case 'float16': return (view.getUint16(at, true) & 0x7fff) > 0x7c00;
    case 'bfloat16': return (view.getUint16(at, true) & 0x7fff) > 0x7f80;
  }
}

// Same bytes, element by element, except that a NaN matches any NaN (see the top of the file).
function expectSameBits(actual: Uint8Array, expected: Uint8Array, dtype: StorageDType, context: string): void {
  if (actual.length !== expected.length) throw new Error(`${context}: ${actual.length} bytes, expected ${expected.length}`);
  const size = elementBytes[dtype];
  for (let at = 0; at < expected.length; at += size) {
    let same = true;
    for (let b = 0; b < size; b++) same &&= actual[at + b] === expected[at + b];
    if (!same && !(isNaNAt(actual, at, dtype) && isNaNAt(expected, at, dtype))) {
      throw new Error(`${context}: element ${at / size} differs`);
    }
  }
}

function bytesOf(a: Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function expectSameFloats(actual: Float32Array | Float64Array, expected: Float32Array | Float64Array, context: string): void {
  expect(actual.BYTES_PER_ELEMENT).toBe(expected.BYTES_PER_ELEMENT);
  expectSameBits(bytesOf(actual), bytesOf(expected), expected.BYTES_PER_ELEMENT === 8 ? 'float64' : 'float32', context);
}

function expectSameArena(device: ShadowArena, host: ShadowArena, context: string): void {
  expect(device.dtype).toBe(host.dtype);
  const d = allBytes(device);
  allBytes(host).forEach((h, i) => expectSameBits(d[i], h, host.dtype, `${context}: tensor ${i}`));
}

const gpuDescribe = gpuCount > 0 ? describe : describe.skip;
if (gpuCount === 0) {
  // eslint-disable-next-line no-console
  console.log(`cuda.test.ts: GPU parity tests skipped: no usable CUDA device (${cuda?.reason ?? 'no cuda backend entry'})`);
}

gpuDescribe('device arenas match host arenas bit for bit (needs a CUDA GPU)', () => {
  for (const [shapeName, sizes] of shapes) {
    for (const dtype of dtypes) {
      test(`${dtype}, ${shapeName}: copyFrom, update, updateAsync, copyTo, read, counts, cast, bytes and moves`, async () => {
        const host = new binding.ShadowArena(dtype, sizes);
        const device = new binding.ShadowArena(dtype, sizes, 0);
        expect(device.device).toBe(0);
        expect(device.byteLength).toBe(host.byteLength);
        expectSameArena(device, host, 'zero-filled');
        for (const mix of ['f32', 'f64', 'mixed'] as const) {
          const start = makeParams(sizes, mix, 10);
          host.copyFrom(start);
          device.copyFrom(start);
          expectSameArena(device, host, `${mix} copyFrom`);
          for (const decay of [0.9, 0.999, 0, 1, 0.5]) {
            const p = makeParams(sizes, mix, Math.round(decay * 1000) + 20);
            host.update(p, { decay });
            device.update(p, { decay });
            expectSameArena(device, host, `${mix} update(${decay})`);
          }
          const p = makeParams(sizes, mix, 99);
          host.update(p, { decay: 0.95 });
          const pending = device.updateAsync(p, { decay: 0.95 });
          p.forEach((a) => a.fill(12345)); // the snapshot was taken at the call
          await pending;
          expectSameArena(device, host, `${mix} updateAsync`);
          for (const out of ['f32', 'f64', 'mixed'] as const) {
            const fromHost = makeParams(sizes, out, 1);
            const fromDevice = makeParams(sizes, out, 2);
            host.copyTo(fromHost);
            device.copyTo(fromDevice);
            fromDevice.forEach((a, i) => expectSameFloats(a, fromHost[i], `${mix} copyTo ${out}[${i}]`));
          }
        }
        sizes.forEach((_, i) => {
          if (i < 20 || i % 97 === 0) expectSameFloats(device.read(i), host.read(i), `read(${i})`);
        });
        expect(device.countNonFinite()).toBe(host.countNonFinite());
        for (const to of dtypes) {
          const hostCast = host.cast(to);
          const deviceCast = device.cast(to);
          expect(deviceCast.device).toBe(0);
          expectSameArena(deviceCast, hostCast, `cast to ${to}`);
          hostCast.dispose();
          deviceCast.dispose();
        }
        const written = sizes.map((_, i) => host.readBytes(i).map((b, j) => (b + j) & 0xff));
        written.forEach((bytes, i) => {
          host.writeBytes(i, bytes);
          device.writeBytes(i, bytes);
        });
        expectSameArena(device, host, 'writeBytes');
        expect(device.countNonFinite()).toBe(host.countNonFinite());
        const back = device.toDevice(null);
        const up = host.toDevice(0);
        const across = device.toDevice(gpuCount - 1);
        expect([back.device, up.device, across.device]).toEqual([null, 0, gpuCount - 1]);
        expectSameArena(back, host, 'device to host');
        expectSameArena(up, host, 'host to device');
        expectSameArena(across, host, 'device to device');
        for (const a of [host, device, back, up, across]) a.dispose();
      });
    }
  }

  // Finite values only, so that the whole state compares bit for bit, NaN payloads aside.
  test('an EMA on cuda gives the CPU EMA state bit for bit through updates, store/restore, scopes, moves and checkpoints', async () => {
    const sizes = [4097, 3, 0, 70001, 1];
    const run = async (device: 'cpu' | 'cuda') => {
      const params = makeParams(sizes, 'mixed', 3, false).map((p) => p.slice());
      const ema = new ExponentialMovingAverage(params, { decay: 0.999, dtype: 'bfloat16', device });
      ema.update(makeParams(sizes, 'mixed', 4, false));
      await ema.updateAsync(makeParams(sizes, 'mixed', 5, false));
      ema.store();
      ema.withAveragedParameters(() => undefined);
      ema.copyTo();
      ema.restore();
      ema.to({ dtype: 'float32' });
      ema.update(makeParams(sizes, 'mixed', 6, false));
      return { ema, params };
    };
    const cpu = await run('cpu');
    const gpu = await run('cuda');
    expect(gpu.ema.device).toBe('cuda');
    expectSameState(gpu.ema.stateDict(), cpu.ema.stateDict(), 'cuda vs cpu');
    gpu.params.forEach((p, i) => expectBitsEqual(p, cpu.params[i], `parameter ${i}`));
    expect(Buffer.from(gpu.ema.serialize()).equals(Buffer.from(cpu.ema.serialize()))).toBe(true);
    gpu.ema.deserialize(cpu.ema.serialize());
    expectSameState(gpu.ema.stateDict(), cpu.ema.stateDict(), 'after deserialize');
    gpu.ema.to({ device: 'cpu' });
    expect(gpu.ema.device).toBe('cpu');
    expectSameState(gpu.ema.stateDict(), cpu.ema.stateDict(), 'moved to cpu');
    cpu.ema.to({ device: 'cuda:0', dtype: 'float16' });
    gpu.ema.to({ dtype: 'float16' });
    expect(cpu.ema.device).toBe('cuda:0');
    expectSameState(cpu.ema.stateDict(), gpu.ema.stateDict(), 'moved to cuda:0 as float16');
    cpu.ema.dispose();
    gpu.ema.dispose();
  });

  test('dispose() gives the device memory back at once (cudaMemGetInfo)', () => {
    const before = binding.cudaMemoryInfo(0).free;
    const elements = 64 * 2 ** 20; // 256 MiB of float32
    const arena = new binding.ShadowArena('float32', [elements], 0);
    arena.copyFrom([new Float32Array(elements).fill(1)]); // also allocates the staging buffers
    expect(binding.cudaMemoryInfo(0).free).toBeLessThan(before - 250 * 2 ** 20);
    arena.dispose();
    expect(binding.cudaMemoryInfo(0).free).toBeGreaterThan(before - 16 * 2 ** 20);
  });

  test('device arenas dropped without dispose() are freed by the garbage collector', () => {
    const script = `
      const binding = require(${JSON.stringify(path.join(root, 'build', 'Release', 'model_ema.node'))});
      (async () => {
        new binding.ShadowArena('float32', [1024], 0).dispose(); // create the context first
        const before = binding.cudaMemoryInfo(0).free;
        for (let i = 0; i < 20; i++) new binding.ShadowArena('float32', [16 * 2 ** 20], 0); // 64 MiB each
        for (let i = 0; i < 3; i++) { global.gc(); await new Promise((r) => setImmediate(r)); }
        console.log(JSON.stringify({ before, after: binding.cudaMemoryInfo(0).free }));
      })();`;
    const child = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 50000 });
    expect(child.stderr).toBe('');
    const { before, after } = JSON.parse(child.stdout) as { before: number; after: number };
    expect(after).toBeGreaterThan(before - 16 * 2 ** 20);
  });
});
