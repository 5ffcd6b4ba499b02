// Name resolution: the parameters one operation uses (the registered ones, or those passed to it),
// checked against the shadows, with every parameter named for errors as well as it can be.
//
// A training loop passes the same parameters to every update, so the last resolution of each form
// (registered, explicit) is remembered per EMA and handed out again when every value is the same
// object, still usable and still of its shadow's size, under the same registered kinds; anything
// else (a detached buffer, a disposed variable, another list or order) resolves from scratch, which
// throws the errors it always threw. The memo is held through a WeakRef: it never keeps a model alive.
import { kindsVersion } from './parameter_kinds';
import { ParameterEntry, Parameter, ResolvedParameters, toEntries } from './parameters';
import type { RegisteredParameters } from './registered';

interface Memo {
  /** The entries as classified (explicit lists: before the registered names were added). */
  readonly entries: readonly ParameterEntry[];
  readonly resolved: ResolvedParameters;
  readonly kinds: number;
}

interface Memos {
  registered?: WeakRef<Memo>;
  explicit?: WeakRef<Memo>;
}

const memosByEma = new WeakMap<RegisteredParameters, Memos>();

function memosOf(registered: RegisteredParameters): Memos {
  let memos = memosByEma.get(registered);
  if (memos === undefined) {
    memos = {};
    memosByEma.set(registered, memos);
  }
  return memos;
}

function current(memo: WeakRef<Memo> | undefined): Memo | undefined {
  const found = memo?.deref();
  return found !== undefined && found.kinds === kindsVersion() ? found : undefined;
}

function remember(entries: readonly ParameterEntry[], resolved: ResolvedParameters): WeakRef<Memo> {
  return new WeakRef({ entries, resolved, kinds: kindsVersion() });
}

// Explicit parameters without names of their own are reported under the registered names.
function withRegisteredNames(entries: ParameterEntry[], registered: RegisteredParameters): ParameterEntry[] {
  return entries.map((e, i) => (e.name === undefined && i < registered.length ? { ...e, name: registered.name(i) } : e));
}

function sameEntries(a: readonly ParameterEntry[], b: readonly ParameterEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// The registered parameters. A memo still there holds their values, so none of them can have been
// collected meanwhile, and the registered list never changes: only their usability and sizes are
// asked again (not a WeakRef.deref() per parameter, which costs a hash-set insertion each).
function resolveRegistered(registered: RegisteredParameters, sizes: readonly number[], operation: string, memos: Memos): ResolvedParameters {
  const memo = current(memos.registered);
  if (memo !== undefined && memo.resolved.stillValid()) return memo.resolved;
  const entries = registered.deref(operation);
  const resolved = new ResolvedParameters(entries, sizes, 'the registered parameters');
  memos.registered = remember(entries, resolved);
  return resolved;
}

/** `parameters` if given, else the registered ones (which must still be alive), resolved for `operation`. */
export function resolveParameters(
  registered: RegisteredParameters,
  sizes: readonly number[],
  parameters: Iterable<Parameter> | undefined,
  operation: string,
): ResolvedParameters {
  const memos = memosOf(registered);
  if (parameters === undefined) return resolveRegistered(registered, sizes, operation, memos);
  const memo = current(memos.explicit);
  const entries = toEntries(parameters, 'parameters', memo?.entries);
  if (memo !== undefined && sameEntries(entries, memo.entries) && memo.resolved.stillValid()) return memo.resolved;
  const resolved = new ResolvedParameters(withRegisteredNames(entries, registered), sizes, 'parameters');
  memos.explicit = remember(entries, resolved);
  return resolved;
}
