// The parameter layer: how an operation turns the registered or explicitly passed parameters into
// buffers for the kernels. What a parameter can be is up to the registered kinds (parameter_kinds.ts);
// `{ name, value }` names a value of any kind.
import { types } from 'node:util';
import { describe, expectedRangeError, expectedTypeError, invalidArgument, withCode } from './errors';
import { checkParameterName } from './state_rules';
import { kindLabels, kindOf, type ParamArray, type ParameterKind } from './parameter_kinds';

export type { ParamArray, ParameterKind };

/**
 * What a parameter can be, by kind: the value types of the registered parameter kinds. The core
 * knows typed arrays; the package entry adds the tfjs variables (src/index.ts), and a kind of your
 * own adds its type by declaration merging, next to its `registerParameterKind` call:
 *
 *   declare module 'model-ema' { interface ParameterTypes { myTensor: MyTensor } }
 */
export interface ParameterTypes {
  floatArray: ParamArray;
}

/** A value of a registered kind: a Float32Array/Float64Array, a tfjs variable, or a kind of your own. */
export type ParameterValue = ParameterTypes[keyof ParameterTypes];

/** A parameter with an explicit name (used in errors, state dicts and checkpoints), and optionally its shape. */
export interface NamedParameter<V extends ParameterValue = ParameterValue> {
  name: string;
  value: V;
  /** Its shape (e.g. [in, out] for a dense kernel), saved in checkpoints; the product must be its element count. Default: the value's own (a tfjs variable's), else 1-D. */
  shape?: readonly number[];
}

/** What the EMA's methods take, one per tensor: a value of a registered kind, or `{ name, value }`. */
export type Parameter = ParameterValue | NamedParameter;

/** One parameter taken apart: its value, the kind that handles it, and its name. */
export interface ParameterEntry {
  value: object;
  kind: ParameterKind;
  name: string | undefined;
  /** The shape given with `{ name, value, shape }`, else the kind's own; undefined when unknown (1-D). */
  shape?: readonly number[];
}

function isNamedParameter(value: unknown): value is NamedParameter<ParameterValue> {
  return (
    typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) &&
    typeof (value as { name?: unknown }).name === 'string' && 'value' in value
  );
}

function acceptedKinds(): string {
  return `a ${kindLabels().join(', ')} or { name, value }`;
}

// Entries made from a value alone (no `{ name, value }` around it): everything in them follows from
// the value and its kind, so the same value passed again gives the same entry (see toEntries).
const bareEntries = new WeakSet<ParameterEntry>();

/** Classifies one parameter (a value of a registered kind, or { name, value } around one); throws on anything else. */
export function toEntry(parameter: unknown, argument: string): ParameterEntry {
  const entry = classify(parameter, argument);
  if (entry.value === parameter) bareEntries.add(entry);
  return entry;
}

function classify(parameter: unknown, argument: string): ParameterEntry {
  const named = isNamedParameter(parameter);
  const value = named ? (parameter as NamedParameter<ParameterValue>).value : parameter;
  const kind = kindOf(value);
  if (!kind) {
    if (types.isProxy(value)) {
      // A typed array's Proxy looks like the array (same constructor name) but the kernels cannot use it.
      throw invalidArgument(
        `Expected ${acceptedKinds()} for ${argument} but received a Proxy: typed-array proxies are not accepted ` +
          '(the kernels read and write the array itself); pass the typed array itself',
      );
    }
    if (ArrayBuffer.isView(value)) {
      throw expectedTypeError('a Float32Array or Float64Array (float parameters only)', argument, value);
    }
    throw expectedTypeError(acceptedKinds(), argument, parameter);
  }
  const name = named ? (parameter as NamedParameter<ParameterValue>).name : kind.ownName(value as object);
  checkParameterName(name, argument);
  const problem = kind.unusable(value as object);
  if (problem !== undefined) {
    throw unusableError(`${argument}${name === undefined ? '' : ` (${describe(name)})`} ${problem}`, kind, value as object);
  }
  const shape = named ? shapeOf(parameter as NamedParameter<ParameterValue>, kind, argument) : kind.shape?.(value as object);
  return { value: value as object, kind, name, shape: shape === undefined ? undefined : Object.freeze([...shape]) };
}

// `{ name, value, shape }`'s shape: non-negative integers whose product is the value's element count.
function shapeOf(parameter: NamedParameter<ParameterValue>, kind: ParameterKind, argument: string): readonly number[] | undefined {
  const shape: unknown = parameter.shape;
  if (shape === undefined) return kind.shape?.(parameter.value as object);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw expectedTypeError('an array of non-negative integers', `${argument}.shape`, shape);
  }
  const numel = kind.numel(parameter.value as object);
  const product = shape.reduce((n: number, d: number) => n * d, 1);
  if (product !== numel) throw expectedRangeError(`a shape of ${numel} elements`, `${argument}.shape`, `[${shape.join(', ')}] (${product} elements)`);
  return shape as number[];
}

