// The shape of src/: every file small enough to read in one sitting, no import cycle, and the core
// modules independent of TensorFlow.js: only the entry points import src/tfjs (to register the
// tfjs parameter kinds), and nothing outside src/tfjs imports a @tensorflow package.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const SRC = path.join(__dirname, '..', 'src');
const MAX_LINES = 350;
/** The package's entry points (package.json "exports"), relative to src/. */
const ENTRY_POINTS = ['index.ts', 'tfjs/index.ts'];

type Graph = Map<string, string[]>;

function sourceFiles(dir = SRC): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [path.relative(SRC, full).split(path.sep).join('/')] : [];
  });
}

/** Every module specifier a file names: import/export ... from, import type, require(), import(). */
function specifiersOf(file: string): string[] {
  const text = fs.readFileSync(path.join(SRC, file), 'utf8');
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** A relative specifier as a path under src/ ('ema.ts', 'tfjs/index.ts'), or null when it leaves src/ or names a package. */
function resolveInSrc(from: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  if (base.startsWith('..')) return null; // ../binding: the native declaration at the root
  for (const candidate of [`${base}.ts`, `${base}/index.ts`]) {
    if (fs.existsSync(path.join(SRC, candidate))) return candidate;
  }
  throw new Error(`${from}: cannot resolve ${JSON.stringify(specifier)}`);
}

function importGraph(files: readonly string[]): Graph {
  return new Map(
    files.map((file) => [file, specifiersOf(file).map((s) => resolveInSrc(file, s)).filter((f): f is string => f !== null)]),
  );
}

/** One import cycle as a path that ends where it starts, or null. */
function findCycle(graph: Graph): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === 'done') return null;
    if (state.get(node) === 'visiting') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'visiting');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return null;
}

const isTfjsModule = (file: string): boolean => file.startsWith('tfjs/');

describe('src/ architecture', () => {
  const files = sourceFiles();
  const graph = importGraph(files);

  test('the import graph is read from the sources (a control: ema.ts imports its collaborators)', () => {
    expect(files).toContain('ema.ts');
    expect(graph.get('ema.ts')).toEqual(expect.arrayContaining(['arenas.ts', 'scope_stack.ts', 'serial_queue.ts', 'checkpoint/ema_checkpoint.ts']));
    expect(graph.get('tfjs/index.ts')).toContain('tfjs/register.ts');
  });

  test('the cycle finder finds a cycle where there is one (negative control)', () => {
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]]))).toBeNull();
  });

  test('no import cycle among src/ modules (type-only imports included)', () => {
    expect(findCycle(graph)).toBeNull();
  });

  test(`no file under src/ has more than ${MAX_LINES} lines`, () => {
    const long = files
      .map((file) => ({ file, lines: fs.readFileSync(path.join(SRC, file), 'utf8').split('\n').length }))
      .filter(({ lines }) => lines > MAX_LINES);
    expect(long).toEqual([]);
  });

  test('core modules import nothing from src/tfjs; only the entry points do', () => {
    const offenders = files
      .filter((file) => !isTfjsModule(file) && !ENTRY_POINTS.includes(file))
      .flatMap((file) => graph.get(file)!.filter(isTfjsModule).map((target) => `${file} -> ${target}`));
    expect(offenders).toEqual([]);
  });

  test('no module outside src/tfjs imports a @tensorflow package', () => {
    const offenders = files
      .filter((file) => !isTfjsModule(file))
      .flatMap((file) => specifiersOf(file).filter((s) => s.startsWith('@tensorflow/')).map((s) => `${file} -> ${s}`));
    expect(offenders).toEqual([]);
  });
});
