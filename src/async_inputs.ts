// What updateAsync() hands the native update: the parameters' arrays, and whether the worker may
// read them in place. Snapshotting (the default) copies them before the call returns, so the next
// optimizer step may write them at once. `snapshot: false` skips that copy where it is safe: the
// worker thread can read a typed array in place only if its memory cannot be taken away while it
// reads, which holds for a SharedArrayBuffer (never detached, transferred or shrunk) and not for an
// ordinary ArrayBuffer (transfer it, or resize it, and the worker would read freed memory).
import { codedError } from './errors';
import type { ParamArray } from './parameter_kinds';
import type { ResolvedParameters } from './parameters';

export interface AsyncInputs {
  arrays: ParamArray[];
  /** True when every array is read where it is, on the worker thread. */
  inPlace: boolean;
}

const isShared = (array: ParamArray): boolean => array.buffer instanceof SharedArrayBuffer;

/**
 * `snapshot`: the call's progress.snapshot. `queued`: the call runs after other work, so a snapshot
 * must be taken here, in JS, now (the native one is taken when it runs). With snapshot false, a
 * typed-array parameter over an ordinary ArrayBuffer is refused, naming it; parameters that are
 * read as copies anyway (tfjs variables) need no snapshot and are fine.
 */
export function asyncInputs(resolved: ResolvedParameters, snapshot: boolean, queued: boolean, operation: string): AsyncInputs {
  const arrays = resolved.read();
  if (snapshot) return { arrays: queued ? arrays.map((a) => a.slice()) : arrays, inPlace: false };
  resolved.entries.forEach((entry, i) => {
    if (arrays[i] === entry.value && !isShared(arrays[i])) {
      const name = entry.name === undefined ? '' : ` ('${entry.name}')`;
      throw codedError(
        'INVALID_ARGUMENT',
        `${operation} with snapshot: false reads parameters in place on a worker thread, which is safe only for typed arrays over ` +
          `a SharedArrayBuffer (an ArrayBuffer can be transferred or resized meanwhile); parameters[${i}]${name} is a ` +
          `${arrays[i].constructor.name} over an ArrayBuffer: allocate it over a SharedArrayBuffer, or leave snapshot on`,
      );
    }
  });
  return { arrays, inPlace: arrays.every(isShared) };
}
