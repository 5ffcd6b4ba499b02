// Post-hoc EMA snapshot files: what writePostHocSnapshot() writes (names, metadata, values rounded
// as the reference rounds them) and what listPostHocSnapshots() refuses, naming the file: truncated,
// foreign, mismatched, mixed-unit and missing files, and paths that are not regular files (FIFOs,
// symlink loops, directories), which must give errors rather than hangs.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensorsFile, serializeSafetensors } from '../src/checkpoint/safetensors';
import { ERROR_CODES } from '../src/errors';
import { listPostHocSnapshots, writePostHocSnapshot, type PostHocSnapshotInput } from '../src/posthoc';
import { sigmaRelToGamma } from '../src/schedule_options';
import { fillRandom, roundTo, type DType } from './reference';

let dir: string;
const fifos: string[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-phema-'));
});
afterEach(() => {
  for (const fifo of fifos.splice(0)) {
    try {
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)); // releases a reader stuck in open()
    } catch {
      // ENXIO: nobody is waiting, as it should be
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const SIGMA_RELS = [0.05, 0.1];

function snapshot(t: number, track: number, overrides: Partial<PostHocSnapshotInput> = {}): PostHocSnapshotInput {
  return {
    names: ['w', 'b'],
    shapes: [[2, 3], [1]],
    values: [fillRandom(new Float32Array(6), t * 10 + track), new Float32Array([t])],
    gamma: sigmaRelToGamma(SIGMA_RELS[track]),
    sigmaRel: SIGMA_RELS[track],
    t,
    unit: 'steps',
    track,
    tracks: 2,
    dtype: 'float16',
    ...overrides,
  };
}

async function writeRun(times: number[], overrides: Partial<PostHocSnapshotInput> = {}): Promise<string[]> {
  const paths: string[] = [];
  for (const t of times) for (const track of [0, 1]) paths.push(await writePostHocSnapshot(dir, snapshot(t, track, overrides)));
  return paths;
}

const file = (t: number, track: number): string => path.join(dir, `phema-${String(t).padStart(15, '0')}-${String(track).padStart(2, '0')}.safetensors`);

async function listingError(): Promise<Error & { code?: string }> {
  const error = await listPostHocSnapshots(dir).then(() => undefined, (e: Error) => e);
  if (error === undefined) throw new Error('expected listPostHocSnapshots() to reject');
  return error;
}

describe('writePostHocSnapshot', () => {
  test('writes phema-<t, 15 digits>-<track, 2 digits>.safetensors with the profile in its metadata', async () => {
    const written = await writePostHocSnapshot(dir, snapshot(1200, 1));
    expect(written).toBe(file(1200, 1));
    expect(path.basename(written)).toBe('phema-000000000001200-01.safetensors');
    const parsed = await readSafetensorsFile(written);
    expect({ ...parsed.metadata }).toEqual({
      format: 'model-ema/phema', format_version: '1', gamma: String(sigmaRelToGamma(0.1)), sigma_rel: '0.1',
      t: '1200', unit: 'steps', track: '1', tracks: '2', dtype: 'float16',
    });
    expect(parsed.tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape }))).toEqual([
      { name: 'w', dtype: 'F16', shape: [2, 3] },
      { name: 'b', dtype: 'F16', shape: [1] },
    ]);
    expect(fs.readdirSync(dir)).toEqual(['phema-000000000001200-01.safetensors']); // no temporary file left
  });

  test.each<['float16' | 'bfloat16' | 'float32', 'F16' | 'BF16' | 'F32']>([['float16', 'F16'], ['bfloat16', 'BF16'], ['float32', 'F32']])(
    '%s values are rounded to nearest even (float16 saturating at +-65504), as the float64 reference rounds them',
    async (dtype, code) => {
      const values = fillRandom(new Float32Array(4097), 7, 100);
      values.set([70000, -1e9, 65519, 65520, Infinity, -Infinity, NaN, 1e-8, -0, 2049, 2051], 0);
      const written = await writePostHocSnapshot(dir, snapshot(5, 0, { names: ['x'], shapes: undefined, values: [values], dtype }));
      const [tensor] = (await readSafetensorsFile(written)).tensors;
      expect(tensor.dtype).toBe(code);
      const stored = decode(tensor.bytes, dtype);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        const expected = dtype === 'float16' && Number.isFinite(v) && Math.abs(v) > 65504 ? Math.sign(v) * 65504 : roundTo(v, dtype);
        if (!(Object.is(stored[i], expected) || (Number.isNaN(expected) && Number.isNaN(stored[i])))) {
          throw new Error(`element ${i}: ${v} was stored as ${stored[i]}, expected ${expected}`);
        }
      }
    },
  );

  test.each(['float16', 'float32'] as const)('%s: the values are taken when called; changing them during the write changes nothing in the file', async (dtype) => {
    const values = new Float32Array(4097).fill(1.5);
    const writing = writePostHocSnapshot(dir, snapshot(5, 0, { names: ['x'], shapes: undefined, values: [values], dtype }));
    values.fill(-3);
    const [tensor] = (await readSafetensorsFile(await writing)).tensors;
    expect(decode(tensor.bytes, dtype).every((v) => v === 1.5)).toBe(true);
  });

  test('refuses bad input with an error naming the argument and value, and writes nothing', async () => {
    const cases: [Partial<PostHocSnapshotInput> | Record<string, unknown>, RegExp][] = [
      [{ gama: 1 } as Record<string, unknown>, /Unknown option 'gama' in the snapshot \(did you mean 'gamma'\?\)/],
      [{ names: ['w', 'w'] }, /snapshot\.names\[1\].*"w", used twice/],
      [{ names: ['w', 3] as unknown as string[] }, /a string for snapshot\.names\[1\] but received 3/],
      [{ values: [new Float32Array(6)] }, /2 tensors \(one per name\) for snapshot\.values but received 1/],
      [{ values: [new Float32Array(6), new Float64Array(1)] as unknown as Float32Array[] }, /a Float32Array for snapshot\.values\[1\] but received Float64Array\(1\)/],
      [{ shapes: [[2, 2], [1]] }, /a shape of 6 elements .* for snapshot\.shapes\[0\] but received \[2, 2\]/],
      [{ t: 0 }, /an integer in \[1, 999999999999999\] for snapshot\.t but received 0/],
      [{ t: 1.5 }, /snapshot\.t but received 1\.5/],
      [{ track: 2 }, /an integer in \[0, 1\] for snapshot\.track but received 2/],
      [{ unit: 'seconds' as 'steps' }, /one of 'steps', 'samples' for snapshot\.unit but received "seconds"/],
      [{ dtype: 'float64' as 'float32' }, /snapshot\.dtype but received "float64"/],
      [{ gamma: 7 }, /the gamma of sigmaRel 0\.05 .* for snapshot\.gamma but received 7/],
      [{ sigmaRel: 0.3 }, /sigmaRel but received 0\.3/],
    ];
    for (const [override, message] of cases) {
      const error = await writePostHocSnapshot(dir, { ...snapshot(10, 0), ...override } as PostHocSnapshotInput).then(() => undefined, (e: Error) => e);
      expect(error?.message).toMatch(message);
      expect((error as { code?: string }).code).toBe(ERROR_CODES.INVALID_ARGUMENT);
    }
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

function decode(bytes: Uint8Array, dtype: DType): Float64Array {
  const copy = new Uint8Array(bytes); // aligned
  if (dtype === 'float32') return Float64Array.from(new Float32Array(copy.buffer));
  const halves = new Uint16Array(copy.buffer);
  return Float64Array.from(halves, (h) => (dtype === 'bfloat16' ? new Float32Array(new Uint32Array([h << 16]).buffer)[0] : halfToNumber(h)));
}

// float16 bits to a number, arithmetically (independent of the native conversion).
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

describe('listPostHocSnapshots', () => {
  test('lists the snapshots sorted by (t, track), ignoring other files and temporary files', async () => {
    await writeRun([300, 20, 1000]);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello');
    fs.writeFileSync(path.join(dir, '.phema-000000000000400-00.safetensors.123.abcdef.tmp'), 'half a file');
    fs.writeFileSync(path.join(dir, 'phema-000000000000400-00.safetensors.bak'), 'not ours');
    mkfifoIn('fifo-not-a-snapshot');
    const listed = await listPostHocSnapshots(dir);
    expect(listed.map((s) => [s.t, s.track, s.sigmaRel])).toEqual([
      [20, 0, 0.05], [20, 1, 0.1], [300, 0, 0.05], [300, 1, 0.1], [1000, 0, 0.05], [1000, 1, 0.1],
    ]);
    expect(listed[0]).toMatchObject({ path: file(20, 0), gamma: sigmaRelToGamma(0.05), unit: 'steps', tracks: 2, dtype: 'float16', names: ['w', 'b'], shapes: [[2, 3], [1]] });
  });

  test('an empty folder lists nothing; a missing folder is an error naming it', async () => {
    expect(await listPostHocSnapshots(dir)).toEqual([]);
    await expect(listPostHocSnapshots(path.join(dir, 'nope'))).rejects.toThrow(`Cannot read the snapshot folder '${path.join(dir, 'nope')}': ENOENT`);
  });

  test('a truncated file is named, as truncated', async () => {
    await writeRun([10, 20]);
    const bytes = fs.readFileSync(file(20, 1));
    fs.writeFileSync(file(20, 1), bytes.subarray(0, bytes.length - 3));
    expect((await listingError()).message).toMatch(new RegExp(`^Cannot read '${escape(file(20, 1))}': the file is truncated: its header describes \\d+ bytes of tensor data but only \\d+`));
    fs.writeFileSync(file(20, 1), bytes.subarray(0, 5));
    expect((await listingError()).message).toMatch(/truncated: it has 5 bytes, fewer than the 8-byte header length field/);
    fs.writeFileSync(file(20, 1), bytes.subarray(0, 40));
    const error = await listingError();
    expect(error.message).toMatch(/the file is truncated: its header length field says \d+ bytes but only 32 bytes follow it/);
    expect(error.code).toBe(ERROR_CODES.INVALID_CHECKPOINT);
  });

  test.each<[string, () => Uint8Array, RegExp]>([
    ['an ordinary checkpoint-like safetensors file', () => serializeSafetensors([], { format: 'model-ema' }), /not a model-ema post-hoc EMA snapshot: metadata format is "model-ema"/],
    ['bad JSON', () => headerOnly('{"__metadata__": {"format": "model-ema/phema",}}'), /Invalid safetensors file: the header is not valid JSON/],
    ['a later format version', () => serializeSafetensors([], { format: 'model-ema/phema', format_version: '2' }), /format_version is "2"; this version of model-ema reads version 1/],
    ['a header too large to read', () => hugeHeaderLength(), /header length field says 18446744073709551615 bytes, more than the 100000000-byte limit/],
  ])('a foreign file (%s) is named', async (_what, bytes, message) => {
    await writeRun([10]);
    fs.writeFileSync(file(20, 0), bytes());
    const error = await listingError();
    expect(error.message).toMatch(new RegExp(`^Cannot read '${escape(file(20, 0))}': `));
    expect(error.message).toMatch(message);
    expect(error.code).toBe(ERROR_CODES.INVALID_CHECKPOINT);
  });

  test('a file of our name pattern whose name is malformed is foreign', async () => {
    await writeRun([10]);
    fs.writeFileSync(path.join(dir, 'phema-10-0.safetensors'), 'x');
    expect((await listingError()).message).toMatch(/'.*phema-10-0\.safetensors': not a post-hoc EMA snapshot: its name is not of the form/);
  });

  test('metadata that disagrees with the file name is named', async () => {
    await writeRun([10]);
    fs.copyFileSync(file(10, 0), file(20, 0));
    fs.copyFileSync(file(10, 1), file(20, 1));
    expect((await listingError()).message).toMatch(new RegExp(`'${escape(file(20, 0))}' as a post-hoc EMA snapshot: its metadata says t 10, track 0, but its name says t 20, track 0`));
  });

  test.each<[string, Partial<PostHocSnapshotInput>, RegExp]>([
    ['other names', { names: ['w', 'bias'] }, /tensor 1 is "bias", not "b" \(compared with 'phema-000000000000010-00\.safetensors'\): not from the same model/],
    ['other shapes', { shapes: [[3, 2], [1]] }, /tensor "w" has shape \[3, 2\], not \[2, 3\]/],
    ['another tensor count', { names: ['w'], shapes: [[2, 3]], values: [new Float32Array(6)] }, /it has 1 tensors, not 2/],
    ['another unit', { unit: 'samples' }, /its unit is 'samples' but 'phema-000000000000010-00\.safetensors' counts 'steps': mixed units/],
  ])('a snapshot with %s than the others is named', async (_what, override, message) => {
    await writeRun([10]);
    await writePostHocSnapshot(dir, snapshot(20, 0));
    await writePostHocSnapshot(dir, snapshot(20, 1, override));
    const error = await listingError();
    expect(error.message).toMatch(new RegExp(`^Cannot use '${escape(file(20, 1))}' as a post-hoc EMA snapshot: `));
    expect(error.message).toMatch(message);
  });

  test('a track whose gamma changes between times is named', async () => {
    await writeRun([10]);
    await writePostHocSnapshot(dir, snapshot(20, 0));
    await writePostHocSnapshot(dir, snapshot(20, 1, { sigmaRel: 0.12, gamma: sigmaRelToGamma(0.12) }));
    expect((await listingError()).message).toMatch(/phema-000000000000020-01\.safetensors' as a post-hoc EMA snapshot: track 1 has gamma [\d.]+ here but [\d.]+ in 'phema-000000000000010-01\.safetensors'/);
  });

  test('a missing file (a time with some tracks but not all) is named', async () => {
    await writeRun([10, 20, 30]);
    fs.unlinkSync(file(20, 1));
    const error = await listingError();
    expect(error.message).toBe(`Missing post-hoc EMA snapshot '${file(20, 1)}': time 20 has files for track(s) 0 but not for track 1 of 2`);
    expect(error.code).toBe(ERROR_CODES.INVALID_CHECKPOINT);
  });

  test('a FIFO, a directory, a symbolic link loop and a device under a snapshot name are errors, not hangs', async () => {
    await writeRun([10]);
    mkfifoIn('phema-000000000000020-00.safetensors');
    expect((await listingError()).message).toMatch(/phema-000000000000020-00\.safetensors': it is a FIFO \(named pipe\), not a regular file/);
    fs.unlinkSync(file(20, 0));
    fs.mkdirSync(file(20, 0));
    expect((await listingError()).message).toMatch(/phema-000000000000020-00\.safetensors': it is a directory, not a regular file/);
    fs.rmdirSync(file(20, 0));
    fs.symlinkSync(file(20, 0), file(20, 0));
    expect((await listingError()).message).toMatch(/phema-000000000000020-00\.safetensors': ELOOP/);
    fs.unlinkSync(file(20, 0));
    fs.symlinkSync('/dev/zero', file(20, 0)); // endless bytes if it were read
    expect((await listingError()).message).toMatch(/phema-000000000000020-00\.safetensors': it is a character device, not a regular file/);
  });
});

function mkfifoIn(name: string): void {
  const fifo = path.join(dir, name);
  execFileSync('mkfifo', [fifo]);
  fifos.push(fifo);
}

function headerOnly(json: string): Uint8Array {
  const text = Buffer.from(json);
  const out = Buffer.alloc(8 + text.length);
  out.writeBigUInt64LE(BigInt(text.length), 0);
  text.copy(out, 8);
  return out;
}

function hugeHeaderLength(): Uint8Array {
  const out = Buffer.alloc(64, 0x20);
  out.writeBigUInt64LE(0xffffffffffffffffn, 0);
  return out;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
