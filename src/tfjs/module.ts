// Which TensorFlow.js the adapter works with. Best: the user's own module, passed in (`{ tf }`), so
// that the callback extends the very tf.Callback class their model.fit() checks with instanceof.
// Otherwise the first package that resolves: tfjs-node (native, fast), tfjs-node-gpu, then tfjs.
// In an ordinary install these are the copies the user's code loads too; where they may not be
// (npm link, nested copies), pass `tf`.

import { codedError } from '../errors';

/** The part of a TensorFlow.js module (`@tensorflow/tfjs`, `-node`, `-node-gpu`) the adapter uses. */
export interface TfjsModule {
  /** tfjs-layers' `Callback`, the base class model.fit() recognises callbacks by. */
  Callback: abstract new () => object;
}

/** Tried in this order when no module is passed. */
export const TFJS_PACKAGES = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs'] as const;

let loaded: TfjsModule | undefined;

function isMissing(error: unknown, name: string): boolean {
  // Only "this very package is not installed"; a package that is there but fails to load (a broken
  // native binding, say) is an error the user needs to see, not a reason to use another one quietly.
  const e = error as NodeJS.ErrnoException | null;
  return e?.code === 'MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(`'${name}'`);
}

export function isTfjsModule(value: unknown): value is TfjsModule {
  return (
    (typeof value === 'object' || typeof value === 'function') && value !== null &&
    typeof (value as { Callback?: unknown }).Callback === 'function'
  );
}

/** The TensorFlow.js module to use: tfjs-node if installed, else tfjs-node-gpu, else tfjs. */
export function loadTfjs(): TfjsModule {
  if (loaded !== undefined) return loaded;
  for (const name of TFJS_PACKAGES) {
    let module: unknown;
    try {
      module = require(name);
    } catch (error) {
      if (isMissing(error, name)) continue;
      throw codedError(
        'TFJS_UNAVAILABLE',
        `model-ema/tfjs: ${name} is installed but failed to load (${(error as Error)?.message ?? error}). ` +
          'Repair it, or pass the TensorFlow.js module you use as the `tf` option.',
        { cause: error },
      );
    }
    if (!isTfjsModule(module)) {
      throw codedError('TFJS_UNAVAILABLE', `model-ema/tfjs: ${name} does not export Callback; pass your TensorFlow.js module as the \`tf\` option`);
    }
    loaded = module;
    return module;
  }
  throw codedError(
    'TFJS_UNAVAILABLE',
    `model-ema/tfjs needs TensorFlow.js, and none of ${TFJS_PACKAGES.join(', ')} is installed: ` +
      'install @tensorflow/tfjs-node (native, fastest) or @tensorflow/tfjs, or pass your TensorFlow.js ' +
      'module as the `tf` option.',
  );
}
