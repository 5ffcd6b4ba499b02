// The reading side of the published region (region.ts), for any thread: `new
// PublishedWeightsReader(ema.shareable())` in the EMA's thread or in a worker that received the
// handle by postMessage. A read copies the newest version's buffer and then checks that buffer's
// generation counter did not move (a seqlock); if it moved, the writer came round to that buffer
// during the copy (two publishes), and the read starts again from the newest version. Readers only
// load from shared memory: however many there are, and wherever one stops (a terminated worker),
// the writer never waits for them.
import { codedError, expectedRangeError, expectedTypeError } from '../errors';
import { type Parameter, ResolvedParameters, toEntries } from '../parameters';
import type { ParamArray } from '../parameter_kinds';
import { checkHandle, CLOSED, HELD, LATEST, SEQ, tensorViews, type PublishedWeightsHandle } from './region';

/** What read() returns: copies the caller owns, all from one version. */
export interface PublishedWeights {
  version: number;
  tensors: Float32Array[];
}

// Atomics.waitAsync is in Node 20 (V8 8.7+) but not in TypeScript's ES2022 library.
type WaitAsync = (array: BigInt64Array, index: number, value: bigint, timeout?: number) =>
  { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

export class PublishedWeightsReader {
  readonly #control: BigInt64Array;
  readonly #views: readonly [Float32Array[], Float32Array[]];
  readonly #sizes: readonly number[];
  readonly #names: readonly (string | null)[];

  /** @param handle what `ema.shareable()` returned, in this thread or posted to it. */
  constructor(handle: PublishedWeightsHandle) {
    const h = checkHandle(handle);
    this.#control = new BigInt64Array(h.control);
    this.#sizes = Object.freeze([...h.sizes]);
    this.#names = Object.freeze([...h.names]);
    this.#views = [tensorViews(h.buffers[0], this.#sizes), tensorViews(h.buffers[1], this.#sizes)];
  }

  /** The newest version published so far (0: none yet). */
  get version(): number {
    return Number(Atomics.load(this.#control, LATEST));
  }

  /** True once the publishing EMA was disposed: the last version stays readable, no newer one will come. */
  get closed(): boolean {
    return Atomics.load(this.#control, CLOSED) === 1n;
  }

  /** Element count of each tensor. */
  get sizes(): readonly number[] {
    return this.#sizes;
  }

  /** Each parameter's name, or null. */
  get names(): readonly (string | null)[] {
    return this.#names;
  }

  /** Copies of the newest version's tensors (Float32Array), all from that one version. */
  read(): PublishedWeights {
    let tensors: Float32Array[] = [];
    const version = this.#consistentRead('read()', (views) => {
      tensors = views.map((view) => view.slice());
    });
    return { version, tensors };
  }

  /**
   * Writes the newest version into `targets` (one per tensor, with its element count: Float32Array,
   * Float64Array, tfjs variables, or any registered parameter kind) and returns the version. Every
   * target is checked before any is written; the values are committed only from a consistent read.
   */
  readInto(targets: Iterable<Parameter>): number {
    const resolved = new ResolvedParameters(toEntries(targets, 'targets'), this.#sizes, 'readInto()');
    let version = 0;
    resolved.write((buffers: ParamArray[]) => {
      version = this.#consistentRead('readInto()', (views) => views.forEach((view, i) => buffers[i].set(view)));
    });
    return version;
  }

  /**
   * Resolves with the newest version once it is at least `version`, or when `timeoutMs` passed or
   * the EMA was disposed first (then with a smaller one: compare). Waits with Atomics.waitAsync:
   * no polling, and the thread's event loop stays free.
   */
  async waitForVersion(version: number, timeoutMs = Infinity): Promise<number> {
    if (typeof version !== 'number') throw expectedTypeError('a positive integer', 'version', version);
    if (!Number.isSafeInteger(version) || version < 1) throw expectedRangeError('a positive integer', 'version', String(version));
    if (typeof timeoutMs !== 'number') throw expectedTypeError('a number of milliseconds >= 0', 'timeoutMs', timeoutMs);
    if (!(timeoutMs >= 0)) throw expectedRangeError('a number of milliseconds >= 0', 'timeoutMs', String(timeoutMs));
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const latest = Atomics.load(this.#control, LATEST);
      const left = deadline - performance.now();
      if (Number(latest) >= version || this.closed || left <= 0) return Number(latest);
      const wait = waitAsync(this.#control, LATEST, latest, left);
      if (!wait.async) continue;
      // A pending waitAsync neither keeps Node's event loop alive nor reliably ends it before the
      // loop exits: a timer of our own does both.
      let alive: NodeJS.Timeout | undefined;
      try {
        await Promise.race([wait.value, new Promise((resolve) => (alive = setTimeout(resolve, Math.min(left, 0x7fffffff))))]);
      } finally {
        clearTimeout(alive);
      }
    }
  }

  // Runs `copy` over the newest version's buffer until a run saw no write to it; returns the version.
  #consistentRead(operation: string, copy: (views: Float32Array[]) => void): number {
    const control = this.#control;
    for (;;) {
      const version = Atomics.load(control, LATEST);
      if (version === 0n) throw codedError('NOTHING_PUBLISHED', `${operation}: nothing has been published yet; await reader.waitForVersion(1) first`);
      const b = Number(version & 1n);
      const before = Atomics.load(control, SEQ + b);
      if ((before & 1n) === 1n || Atomics.load(control, HELD + b) !== version) continue; // lapped: start again
      copy(this.#views[b]);
      if (Atomics.load(control, SEQ + b) === before) return Number(version);
    }
  }
}
