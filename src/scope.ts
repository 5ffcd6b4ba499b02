// The scoped swap (Python's `with ema.average_parameters():`). The EMA creates a scope after it has
// backed the raw weights up and copied the shadows in; closing the scope puts the raw weights back.

/**
 * What a scope runs when it closes; supplied by the EMA that opened it. When it throws, the scope
 * stays open (the EMA decides what a retry does).
 */
export type CloseScope = (scope: AveragedParametersScope) => void;

/**
 * Returned by `ema.averageParameters()`: while open, the parameters hold the averaged weights.
 * `using scope = ema.averageParameters();` restores the raw weights at the end of the block;
 * otherwise call `scope.restore()` (or `scope[Symbol.dispose]()`). Closing twice is harmless.
 */
export class AveragedParametersScope implements Disposable {
  #close: CloseScope | null;

  /** @internal Created by ExponentialMovingAverage.averageParameters() (through its ScopeStack). */
  constructor(close: CloseScope) {
    this.#close = close;
  }

  /** True once the raw weights have been put back. */
  get closed(): boolean {
    return this.#close === null;
  }

  /** Writes the raw weights back into the parameters and closes the scope. */
  restore(): void {
    const close = this.#close;
    if (close === null) return;
    close(this);
    this.#close = null;
  }

  [Symbol.dispose](): void {
    this.restore();
  }
}

/** Runs `fn` in a scope and closes it however `fn` ends, returning what `fn` returned. */
export function runInScope<R>(scope: AveragedParametersScope, fn: () => R): R {
  let result: R;
  try {
    result = fn();
  } catch (error) {
    closeAfterFailure(scope, error);
  }
  if (isPromiseLike(result)) {
    return result.then(
      (value) => {
        scope.restore();
        return value;
      },
      (error: unknown) => closeAfterFailure(scope, error),
    ) as R;
  }
  scope.restore();
  return result;
}

function closeAfterFailure(scope: AveragedParametersScope, error: unknown): never {
  try {
    scope.restore();
  } catch (restoreError) {
    throw new AggregateError(
      [error, restoreError],
      'withAveragedParameters: the callback failed, and restoring the raw weights failed too',
    );
  }
  throw error;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') && value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}
