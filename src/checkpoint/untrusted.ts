// Helpers for values read from untrusted files: bounded descriptions for error messages, element
// counts that cannot overflow, and the JSON checks JSON.parse does not make.

/** JSON can carry lone surrogates as escapes, but they are not valid UTF-8 text. */
export const LONE_SURROGATE = /\p{Cs}/u;

/** Short, bounded JSON rendering of an untrusted header value for error messages (src/errors.ts describes JS arguments). */
export function describeJsonValue(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : typeof value === 'bigint' ? `${value}n` : JSON.stringify(value) ?? String(value);
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Number of elements; the shape must already be validated. Overflow only happens for shapes no file can back. */
export function elementCount(shape: readonly number[]): number {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (!Number.isSafeInteger(count)) return Number.MAX_SAFE_INTEGER; // never matches a real byte span
  }
  return count;
}

export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * First key that occurs twice in one object of `json` (already known to be valid JSON), if any.
 * JSON.parse silently keeps the last duplicate, while other parsers may keep the first or refuse.
 */
export function findDuplicateKey(json: string): string | undefined {
  const objects: (Set<string> | null)[] = []; // null marks an array
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (json.charCodeAt(j) !== 0x22) j += json.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const keys = objects[objects.length - 1];
      if (expectKey && keys) {
        const raw = json.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(json.slice(i, j + 1)) as string) : raw;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      objects.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      objects.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      objects.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = objects[objects.length - 1] != null;
    }
  }
  return undefined;
}
