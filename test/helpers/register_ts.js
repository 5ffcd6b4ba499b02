'use strict';
// Lets a plain `node` child process require the TypeScript sources directly, so the crash test runs
// the code under test as it is now: dist/ may be stale or absent, and ts-node is not installed.
// Each .ts file is transpiled on load with the `typescript` package already in devDependencies
// (transpile only, no type check: jest and tsc do that).
const fs = require('node:fs');
const ts = require('typescript');

require.extensions['.ts'] = function compileTypeScript(module, filename) {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  module._compile(outputText, filename);
};
