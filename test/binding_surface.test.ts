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
