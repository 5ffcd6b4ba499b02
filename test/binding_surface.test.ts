// The loaded addon must export exactly what binding.d.ts declares: no more, no less.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { binding } from '../src/native';

function declared(): { exports: string[]; arenaMembers: string[] } {
  const file = path.join(__dirname, '..', 'binding.d.ts');
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const exports: string[] = [];
  const arenaMembers: string[] = [];
  for (const statement of source.statements) {
    // Types and interfaces have no run-time presence; classes, functions and consts do.
    if (ts.isClassDeclaration(statement) && statement.name) {
      exports.push(statement.name.text);
      if (statement.name.text === 'ShadowArena') {
        for (const member of statement.members) {
          if (member.name && ts.isIdentifier(member.name)) arenaMembers.push(member.name.text);
        }
      }
    } else if (ts.isFunctionDeclaration(statement) && statement.name) {
      exports.push(statement.name.text);
    } else if (ts.isVariableStatement(statement)) {
      for (const d of statement.declarationList.declarations) exports.push((d.name as ts.Identifier).text);
    }
  }
  return { exports: exports.sort(), arenaMembers: arenaMembers.sort() };
}

describe('native binding surface', () => {
  const expected = declared();

  test('exports exactly the values binding.d.ts declares', () => {
    expect(Object.keys(binding).sort()).toEqual(expected.exports);
  });

  test('ShadowArena instances have exactly the declared members', () => {
    const proto = binding.ShadowArena.prototype as object;
    const members = Object.getOwnPropertyNames(proto).filter((k) => k !== 'constructor').sort();
    expect(members).toEqual(expected.arenaMembers);
  });

  test('the binary reports the package version it was built from', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    expect(binding.version).toBe(pkg.version);
  });

  test('cpuInfo names a known instruction set and at least one thread', () => {
    const info = binding.cpuInfo();
    expect(['avx512bf16', 'avx512', 'avx2', 'baseline']).toContain(info.isa);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(info.parallelThreshold).toBeGreaterThan(0);
  });
});

// The byte-range entry points checkpoints stream through: whole elements within one tensor, each
// argument checked natively (a direct call into the binding must never crash), nothing written on
// a refused call.
describe('readBytesInto / writeBytesAt / writeBytesAtAsync', () => {
  const sizes = [7, 4097, 0];
  const make = (dtype: 'float32' | 'float64' | 'float16' | 'bfloat16' = 'float32'): InstanceType<typeof binding.ShadowArena> =>
    new binding.ShadowArena(dtype, sizes);
  const shared = (bytes: number[]): Uint8Array => {
    const out = new Uint8Array(new SharedArrayBuffer(bytes.length));
    out.set(bytes);
    return out;
  };

  test('write a range, read it back at any element offset, the rest untouched (every dtype)', async () => {
    for (const [dtype, size] of [['float32', 4], ['float64', 8], ['float16', 2], ['bfloat16', 2]] as const) {
      const arena = make(dtype);
      const bytes = Array.from({ length: 3 * size }, (_, i) => (i * 37 + 11) & 0xff);
      arena.writeBytesAt(1, 4090, Uint8Array.from(bytes)); // elements 4090 to 4092 of 4097
      await arena.writeBytesAtAsync(0, 0, shared(bytes));
      const whole = arena.readBytes(1);
      expect(Array.from(whole.subarray(4090 * size, 4093 * size))).toEqual(bytes);
      expect(whole.subarray(0, 4090 * size).every((b) => b === 0)).toBe(true);
      const out = new Uint8Array(2 * size);
      arena.readBytesInto(0, 1, out);
      expect(Array.from(out)).toEqual(bytes.slice(size));
      arena.readBytesInto(2, 0, new Uint8Array(0)); // an empty range of an empty tensor
      arena.dispose();
    }
  });

  test('bad arguments are errors naming them, and change nothing', async () => {
    const arena = make();
    const before = arena.readBytes(1);
    const four = new Uint8Array(4);
    const cases: [() => unknown, RegExp][] = [
      [() => arena.writeBytesAt(3, 0, four), /for index/],
      [() => arena.writeBytesAt(-1, 0, four), /for index but received -1/],
      [() => arena.writeBytesAt(1, 4098, four), /at most 4097 .* for elementOffset but received 4098/],
      [() => arena.writeBytesAt(1, 0.5, four), /for elementOffset but received 0.5/],
      [() => arena.writeBytesAt(1, 4097, four), /at most 0 bytes .* for bytes but received 4 bytes/],
      [() => arena.writeBytesAt(1, 0, new Uint8Array(3)), /a multiple of 4 bytes .* for bytes but received 3 bytes/],
      [() => arena.writeBytesAt(1, 0, new Float32Array(1) as unknown as Uint8Array), /Expected a Uint8Array for bytes/],
      [() => arena.writeBytesAt(1, 0, 'abcd' as unknown as Uint8Array), /Expected a Uint8Array for bytes/],
      [() => arena.readBytesInto(1, 4096, new Uint8Array(8)), /at most 4 bytes .* for out but received 8 bytes/],
      [() => arena.readBytesInto(0, 0, null as unknown as Uint8Array), /Expected a Uint8Array for out/],
    ];
    for (const [call, message] of cases) expect(call).toThrow(message);
    const detached = new Uint8Array(new ArrayBuffer(4));
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    expect(() => arena.writeBytesAt(1, 0, detached)).toThrow(/a Uint8Array whose buffer is not detached for bytes/);
    expect(() => arena.writeBytesAtAsync(1, 0, four)).toThrow(/over a SharedArrayBuffer .* for bytes/);
    expect(() => arena.writeBytesAtAsync(1, 4097, shared([1, 2, 3, 4]))).toThrow(/at most 0 bytes/);
    expect(Buffer.compare(Buffer.from(arena.readBytes(1)), Buffer.from(before))).toBe(0);
    arena.dispose();
    expect(() => arena.writeBytesAt(0, 0, four)).toThrow(/disposed/);
    expect(() => arena.writeBytesAtAsync(0, 0, shared([1, 2, 3, 4]))).toThrow(/disposed/);
    expect(() => arena.readBytesInto(0, 0, four)).toThrow(/disposed/);
  });

  test('while async writes run, other methods and dispose() refuse; the arena is busy until they settle', async () => {
    const arena = make();
    const writes = [arena.writeBytesAtAsync(1, 0, shared([1, 2, 3, 4])), arena.writeBytesAtAsync(1, 1, shared([5, 6, 7, 8]))];
    expect(arena.busy).toBe(true);
    expect(() => arena.readBytes(1)).toThrow(/while a writeBytesAtAsync\(\) on this arena is running/);
    expect(() => arena.dispose()).toThrow(/while a writeBytesAtAsync\(\) on it is running/);
    await Promise.all(writes);
    expect(arena.busy).toBe(false);
    expect(Array.from(arena.readBytes(1).subarray(0, 8))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    arena.dispose();
  });
});
