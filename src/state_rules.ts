// Rules that keep every state an EMA can reach savable: whatever the constructor, update() and
// loadStateDict() accept, stateDict(), save() and serialize() can write and their loaders read back.
import { describe, invalidArgument, isNonNegativeInteger } from './errors';

/**
 * The largest numUpdates. stateDict() consumers and the checkpoint format take integers only up to
 * Number.MAX_SAFE_INTEGER (2^53 - 1; beyond it, n + 1 === n and the decimal text is inexact), so the
 * counter saturates there instead of passing it. The warm-up decay (1 + n) / (10 + n) is within
 * 1e-15 of 1 long before, so a saturated counter changes no update.
 */
export const MAX_NUM_UPDATES = Number.MAX_SAFE_INTEGER;

/** numUpdates that stateDict(), loadStateDict() and checkpoints accept: an integer in [0, 2^53 - 1]. */
export function isValidNumUpdates(value: unknown): value is number {
  return isNonNegativeInteger(value) && value <= MAX_NUM_UPDATES;
}

const LONE_SURROGATE = /\p{Cs}/u; // with the u flag, only unpaired surrogates match

/**
 * Refuses a parameter name that is not well-formed UTF-16 (a lone surrogate, e.g. '\uD800'): it
 * has no UTF-8 encoding, so no safetensors header, hence no checkpoint, could hold it. `what` says
 * where it came from ('parameters[3]', 'state.names[3]').
 */
export function checkParameterName(name: string | null | undefined, what: string): void {
  if (typeof name === 'string' && LONE_SURROGATE.test(name)) {
    throw invalidArgument(
      `The name of ${what}, ${describe(name)}, is not well-formed UTF-16 (it has a lone surrogate), so no ` +
        'checkpoint could hold it; parameter names must be well-formed strings',
    );
  }
}
