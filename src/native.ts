// The only file that loads the native addon. Everything else imports `binding` from here, typed by
// the root binding.d.ts, so the native surface is declared in exactly one place.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Binding from '../binding';

export type NativeBinding = typeof Binding;
export type { ShadowArena, StorageDType, ParamArray, CpuInfo, BackendInfo, UpdateDescription } from '../binding';

const packageRoot = path.resolve(__dirname, '..');

function packageVersion(): string {
  const json = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {
    version: string;
  };
  return json.version;
}

// Where node-gyp-build looks, in its order, so that a failure can say what was missing.
function candidates(): string[] {
  const prebuilds = path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`);
  return [
    path.join(packageRoot, 'build', 'Release'),
    path.join(packageRoot, 'build', 'Debug'),
    prebuilds,
  ];
}

function describeCandidate(dir: string): string {
  if (!fs.existsSync(dir)) return `${dir} (missing)`;
  const nodes = fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
  return nodes.length === 0 ? `${dir} (no .node file)` : `${dir} (${nodes.join(', ')})`;
}

function load(): NativeBinding {
  let loaded: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    loaded = nodeGypBuild(packageRoot) as NativeBinding;
  } catch (err) {
    // The addon loaded but refused this process's settings (an invalid MODEL_EMA_CPU_ISA, say): its
    // own message names the variable and the valid values; rebuilding would not help.
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('ERR_MODEL_EMA_')) throw err;
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(
      `model-ema could not load its native addon for ${process.platform}-${process.arch} ` +
        `(Node ${process.versions.node}, Node-API ${process.versions.napi}): ${reason}\n` +
        `Looked in:\n${candidates().map((c) => `  - ${describeCandidate(c)}`).join('\n')}\n` +
        'To fix it: build from source with `npm rebuild model-ema` (needs CMake >= 3.19 and a ' +
        'C++17 compiler; in a clone of the repository, `npm run build`), or install on a platform ' +
        'that has a prebuilt binary in prebuilds/.',
    );
  }
  const expected = packageVersion();
  if (loaded.version !== expected) {
    throw new Error(
      `model-ema found a native addon built for version ${loaded.version}, but the package is ` +
        `${expected}: the binary is stale. Rebuild it with \`npm rebuild model-ema\` ` +
        '(in a clone: `npm run build`).',
    );
  }
  return loaded;
}

/** The native addon, loaded once per thread (each worker_thread gets its own instance). */
export const binding: NativeBinding = load();
