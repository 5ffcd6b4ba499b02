import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  parseSafetensors,
  readSafetensorsFile,
  serializeSafetensors,
  writeSafetensorsFile,
  type SafetensorsDType,
  type TensorSource,
} from '../src/checkpoint/safetensors';
import {
  decodeCheckpoint,
  deserializeCheckpoint,
  loadCheckpoint,
  parameterKeys,
  saveCheckpoint,
  serializeCheckpoint,
} from '../src/checkpoint/ema_checkpoint';
import {
  bytesOf,
  decodedEquals,
  expectedOf,
  floats,
  halfBits,
  mixedState,
  sameBytes,
  sourceOf,
  type StateFixture,
} from './helpers/checkpoint_fixtures';

const ELEMENT_BYTES: Record<SafetensorsDType, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

/** Independent reader written from the format description only (no code shared with the library). */
function minimalRead(file: Uint8Array): { header: Record<string, any>; data: Map<string, Uint8Array> } {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(file.subarray(8, 8 + n)).toString('utf8'));
  const data = new Map<string, Uint8Array>();
  for (const [name, entry] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    data.set(name, file.subarray(8 + n + entry.data_offsets[0], 8 + n + entry.data_offsets[1]));
  }
  return { header, data };
}

function source(name: string, dtype: SafetensorsDType, shape: number[], bytes: Uint8Array): TensorSource {
  return { name, dtype, shape, bytes: () => bytes };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (seed * 31 + i * 131 + (i >> 3)) & 0xff;
  return out;
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-format-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('safetensors container', () => {
  const shapes = [[0], [1], [7], [4097], [2, 3], [], [3, 0, 2]];
  for (const dtype of ['F32', 'F64', 'F16', 'BF16'] as const) {
    test(`round trips ${dtype} tensors of shapes ${JSON.stringify(shapes)} bit for bit, in the given order`, () => {
      const tensors = shapes.map((shape, i) =>
        source(`t${i}`, dtype, shape, randomBytes(shape.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[dtype], i)),
      );
      const file = serializeSafetensors(tensors, { note: 'x' });
      const parsed = parseSafetensors(file);
      expect(parsed.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
      parsed.tensors.forEach((t, i) => {
        expect(t.dtype).toBe(dtype);
        expect(t.shape).toEqual(shapes[i]);
        expect(sameBytes(t.bytes, tensors[i].bytes())).toBe(true);
      });
      expect({ ...parsed.metadata }).toEqual({ note: 'x' });
    });
  }

  test('an independent minimal reader reads what the writer wrote, and the header is padded to 8 bytes', () => {
    const a = randomBytes(4 * 7, 1);
    const b = randomBytes(8 * 3, 2);
    const file = serializeSafetensors([source('weight', 'F32', [7], a), source('bias', 'F64', [3], b)], { k: 'v' });
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    expect(file.length).toBe(8 + n + a.length + b.length);
    const { header, data } = minimalRead(file);
    expect(header.__metadata__).toEqual({ k: 'v' });
    expect(header.weight).toEqual({ dtype: 'F32', shape: [7], data_offsets: [0, 28] });
    expect(header.bias).toEqual({ dtype: 'F64', shape: [3], data_offsets: [28, 52] });
    expect(sameBytes(data.get('weight')!, a)).toBe(true);
    expect(sameBytes(data.get('bias')!, b)).toBe(true);
  });

  test('an empty tensor list gives a valid file with only metadata', () => {
    const file = serializeSafetensors([], {});
    expect(Buffer.from(file.subarray(8)).toString()).toBe('{"__metadata__":{}}     ');
    expect(parseSafetensors(file).tensors).toEqual([]);
  });

  // Built by hand from the format rules: 8-byte LE length, header JSON, spaces to a multiple of 8, LE data.
  const goldenHeader =
    '{"__metadata__":{"k":"v"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},' +
    '"c":{"dtype":"F16","shape":[1,1],"data_offsets":[16,18]},' +
    '"d":{"dtype":"BF16","shape":[1],"data_offsets":[18,20]},' +
    '"e":{"dtype":"F32","shape":[0,3],"data_offsets":[20,20]}}';
  const goldenData = [
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0, // a = [1.0, -2.5] as F32
    0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f, // b = [0.1] as F64
    0x00, 0x3c, // c = [[1.0]] as F16
    0x80, 0x3f, // d = [1.0] as BF16
  ];
  function goldenBytes(): Uint8Array {
    const padded = goldenHeader + ' '.repeat((8 - (goldenHeader.length % 8)) % 8);
    const length = [padded.length & 0xff, padded.length >> 8, 0, 0, 0, 0, 0, 0];
    return Uint8Array.from([...length, ...Buffer.from(padded, 'utf8'), ...goldenData]);
  }

  test('writes the golden file byte for byte', () => {
    const file = serializeSafetensors(
      [
        source('a', 'F32', [2], bytesOf(Float32Array.of(1, -2.5))),
        source('b', 'F64', [1], bytesOf(Float64Array.of(0.1))),
        source('c', 'F16', [1, 1], Uint8Array.of(0x00, 0x3c)),
        source('d', 'BF16', [1], Uint8Array.of(0x80, 0x3f)),
        source('e', 'F32', [0, 3], new Uint8Array(0)),
      ],
      { k: 'v' },
    );
    expect(Buffer.from(file).equals(Buffer.from(goldenBytes()))).toBe(true);
    expect(Buffer.from(fs.readFileSync(path.join(__dirname, 'fixtures/golden.safetensors'))).equals(Buffer.from(goldenBytes()))).toBe(true);
  });

  test('reads the committed golden file', async () => {
    const parsed = await readSafetensorsFile(path.join(__dirname, 'fixtures/golden.safetensors'));
    expect({ ...parsed.metadata }).toEqual({ k: 'v' });
    expect(parsed.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([
      ['a', 'F32', [2]], ['b', 'F64', [1]], ['c', 'F16', [1, 1]], ['d', 'BF16', [1]], ['e', 'F32', [0, 3]],
    ]);
    expect(Array.from(new Float32Array(Uint8Array.from(parsed.tensors[0].bytes).buffer))).toEqual([1, -2.5]);
    expect(new Float64Array(Uint8Array.from(parsed.tensors[1].bytes).buffer)[0]).toBe(0.1);
    expect(Array.from(parsed.tensors[2].bytes)).toEqual([0x00, 0x3c]);
    expect(Array.from(parsed.tensors[3].bytes)).toEqual([0x80, 0x3f]);
    expect(parsed.tensors[4].bytes.length).toBe(0);
  });

  test('writeSafetensorsFile / readSafetensorsFile round trip through a file', async () => {
    const file = path.join(tmp, 'rt.safetensors');
    const tensors = [source('x', 'F32', [4097], randomBytes(4097 * 4, 3)), source('y', 'BF16', [1], Uint8Array.of(1, 2))];
    await writeSafetensorsFile(file, tensors, { a: '1' });
    const parsed = await readSafetensorsFile(file);
    expect(parsed.tensors.map((t) => t.name)).toEqual(['x', 'y']);
    expect(sameBytes(parsed.tensors[0].bytes, tensors[0].bytes())).toBe(true);
    expect(Buffer.from(fs.readFileSync(file)).equals(Buffer.from(serializeSafetensors(tensors, { a: '1' })))).toBe(true);
  });

  test('readSafetensorsFile shows the validated header to checkHeader before reading data, and stops if it throws', async () => {
    const file = path.join(tmp, 'hdr.safetensors');
    await writeSafetensorsFile(file, [source('x', 'F16', [2, 1], Uint8Array.of(1, 2, 3, 4))], { a: '1' });
    const seen: unknown[] = [];
    await expect(readSafetensorsFile(file, (header) => { seen.push({ ...header, metadata: { ...header.metadata } }); throw new Error('stop here'); })).rejects.toThrow('stop here');
    expect(seen).toEqual([{ metadata: { a: '1' }, tensors: [{ name: 'x', dtype: 'F16', shape: [2, 1] }] }]);
  });

  test.each([
    ['a file shorter than 8 bytes', Uint8Array.of(1, 2, 3), /fewer than the 8-byte header length/],
    ['a header length past the end', Uint8Array.of(255, 0, 0, 0, 0, 0, 0, 0, 123), /header length field says 255 bytes but only 1/],
    ['a huge header length', Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 128), /header length field says 9223372036854775808/],
  ])('rejects %s', (_what, file, message) => {
    expect(() => parseSafetensors(file)).toThrow(message);
  });

  function withHeader(header: string, data: number[] = []): Uint8Array {
    const json = Buffer.from(header, 'utf8');
    const out = new Uint8Array(8 + json.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(data, 8 + json.length);
    return out;
  }

  test.each([
    ['invalid UTF-8', withHeader('{"a":"\u00e9"}').map((b, i) => (i === 15 ? 0xff : b)), /not valid UTF-8/],
    ['non-object JSON', withHeader('[1]'), /not a JSON object/],
    ['leading spaces', withHeader(' {}'), /not a JSON object/],
    ['broken JSON', withHeader('{"a":}'), /not valid JSON/],
    ['duplicate keys', withHeader('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'), /key "a" more than once/],
    ['an unsupported dtype', withHeader('{"t":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', [0]), /tensor "t" has dtype "I8", which is not supported/],
    ['an extra field', withHeader('{"t":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}}', [0, 0, 0, 0]), /tensor "t" has an unknown field "x"/],
    ['a missing field', withHeader('{"t":{"dtype":"F32","shape":[]}}'), /tensor "t" has no data_offsets/],
    ['a negative dimension', withHeader('{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'), /tensor "t" has shape\[0\] = -1/],
    ['a fractional offset', withHeader('{"t":{"dtype":"F32","shape":[0],"data_offsets":[0.5,0]}}'), /tensor "t" has data_offsets \[0.5,0\]/],
    ['a size mismatch', withHeader('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /tensor "t" has shape \[2\] of F32, which needs 8 bytes, but data_offsets \[0, 4\] span 4/],
    ['a hole', withHeader('{"t":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}', [0, 0, 0, 0]), /data bytes 0 to 2 belong to no tensor/],
    ['an overlap', withHeader('{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"u":{"dtype":"F16","shape":[1],"data_offsets":[1,3]}}', [0, 0, 0]), /tensor "u" .* overlaps/],
    ['trailing data', withHeader('{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', [0, 0, 0]), /cover 2 bytes but the data buffer has 3/],
    ['non-string metadata', withHeader('{"__metadata__":{"k":1}}'), /metadata "k" must be a well-formed string/],
  ])('rejects a header with %s, naming the problem', (_what, file, message) => {
    expect(() => parseSafetensors(file)).toThrow(message);
  });

  test('a "__proto__" key neither pollutes objects nor is lost', () => {
    const parsed = parseSafetensors(withHeader('{"__metadata__":{"__proto__":"x"},"__proto__":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', [1, 2]));
    expect(Object.getPrototypeOf(parsed.metadata)).toBeNull();
    expect(parsed.metadata['__proto__']).toBe('x');
    expect(parsed.tensors[0].name).toBe('__proto__');
    expect(({} as Record<string, unknown>).dtype).toBeUndefined();
  });

  test('the writer refuses duplicate names, "__metadata__", and bytes() of the wrong length', () => {
    const t = source('a', 'F32', [1], new Uint8Array(4));
    expect(() => serializeSafetensors([t, t], {})).toThrow(/"a" is used twice/);
    expect(() => serializeSafetensors([source('__metadata__', 'F32', [0], new Uint8Array(0))], {})).toThrow(/__metadata__/);
    expect(() => serializeSafetensors([source('a', 'F32', [2], new Uint8Array(4))], {})).toThrow(/tensor "a" \(F32, shape \[2\]\) needs 8 bytes but bytes\(\) returned 4/);
  });
});

describe('model-ema checkpoint mapping', () => {
  function roundTrip(state: StateFixture): void {
    const file = serializeCheckpoint(sourceOf(state));
    expect(decodedEquals(deserializeCheckpoint(file, expectedOf(state)), state)).toBe(true);
  }

  test('round trips named, unnamed and duplicate-named parameters with a float64 backup', () => roundTrip(mixedState()));

  test('round trips every storage dtype, with and without a backup, and extreme decays', () => {
    for (const [dtype, shadow] of [
      ['float32', [floats(Float32Array, 5, 1)]],
      ['float64', [floats(Float64Array, 5, 2)]],
      ['float16', [halfBits(5, 3)]],
      ['bfloat16', [halfBits(5, 4)]],
    ] as const) {
      for (const decay of [0, 1, 0.1 + 0.2, 5e-324, 1 - 2 ** -53]) {
        roundTrip({ decay, numUpdates: null, dtype, names: ['p'], shadow: [...shadow], collected: null });
        roundTrip({ decay, numUpdates: 2 ** 53 - 1, dtype, names: [null], shadow: [...shadow], collected: { dtype: 'float32', values: [floats(Float32Array, 5, 9)] } });
      }
    }
    roundTrip({ decay: 0.5, numUpdates: 0, dtype: 'float32', names: [], shadow: [], collected: null });
  });

  test('tensor names use the parameter name or index, and disambiguate collisions invertibly', () => {
    expect(parameterKeys(['layer/w', null, 'b', 'b', '1'])).toEqual(['layer/w', '1#1', 'b#2', 'b#3', '1#4']);
    expect(parameterKeys(['a', 'a', 'a#1'])).toEqual(['a#0', 'a#1#', 'a#1']);
    const names = parseSafetensors(serializeCheckpoint(sourceOf(mixedState()))).tensors.map((t) => t.name);
    expect(names).toEqual([
      'shadow.layer/w', 'shadow.1#1', 'shadow.b#2', 'shadow.b#3', 'shadow.1#4',
      'collected.layer/w', 'collected.1#1', 'collected.b#2', 'collected.b#3', 'collected.1#4',
    ]);
    expect(parseSafetensors(serializeCheckpoint(sourceOf(mixedState()))).tensors[0].shape).toEqual([2, 3]);
  });

  test('metadata holds the documented string fields', () => {
    const { metadata } = parseSafetensors(serializeCheckpoint(sourceOf(mixedState())));
    expect(metadata.format).toBe('model-ema');
    expect(metadata.format_version).toBe('3');
    expect(metadata.decay).toBe('0.9999');
    expect(metadata.num_updates).toBe('42');
    expect(metadata.dtype).toBe('float32');
    expect(metadata.collected_dtype).toBe('float64');
    expect(JSON.parse(metadata.names)).toEqual(['layer/w', null, 'b', 'b', '1']);
    const checksums = JSON.parse(metadata.checksums);
    expect(Object.keys(checksums)).toHaveLength(10);
    expect(checksums['shadow.layer/w']).toBe(createHash('sha256').update(bytesOf(mixedState().shadow[0])).digest('hex'));
  });

  test('saveCheckpoint / loadCheckpoint round trip through a file, and loading checks the EMA', async () => {
    const file = path.join(tmp, 'ema.safetensors');
    await saveCheckpoint(file, sourceOf(mixedState()));
    expect(decodedEquals(await loadCheckpoint(file, expectedOf(mixedState())), mixedState())).toBe(true);
    await expect(loadCheckpoint(file, { names: ['x'], sizes: [1] })).rejects.toThrow(/checkpoint has 5 parameters but this EMA has 1/);
  });

  // Rebuilds a valid checkpoint with `edit` applied to its parsed metadata/tensors, re-serialized.
  function edited(edit: (m: Record<string, string>, t: { name: string; dtype: SafetensorsDType; shape: number[]; bytes: Uint8Array }[]) => void): Uint8Array {
    const parsed = parseSafetensors(serializeCheckpoint(sourceOf(mixedState())));
    const metadata = { ...parsed.metadata };
    const tensors = parsed.tensors.map((t) => ({ ...t, bytes: Uint8Array.from(t.bytes) }));
    edit(metadata, tensors);
    return serializeSafetensors(tensors.map((t) => source(t.name, t.dtype, t.shape, t.bytes)), metadata);
  }
  // Recomputes metadata_sha256 as documented in ema_checkpoint.ts (so a reader in another language can).
  function resign(m: Record<string, string>): void {
    const fields = [m.format, m.format_version, m.decay, m.num_updates, m.dtype, m.collected_dtype, m.names];
    if (m.format_version !== '1') fields.push(m.schedule, m.step, m.samples, m.seconds);
    if (m.format_version === '3') fields.push(m.skipped_updates, m.skipped_elements);
    m.metadata_sha256 = createHash('sha256').update(JSON.stringify(fields)).digest('hex');
  }
  const decode = (file: Uint8Array, expected = expectedOf(mixedState())) => () => deserializeCheckpoint(file, expected);

  test.each(['', 'NaN', 'Infinity', '0x1', '1.5', '-0.5', ' 0.5', '1e1', '.5'])('rejects decay %j, naming the field', (decay) => {
    expect(decode(edited((m) => { m.decay = decay; }))).toThrow(/metadata decay is .* expected a decimal number in \[0, 1\]/);
  });

  test.each(['', '-1', '1.5', '1e3', '9007199254740992', 'undefined', '0x10'])('rejects num_updates %j, naming the field', (n) => {
    expect(decode(edited((m) => { m.num_updates = n; }))).toThrow(/metadata num_updates is .* expected "null" or a non-negative integer/);
  });

  test('rejects unknown formats, versions, dtypes and edited metadata', () => {
    expect(decode(edited((m) => { m.format = 'other'; }))).toThrow(/metadata format is "other"/);
    expect(decode(edited((m) => { delete m.format_version; }))).toThrow(/metadata has no format_version/);
    expect(decode(edited((m) => { m.format_version = '4'; }))).toThrow(/format_version is "4"/);
    expect(decode(edited((m) => { m.step = '-1'; resign(m); }))).toThrow(/metadata step is "-1"/);
    expect(decode(edited((m) => { m.schedule = '{'; resign(m); }))).toThrow(/metadata schedule is not valid JSON/);
    expect(decode(edited((m) => { m.schedule = '{"kind":"half-life"}'; }))).toThrow(/metadata_sha256 does not match/);
    expect(decode(edited((m) => { m.dtype = 'int8'; }))).toThrow(/metadata dtype is "int8"/);
    expect(decode(edited((m) => { m.collected_dtype = 'float16'; }))).toThrow(/collected_dtype is "float16"/);
    expect(decode(edited((m) => { m.decay = '0.999'; }))).toThrow(/metadata_sha256 does not match/);
    const resigned = edited((m) => { m.decay = '0.999'; resign(m); });
    expect(deserializeCheckpoint(resigned, expectedOf(mixedState())).decay).toBe(0.999);
    expect(decode(edited((m) => { m.names = '["x"]'; }))).toThrow(/checkpoint has 1 parameters but this EMA has 5/);
    expect(decode(edited((m) => { m.names = '{'; }))).toThrow(/metadata names is not valid JSON/);
  });

  test('rejects other parameter names, naming index and both names', () => {
    const expected = { ...expectedOf(mixedState()), names: ['layer/w', null, 'b', 'c', '1'] };
    expect(decode(serializeCheckpoint(sourceOf(mixedState())), expected)).toThrow(/parameter 3 is named "b" in the checkpoint but "c" in this EMA/);
  });

  test('a version 1 file (before schedules: no schedule, step, samples, seconds) still decodes, with progress null', () => {
    const v1 = edited((m) => {
      for (const key of ['schedule', 'step', 'samples', 'seconds']) delete m[key];
      m.format_version = '1';
      resign(m);
    });
    const decoded = decode(v1)();
    expect(decoded.progress).toBeNull();
    expect(decoded.numUpdates).toBe(42);
  });

  test('rejects missing and extra tensors', () => {
    expect(decode(edited((_, t) => { t.splice(6, 1); }))).toThrow(/tensor "collected.1#1" is missing/);
    expect(decode(edited((_, t) => { t.push({ name: 'shadow.extra', dtype: 'F32', shape: [0], bytes: new Uint8Array(0) }); }))).toThrow(/unexpected tensor "shadow.extra"/);
    expect(decode(edited((m) => { m.collected_dtype = 'none'; resign(m); }))).toThrow(/unexpected tensor "collected.layer\/w"/);
  });

  test('rejects a size that differs from the EMA, naming the tensor and both sizes', () => {
    const expected = { ...expectedOf(mixedState()), sizes: [6, 3, 2, 2, 4] };
    expect(decode(serializeCheckpoint(sourceOf(mixedState())), expected)).toThrow(/tensor "shadow.1#4" has 1 elements but parameter 4 \("1"\) of this EMA has 4/);
  });

  test('rejects tensor dtypes that contradict the metadata', () => {
    expect(decode(edited((_, t) => { t[1] = { ...t[1], dtype: 'F16', shape: [6] }; }))).toThrow(/tensor "shadow.1#1" has dtype "F16" but metadata dtype float32 requires F32/);
  });

  test('rejects a flipped data bit and swapped tensors through the checksums', () => {
    const file = serializeCheckpoint(sourceOf(mixedState()));
    const flipped = Uint8Array.from(file);
    flipped[flipped.length - 3] ^= 0x10; // inside the last tensor, collected.1#4
    expect(decode(flipped)).toThrow(/checksum of tensor "collected.1#4" does not match its data/);
    // shadow.b#2 and shadow.b#3 have the same size: swapping their data keeps the file well-formed.
    expect(decode(edited((_, t) => { [t[2].bytes, t[3].bytes] = [t[3].bytes, t[2].bytes]; }))).toThrow(/checksum of tensor "shadow.b#2"/);
    expect(decode(edited((m) => { m.checksums = '{}'; }))).toThrow(/checksums has no entry for tensor "shadow.layer\/w"/);
  });

  test('rejects a plain safetensors file that has no model-ema metadata', () => {
    expect(() => decodeCheckpoint(parseSafetensors(serializeSafetensors([], {})), { names: [], sizes: [] })).toThrow(/metadata has no format/);
  });
});
