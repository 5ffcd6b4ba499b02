// The public parameter types, checked by the compiler: test/types/parameter_types.ts compiles under
// --strict with every `@ts-expect-error` line refused (an unused directive is an error, so a type
// that starts accepting a bad input fails here), and a negative control shows that the refused
// lines really are errors once their directives are removed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatDiagnostics, strictOptions, typecheck } from './helpers/typecheck';

const file = path.join(__dirname, 'types', 'parameter_types.ts');
const text = fs.readFileSync(file, 'utf8');
const DIRECTIVE = '// @ts-expect-error';

/** 1-based line numbers of the lines right after each directive: the lines that must not compile. */
function refusedLines(source: string): number[] {
  return source.split('\n').flatMap((line, i) => (line.trimStart().startsWith(DIRECTIVE) ? [i + 2] : []));
}

describe('parameter types (tsc --strict)', () => {
  test('the type tests compile: accepted inputs compile, and every @ts-expect-error line is refused', () => {
    expect(refusedLines(text).length).toBeGreaterThanOrEqual(10);
    expect(formatDiagnostics(typecheck([file], strictOptions()))).toEqual([]);
  }, 60_000);

  test("negative control: without the directives, exactly the marked lines fail (so the issue's [[1,2,3], new Int32Array(4), new Map()] is refused)", () => {
    const stripped = text.split('\n').map((line) => (line.trimStart().startsWith(DIRECTIVE) ? '' : line)).join('\n');
    const diagnostics = typecheck([file], strictOptions(), { [file]: stripped });
    const failing = [...new Set(diagnostics.map((d) => d.line))].sort((a, b) => a - b);
    expect(failing).toEqual(refusedLines(text));
    expect(diagnostics.every((d) => d.file.endsWith('parameter_types.ts'))).toBe(true);
  }, 60_000);
});
