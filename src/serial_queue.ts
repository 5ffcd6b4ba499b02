// The serial queue: an EMA's async work (updateAsync(), save(), load()) runs in call order, one at a
// time, and while any is queued the EMA's synchronous methods refuse to run (they ask `busy`).

export class SerialQueue {
  #tail: Promise<void> = Promise.resolve();
  #inFlight = 0;

  /** True from the moment work is queued until the last queued work settles. */
  get busy(): boolean {
    return this.#inFlight > 0;
  }

  /** Resolves (never rejects) once the work queued so far has settled; later work may still be queued. */
  settled(): Promise<void> {
    return this.#tail;
  }

  /**
   * Runs `work` at once when nothing is in flight (so updateAsync() reads the parameters at call
   * time), else after the work queued before it. Settles as `work` does.
   */
  run<T>(work: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      try {
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
}
