// The storage dtypes, in one table: the name the API uses, the safetensors code checkpoints use, and
// the bytes per element. The facade, the state dict and the checkpoint codec all read it from here.
import { describe, expectedRangeError, expectedTypeError } from './errors';
// Type only: the dtype names are declared with the native surface (binding.d.ts).
import type { StorageDType } from './native';

export type { StorageDType };

/** The element types of a safetensors file that this package reads and writes. */
export type SafetensorsDType = 'F32' | 'F64' | 'F16' | 'BF16';

export interface DTypeInfo {
  readonly name: StorageDType;
  readonly safetensors: SafetensorsDType;
  readonly bytes: number;
}

/** Every storage dtype, in the order messages list them. */
export const DTYPE_TABLE: readonly DTypeInfo[] = Object.freeze([
  { name: 'float32', safetensors: 'F32', bytes: 4 },
  { name: 'float64', safetensors: 'F64', bytes: 8 },
  { name: 'float16', safetensors: 'F16', bytes: 2 },
  { name: 'bfloat16', safetensors: 'BF16', bytes: 2 },
]);

export const STORAGE_DTYPES: readonly StorageDType[] = Object.freeze(DTYPE_TABLE.map((d) => d.name));

/** The safetensors code of each storage dtype. */
export const SAFETENSORS_CODE: Readonly<Record<StorageDType, SafetensorsDType>> = Object.freeze(
  Object.fromEntries(DTYPE_TABLE.map((d) => [d.name, d.safetensors])) as Record<StorageDType, SafetensorsDType>,
);

/** Bytes per element of each safetensors code. */
export const SAFETENSORS_BYTES: Readonly<Record<SafetensorsDType, number>> = Object.freeze(
  Object.fromEntries(DTYPE_TABLE.map((d) => [d.safetensors, d.bytes])) as Record<SafetensorsDType, number>,
);

/** True for the names of the table (own keys only: 'toString' is no dtype). */
export function isStorageDType(value: unknown): value is StorageDType {
  return typeof value === 'string' && Object.hasOwn(SAFETENSORS_CODE, value);
}

export function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(SAFETENSORS_BYTES, value);
}

/** 'a, b, c or d': the table's names or codes for an error message. */
export function listOfDTypes(field: 'name' | 'safetensors'): string {
  const all = DTYPE_TABLE.map((d) => d[field]);
  return `${all.slice(0, -1).join(', ')} or ${all[all.length - 1]}`;
}

/** Checks an option or field that names a storage dtype. */
export function parseStorageDType(value: unknown, argument: string): StorageDType {
  const expected = `one of ${STORAGE_DTYPES.map((d) => `'${d}'`).join(', ')}`;
  if (typeof value !== 'string') throw expectedTypeError(expected, argument, value);
  if (!isStorageDType(value)) throw expectedRangeError(expected, argument, describe(value));
  return value;
}
