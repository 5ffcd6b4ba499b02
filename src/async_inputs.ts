// What updateAsync() hands the native update: the parameters' arrays, and whether the worker may
// read them in place. Snapshotting (the default) copies them before the call returns, so the next
// optimizer step may write them at once. `snapshot: false` skips that copy where it is safe: the
// worker thread can read a typed array in place only if its memory cannot be taken away while it
// reads, which holds for a SharedArrayBuffer (never detached, transferred or shrunk) and not for an
// ordinary ArrayBuffer (transfer it, or resize it, and the worker would read freed memory).
//
// Every path copies at most once. A call that runs at once is snapshotted by the addon (on the
// thread pool, streaming stores). A queued call is snapshotted here, at the call, into arrays over
// SharedArrayBuffers kept from one queued call to the next (fresh pages cost more than the copy),
// which the addon then reads in place: no second copy when its turn comes. tfjs variables are
// treated like any array their read returns: on tfjs's cpu backend that is the backend's own
// storage, an ordinary ArrayBuffer, so it is copied once like a typed array.
import { types } from 'node:util';
import { updateShadows } from './arenas';
import { codedError } from './errors';
import type { ShadowArena, UpdateDescription } from './native';
import type { ParamArray } from './parameter_kinds';
import type { ResolvedParameters } from './parameters';

export interface AsyncInputs {
  arrays: ParamArray[];
  /** True when every array is read where it is, on the worker thread. */
  inPlace: boolean;
  /** The queued snapshot these arrays are, handed back once the update that reads them has settled. */
  readonly snapshot?: { from: QueuedSnapshots; arrays: ParamArray[] };
}

const isShared = (array: ParamArray): boolean => array.buffer instanceof SharedArrayBuffer;

/** The copies queued calls read: one set kept between calls, each array over its own SharedArrayBuffer. */
export class QueuedSnapshots {
  #spare: ParamArray[] | null = null;

  /** Copies of `arrays` (same element types and lengths), in the spare set when it fits. */
  take(arrays: readonly ParamArray[]): ParamArray[] {
    const spare = this.#spare;
    this.#spare = null;
    const fits = (copy: ParamArray, i: number): boolean =>
      copy.length === arrays[i].length && types.isFloat64Array(copy) === types.isFloat64Array(arrays[i]);
    const copies =
      spare !== null && spare.length === arrays.length && spare.every(fits)
        ? spare
        : arrays.map((a) => (types.isFloat64Array(a) ? new Float64Array(new SharedArrayBuffer(a.byteLength)) : new Float32Array(new SharedArrayBuffer(a.byteLength))));
    for (let i = 0; i < arrays.length; i++) copies[i].set(arrays[i]);
    return copies;
  }

  /** Keeps `copies` for the next take(); nothing else may hold them. */
  give(copies: ParamArray[]): void {
    this.#spare = copies;
  }
}

/**
 * `snapshot`: the call's progress.snapshot. `queued`: where a call that runs after other work takes
 * its snapshot now, at the call (null: the call runs now, and the addon takes it). With snapshot
 * false, a typed-array parameter over an ordinary ArrayBuffer is refused, naming it; parameters
 * that are read as copies anyway (tfjs variables) need no snapshot and are fine.
 */
export function asyncInputs(resolved: ResolvedParameters, snapshot: boolean, queued: QueuedSnapshots | null, operation: string): AsyncInputs {
  const arrays = resolved.read();
  if (snapshot) {
    if (queued === null) return { arrays, inPlace: false };
    const copies = queued.take(arrays);
    return { arrays: copies, inPlace: true, snapshot: { from: queued, arrays: copies } };
  }
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

/** The native update of `inputs` on a libuv thread; a queued snapshot is handed back for reuse once it has settled. */
export async function updateFrom(shadows: ShadowArena, inputs: AsyncInputs, update: UpdateDescription): Promise<number> {
  try {
    return await updateShadows(shadows, inputs.arrays, update, true, inputs.inPlace);
  } finally {
    inputs.snapshot?.from.give(inputs.snapshot.arrays);
  }
}
