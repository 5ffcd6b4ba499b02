// The registry of parameter kinds: what the EMA accepts as a parameter. Each kind (typed arrays,
// tfjs variables, a user's own tensor class) answers the same few questions, so the EMA never
// branches on what a parameter is. Kinds are tried by priority, highest first, as onnxruntime tries
// its backends; the entry points register the built-in ones (src/index.ts, src/tfjs/index.ts).
import { types } from 'node:util';
import { describe, expectedRangeError, expectedTypeError, invalidArgument } from './errors';

/** A parameter buffer the kernels read and write directly. */
export type ParamArray = Float32Array | Float64Array;

/**
 * Float32Array or Float64Array from any realm: `instanceof` fails for arrays made in another
 * context (a vm context, as jest's, or the addon's own), which are just as usable.
 */
export function isParamArray(value: unknown): value is ParamArray {
  return types.isFloat32Array(value) || types.isFloat64Array(value);
}

/**
 * How one kind of parameter is read and written. The EMA holds each registered value through a
 * WeakRef, asks `unusable` and `numel` before every operation (all checks run before anything
 * changes), then reads with `read`, or writes into `writeTarget` and hands that buffer to `commit`.
 */
export interface ParameterKind<T extends object = object> {
  /** Short description for errors ('Float32Array/Float64Array', 'tf.Variable', ...); unique among kinds. */
  readonly label: string;
  matches(value: unknown): value is T;
  /** The name the value carries itself (a tfjs variable's), if any. */
  ownName(value: T): string | undefined;
  /** Optional: the value's own shape (a tfjs variable's), saved in checkpoints; its product is numel(). */
  shape?(value: T): readonly number[] | undefined;
  /** Element count now; 0 for a value that lost its contents (a detached buffer, a disposed variable). */
  numel(value: T): number;
  /** Why the value cannot be used at all right now (disposed, non-float), or undefined. */
  unusable(value: T): string | undefined;
  /** The values, as a buffer the kernels may read (no copy where the kind allows it). */
  read(value: T): ParamArray;
  /** A buffer the kernels may write into; commit() then makes it the value's contents. */
  writeTarget(value: T): ParamArray;
  commit(value: T, written: ParamArray): void;
  /**
   * Optional, for values that can lose their contents while the EMA holds them (a typed array whose
   * buffer was transferred): undefined while `value` is intact, else what to say. `refused`
   * completes "parameters[i] ..." when an EMA is created over it; `note` explains its element count
   * of 0 in a size mismatch.
   */
  lostContents?(value: T): { refused: string; note: string } | undefined;
}

interface Registration {
  kind: ParameterKind;
  priority: number;
  order: number; // ties in priority go to the kind registered first
}

const registrations: Registration[] = [];
let registered = 0;
let changes = 0;

/** Bumped by every registration: a value's kind, once found, holds until this changes (resolve.ts caches it). */
export function kindsVersion(): number {
  return changes;
}

const METHODS = ['matches', 'ownName', 'numel', 'unusable', 'read', 'writeTarget', 'commit'] as const;

function isParameterKind(value: unknown): value is ParameterKind {
  if (typeof value !== 'object' || value === null) return false;
  const kind = value as Partial<Record<string, unknown>>;
  return (
    typeof kind.label === 'string' && kind.label !== '' &&
    METHODS.every((method) => typeof kind[method] === 'function') &&
    (kind.lostContents === undefined || typeof kind.lostContents === 'function') &&
    (kind.shape === undefined || typeof kind.shape === 'function')
  );
}

/**
 * Teaches the EMA a kind of parameter. Kinds are tried from the highest priority down (ties: the one
 * registered first); the built-in kinds use 30 (Float32Array/Float64Array), 20 (tf.Variable) and
 * 10 (tf.LayerVariable), so a kind registered with the default 0 is tried after them, and one with
 * a priority above 30 before them. Registering the same kind again only changes its priority; a
 * different kind under a label already taken is an error.
 */
export function registerParameterKind<T extends object>(kind: ParameterKind<T>, priority = 0): void {
  if (!isParameterKind(kind)) {
    throw expectedTypeError(`a ParameterKind (label, ${METHODS.join(', ')})`, 'kind', kind);
  }
  if (typeof priority !== 'number') throw expectedTypeError('a finite number', 'priority', priority);
  if (!Number.isFinite(priority)) throw expectedRangeError('a finite number', 'priority', describe(priority));
  const same = registrations.find((r) => r.kind.label === kind.label);
  if (same !== undefined && same.kind !== (kind as ParameterKind)) {
    throw invalidArgument(`registerParameterKind: a different parameter kind is already registered as ${describe(kind.label)}`, Error);
  }
  if (same !== undefined) same.priority = priority;
  else registrations.push({ kind: kind as ParameterKind, priority, order: registered++ });
  registrations.sort((a, b) => b.priority - a.priority || a.order - b.order);
  changes += 1;
}

/** The kind that handles `value`: the first match by priority, or undefined. */
export function kindOf(value: unknown): ParameterKind | undefined {
  return registrations.find((r) => r.kind.matches(value))?.kind;
}

/** The labels of the registered kinds, in the order they are tried. */
export function kindLabels(): string[] {
  return registrations.map((r) => r.kind.label);
}
