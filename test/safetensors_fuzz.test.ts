// Mutated checkpoints must never be half-accepted: decoding either throws an Error that says what is
// wrong, or returns exactly the values that were saved. Mutations range from raw byte damage to
// structural edits of the JSON header that are re-encoded, so they get past the JSON parser and reach
// the deep checks (offsets, dtypes, shapes, names, metadata, checksums).
import * as fc from 'fast-check';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deserializeCheckpoint, loadCheckpoint, serializeCheckpoint, type DecodedCheckpoint } from '../src/checkpoint/ema_checkpoint';
import { decodedEquals, expectedOf, halfBits, mixedState, sourceOf, type StateFixture } from './helpers/checkpoint_fixtures';

const bases: StateFixture[] = [
  mixedState(),
  { decay: 0.5, numUpdates: null, dtype: 'bfloat16', names: ['a', null], shadow: [halfBits(3, 1), halfBits(4, 2)], collected: null },
];
const files = bases.map((state) => serializeCheckpoint(sourceOf(state)));

function headerOf(file: Uint8Array): { json: string; data: Uint8Array } {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return { json: Buffer.from(file.subarray(8, 8 + n)).toString('utf8').trimEnd(), data: file.subarray(8 + n) };
}

function assemble(json: string, data: Uint8Array, padding = 0): Uint8Array {
  const header = Buffer.from(json + ' '.repeat(padding), 'utf8');
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

/**
 * The property: a clear Error from this library, or the original values exactly. `prefix`: what
 * comes before the reason (the file reader names the file: "Cannot read '<path>': ").
 */
function expectRejectedOrExact(outcome: () => DecodedCheckpoint, base: number, prefix = ''): void {
  let decoded: DecodedCheckpoint;
  try {
    decoded = outcome();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    expect(Object.getPrototypeOf(error)).toBe(Error.prototype); // not a stray TypeError/RangeError/SyntaxError
    expect((error as Error).message.startsWith(prefix)).toBe(true);
    expect((error as Error).message.slice(prefix.length)).toMatch(/^Invalid (safetensors file|model-ema checkpoint): \S/);
    return;
  }
  expect(decodedEquals(decoded, bases[base])).toBe(true);
}

const check = (file: Uint8Array, base: number) => expectRejectedOrExact(() => deserializeCheckpoint(file, expectedOf(bases[base])), base);
const baseIndex = fc.integer({ min: 0, max: bases.length - 1 });

const byteMutation = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('flip' as const), flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('headerLength' as const), value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: -24, max: 24 })) }),
  fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
);
type ByteMutation = typeof byteMutation extends fc.Arbitrary<infer T> ? T : never;

function applyBytes(source: Uint8Array, m: ByteMutation): Uint8Array {
  const file = Uint8Array.from(source);
  const view = new DataView(file.buffer);
  switch (m.kind) {
    case 'truncate':
      return file.slice(0, m.at % file.length);
    case 'append':
      return Uint8Array.from([...file, ...m.bytes]);
    case 'flip':
      for (const [at, bit] of m.flips) file[at % file.length] ^= 1 << bit;
      return file;
    case 'headerLength': {
      const current = view.getBigUint64(0, true);
      const next = typeof m.value === 'bigint' ? m.value : current + BigInt(m.value);
      view.setBigUint64(0, BigInt.asUintN(64, next), true);
      return file;
    }
    case 'overwrite':
      file.set(m.bytes.subarray(0, file.length - (m.at % file.length)), m.at % file.length);
      return file;
  }
}

const tricky = fc.constantFrom('', 'null', 'NaN', 'Infinity', '-0', '0', '1', '1.0', '0.5', '1e-7', '2', '0x1', ' 0.5', '9007199254740993', '1e400', 'float32', 'float16', 'none', 'F32', '[]', '{}', '[null]', '"a"');
const headerEdit = fc.record({
  op: fc.constantFrom('set', 'delete', 'rename', 'duplicate', 'swapOffsets', 'shiftOffset', 'shape', 'dtype', 'metadata', 'deleteMetadata', 'root', 'swapData'),
  a: fc.nat(),
  b: fc.nat(),
  value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), tricky),
  text: fc.oneof(fc.string({ maxLength: 12 }), tricky, fc.constantFrom('shadow.a', 'shadow.b#2', 'collected.1#1', '__metadata__', '__proto__')),
  dims: fc.array(fc.integer({ min: -1, max: 8 }), { maxLength: 3 }),
  dtype: fc.constantFrom('F32', 'F64', 'F16', 'BF16', 'I8', 'f32', '', 'U8'),
  delta: fc.integer({ min: -9, max: 9 }),
  padding: fc.nat({ max: 17 }),
});
type HeaderEdit = typeof headerEdit extends fc.Arbitrary<infer T> ? T : never;

