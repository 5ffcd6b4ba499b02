// The only file that loads the native addon. Everything else imports `binding` from here, typed by
// the root binding.d.ts, so the native surface is declared in exactly one place.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { types } from 'node:util';
import type * as Binding from '../binding';
import { codedError, codeNativeError } from './errors';

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
    throw codedError(
      'ADDON_UNAVAILABLE',
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
    throw codedError(
      'ADDON_UNAVAILABLE',
      `model-ema found a native addon built for version ${loaded.version}, but the package is ` +
        `${expected}: the binary is stale. Rebuild it with \`npm rebuild model-ema\` ` +
        '(in a clone: `npm run build`).',
    );
  }
  return withErrorCodes(loaded);
}

// Every error the addon throws or rejects with gets its family's `code` (errors.ts) on its way out.
// The module's functions are wrapped in place; ShadowArena's prototype members cannot be redefined
// (Node-API makes them non-configurable), so each arena gets a prototype in between whose methods
// and accessors wrap them: newShadowArena() makes arenas with it, and cast()/toDevice() pass it on.
// binding.d.ts's surface stays exactly as declared.
function withErrorCodes(loaded: NativeBinding): NativeBinding {
  const coded: object = Object.create(loaded.ShadowArena.prototype);
  const adopt = (value: unknown): unknown => (value instanceof loaded.ShadowArena ? Object.setPrototypeOf(value, coded) : value);
  const wrap = (fn: (...args: unknown[]) => unknown) =>
    function (this: unknown, ...args: unknown[]): unknown {
      try {
        const result = fn.apply(this, args);
        return types.isPromise(result) ? result.catch((error: unknown) => Promise.reject(codeNativeError(error))) : adopt(result);
      } catch (error) {
        throw codeNativeError(error);
      }
    };
  const proto = loaded.ShadowArena.prototype as object;
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (name === 'constructor') continue;
    const d = Object.getOwnPropertyDescriptor(proto, name)!;
    Object.defineProperty(coded, name, {
      enumerable: d.enumerable,
      ...(typeof d.value === 'function' ? { value: wrap(d.value as (...args: unknown[]) => unknown) } : {}),
      ...(d.get ? { get: wrap(d.get) } : {}),
      ...(d.set ? { set: wrap(d.set) } : {}),
    });
  }
  codedPrototype = coded;
  const functions = loaded as unknown as Record<string, unknown>;
  for (const key of Object.keys(functions)) {
    const value = functions[key];
    if (typeof value === 'function' && value !== loaded.ShadowArena) functions[key] = wrap(value as (...args: unknown[]) => unknown);
  }
  return loaded;
}

let codedPrototype: object;

/** The native addon, loaded once per thread (each worker_thread gets its own instance). */
export const binding: NativeBinding = load();

/** `new binding.ShadowArena(...)` whose errors, and those of its methods, carry their family's code. */
export function newShadowArena(dtype: Binding.StorageDType, sizes: readonly number[], device: number | null): Binding.ShadowArena {
  let arena: Binding.ShadowArena;
  try {
    arena = new binding.ShadowArena(dtype, sizes, device);
  } catch (error) {
    throw codeNativeError(error);
  }
  return Object.setPrototypeOf(arena, codedPrototype) as Binding.ShadowArena;
}
