// load() streams the file into new arenas (or save()'s spare copy) through a few small buffers,
// checking each tensor's checksum as its bytes arrive: a corrupted or shrinking large file fails
// naming the tensor and leaves the EMA exactly as it was, every storage dtype loads every file
// dtype (against the float64 reference's rounding), no read buffer ever holds more than one chunk,
// and progress events arrive in order, at most one chunk apart.
import * as fs from 'node:fs';
import { open } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExponentialMovingAverage, type TransferProgress } from '../src';
import { STREAM_BUFFERS, STREAM_CHUNK_BYTES } from '../src/checkpoint/safetensors_stream_read';
import { expectSameState } from './helpers/state';
import { DTYPES, fillRandom, roundTo } from './reference';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-stream-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// 2.5 chunks of float32 in the middle tensor: it spans several chunks and buffers, with awkward
// neighbours (0, 1, 7 and 4097 elements) on both sides.
const LARGE = (STREAM_CHUNK_BYTES * 2.5) / 4 + 2;
const SIZES = [7, 0, LARGE, 1, 4097];
// For the dtype matrix: still more than one chunk with the backup, and an odd element count, so
// that after 16-bit shadows the float32 backup starts 2 bytes off a 4-byte boundary and a chunk
// ends inside it (the reader moves chunk ends to element boundaries).
const SMALLER = [7, 0, 3_000_000, 1, 4097];

function trained(seed: number, dtype: (typeof DTYPES)[number] = 'float32', sizes = SIZES): ExponentialMovingAverage {
  const values = sizes.map((n, i) => fillRandom(new Float32Array(n), seed + i));
  const ema = new ExponentialMovingAverage(values.map((value, i) => ({ name: `p${i}`, value })), { decay: 0.9, dtype });
  ema.update();
  ema.store();
  values.forEach((v, i) => fillRandom(v, seed + 10 + i));
  ema.update();
  return ema;
}

/** Where tensor `name`'s data starts in `file`. */
function dataOffset(file: string, name: string): number {
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  return 8 + headerLength + header[name].data_offsets[0];
}

test('a byte corrupted in the middle of a large tensor fails the load naming that tensor; the EMA is unchanged, before and after a save', async () => {
  const file = path.join(tmp, 'corrupt.safetensors');
  await trained(1).save(file);
  const middle = dataOffset(file, 'shadow.p2') + Math.floor((LARGE * 4) / 2);
  const fd = fs.openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, middle);
  fs.writeSync(fd, Buffer.of(byte[0] ^ 0x10), 0, 1, middle);
  fs.closeSync(fd);
  const target = trained(2);
  for (const withSpare of [false, true]) {
    if (withSpare) await target.save(path.join(tmp, 'spare.safetensors')); // the load then streams into save()'s spare copy
    const before = target.stateDict();
    await expect(target.load(file)).rejects.toThrow(/checksum of tensor "shadow\.p2" does not match its data/);
    expectSameState(target.stateDict(), before, `after a failed load (spare ${withSpare})`);
  }
  // The spare handed back still makes a faithful copy: save and load round-trip exactly.
  const again = path.join(tmp, 'again.safetensors');
  await target.save(again);
  const check = trained(3);
  await check.load(again);
  expectSameState(check.stateDict(), target.stateDict(), 'round trip after failed loads');
});

test('a file that shrinks while it is read fails the load; the EMA is unchanged', async () => {
  const file = path.join(tmp, 'shrinks.safetensors');
  await trained(4).save(file);
  const size = fs.statSync(file).size;
  const target = trained(5);
  const before = target.stateDict();
  let truncated = false;
  const onProgress = (): void => {
    if (!truncated) fs.truncateSync(file, Math.floor(size / 2)); // after the first chunk arrived
    truncated = true;
  };
  await expect(target.load(file, { onProgress })).rejects.toThrow(/the file ended at byte \d+ while reading .*it shrank while being read/);
  expect(truncated).toBe(true);
  expectSameState(target.stateDict(), before, 'after a truncated load');
});

