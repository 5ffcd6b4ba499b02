// The parameter layer: what the EMA accepts as a "parameter", how it is held (weakly), and how an
// operation turns the registered or explicitly passed parameters into buffers for the kernels.
//
// Each kind of parameter (typed arrays; tfjs variables, recognised by duck typing in
// src/tfjs/variables.ts) answers the same few questions, so the EMA never branches on what a
// parameter is.
import { types } from 'node:util';
import { describe, expectedRangeError, expectedTypeError } from './errors';
import { checkParameterName } from './state_rules';
import { tfjsParameterKinds } from './tfjs/variables';

/** A parameter buffer the kernels read and write directly. */
export type ParamArray = Float32Array | Float64Array;

/**
 * Float32Array or Float64Array from any realm: `instanceof` fails for arrays made in another
 * context (a vm context, as jest's, or the addon's own), which are just as usable.
 */
export function isParamArray(value: unknown): value is ParamArray {
  return types.isFloat32Array(value) || types.isFloat64Array(value);
}

/** Anything a ParameterKind recognises: a Float32Array/Float64Array, or a tensor variable. */
export type ParameterValue = ParamArray | object;

/** A parameter with an explicit name (used in errors, state dicts and checkpoints). */
export interface NamedParameter<V extends ParameterValue = ParamArray> {
  name: string;
  value: V;
}

export type Parameter = ParamArray | NamedParameter<ParameterValue> | object;

/** How one kind of parameter is read and written. */
export interface ParameterKind<T extends object = object> {
  /** Short description for errors: 'Float32Array', 'tf.Variable', ... */
  readonly label: string;
  matches(value: unknown): value is T;
  /** The name the value carries itself (a tfjs variable's), if any. */
  ownName(value: T): string | undefined;
  /** Element count now; 0 for a detached buffer or a disposed variable. */
  numel(value: T): number;
  /** Why the value cannot be used at all right now (disposed, non-float), or undefined. */
  unusable(value: T): string | undefined;
  /** The values, as a buffer the kernels may read (no copy where the kind allows it). */
  read(value: T): ParamArray;
  /** A buffer the kernels may write into; commit() then makes it the value's contents. */
  writeTarget(value: T): ParamArray;
  commit(value: T, written: ParamArray): void;
}

const typedArrayKind: ParameterKind<ParamArray> = {
  label: 'Float32Array/Float64Array',
  matches: isParamArray,
  ownName: () => undefined,
  numel: (value) => value.length,
  unusable: () => undefined,
  read: (value) => value,
  writeTarget: (value) => value,
  commit: () => undefined,
};

// tfjs variables are known by default (pure duck typing, no tfjs import), so that
// `new ExponentialMovingAverage(model.trainableWeights, ...)` needs no extra import.
const kinds: ParameterKind[] = [typedArrayKind as ParameterKind, ...tfjsParameterKinds];

/** Teaches the EMA a new kind of parameter (typed arrays and tfjs variables are built in). */
export function registerParameterKind(kind: ParameterKind): void {
  if (!kinds.includes(kind)) kinds.push(kind);
}

/** One parameter taken apart: its value, the kind that handles it, and its name. */
export interface ParameterEntry {
  value: object;
  kind: ParameterKind;
  name: string | undefined;
}

function isNamedParameter(value: unknown): value is NamedParameter<ParameterValue> {
  return (
    typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) &&
    typeof (value as { name?: unknown }).name === 'string' && 'value' in value
  );
}

function kindOf(value: unknown): ParameterKind | undefined {
  return kinds.find((kind) => kind.matches(value));
}

function acceptedKinds(): string {
  return `a ${kinds.map((k) => k.label).join(', ')} or { name, value }`;
}

/** Classifies one parameter (typed array, variable, or { name, value }); throws on anything else. */
export function toEntry(parameter: unknown, argument: string): ParameterEntry {
  const named = isNamedParameter(parameter);
  const value = named ? (parameter as NamedParameter<ParameterValue>).value : parameter;
  const kind = kindOf(value);
  if (!kind) {
    if (ArrayBuffer.isView(value)) {
      throw expectedTypeError('a Float32Array or Float64Array (float parameters only)', argument, value);
    }
    throw expectedTypeError(acceptedKinds(), argument, parameter);
  }
  const name = named ? (parameter as NamedParameter<ParameterValue>).name : kind.ownName(value as object);
  checkParameterName(name, argument);
  const problem = kind.unusable(value as object);
  if (problem !== undefined) {
    throw new TypeError(`${argument}${name === undefined ? '' : ` (${describe(name)})`} ${problem}`);
  }
  return { value: value as object, kind, name };
}

/** Reads an iterable of parameters once, classifying each. */
export function toEntries(parameters: unknown, argument: string): ParameterEntry[] {
  if (
    parameters === null || typeof parameters !== 'object' ||
    typeof (parameters as Iterable<unknown>)[Symbol.iterator] !== 'function' || ArrayBuffer.isView(parameters)
  ) {
    throw expectedTypeError('an iterable of parameters', argument, parameters);
  }
  const entries: ParameterEntry[] = [];
  for (const parameter of parameters as Iterable<unknown>) {
    entries.push(toEntry(parameter, `${argument}[${entries.length}]`));
  }
  return entries;
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

  constructor(entries: ParameterEntry[], sizes: readonly number[], argument: string) {
    if (entries.length !== sizes.length) {
      throw expectedRangeError(`${sizes.length} parameters (one per shadow)`, argument, String(entries.length));
    }
    entries.forEach((entry, i) => {
      const problem = entry.kind.unusable(entry.value);
      if (problem !== undefined) {
        throw new TypeError(`${parameterLabel(i, entry.name)} ${problem}`);
      }
      const numel = entry.kind.numel(entry.value);
      if (numel !== sizes[i]) {
        const detached =
          ArrayBuffer.isView(entry.value) && numel === 0 && isDetached(entry.value.buffer)
            ? ' (its buffer was detached or transferred)'
            : '';
        throw expectedRangeError(
          `${sizes[i]} elements (the size of its shadow)`,
          `${parameterLabel(i, entry.name)} of ${argument}`,
          `${numel}${detached}`,
        );
      }
    });
    this.#entries = entries;
  }

  get entries(): readonly ParameterEntry[] {
    return this.#entries;
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

export function isDetached(buffer: ArrayBufferLike): boolean {
  // Node 20 lacks ArrayBuffer.prototype.detached; making a view of a detached buffer throws.
  if (buffer.byteLength !== 0) return false;
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}
