// The scope stack: the averageParameters() scopes an EMA has open, each with its own backup of the
// raw weights, closed in any order. update() refuses while any is open.
//
// Scopes over the same parameters (the same objects, position by position) form a chain: closing
// one that is not the newest of its chain hands its backup (the raw values) to the next newer scope
// of the chain. Scopes over other parameters are independent and restore their own. A scope over a
// list that shares some, but not all, parameters with an open scope is refused when it opens.
import { backupOf } from './arenas';
import { codedError, invalidArgument } from './errors';
import type { ShadowArena } from './native';
import { parameterLabel, type ParameterEntry, ResolvedParameters } from './parameters';
import { AveragedParametersScope } from './scope';

/** A scope still open, with the raw values it will put back. */
interface OpenScope {
  scope: AveragedParametersScope;
  backup: ShadowArena;
  parameters: ResolvedParameters;
}

export class ScopeStack {
  readonly #open: OpenScope[] = [];
  readonly #sizes: readonly number[];

  /** `sizes`: the shadows' element counts, which the parameters are checked against again on close. */
  constructor(sizes: readonly number[]) {
    this.#sizes = sizes;
  }

  /** How many scopes are open. */
  get size(): number {
    return this.#open.length;
  }

  /** Throws when a scope is open: the parameters hold the averaged weights. */
  refuseUpdate(operation: string): void {
    if (this.#open.length > 0) {
      throw codedError(
        'SCOPE_OPEN',
        `${operation}: an averageParameters() scope is open, so the parameters hold the averaged ` +
          'weights; updating now would average them into themselves. Close the scope first.',
      );
    }
  }

  /**
   * Backs the parameters up (in host memory), writes the shadows into them, and returns the scope
   * that writes the backup back. If writing fails midway, what was written is undone.
   */
  open(shadows: ShadowArena, parameters: ResolvedParameters): AveragedParametersScope {
    this.#refusePartialOverlap(parameters);
    const backup = backupOf(parameters.read(), shadows.dtype, this.#sizes);
    try {
      parameters.write((targets) => shadows.copyTo(targets));
    } catch (error) {
      try {
        parameters.write((targets) => backup.copyTo(targets)); // undo what was written, if anything
      } finally {
        backup.dispose();
      }
      throw error;
    }
    // The scope keeps the resolved parameters (strongly, for its short life) to restore into them.
    const scope = new AveragedParametersScope((closing) => this.#close(closing));
    this.#open.push({ scope, backup, parameters });
    return scope;
  }

  // A scope whose parameters hold what the scope opened just after it on the same parameters
  // swapped in writes nothing: that scope inherits this backup, the raw values, to restore later.
  // Otherwise the parameters hold this scope's averaged values and the backup goes back. Either way
  // the scope is closed when this returns or throws.
  #close(closing: AveragedParametersScope): void {
    const index = this.#open.findIndex((open) => open.scope === closing);
    if (index === -1) return; // closed already
    const [open] = this.#open.splice(index, 1);
    const heir = this.#open.slice(index).find((later) => sameParameters(later.parameters.entries, open.parameters.entries));
    if (heir !== undefined) {
      heir.backup.dispose(); // it held this scope's averaged values
      heir.backup = open.backup;
      return;
    }
    try {
      restoreBackup(open.parameters.entries, open.backup, this.#sizes);
    } finally {
      open.backup.dispose();
    }
  }

  #refusePartialOverlap(parameters: ResolvedParameters): void {
    const values = new Set(parameters.entries.map((e) => e.value));
    for (const open of this.#open) {
      const shared = open.parameters.entries.some((e) => values.has(e.value));
      if (shared && !sameParameters(open.parameters.entries, parameters.entries)) {
        throw invalidArgument(
          'averageParameters(): the list shares some of the parameters of an open scope but not all, in the same ' +
            'order; their raw weights could not be told apart. Close that scope first, or pass the same list.',
          Error,
        );
      }
    }
  }
}

function sameParameters(a: readonly ParameterEntry[], b: readonly ParameterEntry[]): boolean {
  return a.length === b.length && a.every((e, i) => e.value === b[i].value);
}

// Why `entry` cannot take its backup now (a detached buffer, a disposed variable), or undefined.
function lostProblem(entry: ParameterEntry, size: number): string | undefined {
  const unusable = entry.kind.unusable(entry.value);
  if (unusable !== undefined) return unusable;
  const numel = entry.kind.numel(entry.value);
  if (numel === size) return undefined;
  const lost = numel === 0 ? entry.kind.lostContents?.(entry.value) : undefined;
  return lost?.refused ?? `has ${numel} elements instead of ${size}`;
}

/**
 * Writes `backup` into the parameters: all at once when every one can take it, else one by one,
 * skipping those that cannot, and then throws an Error naming each parameter not restored.
 */
function restoreBackup(entries: readonly ParameterEntry[], backup: ShadowArena, sizes: readonly number[]): void {
  if (entries.every((e, i) => lostProblem(e, sizes[i]) === undefined)) {
    try {
      new ResolvedParameters([...entries], sizes, "the scope's parameters").write((targets) => backup.copyTo(targets));
      return;
    } catch {
      // one by one below, to restore what can be and name what cannot
    }
  }
  const failures: string[] = [];
  entries.forEach((entry, i) => {
    const label = parameterLabel(i, entry.name);
    const problem = lostProblem(entry, sizes[i]);
    if (problem !== undefined) {
      failures.push(`${label} ${problem}`);
      return;
    }
    try {
      const target = entry.kind.writeTarget(entry.value);
      target.set(backup.read(i));
      entry.kind.commit(entry.value, target);
    } catch (error) {
      failures.push(`${label}: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  if (failures.length === 0) return;
  throw codedError(
    'PARAMETER_GONE',
    `averageParameters() scope: the raw weights of ${failures.length} parameter(s) could not be restored: ` +
      `${failures.join('; ')}. The scope is closed; the other parameters hold their raw weights again.`,
  );
}