// `previous` (an earlier toEntries() result) still holds for `parameter`: the same value, passed
// alone, of a kind that can still use it. A value's kind, once found, holds until a kind is
// registered (the caller compares kindsVersion()); usability (a disposed variable) is asked again.
function reusable(previous: ParameterEntry | undefined, parameter: unknown): previous is ParameterEntry {
  return (
    previous !== undefined && previous.value === parameter && bareEntries.has(previous) &&
    !isNamedParameter(parameter) && previous.kind.unusable(parameter as object) === undefined
  );
}

/**
 * Reads an iterable of parameters once, classifying each. With `previous` (the entries an earlier
 * call made, under the same registered kinds), an item that is the same value as the previous
 * entry at its position gets that entry back instead of being classified again: the per-call
 * cost of passing the same list to every update.
 */
export function toEntries(parameters: unknown, argument: string, previous?: readonly ParameterEntry[]): ParameterEntry[] {
  if (
    parameters === null || typeof parameters !== 'object' ||
    typeof (parameters as Iterable<unknown>)[Symbol.iterator] !== 'function' || ArrayBuffer.isView(parameters)
  ) {
    throw expectedTypeError('an iterable of parameters', argument, parameters);
  }
  const entries: ParameterEntry[] = [];
  for (const parameter of parameters as Iterable<unknown>) {
    const before = previous?.[entries.length];
    entries.push(reusable(before, parameter) ? before : toEntry(parameter, `${argument}[${entries.length}]`));
  }
  return entries;
}

// A value that lost its contents (a disposed variable: no elements left) is gone; one that is
// unusable as it is (a non-float dtype) is an invalid argument.
function unusableError(message: string, kind: ParameterKind, value: object): TypeError {
  let gone: boolean;
  try {
    gone = kind.numel(value) === 0;
  } catch {
    gone = true;
  }
  return withCode(new TypeError(message), gone ? 'PARAMETER_GONE' : 'INVALID_ARGUMENT');
}

/** "parameter 3 ('fc.weight')" or "parameter 3". */
export function parameterLabel(index: number, name: string | undefined): string {
  return name === undefined ? `parameter ${index}` : `parameter ${index} (${describe(name)})`;
}

/**
 * The parameters one operation works on, checked against the shadows' sizes. Creating it is the
 * whole validation: after that, reading and writing cannot fail on the parameters' account.
 */
export class ResolvedParameters {
  readonly #entries: ParameterEntry[];
  readonly #sizes: readonly number[];

  constructor(entries: ParameterEntry[], sizes: readonly number[], argument: string) {
    if (entries.length !== sizes.length) {
      throw expectedRangeError(`${sizes.length} parameters (one per shadow)`, argument, String(entries.length));
    }
    entries.forEach((entry, i) => {
      const problem = entry.kind.unusable(entry.value);
      if (problem !== undefined) {
        throw unusableError(`${parameterLabel(i, entry.name)} ${problem}`, entry.kind, entry.value);
      }
      const numel = entry.kind.numel(entry.value);
      if (numel !== sizes[i]) {
        const lost = numel === 0 ? entry.kind.lostContents?.(entry.value) : undefined;
        const error = expectedRangeError(
          `${sizes[i]} elements (the size of its shadow)`,
          `${parameterLabel(i, entry.name)} of ${argument}`,
          `${numel}${lost === undefined ? '' : ` (${lost.note})`}`,
        );
        throw lost === undefined ? error : withCode(error, 'PARAMETER_GONE');
      }
    });
    this.#entries = entries;
    this.#sizes = sizes;
  }

  get entries(): readonly ParameterEntry[] {
    return this.#entries;
  }

  /**
   * Whether the constructor's checks would still pass for the same entries (each value usable and
   * of its shadow's size): a detached buffer, a disposed variable or a resized array makes it
   * false, and the caller resolves again, which throws the error that names it.
   */
  stillValid(): boolean {
    for (let i = 0; i < this.#entries.length; i++) {
      const { kind, value } = this.#entries[i];
      if (kind.unusable(value) !== undefined || kind.numel(value) !== this.#sizes[i]) return false;
    }
    return true;
  }

  /** Buffers to read the values from, in order. */
  read(): ParamArray[] {
    return this.#entries.map((e) => e.kind.read(e.value));
  }

  /** Lets `fill` write every parameter (into the buffers it is given), then commits the writes. */
  write(fill: (targets: ParamArray[]) => void): void {
    const targets = this.#entries.map((e) => e.kind.writeTarget(e.value));
    fill(targets);
    this.#entries.forEach((e, i) => e.kind.commit(e.value, targets[i]));
  }
}
