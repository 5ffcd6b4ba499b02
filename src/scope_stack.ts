// The scope stack: the averageParameters() scopes an EMA has open, each with its own backup of the
// raw weights, closed in any order. update() refuses while any is open.
import { backupOf } from './arenas';
import type { ShadowArena } from './native';
import { ResolvedParameters } from './parameters';
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

  /** Throws when a scope is open: the parameters hold the averaged weights. */
  refuseUpdate(operation: string): void {
    if (this.#open.length > 0) {
      throw new Error(
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

  // Closing the innermost scope writes its backup back. Closing another one (async callbacks
  // overlap and finish in any order) writes nothing: the parameters hold what the scope opened
  // just after it swapped in, so that scope inherits this backup, the raw values, to restore later.
  #close(closing: AveragedParametersScope): void {
    const index = this.#open.findIndex((open) => open.scope === closing);
    if (index === -1) return; // closed already, by a restore that failed midway
    const open = this.#open[index];
    if (index < this.#open.length - 1) {
      const next = this.#open[index + 1];
      next.backup.dispose(); // it held this scope's averaged values
      next.backup = open.backup;
      this.#open.splice(index, 1);
      return;
    }
    // Checked before anything changes: if the parameters cannot take the values (a buffer was
    // detached, a variable disposed), the scope stays open and its backup is kept.
    const target = new ResolvedParameters([...open.parameters.entries], this.#sizes, "the scope's parameters");
    this.#open.pop();
    try {
      target.write((targets) => open.backup.copyTo(targets));
    } finally {
      open.backup.dispose();
    }
  }
}
