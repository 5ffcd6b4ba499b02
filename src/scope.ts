// The scoped swap (Python's `with ema.average_parameters():`). The EMA creates a scope after it has
// backed the raw weights up and copied the shadows in; closing the scope puts the raw weights back.

/**
 * What a scope runs when it closes; supplied by the EMA that opened it. The scope is closed even
 * when it throws (it restored what it could and names what it could not).
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
    this.#close = null;
    close(this);
  }

  [Symbol.dispose](): void {
    this.restore();
  }
}

/**
 * Runs `fn` in a scope and closes it however `fn` ends, returning what `fn` returned. A thenable
 * result keeps the scope open until it settles; reading its `then` and calling it are guarded (if
 * either throws, the scope closes and the error comes out), and a `then` that calls back more than
 * once closes the scope once, on the first call.
 */
export function runInScope<R>(scope: AveragedParametersScope, fn: () => R): R {
  let result: R;
  let then: unknown;
  try {
    result = fn();
    then = thenOf(result);
  } catch (error) {
    closeAfterFailure(scope, error);
  }
  if (typeof then !== 'function') {
    scope.restore();
    return result;
  }
  let settled = false;
  const first = <A, B>(callback: (a: A) => B) => (a: A): B | undefined => {
    if (settled) return undefined;
    settled = true;
    return callback(a);
  };
  try {
    return then.call(
      result,
      first((value: unknown) => {
        scope.restore();
        return value;
      }),
      first((error: unknown) => closeAfterFailure(scope, error)),
    ) as R;
  } catch (error) {
    if (!settled) {
      settled = true;
      closeAfterFailure(scope, error);
    }
    throw error;
  }
}

function closeAfterFailure(scope: AveragedParametersScope, error: unknown): never {
  try {
    scope.restore();
  } catch (restoreError) {
    // Coded as the restore failure: the raw weights are what the caller must now see to.
    const code = (restoreError as { code?: unknown } | null)?.code;
    throw Object.assign(
      new AggregateError([error, restoreError], 'withAveragedParameters: the callback failed, and restoring the raw weights failed too'),
      typeof code === 'string' ? { code } : {},
    );
  }
  throw error;
}

// The `then` of a possible thenable, read once (a getter may throw, or answer differently each time).
function thenOf(value: unknown): unknown {
  return (typeof value === 'object' || typeof value === 'function') && value !== null
    ? (value as { then?: unknown }).then
    : undefined;
}
