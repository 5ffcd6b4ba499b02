// The writing side of the published region (region.ts): one per EMA, made on the first publish()
// or shareable() (or at construction with options.publishEvery), so an EMA that never publishes
// pays nothing. A publish is one native copy of the shadows (converted to float32) into the buffer
// that does not hold the newest version, between two increments of that buffer's generation
// counter, then the new version is announced (Atomics.store + notify). It never waits for readers.
import { expectedRangeError, expectedTypeError } from '../errors';
import type { ShadowArena } from '../native';
import { CLOSED, createRegion, HELD, LATEST, SEQ, tensorViews, type PublishedWeightsHandle } from './region';

export type { PublishedWeightsHandle } from './region';

/** options.publishEvery: undefined (publish only when asked), or a positive integer of updates. */
export function parsePublishEvery(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw expectedTypeError('a positive integer (updates between publishes)', 'publishEvery', value);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw expectedRangeError('a positive integer (updates between publishes)', 'publishEvery', String(value));
  }
  return value;
}

// An EMA dropped without dispose() closes its region when it is collected (the publisher goes with
// it), so that readers waiting for a next version stop waiting.
const closeWhenCollected = new FinalizationRegistry<BigInt64Array>((control) => {
  Atomics.store(control, CLOSED, 1n);
  Atomics.notify(control, LATEST);
});

interface Region {
  handle: PublishedWeightsHandle;
  control: BigInt64Array;
  views: [Float32Array[], Float32Array[]];
}

export class WeightsPublisher {
  readonly #sizes: readonly number[];
  readonly #names: readonly (string | null)[];
  readonly #every: number | undefined;
  #region: Region | null = null;
  #version = 0;
  #updates = 0;

  constructor(sizes: readonly number[], names: readonly (string | null)[], every: number | undefined) {
    this.#sizes = sizes;
    this.#names = names;
    this.#every = every;
    if (every !== undefined) this.#open(); // allocated now, not in the middle of a training step
  }

  /** The newest version published (0: none yet). */
  get version(): number {
    return this.#version;
  }

  /** The structured-cloneable handle of the region (made now if it does not exist yet). */
  shareable(): PublishedWeightsHandle {
    return this.#open().handle;
  }

  /** Copies `shadows` (float32) into the region as the next version, and returns it (1, 2, ...). */
  publish(shadows: ShadowArena): number {
    const { control, views } = this.#open();
    const version = this.#version + 1;
    const b = version & 1;
    Atomics.store(control, HELD + b, 0n); // from here on, no reader accepts this buffer's old contents
    Atomics.add(control, SEQ + b, 1n); // odd: being written
    try {
      shadows.copyTo(views[b]);
    } finally {
      // Even again whatever happened; on failure HELD stays 0, so the half-written buffer is never read.
      Atomics.add(control, SEQ + b, 1n);
    }
    Atomics.store(control, HELD + b, BigInt(version));
    Atomics.store(control, LATEST, BigInt(version));
    Atomics.notify(control, LATEST);
    this.#version = version;
    return version;
  }

  /** Called after each update that completed: publishes every `publishEvery` updates. */
  afterUpdate(shadows: ShadowArena): void {
    if (this.#every === undefined) return;
    this.#updates += 1;
    if (this.#updates % this.#every === 0) this.publish(shadows);
  }

  /** The EMA was disposed: readers keep the last version, and waitForVersion() stops waiting. */
  close(): void {
    if (this.#region === null) return;
    closeWhenCollected.unregister(this);
    Atomics.store(this.#region.control, CLOSED, 1n);
    Atomics.notify(this.#region.control, LATEST);
  }

  #open(): Region {
    if (this.#region === null) {
      const handle = createRegion(this.#sizes, this.#names);
      const views: [Float32Array[], Float32Array[]] = [tensorViews(handle.buffers[0], this.#sizes), tensorViews(handle.buffers[1], this.#sizes)];
      this.#region = { handle, control: new BigInt64Array(handle.control), views };
      closeWhenCollected.register(this, this.#region.control, this);
    }
    return this.#region;
  }
}