function applyHeaderEdit(source: Uint8Array, e: HeaderEdit): Uint8Array {
  const { json, data: original } = headerOf(source);
  let data = Uint8Array.from(original);
  let header = JSON.parse(json) as Record<string, any>;
  const tensors = Object.keys(header).filter((k) => k !== '__metadata__');
  const t = tensors[e.a % tensors.length];
  const u = tensors[e.b % tensors.length];
  const metaKeys = Object.keys(header.__metadata__);
  let text = '';
  switch (e.op) {
    case 'set': header[t][['dtype', 'shape', 'data_offsets', 'extra'][e.b % 4]] = e.value; break;
    case 'delete': delete header[t][['dtype', 'shape', 'data_offsets'][e.b % 3]]; break;
    case 'rename': header[e.text] = header[t]; if (e.text !== t) delete header[t]; break;
    case 'duplicate': text = `,${JSON.stringify(u)}:${JSON.stringify(header[t])}`; break;
    case 'swapOffsets': [header[t].data_offsets, header[u].data_offsets] = [header[u].data_offsets, header[t].data_offsets]; break;
    case 'shiftOffset': header[t].data_offsets[e.b % 2] += e.delta; break;
    case 'shape': header[t].shape = e.dims; break;
    case 'dtype': header[t].dtype = e.dtype; break;
    case 'metadata': header.__metadata__[e.a % 3 === 0 ? e.text : metaKeys[e.b % metaKeys.length]] = e.value; break;
    case 'deleteMetadata': delete header.__metadata__[metaKeys[e.b % metaKeys.length]]; break;
    case 'root': header = e.value as Record<string, any>; break;
    case 'swapData': {
      const [x, y] = [header[t].data_offsets, header[u].data_offsets];
      if (x[1] - x[0] === y[1] - y[0]) {
        data = Uint8Array.from(original);
        data.set(original.subarray(y[0], y[1]), x[0]);
        data.set(original.subarray(x[0], x[1]), y[0]);
      }
      break;
    }
  }
  let encoded = JSON.stringify(header) ?? 'null';
  if (text && encoded.endsWith('}')) encoded = encoded.slice(0, -1) + text + '}';
  return assemble(encoded, data, e.padding);
}

describe('fuzzed checkpoints are rejected with a clear Error or decode to the saved values', () => {
  test('the unmutated bases decode exactly (sanity check of the property)', () => {
    files.forEach((file, i) => expect(decodedEquals(deserializeCheckpoint(file, expectedOf(bases[i])), bases[i])).toBe(true));
    expect(() => check(applyHeaderEdit(files[0], { op: 'dtype', a: 0, b: 0, value: 0, text: '', dims: [], dtype: 'I8', delta: 0, padding: 0 }), 0)).not.toThrow();
  });

  test('byte-level damage: truncation, appended bytes, bit flips, header length changes, overwrites', () => {
    fc.assert(fc.property(baseIndex, byteMutation, (base, m) => check(applyBytes(files[base], m), base)), { numRuns: 1500 });
  });

  test('structural header edits, re-encoded so they reach the deep checks', () => {
    fc.assert(fc.property(baseIndex, headerEdit, (base, e) => check(applyHeaderEdit(files[base], e), base)), { numRuns: 1500 });
  });

  test('arbitrary bytes, with or without a plausible length prefix', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, prefix) => {
        check(prefix ? assemble(Buffer.from(bytes).toString('latin1'), new Uint8Array(0)) : bytes, 0);
      }),
      { numRuns: 300 },
    );
  });

  test('re-signed metadata with arbitrary scalar values is either rejected or decoded as written', () => {
    const fields = ['decay', 'num_updates', 'dtype', 'collected_dtype', 'format_version'];
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.oneof(tricky, fc.string({ maxLength: 8 }), fc.double().map(String)), (field, value) => {
        const { json, data } = headerOf(files[0]);
        const header = JSON.parse(json);
        const m = header.__metadata__;
        m[field] = value;
        const signed = [m.format, m.format_version, m.decay, m.num_updates, m.dtype, m.collected_dtype, m.names];
        m.metadata_sha256 = createHash('sha256').update(JSON.stringify(signed)).digest('hex');
        let decoded: DecodedCheckpoint;
        try {
          decoded = deserializeCheckpoint(assemble(JSON.stringify(header), data), expectedOf(bases[0]));
        } catch (error) {
          expect((error as Error).message).toMatch(/^Invalid model-ema checkpoint: \S/);
          return;
        }
        expect(decoded.decay >= 0 && decoded.decay <= 1).toBe(true);
        expect(decoded.numUpdates === null || Number.isSafeInteger(decoded.numUpdates)).toBe(true);
        if (field === 'decay') expect(decoded.decay).toBe(Number(value));
        if (field === 'num_updates') expect(String(decoded.numUpdates)).toBe(value);
        const unchangeable: Record<string, string> = { dtype: 'float32', collected_dtype: 'float64', format_version: '1' };
        if (field in unchangeable) expect(value).toBe(unchangeable[field]);
      }),
      { numRuns: 400 },
    );
  });

  describe('through the file reader', () => {
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-ema-fuzz-'));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('damaged files on disk are rejected with a clear Error or load the saved values', async () => {
      await fc.assert(
        fc.asyncProperty(baseIndex, byteMutation, async (base, m) => {
          const file = path.join(dir, 'fuzz.safetensors');
          fs.writeFileSync(file, applyBytes(files[base], m));
          let decoded: DecodedCheckpoint | undefined;
          let failure: unknown;
          await loadCheckpoint(file, expectedOf(bases[base])).then((d) => (decoded = d), (e: unknown) => (failure = e));
          expectRejectedOrExact(() => {
            if (failure !== undefined) throw failure;
            return decoded!;
          }, base, `Cannot read '${file}': `);
        }),
        { numRuns: 200 },
      );
    });
  });
});
