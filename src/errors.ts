// Error messages in one shape, as the native side writes them: "Expected X for Y but received Z".

/** A short, safe description of any value for an error message. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'undefined': return 'undefined';
    case 'number': return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint': return `${value}n`;
    case 'boolean': return String(value);
    case 'symbol': return 'a symbol';
    case 'function': return 'a function';
    case 'string': return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
    default: break;
  }
  if (ArrayBuffer.isView(value)) {
    const length = 'length' in value ? `(${(value as { length: number }).length})` : '';
    return `${value.constructor.name}${length}`;
  }
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

export function expectedTypeError(expected: string, argument: string, received: unknown): TypeError {
  return new TypeError(`Expected ${expected} for ${argument} but received ${describe(received)}`);
}

export function expectedRangeError(expected: string, argument: string, received: string): RangeError {
  return new RangeError(`Expected ${expected} for ${argument} but received ${received}`);
}

/** A number in [0, 1]: TypeError for non-numbers, RangeError for NaN, infinities and the rest. */
export function checkUnitInterval(value: unknown, argument: string): number {
  if (typeof value !== 'number') throw expectedTypeError('a number in [0, 1]', argument, value);
  if (!(value >= 0 && value <= 1)) throw expectedRangeError('a number in [0, 1]', argument, describe(value));
  return value;
}

export function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// A misspelt option ({ dtyp: 'float16' }) would otherwise be ignored without a word, and the EMA
// would run with the default the user meant to change.
export function refuseUnknownOptions(options: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = known.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2);
    throw new TypeError(
      `Unknown option '${key}' in ${where}${near === undefined ? '' : ` (did you mean '${near}'?)`}; the options are ${known.join(', ')}`,
    );
  }
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}
