// Type-checks files with the TypeScript compiler API, as `tsc --noEmit` would, and reports each
// diagnostic as "file:line: TSxxxx message" so a failing expectation says what broke.
import * as path from 'node:path';
import * as ts from 'typescript';

export interface Diagnostic {
  file: string;
  line: number; // 1-based
  code: number;
  text: string;
}

/** The options the project's own sources compile with, strict (tsconfig.json), minus outputs. */
export function strictOptions(extra: ts.CompilerOptions = {}): ts.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    types: ['node'],
    noEmit: true,
    ...extra,
  };
}

/** Diagnostics of a program over `files`; `host` may serve some files from memory. */
export function typecheck(files: string[], options: ts.CompilerOptions, inMemory: Record<string, string> = {}): Diagnostic[] {
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  const memory = new Map(Object.entries(inMemory).map(([file, text]) => [path.resolve(file), text]));
  host.fileExists = (file) => memory.has(path.resolve(file)) || ts.sys.fileExists(file);
  host.readFile = (file) => memory.get(path.resolve(file)) ?? readFile(file);
  host.getSourceFile = (file, languageVersion, onError) => {
    const text = memory.get(path.resolve(file));
    return text === undefined ? getSourceFile(file, languageVersion, onError) : ts.createSourceFile(file, text, languageVersion);
  };
  const program = ts.createProgram(files, options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
    return { file: d.file ? path.relative(process.cwd(), d.file.fileName) : '', line, code: d.code, text: ts.flattenDiagnosticMessageText(d.messageText, '\n') };
  });
}

export function formatDiagnostics(diagnostics: readonly Diagnostic[]): string[] {
  return diagnostics.map((d) => `${d.file}:${d.line}: TS${d.code} ${d.text.split('\n')[0]}`);
}
