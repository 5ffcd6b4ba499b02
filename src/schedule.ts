// The decay schedule: pure functions of the EMA's decay and counter. What one update applies is an
// UpdateDescription, handed as it is to the native update (arenas.ts's updateShadows).

// What one update applies to every shadow: the native update description itself (binding.d.ts),
// so a new field there is a new field here.
import type { UpdateDescription } from './native';
import { MAX_NUM_UPDATES } from './state_rules';
export type { UpdateDescription };

/** The counter after one more update; null (warm-up off) stays null; saturates at MAX_NUM_UPDATES. */
export function nextCount(numUpdates: number | null): number | null {
  return numUpdates === null ? null : Math.min(numUpdates + 1, MAX_NUM_UPDATES);
}

/** torch_ema's warm-up: min(decay, (1 + n) / (10 + n)) for the n-th update; `decay` when off. */
export function decayFor(decay: number, count: number | null): number {
  return count === null ? decay : Math.min(decay, (1 + count) / (10 + count));
}

/** The next update, and the counter once it has been applied. */
export function nextUpdate(
  decay: number,
  numUpdates: number | null,
  perElement: Omit<UpdateDescription, 'decay'>,
): { update: UpdateDescription; numUpdates: number | null } {
  const count = nextCount(numUpdates);
  return { update: { ...perElement, decay: decayFor(decay, count) }, numUpdates: count };
}