describe.each(DTYPES)('a %s file', (fileDType) => {
  test.each(DTYPES)('loads into %s shadows as the reference rounds it; the backup keeps the saved values', async (target) => {
    const source = trained(6, fileDType, SMALLER);
    const file = path.join(tmp, `${fileDType}.safetensors`);
    await source.save(file);
    const saved = source.stateDict();
    const other = trained(7, target, SMALLER);
    await other.load(file);
    const loaded = other.stateDict();
    expect(loaded.dtype).toBe(target);
    saved.shadowParams.forEach((s, i) => {
      const got = loaded.shadowParams[i];
      for (let j = 0; j < s.length; j++) {
        if (!Object.is(got[j], roundTo(s[j], target))) throw new Error(`${fileDType} -> ${target}: shadow ${i}[${j}] is ${got[j]}, expected ${roundTo(s[j], target)}`);
      }
    });
    loaded.collectedParams!.forEach((c, i) => expect(Buffer.compare(Buffer.from(c.buffer, c.byteOffset, c.byteLength), Buffer.from(saved.collectedParams![i].buffer, saved.collectedParams![i].byteOffset, saved.collectedParams![i].byteLength))).toBe(0));
    source.dispose();
    other.dispose();
  });
});

test('no read buffer holds more than one chunk, and all of them together at most STREAM_BUFFERS chunks, for a file larger than that', async () => {
  const file = path.join(tmp, 'bounded.safetensors');
  const source = trained(8, 'float64'); // 5 chunks of data: more than STREAM_BUFFERS chunks
  await source.save(file);
  expect(fs.statSync(file).size).toBeGreaterThan((STREAM_BUFFERS + 1) * STREAM_CHUNK_BYTES);
  const probe = await open(file);
  const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> };
  await probe.close();
  const original = proto.read;
  const buffers = new Set<ArrayBufferLike>();
  let largest = 0;
  proto.read = function (this: unknown, ...args: unknown[]) {
    const into = args[0] as Uint8Array;
    buffers.add(into.buffer);
    largest = Math.max(largest, into.byteLength, typeof args[2] === 'number' ? args[2] : 0);
    return original.apply(this, args);
  };
  const target = trained(9, 'float64');
  try {
    await target.load(file);
  } finally {
    proto.read = original;
  }
  expectSameState(target.stateDict(), source.stateDict(), 'bounded load');
  // Beside the data buffers: the 8-byte length field (from Buffer's 8 KiB pool) and the small header.
  const dataBuffers = [...buffers].filter((b) => b.byteLength > 65536);
  expect(largest).toBeLessThanOrEqual(STREAM_CHUNK_BYTES);
  expect(dataBuffers.reduce((n, b) => n + b.byteLength, 0)).toBeLessThanOrEqual(STREAM_BUFFERS * STREAM_CHUNK_BYTES);
  expect(dataBuffers.length).toBeGreaterThan(0); // the spy saw the data reads
});

test('load progress events arrive in order, at most one chunk apart, ending at the data size', async () => {
  const file = path.join(tmp, 'progress.safetensors');
  await trained(10).save(file);
  const events: TransferProgress[] = [];
  await trained(11).load(file, { onProgress: (p) => events.push({ ...p }) });
  const total = events[0].totalBytes;
  expect(total).toBe(2 * 4 * SIZES.reduce((a, b) => a + b, 0)); // shadows and backup
  expect(events.length).toBeGreaterThanOrEqual(Math.ceil(total / STREAM_CHUNK_BYTES));
  events.forEach((e, i) => {
    expect(e.file).toBe(file);
    expect(e.totalBytes).toBe(total);
    const previous = i === 0 ? 0 : events[i - 1].bytes;
    expect(e.bytes).toBeGreaterThan(previous);
    expect(e.bytes - previous).toBeLessThanOrEqual(STREAM_CHUNK_BYTES);
  });
  expect(events[events.length - 1].bytes).toBe(total);
});
