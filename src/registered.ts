// The parameters an EMA was built from, held weakly: the EMA must never keep a model alive.
import { codedError } from './errors';
import { ParameterEntry, ParameterKind, parameterLabel } from './parameters';

interface Record {
  ref: WeakRef<object>;
  kind: ParameterKind;
  name: string | undefined;
  shape: readonly number[] | undefined;
}

export class RegisteredParameters {
  readonly #records: Record[];

  constructor(entries: readonly ParameterEntry[]) {
    this.#records = entries.map((entry) => {
      return { ref: new WeakRef(entry.value), kind: entry.kind, name: entry.name, shape: entry.shape };
    });
  }

  get length(): number {
    return this.#records.length;
  }

  /** Each parameter's name, or null when it has none. */
  get names(): (string | null)[] {
    return this.#records.map((r) => r.name ?? null);
  }

  /** Each parameter's shape as registered (`{ name, value, shape }`, a tfjs variable's), or null when unknown. */
  get shapes(): (readonly number[] | null)[] {
    return this.#records.map((r) => r.shape ?? null);
  }

  name(index: number): string | undefined {
    return this.#records[index].name;
  }

  /** The live parameters, or an error naming the first one that is gone. */
  deref(operation: string): ParameterEntry[] {
    const lost = (i: number, what: string, which: 'the' | 'live'): Error =>
      codedError(
        'PARAMETER_GONE',
        `${operation}: ${parameterLabel(i, this.#records[i].name)} ${what}. Pass ${which} parameters explicitly ` +
          `(${operation.replace(/\(\)$/, '')}(parameters)), or keep the model alive while the EMA uses it.`,
      );
    return this.#records.map((record, i) => {
      const value = record.ref.deref();
      if (value === undefined) {
        throw lost(i, 'has been garbage-collected, so the EMA cannot use its registered parameters', 'the');
      }
      const problem = record.kind.unusable(value);
      if (problem !== undefined) throw lost(i, problem, 'live');
      return { value, kind: record.kind, name: record.name, shape: record.shape };
    });
  }
}
