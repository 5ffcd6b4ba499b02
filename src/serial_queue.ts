// The serial queue: an EMA's async work (updateAsync(), load(), and a save() that waits for its
// turn to copy the state) runs in call order, one at a time, and while any is queued the EMA's
// synchronous methods refuse to run (they ask `busy`). Background work (save()'s file writes, from
// a copy taken at the call) keeps call order among itself without making the EMA busy.

export class SerialQueue {
  #tail: Promise<void> = Promise.resolve();
  #inFlight = 0;
  #backgroundTail: Promise<void> = Promise.resolve();

  /** True from the moment work is queued until the last queued work settles. */
  get busy(): boolean {
    return this.#inFlight > 0;
  }

  /** Resolves (never rejects) once the work queued so far, background work included, has settled. */
  settled(): Promise<void> {
    return Promise.all([this.#tail, this.#backgroundTail]).then(() => undefined);
  }

  /**
   * Runs `work` at once when nothing is in flight (so updateAsync() reads the parameters at call
   * time), else after the work queued before it. Settles as `work` does. With `afterBackground`,
   * it also waits for the background work started before the call (load() after a save() to the
   * same file reads what that save wrote).
   */
  run<T>(work: () => Promise<T>, afterBackground = false): Promise<T> {
    const background = this.#backgroundTail;
    const run = async (): Promise<T> => {
      try {
        if (afterBackground) await background;
        return await work();
      } finally {
        this.#inFlight -= 1;
      }
    };
    // The queue moves on before `run` starts: a call made while it runs synchronously (from a
    // parameters iterable, say) must line up behind it, not beside it.
    const previous = this.#tail;
    let settled!: () => void;
    this.#tail = new Promise<void>((resolve) => (settled = resolve));
    const result = this.#inFlight++ === 0 ? run() : previous.then(run);
    result.then(settled, settled);
    return result;
  }

  /**
   * Runs `work` now when nothing is queued (a throw is thrown to the caller), else at its turn as
   * run() does: the EMA is busy only while it waits. The promise is handled: rejecting it is no
   * unhandled rejection, whenever the caller awaits it.
   */
  atItsTurn<T>(work: () => T): Promise<T> {
    if (!this.busy) return Promise.resolve(work());
    const result = this.run(async () => work());
    result.catch(() => undefined);
    return result;
  }

  /** Runs `work` after the background work started before it; `busy` does not change. */
  background<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#backgroundTail.then(work);
    this.#backgroundTail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
